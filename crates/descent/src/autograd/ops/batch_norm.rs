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
        self.batch_norm_op(store, x, gamma, beta, eps, fixed, false)
    }

    /// Batch normalization with statistics over every replica's rows when the tape is
    /// joined to the replicas of a data-parallel fit ([`Tape::set_replicas`]): N
    /// replicas with B/N rows each normalize as one process with B rows does (PyTorch's
    /// `SyncBatchNorm`, Keras's `synchronized=True`). Alone, it is [`Tape::batch_norm`].
    pub fn synchronized_batch_norm(&mut self, store: &ParamStore, x: Var, gamma: Var, beta: Var, eps: f32) -> Result<Var> {
        self.batch_norm_op(store, x, gamma, beta, eps, None, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn batch_norm_op(&mut self, store: &ParamStore, x: Var, gamma: Var, beta: Var, eps: f32, fixed: Option<(Var, Var)>, synchronized: bool) -> Result<Var> {
        let (m, n) = self.check_norm("batch normalization", x, gamma, beta)?;
        let rg = self.requires_grad(x) || self.requires_grad(gamma) || self.requires_grad(beta);
        let out = self.push(self.shape(x), Op::BatchNorm { x, gamma, beta, fixed: fixed.is_some(), synchronized }, rg);
        let mut replicas = if synchronized && fixed.is_none() { self.replicas.take() } else { None };
        self.compute(store, out, |nodes, params, y, saved| {
            let [xhat, stats, _] = saved;
            B::resize(xhat, m * n);
            B::resize(stats, 3 * n);
            if let Some((mm, mv)) = fixed {
                B::copy(B::range_mut(stats, 0..n), value_of(nodes, params, mm));
                B::copy(B::range_mut(stats, n..2 * n), value_of(nodes, params, mv));
            }
            let (xv, g, b) = (value_of(nodes, params, x), value_of(nodes, params, gamma), value_of(nodes, params, beta));
            let Some(r) = replicas.as_mut() else {
                B::batch_norm(xv, g, b, eps, fixed.is_some(), y, xhat, stats);
                return;
            };
            // Over the replicas: Σ x per column with the rows, then Σ (x − μ)² about the
            // replicas' mean, each summed over them. The two passes one process takes,
            // with a sum between (scratch: [mean | rows | variance]).
            r.reserve(2 * n + 1);
            B::column_sums(xv, n, &mut r.scratch[..n]);
            r.scratch[n] = m as f64;
            r.sum(0..n + 1);
            let rows = r.scratch[n].max(1.0);
            r.scratch[..n].iter_mut().for_each(|s| *s /= rows);
            let (mean, var) = r.scratch.split_at_mut(n + 1);
            B::column_centered_squares(xv, &mean[..n], &mut var[..n]);
            r.sum(n + 1..2 * n + 1);
            let (mean, var) = r.scratch.split_at_mut(n + 1);
            var[..n].iter_mut().for_each(|s| *s /= rows);
            B::batch_norm_given(xv, g, b, eps, &mean[..n], &var[..n], y, xhat, stats);
        });
        if replicas.is_some() {
            self.replicas = replicas;
        }
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

pub(super) fn backward(ctx: &mut Backward, i: usize, (x, gamma, beta): (Var, Var, Var), fixed: bool, synchronized: bool) {
    let n = *ctx.nodes[i].shape.dims().last().unwrap_or(&1);
    let rows = ctx.nodes[i].shape.numel() / n.max(1);
    let mut replicas = if synchronized && !fixed { ctx.replicas.take() } else { None };
    ctx.with_own(i, |ctx, g, saved| {
        let s = BatchNormSaved::of(saved, n);
        norm_grads(ctx, (x, gamma, beta), |gv, gx, gg, gb| {
            let Some(r) = replicas.as_deref_mut() else {
                B::batch_norm_backward(g, s.xhat, s.inv_std, gv, fixed, gx, gg, gb);
                return;
            };
            // The means of ĝ and ĝ ⊙ x̂ over every replica's rows. Each replica's g is
            // of its own mean loss, so its sums weigh its share of the step (as its
            // parameter gradients do in the all-reduce), and the means come back to its
            // own scale: ∂L/∂x = r · (ĝ − (m1 + x̂ · m2) / weight).
            r.reserve(2 * n + 1);
            B::batch_norm_backward_sums(g, s.xhat, gv, &mut r.scratch[..2 * n]);
            let w = r.weight;
            r.scratch[..2 * n].iter_mut().for_each(|v| *v *= w);
            r.scratch[2 * n] = rows as f64;
            r.sum(0..2 * n + 1);
            let scale = 1.0 / (r.scratch[2 * n].max(1.0) * w);
            r.scratch[..2 * n].iter_mut().for_each(|v| *v *= scale);
            B::batch_norm_backward_given(g, s.xhat, s.inv_std, gv, &r.scratch[..2 * n], gx, gg, gb);
        });
    });
    if replicas.is_some() {
        ctx.replicas = replicas;
    }
}
