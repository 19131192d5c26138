//! Batch normalization of each column of `x: [batch, n]`, with the batch's mean and
//! (biased) variance in training or given statistics at inference.

use super::{norm_grads, value_of, Backward, Op, Saved};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::Result;
use crate::tensor::{Backend, DeviceSlice, B};

/// What backward (and the moving averages) read: x̂, and per column the mean, the
/// variance and 1/σ used.
struct BatchNormSaved<'a> {
    xhat: &'a DeviceSlice,
    mean: &'a DeviceSlice,
    var: &'a DeviceSlice,
    inv_std: &'a DeviceSlice,
}

impl<'a> BatchNormSaved<'a> {
    fn of(saved: &'a Saved, n: usize) -> Self {
        let stats = &saved[1];
        let part = |k: usize| B::range(stats, k * n..(k + 1) * n);
        BatchNormSaved { xhat: &saved[0], mean: part(0), var: part(1), inv_std: part(2) }
    }
}

impl Tape {
    /// Batch normalization of each column of `x` `[batch, n]`: with the batch's mean and
    /// (biased) variance, or with `fixed = Some((mean, variance))` (inference).
    pub fn batch_norm(&mut self, store: &ParamStore, x: Var, gamma: Var, beta: Var, eps: f32, fixed: Option<(Var, Var)>) -> Result<Var> {
        let (m, n) = self.check_norm("batch normalization", x, gamma, beta)?;
        let rg = self.requires_grad(x) || self.requires_grad(gamma) || self.requires_grad(beta);
        let out = self.push(self.shape(x), Op::BatchNorm { x, gamma, beta, fixed: fixed.is_some() }, rg);
        self.compute(store, out, |nodes, params, y, saved| {
            let [xhat, stats, _] = saved;
            B::resize(xhat, m * n);
            B::resize(stats, 3 * n);
            if let Some((mm, mv)) = fixed {
                B::copy(B::range_mut(stats, 0..n), value_of(nodes, params, mm));
                B::copy(B::range_mut(stats, n..2 * n), value_of(nodes, params, mv));
            }
            let (xv, g, b) = (value_of(nodes, params, x), value_of(nodes, params, gamma), value_of(nodes, params, beta));
            B::batch_norm(xv, g, b, eps, fixed.is_some(), y, xhat, stats);
        });
        Ok(out)
    }

    /// The batch mean and variance a `batch_norm` node computed (for moving averages).
    pub fn batch_stats(&self, v: Var) -> Option<(&DeviceSlice, &DeviceSlice)> {
        let node = self.node(v);
        match node.op {
            Op::BatchNorm { .. } => {
                let s = BatchNormSaved::of(&node.saved, *node.shape.dims().last().unwrap_or(&1));
                Some((s.mean, s.var))
            }
            _ => None,
        }
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, (x, gamma, beta): (Var, Var, Var), fixed: bool) {
    let n = *ctx.nodes[i].shape.dims().last().unwrap_or(&1);
    ctx.with_own(i, |ctx, g, saved| {
        let s = BatchNormSaved::of(saved, n);
        norm_grads(ctx, (x, gamma, beta), |gv, gx, gg, gb| B::batch_norm_backward(g, s.xhat, s.inv_std, gv, fixed, gx, gg, gb));
    });
}
