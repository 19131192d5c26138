//! Loss: the mean over the batch of a per-sample loss (cross-entropies, MSE, MAE, Huber),
//! a scalar. Its gradient with respect to the predictions is computed in the same pass
//! (softmax + cross-entropy fused) and only scaled by the upstream gradient in backward.

use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::kernels::loss::LossKind;
use crate::tensor::{Backend, DeviceSlice, Shape, Targets, TargetsMut, B};

/// What a loss node keeps: ∂loss/∂pred from the forward pass, the target values it read
/// (shaped like the predictions; empty for sparse losses, whose integer classes are the
/// node's `ints`) and the per-sample weights (empty: unweighted).
struct LossSaved<'a> {
    grad: &'a DeviceSlice,
}

impl<'a> LossSaved<'a> {
    fn of(saved: &'a super::Saved) -> Self {
        LossSaved { grad: &saved[0] }
    }
}

impl Tape {
    /// Mean over the batch of `kind`'s per-sample loss against `targets` (classes for
    /// the sparse kinds, else values shaped like `pred`). When recording, the gradient
    /// with respect to `pred` is computed in the same pass and kept.
    pub fn loss(&mut self, store: &ParamStore, pred: Var, targets: Targets, kind: LossKind) -> Result<Var> {
        match (kind.sparse_targets(), targets) {
            (true, Targets::Values(_)) => return Err(Error::shape("loss targets", "one integer class per sample for a sparse loss", "values")),
            (false, Targets::Classes(_)) => return Err(Error::shape("loss targets", "values shaped like the predictions", "classes")),
            _ => {}
        }
        let fill = |t: TargetsMut| match (t, targets) {
            (TargetsMut::Values(buf), Targets::Values(v)) => buf.extend_from_slice(v),
            (TargetsMut::Classes(buf), Targets::Classes(c)) => buf.extend_from_slice(c),
            _ => unreachable!("the kinds were matched above"),
        };
        self.loss_weighted(store, pred, kind, fill, |w| w.clear())
    }

    /// Like [`Tape::loss`], with the targets written by `fill` into the node's own
    /// (reused) buffers — values or classes, as `kind` takes them — e.g. gathered from a
    /// shuffled dataset without a copy in between, and per-sample weights written by
    /// `fill_weights` (left empty: unweighted): the loss is Σ wᵢ·lossᵢ / batch (Keras's
    /// reduction with `sample_weight`), each sample's gradient scaled by its weight.
    pub fn loss_weighted(
        &mut self,
        store: &ParamStore,
        pred: Var,
        kind: LossKind,
        fill: impl FnOnce(TargetsMut),
        fill_weights: impl FnOnce(&mut Vec<f32>),
    ) -> Result<Var> {
        let ps = self.shape(pred);
        let (rows, cols) = kind.rows_and_cols(ps.dims());
        let cols = cols.max(1);
        let sparse = kind.sparse_targets();
        let rg = self.requires_grad(pred);
        let out = self.push(Shape::scalar(), Op::Loss { pred }, rg);
        let got = {
            let node = self.node_mut(out);
            let [_, targets, weights] = &mut node.saved;
            if sparse {
                B::clear(targets);
                B::ints_stage_with(&mut node.ints, |c| fill(TargetsMut::Classes(c)));
            } else {
                B::ints_write(&mut node.ints, &[]);
                B::stage_with(targets, |t| fill(TargetsMut::Values(t)));
            }
            B::stage_with(weights, fill_weights);
            (if sparse { B::ints_len(&node.ints) } else { B::len(targets) }, B::len(weights))
        };
        let want = if sparse { rows } else { ps.numel() };
        if got.0 != want || (got.1 != 0 && got.1 != rows) {
            self.pop();
            if got.0 != want {
                return Err(Error::shape("loss targets", format!("{want} values for predictions {ps}"), got.0));
            }
            return Err(Error::shape("sample weights", format!("{rows} values (one per row of the loss)"), got.1));
        }
        if let Some((pos, class)) = B::ints_host(&self.node(out).ints).iter().enumerate().find(|(_, c)| **c as usize >= cols) {
            let (pos, class) = (pos, *class);
            self.pop();
            return Err(Error::shape("loss targets", format!("classes below {cols} (the model's outputs)"), format!("class {class} at sample {pos}")));
        }
        let record = rg && self.grad_enabled();
        let scale = 1.0 / rows.max(1) as f32;
        self.compute(store, out, |nodes, params, y, saved| {
            let p = value_of(nodes, params, pred);
            let [grad, targets, weights] = saved;
            B::resize(grad, if record { B::len(p) } else { 0 });
            let labels = &nodes[out.idx()].ints;
            let sum = B::loss(kind, p, targets, labels, weights, cols, record.then_some(&mut **grad), scale);
            B::write_with(y, |y| y[0] = (sum * scale as f64) as f32);
        });
        Ok(out)
    }

    /// The targets a loss node was computed against.
    pub fn targets(&self, loss: Var) -> Targets<'_> {
        let node = self.node(loss);
        if B::ints_len(&node.ints) > 0 { Targets::Classes(B::ints_host(&node.ints)) } else { Targets::Values(B::host(&node.saved[1])) }
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, pred: Var) {
    let upstream = B::read(&ctx.nodes[i].grad, 0);
    ctx.with_own(i, |ctx, _, saved| {
        let grad = LossSaved::of(saved).grad;
        ctx.with_grad(pred, |_, _, gp| B::axpy(gp, upstream, grad));
    });
}
