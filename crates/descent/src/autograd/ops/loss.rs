//! Loss: the mean over the batch of a per-sample loss (cross-entropies, MSE, MAE, Huber),
//! a scalar. Its gradient with respect to the predictions is computed in the same pass
//! (softmax + cross-entropy fused) and only scaled by the upstream gradient in backward.

use super::{value_of, Backward, Op, Saved};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::kernels::loss::LossKind;
use crate::tensor::Shape;

/// What a loss node keeps: ∂loss/∂pred from the forward pass, the targets it read (one
/// class index per row for sparse losses, else shaped like the predictions) and the
/// per-sample weights (empty: unweighted).
struct LossSaved<'a> {
    grad: &'a [f32],
    targets: &'a [f32],
}

impl<'a> LossSaved<'a> {
    fn of(saved: &'a Saved) -> Self {
        LossSaved { grad: &saved[0], targets: &saved[1] }
    }
}

impl Tape {
    /// Mean over the batch of `kind`'s per-sample loss against `target`. When recording,
    /// the gradient with respect to `pred` is computed in the same pass and kept.
    pub fn loss(&mut self, store: &ParamStore, pred: Var, target: &[f32], kind: LossKind) -> Result<Var> {
        self.loss_with(store, pred, kind, |t| t.extend_from_slice(target))
    }

    /// Like [`Tape::loss`], with the targets written by `fill` into the node's own
    /// (reused) buffer, e.g. gathered from a shuffled dataset without a copy in between.
    pub fn loss_with(&mut self, store: &ParamStore, pred: Var, kind: LossKind, fill: impl FnOnce(&mut Vec<f32>)) -> Result<Var> {
        self.loss_weighted(store, pred, kind, fill, |w| w.clear())
    }

    /// Like [`Tape::loss_with`], with per-sample weights written by `fill_weights` (left
    /// empty: unweighted): the loss is Σ wᵢ·lossᵢ / batch (Keras's reduction with
    /// `sample_weight`), and each sample's gradient is scaled by its weight.
    pub fn loss_weighted(
        &mut self,
        store: &ParamStore,
        pred: Var,
        kind: LossKind,
        fill: impl FnOnce(&mut Vec<f32>),
        fill_weights: impl FnOnce(&mut Vec<f32>),
    ) -> Result<Var> {
        let ps = self.shape(pred);
        let rows = ps.rows();
        let cols = ps.cols().max(1);
        let want = if kind.sparse_targets() { rows } else { ps.numel() };
        let rg = self.requires_grad(pred);
        let out = self.push(Shape::scalar(), Op::Loss { pred }, rg);
        {
            let [_, targets, weights] = &mut self.node_mut(out).saved;
            targets.clear();
            fill(targets);
            weights.clear();
            fill_weights(weights);
            let (got, n_weights) = (targets.len(), weights.len());
            if got != want || (n_weights != 0 && n_weights != rows) {
                self.pop();
                if got != want {
                    return Err(Error::shape("loss targets", format!("{want} values for predictions {ps}"), got));
                }
                return Err(Error::shape("sample weights", format!("{rows} values (one per sample)"), n_weights));
            }
        }
        let record = rg && self.grad_enabled();
        let scale = 1.0 / rows.max(1) as f32;
        self.compute(store, out, |nodes, params, y, saved| {
            let p = value_of(nodes, params, pred);
            let [grad, targets, weights] = saved;
            if record {
                grad.resize(p.len(), 0.0);
            }
            let sum = if weights.is_empty() {
                kind.compute(p, targets, cols, record.then_some(&mut grad[..]), scale)
            } else {
                // Row by row, each loss and gradient scaled by the sample's weight.
                let tcols = if kind.sparse_targets() { 1 } else { cols };
                let mut total = 0.0;
                for (r, w) in weights.iter().enumerate() {
                    let g = record.then(|| &mut grad[r * cols..(r + 1) * cols]);
                    let l = kind.compute(&p[r * cols..(r + 1) * cols], &targets[r * tcols..(r + 1) * tcols], cols, g, scale * w);
                    total += *w as f64 * l;
                }
                total
            };
            y[0] = (sum * scale as f64) as f32;
        });
        Ok(out)
    }

    /// The targets a loss node was computed against.
    pub fn targets(&self, loss: Var) -> &[f32] {
        LossSaved::of(&self.node(loss).saved).targets
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, pred: Var) {
    let upstream = ctx.nodes[i].grad[0];
    ctx.with_own(i, |ctx, _, saved| {
        let grad = LossSaved::of(saved).grad;
        ctx.with_grad(pred, |_, _, gp| gp.iter_mut().zip(grad).for_each(|(g, a)| *g += upstream * a));
    });
}
