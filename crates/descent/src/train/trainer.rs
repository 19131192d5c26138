//! The trainer: what `compile` fixes (optimizer, loss, metrics) plus the tape, and the
//! training step, read top to bottom in [`Trainer::train_step`]:
//!
//!   gather the batch into the tape's input buffer → forward through the network →
//!   loss (its gradient computed in the same pass; with several outputs, one loss per
//!   output and their weighted sum) → zero the flat gradient buffer →
//!   backward → the gradient pipeline ([`Trainer::apply_gradients`]), in this order:
//!     1. unscale (the loss-scale seat of mixed precision; the scale is 1 today)
//!     2. all-reduce over data-parallel ranks (started bucket by bucket during backward;
//!        a single process has nothing to reduce)
//!     3. regularizer gradients (L1/L2 kernel and bias penalties)
//!     4. accumulation (`gradient_accumulation_steps`)
//!     5. one pass of norms and finiteness
//!     6. the fused rule: clipping and weight decay folded into the optimizer's single pass
//!     7. EMA of the weights, step count
//!   → moving statistics of normalization layers.
//!
//! The tape keeps its buffers between steps, so after the first step nothing allocates.

use super::batch::{gather, gather_classes, gather_into, Inputs, Rows, SampleWeights};
use super::telemetry::Telemetry;
use crate::autograd::{Tape, Var};
use crate::distributed::DataParallel;
use crate::error::Result;
use crate::nn::{Loss, Metric, MetricContext, MetricState, Network};
use crate::optim::{GradSource, GradStats, Optimizer};
use crate::tensor::{Backend, DeviceVec, TargetsMut, B};

/// What trains a network: fixed by `compile`, then reused by every step.
pub struct Trainer {
    pub optimizer: Box<dyn Optimizer>,
    /// One loss per model output (Keras: a single loss applies to every output).
    pub losses: Vec<Loss>,
    /// Each output's weight in the total loss (Keras's `loss_weights`; 1 by default).
    pub loss_weights: Vec<f32>,
    /// (name as requested, metric as requested; resolved when training starts)
    pub metrics: Vec<(String, Metric)>,
    /// Warnings raised at compile (also printed to stderr).
    pub warnings: Vec<String>,
    pub(crate) tape: Tape,
    /// The tape values of the batch's inputs, one per model input (reused).
    input_vars: Vec<Var>,
    /// The last pass's outputs and their loss nodes, one per model output (reused).
    output_vars: Vec<Var>,
    loss_vars: Vec<Var>,
    /// The statistics pass of the last step (global gradient norm when computed).
    last_stats: GradStats,
}

impl Trainer {
    /// A trainer with one loss per model output and their weights in the total.
    pub fn new(optimizer: Box<dyn Optimizer>, losses: Vec<Loss>, loss_weights: Vec<f32>, metrics: Vec<(String, Metric)>, warnings: Vec<String>) -> Self {
        Trainer {
            optimizer,
            losses,
            loss_weights,
            metrics,
            warnings,
            tape: Tape::new(),
            input_vars: Vec::new(),
            output_vars: Vec::new(),
            loss_vars: Vec::new(),
            last_stats: GradStats::default(),
        }
    }

    /// The loss of the first (or only) output.
    pub fn loss(&self) -> Loss {
        self.losses[0]
    }

    /// Fresh metric accumulators: every compiled metric for each output in turn (state
    /// `j` belongs to output `j / metrics.len()`), named as Keras does — `accuracy` for
    /// one output, `<output>_accuracy` for several. `accuracy` resolves by that output's
    /// loss (binary accuracy thresholds logits at 0, probabilities at 0.5).
    pub(crate) fn metric_states(&self, net: &Network) -> Vec<MetricState> {
        let several = self.losses.len() > 1;
        let mut states = Vec::with_capacity(self.losses.len() * self.metrics.len());
        for (k, (loss, name)) in self.losses.iter().zip(net.output_names()).enumerate() {
            let outputs = net.output_units_of(k).max(1);
            let from_logits = loss.from_logits();
            let ctx = MetricContext { outputs, sparse_targets: loss.kind().sparse_targets(), from_logits, threshold: if from_logits { 0.0 } else { 0.5 } };
            let binary_loss = matches!(loss, Loss::BinaryCrossentropy { .. });
            for (n, m) in &self.metrics {
                let shown = if several { format!("{name}_{n}") } else { n.clone() };
                states.push(MetricState::new(&shown, m.resolve(loss, outputs), ctx, binary_loss));
            }
        }
        states
    }

    /// Each output's mean loss in the last pass (one value for a single-output model).
    pub(crate) fn output_losses(&self) -> impl Iterator<Item = f32> + '_ {
        self.loss_vars.iter().map(|&l| self.tape.scalar(l))
    }

    /// Where the last step first produced a non-finite value (a layer output, else a
    /// gradient, else the weights).
    pub(crate) fn locate_nonfinite(&self, net: &Network) -> String {
        super::telemetry::locate_nonfinite(net, &self.tape)
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
        (xs, ys, rows): (Inputs, Inputs, Rows),
        metrics: &mut [MetricState],
        weights: Option<&SampleWeights>,
        telemetry: Option<&mut Telemetry>,
        parallel: Option<(&mut DataParallel, f32)>,
    ) -> Result<f64> {
        let n = rows.len(xs.rows());
        if let Some((_, share)) = &parallel {
            self.tape.set_replica_weight(*share as f64);
        }
        let loss = self.forward_loss(net, (xs, ys, rows), weights, true)?;
        net.store.zero_grads();
        let parallel = match parallel {
            None => {
                self.tape.backward(loss, &mut net.store)?;
                None
            }
            // Data-parallel: each gradient bucket starts its all-reduce as soon as
            // backward has passed the last node that writes it.
            Some((dp, share)) => {
                dp.buckets.begin_pass(self.tape.param_leaves(), self.tape.first_grad_op(), share);
                let DataParallel { comm, buckets } = &mut *dp;
                self.tape.backward_observed(loss, &mut net.store, |i, grads| buckets.after_node(i, B::host(grads), &mut **comm))?;
                Some(dp)
            }
        };
        Ok(self.after_backward(net, loss, n, metrics, telemetry, parallel))
    }

    /// A data-parallel step for a rank with no rows (its stream shard ran out before the
    /// others'): it adds nothing to the gradient sum but takes part in it, and steps
    /// with every other rank.
    pub(crate) fn idle_step(&mut self, net: &mut Network, dp: &mut DataParallel) {
        net.store.zero_grads();
        // The sums synchronized batch norms take in forward and backward, with zeros.
        self.tape.replay_replica_sums();
        dp.buckets.begin_pass(std::iter::empty(), 0, 0.0);
        reduce_gradients(net, Some(dp));
        self.apply_gradients(net);
    }

    /// The rest of a training step once backward has run: the gradient pipeline, the
    /// layers' moving statistics and the metrics; returns the batch's summed loss.
    fn after_backward(&mut self, net: &mut Network, loss: Var, n: usize, metrics: &mut [MetricState], mut telemetry: Option<&mut Telemetry>, parallel: Option<&mut DataParallel>) -> f64 {
        reduce_gradients(net, parallel);
        if let Some(t) = telemetry.as_deref_mut() {
            t.before_update(net, &self.tape, n);
        }
        let penalty = self.apply_gradients(net);
        if let Some(t) = telemetry {
            t.after_update(net);
        }
        for layer in &net.layers {
            layer.update_state(&self.tape, &mut net.store);
        }
        self.update_metrics(net, metrics);
        (self.tape.scalar(loss) as f64 + penalty + self.tape.penalty()) * n as f64
    }

    /// The loss of the chosen rows without recording for backward (call inside
    /// `tape.no_grad`); summed over the batch, regularization included.
    pub(crate) fn eval_step(&mut self, net: &Network, (xs, ys, rows): (Inputs, Inputs, Rows), metrics: &mut [MetricState]) -> Result<f64> {
        let n = rows.len(xs.rows());
        let loss = self.forward_loss(net, (xs, ys, rows), None, false)?;
        let penalty = regularize(net, None);
        self.update_metrics(net, metrics);
        Ok((self.tape.scalar(loss) as f64 + penalty + self.tape.penalty()) * n as f64)
    }

    /// Forward pass and the loss of one batch: one loss node per output (kept in
    /// `loss_vars`, the outputs in `output_vars`) and, with several outputs, their
    /// weighted sum Σ wₖ·Lₖ, the node backward starts from.
    fn forward_loss(&mut self, net: &Network, (xs, ys, rows): (Inputs, Inputs, Rows), weights: Option<&SampleWeights>, training: bool) -> Result<Var> {
        let tape = &mut self.tape;
        tape.reset();
        let n = rows.len(xs.rows());
        self.input_vars.clear();
        for i in 0..xs.len() {
            let x = xs.get(i);
            self.input_vars.push(tape.input_with(net.input_batch_shape(i, n, x.row_len()), |buf| gather_into(buf, x, rows)));
        }
        net.forward_outputs(tape, &self.input_vars, training, &mut self.output_vars)?;
        self.loss_vars.clear();
        let mut total = None;
        for (k, &out) in self.output_vars.iter().enumerate() {
            let y = ys.get(k);
            let loss_fn = self.losses[k];
            let out_cols = loss_fn.kind().rows_and_cols(tape.shape(out).dims()).1.max(1);
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
            self.loss_vars.push(loss);
            let w = self.loss_weights[k];
            let weighted = if w == 1.0 { loss } else { tape.mul_const(&net.store, loss, |f| f.fill(w)) };
            total = Some(match total {
                None => weighted,
                Some(t) => tape.add(&net.store, t, weighted)?,
            });
        }
        total.ok_or_else(|| crate::Error::State(format!("model '{}' has no outputs", net.name())))
    }

    /// The gradient pipeline from stage 3 on (see the module docs; [`reduce_gradients`]
    /// ran stages 1 and 2); returns the regularization penalty, part of the reported loss.
    fn apply_gradients(&mut self, net: &mut Network) -> f64 {
        let penalty = regularize_with_gradients(net);
        let source = self.optimizer.accumulate(&net.store);
        self.last_stats = GradStats::default();
        if source != GradSource::Pending {
            self.last_stats = self.optimizer.grad_stats(&net.store, source);
            self.optimizer.apply(&mut net.store, source, &self.last_stats);
        }
        self.optimizer.finish_step(&mut net.store);
        penalty
    }

    fn update_metrics(&self, net: &Network, metrics: &mut [MetricState]) {
        let per_output = self.metrics.len().max(1);
        for (j, m) in metrics.iter_mut().enumerate() {
            let k = j / per_output;
            let (out, loss) = (self.output_vars[k], self.loss_vars[k]);
            let cols = self.losses[k].kind().rows_and_cols(self.tape.shape(out).dims()).1.max(1);
            m.update(self.tape.value(&net.store, out), self.tape.targets(loss), cols);
        }
    }
}

/// Pipeline stages 1 and 2: the gradients of the whole batch, unscaled.
fn reduce_gradients(net: &mut Network, parallel: Option<&mut DataParallel>) {
    unscale_gradients(net, 1.0);
    if let Some(dp) = parallel {
        all_reduce_gradients(net, dp);
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

/// Pipeline stage 2: sums the flat gradient buffer over data-parallel ranks, each
/// rank's gradient weighted by its share of the batch's rows (so the sum is the mean
/// over the whole batch). The buckets backward finished were started during backward;
/// this starts the rest and waits for all. One process has nothing to reduce.
fn all_reduce_gradients(net: &mut Network, dp: &mut DataParallel) {
    let DataParallel { comm, buckets } = dp;
    buckets.finish(&mut net.store.grads_mut(), &mut **comm);
}

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
