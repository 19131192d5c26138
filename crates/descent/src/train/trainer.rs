//! The trainer: what `compile` fixes (optimizer, loss, metrics) plus the tape, and the
//! training step, read top to bottom in [`Trainer::train_step`]:
//!
//!   gather the batch into the tape's input buffer → forward through the network →
//!   loss (its gradient computed in the same pass) → zero the flat gradient buffer →
//!   backward → the gradient pipeline ([`Trainer::apply_gradients`]), in this order:
//!     1. unscale (the loss-scale seat of mixed precision; the scale is 1 today)
//!     2. all-reduce (the data-parallel seat; a single process has nothing to reduce)
//!     3. regularizer gradients (L1/L2 kernel and bias penalties)
//!     4. accumulation (`gradient_accumulation_steps`)
//!     5. one pass of norms and finiteness
//!     6. the fused rule: clipping and weight decay folded into the optimizer's single pass
//!     7. EMA of the weights, step count
//!   → moving statistics of normalization layers.
//!
//! The tape keeps its buffers between steps, so after the first step nothing allocates.

use super::batch::{gather, gather_classes, gather_into, Inputs, Rows, SampleWeights};
use crate::autograd::{Tape, Var};
use crate::error::Result;
use crate::nn::{Loss, Metric, MetricContext, MetricState, Network};
use crate::optim::{GradSource, GradStats, Optimizer};
use crate::tensor::{Backend, DeviceVec, Shape, TargetsMut, Tensor, B};

/// What trains a network: fixed by `compile`, then reused by every step.
pub struct Trainer {
    pub optimizer: Box<dyn Optimizer>,
    pub loss: Loss,
    /// (name as requested, metric as requested; resolved when training starts)
    pub metrics: Vec<(String, Metric)>,
    /// Warnings raised at compile (also printed to stderr).
    pub warnings: Vec<String>,
    pub(crate) tape: Tape,
    /// The tape values of the batch's inputs, one per model input (reused).
    input_vars: Vec<Var>,
    /// The statistics pass of the last step (global gradient norm when computed).
    last_stats: GradStats,
}

impl Trainer {
    pub fn new(optimizer: Box<dyn Optimizer>, loss: Loss, metrics: Vec<(String, Metric)>, warnings: Vec<String>) -> Self {
        Trainer { optimizer, loss, metrics, warnings, tape: Tape::new(), input_vars: Vec::new(), last_stats: GradStats::default() }
    }

    /// Fresh metric accumulators for a model with `outputs` outputs; `accuracy` resolves
    /// by the loss here (binary accuracy thresholds logits at 0, probabilities at 0.5).
    pub(crate) fn metric_states(&self, outputs: usize) -> Vec<MetricState> {
        let from_logits = self.loss.from_logits();
        let ctx = MetricContext {
            outputs: outputs.max(1),
            sparse_targets: self.loss.kind().sparse_targets(),
            from_logits,
            threshold: if from_logits { 0.0 } else { 0.5 },
        };
        let binary_loss = matches!(self.loss, Loss::BinaryCrossentropy { .. });
        self.metrics.iter().map(|(n, m)| MetricState::new(n, m.resolve(&self.loss, outputs.max(1)), ctx, binary_loss)).collect()
    }

    /// What the last step's statistics pass found.
    pub fn last_grad_stats(&self) -> GradStats {
        self.last_stats
    }

    /// One training step on the chosen rows of `(x, y)`; returns the summed (not
    /// averaged) loss of the batch, regularization included, and updates `metrics`.
    pub(crate) fn train_step(
        &mut self,
        net: &mut Network,
        (xs, y, rows): (Inputs, &Tensor, Rows),
        metrics: &mut [MetricState],
        weights: Option<&SampleWeights>,
    ) -> Result<f64> {
        let n = rows.len(xs.rows());
        let (out, loss) = self.forward_loss(net, (xs, y, rows), weights, true)?;
        net.store.zero_grads();
        self.tape.backward(loss, &mut net.store)?;
        let penalty = self.apply_gradients(net);
        for layer in &net.layers {
            layer.update_state(&self.tape, &mut net.store);
        }
        self.update_metrics(net, out, loss, metrics);
        Ok((self.tape.scalar(loss) as f64 + penalty + self.tape.penalty()) * n as f64)
    }

    /// The loss of the chosen rows without recording for backward (call inside
    /// `tape.no_grad`); summed over the batch, regularization included.
    pub(crate) fn eval_step(&mut self, net: &Network, (xs, y, rows): (Inputs, &Tensor, Rows), metrics: &mut [MetricState]) -> Result<f64> {
        let n = rows.len(xs.rows());
        let (out, loss) = self.forward_loss(net, (xs, y, rows), None, false)?;
        let penalty = regularize(net, None);
        self.update_metrics(net, out, loss, metrics);
        Ok((self.tape.scalar(loss) as f64 + penalty + self.tape.penalty()) * n as f64)
    }

    /// Forward pass and loss node of one batch.
    fn forward_loss(
        &mut self,
        net: &Network,
        (xs, y, rows): (Inputs, &Tensor, Rows),
        weights: Option<&SampleWeights>,
        training: bool,
    ) -> Result<(Var, Var)> {
        let tape = &mut self.tape;
        tape.reset();
        let n = rows.len(xs.rows());
        self.input_vars.clear();
        for i in 0..xs.len() {
            let x = xs.get(i);
            self.input_vars.push(tape.input_with(Shape::matrix(n, x.row_len()), |buf| gather_into(buf, x, rows)));
        }
        let out = net.forward_inputs(tape, &self.input_vars, training)?;
        let out_cols = tape.shape(out).cols().max(1);
        let loss_fn = self.loss;
        let loss = tape.loss_weighted(
            &net.store,
            out,
            loss_fn.kind(),
            |t| match t {
                TargetsMut::Values(t) => {
                    gather(t, y, rows);
                    loss_fn.smooth_targets(t, out_cols);
                }
                TargetsMut::Classes(c) => gather_classes(c, y, rows),
            },
            |w| match weights {
                Some(sw) => sw.fill(w, y, rows),
                None => w.clear(),
            },
        )?;
        Ok((out, loss))
    }

    /// The gradient pipeline, in order (see the module docs); returns the regularization
    /// penalty, part of the reported loss.
    fn apply_gradients(&mut self, net: &mut Network) -> f64 {
        unscale_gradients(net, 1.0);
        all_reduce_gradients(net);
        let penalty = regularize_with_gradients(net);
        let source = self.optimizer.accumulate(&net.store);
        if source != GradSource::Pending {
            self.last_stats = self.optimizer.grad_stats(&net.store, source);
            self.optimizer.apply(&mut net.store, source, &self.last_stats);
        }
        self.optimizer.finish_step(&mut net.store);
        penalty
    }

    fn update_metrics(&self, net: &Network, out: Var, loss: Var, metrics: &mut [MetricState]) {
        let cols = self.tape.shape(out).cols().max(1);
        for m in metrics.iter_mut() {
            m.update(self.tape.value(&net.store, out), self.tape.targets(loss), cols);
        }
    }
}

/// Pipeline stage 1: divides the gradients by the loss scale of mixed-precision
/// training. Training is f32 throughout today, so the scale is 1 and this does nothing;
/// a scaled backward pass sets it here, before anything reads a gradient.
fn unscale_gradients(net: &mut Network, scale: f32) {
    if scale != 1.0 {
        let inv = 1.0 / scale;
        net.store.grads_mut().iter_mut().for_each(|g| *g *= inv);
    }
}

/// Pipeline stage 2: sums the flat gradient buffer over data-parallel processes. With
/// one process there is nothing to reduce; an MPI backend fills this seat.
fn all_reduce_gradients(_net: &mut Network) {}

/// Pipeline stage 3: adds every layer's weight-penalty gradients into the parameter
/// gradients; returns the penalties' sum.
fn regularize_with_gradients(net: &mut Network) -> f64 {
    let mut grads = net.store.take_grads();
    let total = regularize(net, Some(&mut grads));
    net.store.restore_grads(grads);
    total
}

/// Every layer's weight penalties (Keras's regularization losses): their sum and, with
/// `grads`, their gradients added in.
fn regularize(net: &Network, mut grads: Option<&mut DeviceVec>) -> f64 {
    let mut total = 0.0;
    let store = &net.store;
    for layer in &net.layers {
        layer.regularizers(&mut |id, r| {
            let range = store.entry(id).range();
            let w = B::range(store.device_values(), range.clone());
            total += match &mut grads {
                Some(g) => r.apply(w, B::range_mut(g, range)),
                None => r.penalty(w),
            };
        });
    }
    total
}
