//! The callback mechanism: hooks at train/epoch/batch boundaries that read the logs,
//! can adjust the optimizer, and can stop training. `History` and the progress bar are
//! callbacks themselves.

use crate::autograd::ParamStore;
use crate::optim::Optimizer;

/// Named values at a point of training (`loss`, `accuracy`, `val_loss`, …), in order.
/// Names are set once per fit; per-batch updates only overwrite values (no allocation).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Logs {
    names: Vec<String>,
    values: Vec<f64>,
}

impl Logs {
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets `name` to `value`, adding the name if new.
    pub fn set(&mut self, name: &str, value: f64) {
        match self.names.iter().position(|n| n == name) {
            Some(i) => self.values[i] = value,
            None => {
                self.names.push(name.to_string());
                self.values.push(value);
            }
        }
    }
    pub fn get(&self, name: &str) -> Option<f64> {
        self.names.iter().position(|n| n == name).map(|i| self.values[i])
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.names.iter().map(String::as_str).zip(self.values.iter().copied())
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
    /// `loss: 0.1234 - accuracy: 0.9500`, Keras's format.
    pub fn format(&self) -> String {
        self.iter().map(|(n, v)| format!("{n}: {v:.4}")).collect::<Vec<_>>().join(" - ")
    }
}

/// What a callback may read and change while training runs.
pub struct TrainContext<'a> {
    pub params: &'a mut ParamStore,
    pub optimizer: &'a mut dyn Optimizer,
    pub epochs: usize,
    pub steps_per_epoch: usize,
    /// Set to true to end training after the current batch.
    pub stop_training: bool,
}

/// Hooks called by `fit`. All default to doing nothing.
pub trait Callback {
    fn on_train_begin(&mut self, _ctx: &mut TrainContext) {}
    fn on_epoch_begin(&mut self, _epoch: usize, _ctx: &mut TrainContext) {}
    fn on_batch_end(&mut self, _batch: usize, _logs: &Logs, _ctx: &mut TrainContext) {}
    fn on_epoch_end(&mut self, _epoch: usize, _logs: &Logs, _ctx: &mut TrainContext) {}
    fn on_train_end(&mut self, _logs: &Logs, _ctx: &mut TrainContext) {}
}

/// Per-epoch logs of a fit, as returned by `fit` (Keras's `History`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    pub epochs: Vec<usize>,
    /// Each metric's values, one per epoch, in first-seen order.
    pub metrics: Vec<(String, Vec<f64>)>,
}

impl History {
    pub fn get(&self, name: &str) -> Option<&[f64]> {
        self.metrics.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
    /// Last value of a metric.
    pub fn last(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(|v| v.last().copied())
    }
    /// The history as CSV: `epoch,loss,accuracy,…`.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("epoch");
        for (n, _) in &self.metrics {
            out.push(',');
            out.push_str(n);
        }
        out.push('\n');
        for (i, e) in self.epochs.iter().enumerate() {
            out.push_str(&e.to_string());
            for (_, v) in &self.metrics {
                out.push(',');
                out.push_str(&v.get(i).map_or(String::new(), |x| format!("{x}")));
            }
            out.push('\n');
        }
        out
    }
}

impl Callback for History {
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, _ctx: &mut TrainContext) {
        self.epochs.push(epoch);
        for (name, value) in logs.iter() {
            match self.metrics.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => v.push(value),
                None => self.metrics.push((name.to_string(), vec![value])),
            }
        }
    }
}

/// Stops training when a closure over the epoch logs says so; the simplest user callback.
pub struct LambdaCallback<F: FnMut(usize, &Logs) -> bool>(pub F);

impl<F: FnMut(usize, &Logs) -> bool> Callback for LambdaCallback<F> {
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, ctx: &mut TrainContext) {
        if (self.0)(epoch, logs) {
            ctx.stop_training = true;
        }
    }
}
