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

/// A borrowed callback is a callback, so the caller can read its state after `fit`
/// (`callbacks: vec![Box::new(&mut timer)]`).
impl<C: Callback + ?Sized> Callback for &mut C {
    fn on_train_begin(&mut self, ctx: &mut TrainContext) {
        (**self).on_train_begin(ctx)
    }
    fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut TrainContext) {
        (**self).on_epoch_begin(epoch, ctx)
    }
    fn on_batch_end(&mut self, batch: usize, logs: &Logs, ctx: &mut TrainContext) {
        (**self).on_batch_end(batch, logs, ctx)
    }
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, ctx: &mut TrainContext) {
        (**self).on_epoch_end(epoch, logs, ctx)
    }
    fn on_train_end(&mut self, logs: &Logs, ctx: &mut TrainContext) {
        (**self).on_train_end(logs, ctx)
    }
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

impl History {
    /// Appends one epoch's logs.
    pub fn record(&mut self, epoch: usize, logs: &Logs) {
        self.epochs.push(epoch);
        for (name, value) in logs.iter() {
            match self.metrics.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => v.push(value),
                None => self.metrics.push((name.to_string(), vec![value])),
            }
        }
    }
}

impl Callback for History {
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, _ctx: &mut TrainContext) {
        self.record(epoch, logs);
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

/// Whether larger or smaller values of a monitored metric are better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `max` for names containing "acc" or "auc", else `min` (Keras's rule).
    #[default]
    Auto,
    Min,
    Max,
}

impl Mode {
    pub(crate) fn resolve(self, monitor: &str) -> Mode {
        match self {
            Mode::Auto if monitor.contains("acc") || monitor.contains("auc") => Mode::Max,
            Mode::Auto => Mode::Min,
            m => m,
        }
    }
}

/// Keras's `ReduceLROnPlateau`: multiplies the learning rate by `factor` when `monitor`
/// has not improved by `min_delta` for `patience` epochs, then waits `cooldown` epochs.
#[derive(Clone, Debug)]
pub struct ReduceLROnPlateau {
    pub monitor: String,
    pub factor: f32,
    pub patience: usize,
    pub mode: Mode,
    pub min_delta: f64,
    pub cooldown: usize,
    pub min_lr: f32,
    best: Option<f64>,
    wait: usize,
    cooldown_left: usize,
    /// (epoch, new learning rate) of every reduction, for reports.
    pub reductions: Vec<(usize, f32)>,
}

impl Default for ReduceLROnPlateau {
    fn default() -> Self {
        ReduceLROnPlateau {
            monitor: "val_loss".into(),
            factor: 0.1,
            patience: 10,
            mode: Mode::Auto,
            min_delta: 1e-4,
            cooldown: 0,
            min_lr: 0.0,
            best: None,
            wait: 0,
            cooldown_left: 0,
            reductions: Vec::new(),
        }
    }
}

impl ReduceLROnPlateau {
    pub fn new(monitor: &str, factor: f32, patience: usize) -> Self {
        ReduceLROnPlateau { monitor: monitor.into(), factor, patience, ..Default::default() }
    }

    fn improved(&self, current: f64) -> bool {
        match (self.best, self.mode.resolve(&self.monitor)) {
            (None, _) => true,
            (Some(best), Mode::Max) => current > best + self.min_delta,
            (Some(best), _) => current < best - self.min_delta,
        }
    }
}

impl Callback for ReduceLROnPlateau {
    fn on_train_begin(&mut self, _ctx: &mut TrainContext) {
        self.best = None;
        self.wait = 0;
        self.cooldown_left = 0;
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, ctx: &mut TrainContext) {
        let Some(current) = logs.get(&self.monitor) else {
            eprintln!(
                "warning: ReduceLROnPlateau monitors `{}`, which is not in the logs ({})",
                self.monitor,
                logs.iter().map(|(n, _)| n).collect::<Vec<_>>().join(", ")
            );
            return;
        };
        if self.cooldown_left > 0 {
            self.cooldown_left -= 1;
            self.wait = 0;
        }
        if self.improved(current) {
            self.best = Some(current);
            self.wait = 0;
        } else if self.cooldown_left == 0 {
            self.wait += 1;
            if self.wait >= self.patience {
                let old = ctx.optimizer.learning_rate();
                if old > self.min_lr {
                    let new = (old * self.factor).max(self.min_lr);
                    ctx.optimizer.set_learning_rate(new);
                    self.reductions.push((epoch, new));
                    self.cooldown_left = self.cooldown;
                    self.wait = 0;
                }
            }
        }
    }
}
