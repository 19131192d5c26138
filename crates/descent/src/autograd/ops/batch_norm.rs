//! Batch normalization of each column of `x: [batch, n]`, with the batch's mean and
//! (biased) variance in training or given statistics at inference.

use super::{norm_grads, value_of, Backward, Op, Saved};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::Result;
use crate::tensor::kernels::norm;
use crate::tensor::Shape;

/// What backward (and the moving averages) read: x̂, and per column the mean, the
/// variance and 1/σ used.
struct BatchNormSaved<'a> {
    xhat: &'a [f32],
    mean: &'a [f32],
    var: &'a [f32],
    inv_std: &'a [f32],
}

impl<'a> BatchNormSaved<'a> {
    fn of(saved: &'a Saved, n: usize) -> Self {
        let stats = &saved[1];
        BatchNormSaved { xhat: &saved[0], mean: &stats[..n], var: &stats[n..2 * n], inv_std: &stats[2 * n..3 * n] }
    }
}

impl Tape {
    /// Batch normalization of each column of `x` `[batch, n]`: with the batch's mean and
    /// (biased) variance, or with `fixed = Some((mean, variance))` (inference).
    pub fn batch_norm(&mut self, store: &ParamStore, x: Var, gamma: Var, beta: Var, eps: f32, fixed: Option<(Var, Var)>) -> Result<Var> {
        let (m, n) = self.check_norm("batch normalization", x, gamma, beta)?;
        let rg = self.requires_grad(x) || self.requires_grad(gamma) || self.requires_grad(beta);
        let out = self.push(Shape::matrix(m, n), Op::BatchNorm { x, gamma, beta, fixed: fixed.is_some() }, rg);
        self.compute(store, out, |nodes, params, y, saved| {
            let [xhat, stats, _] = saved;
            xhat.resize(m * n, 0.0);
            stats.resize(3 * n, 0.0);
            let (mean, rest) = stats.split_at_mut(n);
            let (var, inv) = rest.split_at_mut(n);
            let (xv, g, b) = (value_of(nodes, params, x), value_of(nodes, params, gamma), value_of(nodes, params, beta));
            match fixed {
                None => norm::batch_norm_forward(xv, g, b, eps, y, xhat, mean, var, inv),
                Some((mm, mv)) => {
                    mean.copy_from_slice(value_of(nodes, params, mm));
                    var.copy_from_slice(value_of(nodes, params, mv));
                    norm::batch_norm_inference(xv, g, b, mean, var, eps, y, xhat, inv);
                }
            }
        });
        Ok(out)
    }

    /// The batch mean and variance a `batch_norm` node computed (for moving averages).
    pub fn batch_stats(&self, v: Var) -> Option<(&[f32], &[f32])> {
        let node = self.node(v);
        match node.op {
            Op::BatchNorm { .. } => {
                let s = BatchNormSaved::of(&node.saved, node.shape.cols());
                Some((s.mean, s.var))
            }
            _ => None,
        }
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, (x, gamma, beta): (Var, Var, Var), fixed: bool) {
    let n = ctx.nodes[i].shape.cols();
    ctx.with_own(i, |ctx, g, saved| {
        let s = BatchNormSaved::of(saved, n);
        norm_grads(ctx, (x, gamma, beta), |gv, gx, gg, gb| norm::batch_norm_backward(g, s.xhat, s.inv_std, gv, fixed, gx, gg, gb));
    });
}
