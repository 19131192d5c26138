//! compile / fit / evaluate / predict for `Sequential`, and the callbacks they drive.

mod callbacks;
mod fit;
mod keras_callbacks;
mod progress;
pub mod tensorboard;
#[cfg(test)]
mod regularization_tests;
#[cfg(test)]
mod resume_tests;
#[cfg(test)]
mod stream_tests;
mod validate;

pub use callbacks::{Callback, History, LambdaCallback, Logs, Mode, ReduceLROnPlateau, TrainContext};
pub use fit::{BackupAndRestore, FitOptions};
pub use keras_callbacks::{CallbackConfig, CsvLogger, EarlyStopping, LearningRateScheduler, ModelCheckpoint, Monitor, TerminateOnNaN};
pub use progress::ProgressCallback;
pub use tensorboard::TensorBoard;
pub use validate::{check_inputs, check_targets};

use crate::error::{Error, Result};
use crate::nn::{Activation, Loss, Metric, MetricContext, MetricState, Model};
use crate::optim::Optimizer;

/// What `compile` fixes: how the model is trained and judged.
pub struct Compiled {
    pub optimizer: Box<dyn Optimizer>,
    pub loss: Loss,
    /// (name as requested, metric as requested; resolved when training starts)
    pub metrics: Vec<(String, Metric)>,
    /// Warnings raised at compile (also printed to stderr).
    pub warnings: Vec<String>,
}

impl Compiled {
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
}

/// Parses metric names (`"accuracy"`, `"sparse_categorical_accuracy"`, …).
pub fn parse_metric(name: &str) -> Result<Metric> {
    Metric::parse(name)
}

impl Model {
    /// Keras's `compile(optimizer, loss, metrics)`. Returns the warnings it raised (also
    /// printed): e.g. a softmax output fed to a loss that expects logits.
    pub fn compile(
        &mut self,
        optimizer: impl Into<Box<dyn Optimizer>>,
        loss: Loss,
        metrics: &[&str],
    ) -> Result<Vec<String>> {
        let ls = loss.label_smoothing();
        if !(0.0..=1.0).contains(&ls) {
            return Err(Error::Config(format!("loss {}: label_smoothing = {ls} is outside [0, 1]", loss.name())));
        }
        let mut parsed = Vec::new();
        for name in metrics {
            let metric = parse_metric(name)?;
            parsed.push((name.to_string(), metric));
        }
        let warnings = self.loss_warnings(&loss);
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        self.compiled = Some(Compiled { optimizer: optimizer.into(), loss, metrics: parsed, warnings: warnings.clone() });
        Ok(warnings)
    }

    pub fn compiled(&self) -> Option<&Compiled> {
        self.compiled.as_ref()
    }

    pub fn optimizer(&self) -> Option<&dyn Optimizer> {
        self.compiled.as_ref().map(|c| c.optimizer.as_ref())
    }

    /// Replaces the weights with the optimizer's evaluation point where it has one
    /// (schedule-free AdamW's average x); returns whether anything changed. Call before
    /// evaluating or saving; training continues correctly only from the training
    /// iterate, so do this at the end (or on a copy).
    pub fn use_eval_weights(&mut self) -> bool {
        let Some(x) = self.compiled.as_ref().and_then(|c| c.optimizer.eval_weights(&self.store)) else {
            return false;
        };
        self.store.values_mut().copy_from_slice(&x);
        true
    }

    /// Replaces the weights with the optimizer's moving average of them (`use_ema`), e.g.
    /// before evaluating or saving. Errors when the optimizer keeps no average.
    pub fn use_ema_weights(&mut self) -> Result<()> {
        let ema = self
            .compiled
            .as_ref()
            .and_then(|c| c.optimizer.ema_weights())
            .ok_or_else(|| Error::State("the optimizer keeps no moving average (set use_ema)".into()))?;
        let store = &mut self.store;
        let ids: Vec<_> = store.ids().filter(|id| store.entry(*id).trainable).collect();
        for id in ids {
            let r = store.entry(id).range();
            store.value_mut(id).copy_from_slice(&ema[r]);
        }
        Ok(())
    }

    /// Keras warns when a probability output feeds a loss that expects logits; we also
    /// warn for the opposite mistake, which silently trains on garbage.
    fn loss_warnings(&self, loss: &Loss) -> Vec<String> {
        let last = self.output_activation();
        let mut out = Vec::new();
        match (last, loss) {
            (Some(Activation::Softmax), l) if l.from_logits() => out.push(format!(
                "`{}` received `from_logits=true`, but the model's output is produced by a softmax \
                 activation and thus does not represent logits. Was this intended? (Use a linear \
                 last layer, or from_logits=false.)",
                l.name()
            )),
            (Some(Activation::Sigmoid), l @ Loss::BinaryCrossentropy { from_logits: true, .. }) => out.push(format!(
                "`{}` received `from_logits=true`, but the model's output is produced by a sigmoid \
                 activation and thus does not represent logits. Was this intended?",
                l.name()
            )),
            (Some(Activation::Linear) | None, l)
                if !l.from_logits()
                    && matches!(
                        l,
                        Loss::SparseCategoricalCrossentropy { .. }
                            | Loss::CategoricalCrossentropy { .. }
                            | Loss::BinaryCrossentropy { .. }
                    ) =>
            {
                out.push(format!(
                    "`{}` expects probabilities (from_logits=false), but the model's last layer has no \
                     softmax/sigmoid activation, so its outputs are logits. Set from_logits=true.",
                    l.name()
                ))
            }
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests;

impl Model {
    /// The confusion matrix of a classifier on `(x, y)`: rows are true classes, columns
    /// predicted ones (arg-max of the outputs; one output: thresholded, 2 classes).
    /// `None` for regression losses.
    pub fn confusion_matrix(&mut self, x: &crate::tensor::Tensor, y: &crate::tensor::Tensor, batch_size: usize) -> Result<Option<crate::nn::ConfusionMatrix>> {
        let compiled = self.compiled.as_ref().ok_or_else(|| Error::State("confusion_matrix: compile the model first".into()))?;
        let loss = compiled.loss;
        let (sparse, from_logits) = (loss.kind().sparse_targets(), loss.from_logits());
        let classification = matches!(
            loss,
            Loss::SparseCategoricalCrossentropy { .. } | Loss::CategoricalCrossentropy { .. } | Loss::BinaryCrossentropy { .. }
        );
        if !classification {
            return Ok(None);
        }
        check_targets(&loss, self.output_units(), x, y, "confusion matrix data")?;
        let pred = self.predict(x, batch_size)?;
        let cols = pred.row_len().max(1);
        let threshold = if from_logits { 0.0 } else { 0.5 };
        let mut cm = crate::nn::ConfusionMatrix::new(if cols == 1 { 2 } else { cols });
        for r in 0..pred.rows() {
            let (p, t) = (pred.row(r), y.row(r));
            if cols == 1 {
                cm.add((t[0] > 0.5) as usize, (p[0] > threshold) as usize);
            } else {
                let truth = if sparse { t[0] as usize } else { crate::tensor::kernels::reduce::argmax(t) };
                cm.add(truth, crate::tensor::kernels::reduce::argmax(p));
            }
        }
        Ok(Some(cm))
    }
}
