//! Keras's standard callbacks, with Keras's names, arguments and semantics:
//! EarlyStopping, ModelCheckpoint, CSVLogger, TerminateOnNaN, LearningRateScheduler
//! (ReduceLROnPlateau lives beside the Callback trait), and `CallbackConfig`, their form
//! in an experiment's `[[callbacks]]` tables.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::callbacks::{Callback, Logs, Mode, ReduceLROnPlateau, TrainContext};
use crate::error::{Error, Result};
use crate::io::{optimizer_state_to_bytes, weights_to_bytes, write_atomic};
use crate::optim::Schedule;

/// A monitored quantity and what counts as an improvement (Keras's rule: by more than
/// `min_delta` in the metric's direction).
#[derive(Clone, Debug)]
pub struct Monitor {
    pub name: String,
    pub mode: Mode,
    pub min_delta: f64,
}

impl Monitor {
    pub fn new(name: &str, mode: Mode, min_delta: f64) -> Self {
        Monitor { name: name.into(), mode: mode.resolve(name), min_delta: min_delta.abs() }
    }
    /// `current` beats `reference` by more than `min_delta`.
    pub fn improves(&self, current: f64, reference: f64) -> bool {
        match self.mode {
            Mode::Max => current - self.min_delta > reference,
            _ => current + self.min_delta < reference,
        }
    }
    /// The value in `logs`, warning once per call when it is missing.
    pub fn read(&self, logs: &Logs, who: &str) -> Option<f64> {
        let v = logs.get(&self.name);
        if v.is_none() {
            let have: Vec<&str> = logs.iter().map(|(n, _)| n).collect();
            eprintln!("warning: {who} monitors `{}`, which is not in the logs ({})", self.name, have.join(", "));
        }
        v
    }
    fn worst(&self) -> f64 {
        if self.mode == Mode::Max { f64::NEG_INFINITY } else { f64::INFINITY }
    }
}

/// Keras's `EarlyStopping`: stops when `monitor` has not improved by more than
/// `min_delta` for `patience` epochs (counting from `start_from_epoch`). With a
/// `baseline`, training also stops if the baseline is not beaten within `patience`
/// epochs. With `restore_best_weights`, stopping puts back the weights of the best epoch.
#[derive(Clone, Debug)]
pub struct EarlyStopping {
    pub monitor: Monitor,
    pub patience: usize,
    pub baseline: Option<f64>,
    pub restore_best_weights: bool,
    pub start_from_epoch: usize,
    best: f64,
    wait: usize,
    best_weights: Option<Vec<f32>>,
    /// The epoch (0-based) at which training was stopped, if it was.
    pub stopped_epoch: Option<usize>,
    pub best_epoch: Option<usize>,
}

impl EarlyStopping {
    pub fn new(monitor: &str, patience: usize) -> Self {
        EarlyStopping {
            monitor: Monitor::new(monitor, Mode::Auto, 0.0),
            patience,
            baseline: None,
            restore_best_weights: false,
            start_from_epoch: 0,
            best: 0.0,
            wait: 0,
            best_weights: None,
            stopped_epoch: None,
            best_epoch: None,
        }
    }
    pub fn min_delta(mut self, d: f64) -> Self {
        self.monitor.min_delta = d.abs();
        self
    }
    pub fn mode(mut self, mode: Mode) -> Self {
        self.monitor.mode = mode.resolve(&self.monitor.name);
        self
    }
    pub fn baseline(mut self, b: f64) -> Self {
        self.baseline = Some(b);
        self
    }
    pub fn restore_best_weights(mut self, yes: bool) -> Self {
        self.restore_best_weights = yes;
        self
    }
    pub fn start_from_epoch(mut self, e: usize) -> Self {
        self.start_from_epoch = e;
        self
    }
}

impl Callback for EarlyStopping {
    fn on_train_begin(&mut self, _ctx: &mut TrainContext) {
        self.best = self.monitor.worst();
        self.wait = 0;
        self.best_weights = None;
        self.stopped_epoch = None;
        self.best_epoch = None;
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, ctx: &mut TrainContext) {
        let Some(current) = self.monitor.read(logs, "EarlyStopping") else { return };
        if epoch < self.start_from_epoch {
            return;
        }
        if self.restore_best_weights && self.best_weights.is_none() {
            self.best_weights = Some(ctx.params.values().to_vec());
        }
        self.wait += 1;
        if self.monitor.improves(current, self.best) {
            self.best = current;
            self.best_epoch = Some(epoch);
            if self.restore_best_weights {
                let w = self.best_weights.get_or_insert_with(Vec::new);
                w.clear();
                w.extend_from_slice(ctx.params.values());
            }
            if self.baseline.is_none_or(|b| self.monitor.improves(current, b)) {
                self.wait = 0;
                return;
            }
        }
        if self.wait >= self.patience && epoch > 0 {
            self.stopped_epoch = Some(epoch);
            ctx.stop_training = true;
            if let (true, Some(w)) = (self.restore_best_weights, &self.best_weights) {
                ctx.params.values_mut().copy_from_slice(w);
            }
        }
    }
}

/// Keras's `TerminateOnNaN`: stops as soon as a batch's loss is NaN or infinite.
#[derive(Clone, Debug, Default)]
pub struct TerminateOnNaN {
    /// The batch (of the epoch) at which it stopped training.
    pub stopped_at: Option<usize>,
}

impl Callback for TerminateOnNaN {
    fn on_batch_end(&mut self, batch: usize, logs: &Logs, ctx: &mut TrainContext) {
        if logs.get("loss").is_some_and(|l| !l.is_finite()) {
            eprintln!("batch {batch}: invalid loss, terminating training");
            self.stopped_at = Some(batch);
            ctx.stop_training = true;
        }
    }
}

/// Keras's `CSVLogger`: one row per epoch (`epoch,loss,…`), written after every epoch
/// (atomically: the file is always a complete CSV). With `append`, rows follow an
/// existing file's.
#[derive(Clone, Debug)]
pub struct CsvLogger {
    pub path: PathBuf,
    pub append: bool,
    text: String,
    columns: Vec<String>,
}

impl CsvLogger {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        CsvLogger { path: path.into(), append: false, text: String::new(), columns: Vec::new() }
    }
    pub fn append(mut self, yes: bool) -> Self {
        self.append = yes;
        self
    }
}

impl Callback for CsvLogger {
    fn on_train_begin(&mut self, _ctx: &mut TrainContext) {
        self.text = if self.append { std::fs::read_to_string(&self.path).unwrap_or_default() } else { String::new() };
        self.columns = self.text.lines().next().map(|h| h.split(',').skip(1).map(String::from).collect()).unwrap_or_default();
    }
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, _ctx: &mut TrainContext) {
        if self.columns.is_empty() {
            self.columns = logs.iter().map(|(n, _)| n.to_string()).collect();
            self.text = format!("epoch,{}\n", self.columns.join(","));
        }
        let row: Vec<String> = self.columns.iter().map(|c| logs.get(c).map_or(String::new(), |v| v.to_string())).collect();
        self.text += &format!("{epoch},{}\n", row.join(","));
        if let Err(e) = write_atomic(&self.path, self.text.as_bytes()) {
            eprintln!("warning: CSVLogger: {e}");
        }
    }
}

/// Keras's `LearningRateScheduler`: at the start of each epoch, sets the learning rate
/// to `schedule(epoch, current lr)`.
pub struct LearningRateScheduler {
    schedule: Box<dyn FnMut(usize, f32) -> f32 + Send>,
}

impl LearningRateScheduler {
    pub fn new(schedule: impl FnMut(usize, f32) -> f32 + Send + 'static) -> Self {
        LearningRateScheduler { schedule: Box::new(schedule) }
    }
    /// A descent schedule evaluated at the epoch index instead of the step.
    pub fn per_epoch(schedule: Schedule) -> Self {
        LearningRateScheduler::new(move |epoch, _| schedule.at(epoch as u64))
    }
}

impl Callback for LearningRateScheduler {
    fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut TrainContext) {
        let lr = (self.schedule)(epoch, ctx.optimizer.learning_rate());
        if lr.is_finite() && lr >= 0.0 {
            ctx.optimizer.set_learning_rate(lr);
        } else {
            eprintln!("warning: LearningRateScheduler gave {lr} at epoch {epoch}; keeping the learning rate");
        }
    }
}

/// Keras's `ModelCheckpoint`: after every epoch (or every `save_freq_epochs`, or every
/// `save_freq_steps` training steps), or only when `monitor` improved
/// (`save_best_only`, at epoch ends), writes the weights (`model.safetensors`) and,
/// unless `save_weights_only`, the optimizer state (`optimizer.safetensors`) into `dir`.
/// `{epoch}` in `dir` is replaced by the epoch (1-based, as Keras's file names) and
/// `{step}` by the global step. Every file is written atomically, so a crash mid-write
/// leaves the previous checkpoint intact.
#[derive(Clone, Debug)]
pub struct ModelCheckpoint {
    pub dir: String,
    pub monitor: Monitor,
    pub save_best_only: bool,
    pub save_weights_only: bool,
    pub save_freq_epochs: usize,
    /// Save every this many steps instead of at epoch ends (0: off).
    pub save_freq_steps: usize,
    best: f64,
    step: usize,
    epoch: usize,
    /// Folders written, in order.
    pub saved: Vec<PathBuf>,
}

impl ModelCheckpoint {
    pub fn new(dir: &str) -> Self {
        ModelCheckpoint {
            dir: dir.into(),
            monitor: Monitor::new("val_loss", Mode::Auto, 0.0),
            save_best_only: false,
            save_weights_only: false,
            save_freq_epochs: 1,
            save_freq_steps: 0,
            best: f64::INFINITY,
            step: 0,
            epoch: 0,
            saved: Vec::new(),
        }
    }
    pub fn monitor(mut self, name: &str, mode: Mode) -> Self {
        self.monitor = Monitor::new(name, mode, 0.0);
        self
    }
    pub fn save_best_only(mut self, yes: bool) -> Self {
        self.save_best_only = yes;
        self
    }
    pub fn save_weights_only(mut self, yes: bool) -> Self {
        self.save_weights_only = yes;
        self
    }
    pub fn save_freq_epochs(mut self, n: usize) -> Self {
        self.save_freq_epochs = n.max(1);
        self
    }
    /// Save every `n` training steps (not at epoch ends).
    pub fn save_freq_steps(mut self, n: usize) -> Self {
        self.save_freq_steps = n;
        self
    }

    fn write(&mut self, epoch: usize, ctx: &TrainContext) -> Result<()> {
        let dir = PathBuf::from(self.dir.replace("{epoch}", &format!("{:03}", epoch + 1)).replace("{step}", &self.step.to_string()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        write_atomic(dir.join(crate::io::MODEL_WEIGHTS_FILE), &weights_to_bytes(ctx.params)?)?;
        if !self.save_weights_only {
            let state = optimizer_state_to_bytes(&ctx.optimizer.save_state())?;
            write_atomic(dir.join(crate::io::OPTIMIZER_STATE_FILE), &state)?;
        }
        self.saved.push(dir);
        Ok(())
    }
}

impl Callback for ModelCheckpoint {
    fn on_train_begin(&mut self, _ctx: &mut TrainContext) {
        self.best = self.monitor.worst();
        self.step = 0;
    }
    fn on_epoch_begin(&mut self, epoch: usize, _ctx: &mut TrainContext) {
        self.epoch = epoch;
    }
    fn on_batch_end(&mut self, _batch: usize, _logs: &Logs, ctx: &mut TrainContext) {
        self.step += 1;
        if self.save_freq_steps > 0 && self.step.is_multiple_of(self.save_freq_steps) {
            if let Err(e) = self.write(self.epoch, ctx) {
                eprintln!("warning: ModelCheckpoint could not save step {}: {e}", self.step);
            }
        }
    }
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, ctx: &mut TrainContext) {
        if self.save_freq_steps > 0 || !(epoch + 1).is_multiple_of(self.save_freq_epochs) {
            return;
        }
        if self.save_best_only {
            let Some(current) = self.monitor.read(logs, "ModelCheckpoint") else { return };
            if !self.monitor.improves(current, self.best) {
                return;
            }
            self.best = current;
        }
        if let Err(e) = self.write(epoch, ctx) {
            eprintln!("warning: ModelCheckpoint could not save epoch {}: {e}", epoch + 1);
        }
    }
}

/// A callback as written in an experiment: `[[callbacks]]` tables with a `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CallbackConfig {
    EarlyStopping {
        #[serde(default = "val_loss")]
        monitor: String,
        #[serde(default)]
        min_delta: f64,
        #[serde(default)]
        patience: usize,
        #[serde(default)]
        mode: Mode,
        #[serde(default)]
        baseline: Option<f64>,
        #[serde(default)]
        restore_best_weights: bool,
        #[serde(default)]
        start_from_epoch: usize,
    },
    ModelCheckpoint {
        /// Folder (relative to the run folder); `{epoch}` is replaced by the epoch.
        #[serde(default = "checkpoint_dir")]
        dir: String,
        #[serde(default = "val_loss")]
        monitor: String,
        #[serde(default)]
        mode: Mode,
        #[serde(default)]
        save_best_only: bool,
        #[serde(default)]
        save_weights_only: bool,
        #[serde(default = "one")]
        save_freq_epochs: usize,
        /// Every N steps instead of at epoch ends (0: off); `{step}` in `dir` names them.
        #[serde(default)]
        save_freq_steps: usize,
    },
    CsvLogger {
        /// Relative to the run folder.
        #[serde(default = "log_csv")]
        filename: String,
        #[serde(default)]
        append: bool,
    },
    TerminateOnNan {},
    ReduceLrOnPlateau {
        #[serde(default = "val_loss")]
        monitor: String,
        #[serde(default = "tenth")]
        factor: f32,
        #[serde(default = "ten")]
        patience: usize,
        #[serde(default)]
        mode: Mode,
        #[serde(default = "small_delta")]
        min_delta: f64,
        #[serde(default)]
        cooldown: usize,
        #[serde(default)]
        min_lr: f32,
    },
    /// A schedule (as in `descent schedule`) evaluated per epoch.
    LearningRateScheduler { schedule: Schedule },
    /// Event files for TensorBoard under `<run>/<log_dir>` (train/ and validation/).
    #[serde(rename = "tensorboard")]
    TensorBoard {
        #[serde(default = "tensorboard_dir")]
        log_dir: String,
        /// `batch_*` scalars every N steps (0: per epoch only).
        #[serde(default)]
        update_freq: usize,
        /// Weight and gradient histograms every N epochs (0: none).
        #[serde(default)]
        histogram_freq: usize,
    },
    /// Resume an interrupted fit exactly (see `BackupAndRestore`). `backup_dir` is
    /// relative to the output folder (`runs/`), so a rerun of the same command finds it.
    BackupAndRestore {
        #[serde(default)]
        backup_dir: Option<String>,
        #[serde(default = "yes")]
        delete_checkpoint: bool,
    },
}

fn yes() -> bool {
    true
}

fn val_loss() -> String {
    "val_loss".into()
}
fn checkpoint_dir() -> String {
    "checkpoints/epoch-{epoch}".into()
}
fn tensorboard_dir() -> String {
    "tensorboard".into()
}
fn log_csv() -> String {
    "log.csv".into()
}
fn one() -> usize {
    1
}
fn tenth() -> f32 {
    0.1
}
fn ten() -> usize {
    10
}
fn small_delta() -> f64 {
    1e-4
}

impl CallbackConfig {
    /// The key and value of the path this callback writes under, if it has one.
    pub fn written_path(&self) -> Option<(&'static str, &str)> {
        match self {
            CallbackConfig::ModelCheckpoint { dir, .. } => Some(("dir", dir)),
            CallbackConfig::CsvLogger { filename, .. } => Some(("filename", filename)),
            CallbackConfig::TensorBoard { log_dir, .. } => Some(("log_dir", log_dir)),
            CallbackConfig::BackupAndRestore { backup_dir: Some(d), .. } => Some(("backup_dir", d)),
            _ => None,
        }
    }

    /// The fit option of a `backup_and_restore` entry, its folder under `output_root`
    /// (default `<experiment>-backup`).
    pub fn backup(&self, output_root: &std::path::Path, experiment: &str) -> Option<super::BackupAndRestore> {
        match self {
            CallbackConfig::BackupAndRestore { backup_dir, delete_checkpoint } => {
                let dir = backup_dir.clone().unwrap_or_else(|| format!("{experiment}-backup"));
                Some(super::BackupAndRestore::new(output_root.join(dir)).delete_checkpoint(*delete_checkpoint))
            }
            _ => None,
        }
    }

    /// The callback, with relative paths placed under `run_dir`.
    pub fn build(&self, run_dir: &std::path::Path) -> Result<Box<dyn Callback + Send>> {
        Ok(match self.clone() {
            CallbackConfig::EarlyStopping { monitor, min_delta, patience, mode, baseline, restore_best_weights, start_from_epoch } => {
                let mut e = EarlyStopping::new(&monitor, patience).min_delta(min_delta).mode(mode);
                e.baseline = baseline;
                Box::new(e.restore_best_weights(restore_best_weights).start_from_epoch(start_from_epoch))
            }
            CallbackConfig::ModelCheckpoint { dir, monitor, mode, save_best_only, save_weights_only, save_freq_epochs, save_freq_steps } => {
                let dir = run_dir.join(dir).to_string_lossy().into_owned();
                Box::new(
                    ModelCheckpoint::new(&dir)
                        .monitor(&monitor, mode)
                        .save_best_only(save_best_only)
                        .save_weights_only(save_weights_only)
                        .save_freq_epochs(save_freq_epochs)
                        .save_freq_steps(save_freq_steps),
                )
            }
            CallbackConfig::CsvLogger { filename, append } => Box::new(CsvLogger::new(run_dir.join(filename)).append(append)),
            CallbackConfig::TerminateOnNan {} => Box::<TerminateOnNaN>::default(),
            CallbackConfig::ReduceLrOnPlateau { monitor, factor, patience, mode, min_delta, cooldown, min_lr } => {
                if !(factor > 0.0 && factor < 1.0) {
                    return Err(Error::Config(format!("reduce_lr_on_plateau: factor {factor} must be in (0, 1)")));
                }
                let mut r = ReduceLROnPlateau::new(&monitor, factor, patience);
                r.mode = mode;
                r.min_delta = min_delta;
                r.cooldown = cooldown;
                r.min_lr = min_lr;
                Box::new(r)
            }
            CallbackConfig::BackupAndRestore { .. } => {
                return Err(Error::State("backup_and_restore is a fit option, not a callback (see CallbackConfig::backup)".into()))
            }
            CallbackConfig::TensorBoard { log_dir, update_freq, histogram_freq } => {
                Box::new(super::TensorBoard::new(run_dir.join(log_dir)).update_freq(update_freq).histogram_freq(histogram_freq))
            }
            CallbackConfig::LearningRateScheduler { schedule } => {
                schedule.validate().map_err(|e| Error::Config(format!("learning_rate_scheduler: {e}")))?;
                Box::new(LearningRateScheduler::per_epoch(schedule))
            }
        })
    }
}
