//! Keras's `fit`, `evaluate`, `predict` and `train_on_batch` over the [`Trainer`]: the
//! epoch loop (data order, validation, callbacks, backups) around its step.

use rand::seq::SliceRandom;

use super::callbacks::{Callback, History, Logs, TrainContext};
use super::progress::ProgressCallback;
use super::validate::{check_inputs, check_targets};
use super::batch::{batches, gather_into, Rows, SampleWeights};
use super::checkpoint::Restored;
use super::{Model, Trainer};
use crate::data::Prefetch;
use crate::error::{Error, Result};
use crate::nn::MetricState;
use crate::rng;
use crate::tensor::{Shape, Tensor};

/// Stream of the seed used for shuffling.
const SHUFFLE_STREAM: u64 = 2;

/// Keras's `fit` arguments.
pub struct FitOptions<'a> {
    pub epochs: usize,
    /// Samples per gradient step; the dataset size gives full-batch gradient descent.
    pub batch_size: usize,
    /// Fraction of the samples, taken from the end before shuffling (as Keras), held out
    /// for validation. Ignored when `validation_data` is given.
    pub validation_split: f32,
    pub validation_data: Option<(&'a Tensor, &'a Tensor)>,
    /// Reshuffle the training samples every epoch.
    pub shuffle: bool,
    /// 0 silent, 1 progress bar, 2 one line per epoch.
    pub verbose: u8,
    pub callbacks: Vec<Box<dyn Callback + 'a>>,
    /// Keras's `BackupAndRestore`: resume an interrupted fit exactly.
    pub backup: Option<BackupAndRestore>,
    /// A weight per training sample (`[samples]` or `[samples, 1]`): the loss becomes
    /// Σ wᵢ·lossᵢ / batch.
    pub sample_weight: Option<&'a Tensor>,
    /// A weight per class (by class index; classes not listed weigh 1), multiplied into
    /// each sample's weight — to counter imbalanced classes.
    pub class_weight: Option<std::collections::BTreeMap<usize, f32>>,
}


/// Keras's `BackupAndRestore`: after every epoch a full checkpoint (weights, optimizer
/// state and step count, random streams, epoch, history) is written atomically to
/// `<backup_dir>/backup.safetensors`. A fit that finds one there resumes after its
/// epoch, and ends bit-identical to a run that was never interrupted (the shuffling
/// order is replayed from the seed). The file is deleted when the fit completes, unless
/// `delete_checkpoint` is false.
#[derive(Clone, Debug, PartialEq)]
pub struct BackupAndRestore {
    pub backup_dir: std::path::PathBuf,
    pub delete_checkpoint: bool,
}

impl BackupAndRestore {
    pub fn new(backup_dir: impl Into<std::path::PathBuf>) -> Self {
        BackupAndRestore { backup_dir: backup_dir.into(), delete_checkpoint: true }
    }
    pub fn delete_checkpoint(mut self, yes: bool) -> Self {
        self.delete_checkpoint = yes;
        self
    }
    pub fn path(&self) -> std::path::PathBuf {
        self.backup_dir.join("backup.safetensors")
    }
}

impl Default for FitOptions<'_> {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            batch_size: 32,
            validation_split: 0.0,
            validation_data: None,
            shuffle: true,
            verbose: 1,
            callbacks: Vec::new(),
            backup: None,
            sample_weight: None,
            class_weight: None,
        }
    }
}

/// Where `fit_loop` gets its training batches.
enum TrainData<'d> {
    /// In memory: shuffled indices, a batch of rows at a time.
    Memory { x: &'d Tensor, y: &'d Tensor, idx: Vec<usize>, rng: rng::Rng, shuffle: bool, pos: usize, batch: usize },
    /// From a background stream; `cur` holds the batch being trained on.
    Stream { source: &'d mut Prefetch, batch: usize, cur: Option<(Tensor, Tensor)> },
}

impl TrainData<'_> {
    /// Training samples per epoch.
    fn samples(&self) -> usize {
        match self {
            TrainData::Memory { idx, .. } => idx.len(),
            TrainData::Stream { source, .. } => source.len(),
        }
    }
    /// Rows of the underlying data (what per-sample weights index).
    fn rows_total(&self) -> usize {
        match self {
            TrainData::Memory { x, .. } => x.rows(),
            TrainData::Stream { source, .. } => source.len(),
        }
    }
    fn batch(&self) -> usize {
        match self {
            TrainData::Memory { batch, .. } | TrainData::Stream { batch, .. } => *batch,
        }
    }
    /// Skips the shuffles of `epochs` epochs (resuming): the order is a function of the
    /// seed and the epoch.
    fn replay(&mut self, epochs: usize) {
        if let TrainData::Memory { idx, rng, shuffle: true, .. } = self {
            for _ in 0..epochs {
                idx.shuffle(rng);
            }
        }
    }
    fn begin_epoch(&mut self, epoch: usize) -> Result<()> {
        match self {
            TrainData::Memory { idx, rng, shuffle, pos, .. } => {
                if *shuffle {
                    idx.shuffle(rng);
                }
                *pos = 0;
                Ok(())
            }
            TrainData::Stream { source, batch, .. } => source.begin_epoch(epoch as u64, *batch),
        }
    }
    /// The next batch of the epoch: features, targets and which of their rows.
    fn next(&mut self) -> Result<Option<(&Tensor, &Tensor, Rows<'_>)>> {
        match self {
            TrainData::Memory { x, y, idx, pos, batch, .. } => {
                if *pos >= idx.len() {
                    return Ok(None);
                }
                let end = (*pos + *batch).min(idx.len());
                let rows = Rows::Pick(&idx[*pos..end]);
                *pos = end;
                Ok(Some((x, y, rows)))
            }
            TrainData::Stream { source, cur, .. } => {
                if let Some((bx, by)) = cur.take() {
                    source.recycle(bx.into_data(), by.into_data());
                }
                let (bx, by, n) = source.next()?;
                if n == 0 {
                    return Ok(None);
                }
                let (f, t) = (source.features(), source.target_cols());
                let (bx, by) = (Tensor::new(bx, &[n, f])?, Tensor::new(by, &[n, t])?);
                let (bx, by) = cur.insert((bx, by));
                Ok(Some((bx, by, Rows::All)))
            }
        }
    }
}

/// What `fit_loop` validates on after each epoch.
#[derive(Clone, Copy)]
enum Validation<'v> {
    None,
    Data(&'v Tensor, &'v Tensor),
    /// The rows `idx` of the training arrays (Keras's `validation_split`).
    Split(&'v Tensor, &'v Tensor, &'v [usize]),
}


impl Model {
    /// Builds the model for `x` if needed and checks `x` (and `y`) against it.
    fn prepare(&mut self, x: &Tensor, y: Option<&Tensor>, source: &str) -> Result<()> {
        if !self.is_built() {
            if x.shape().rank() < 2 {
                return Err(Error::shape(source, "inputs of shape [samples, features…]", x.shape()));
            }
            self.build(&[x.row_len()])?;
        }
        check_inputs(self, x, source)?;
        if let Some(y) = y {
            let trainer = self.trainer.as_ref().ok_or_else(not_compiled)?;
            check_targets(&trainer.loss, self.output_units(), x, y, source)?;
        }
        Ok(())
    }

    /// Runs `f` with the trainer moved out of the model (so the loop can hold both).
    fn with_trainer<R>(&mut self, f: impl FnOnce(&mut Self, &mut Trainer) -> Result<R>) -> Result<R> {
        let mut trainer = self.trainer.take().ok_or_else(not_compiled)?;
        let result = f(self, &mut trainer);
        self.trainer = Some(trainer);
        result
    }

    /// Keras's `fit`: trains for `epochs` over `(x, y)` and returns the per-epoch history.
    pub fn fit(&mut self, x: &Tensor, y: &Tensor, options: FitOptions) -> Result<History> {
        self.prepare(x, Some(y), "training data")?;
        if options.batch_size == 0 {
            return Err(Error::Config("fit: batch_size must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&options.validation_split) {
            return Err(Error::Config(format!("fit: validation_split = {} is outside [0, 1)", options.validation_split)));
        }
        if let Some((vx, vy)) = options.validation_data {
            self.prepare(vx, Some(vy), "validation data")?;
        }
        let resumed = self.resume_from(options.backup.as_ref())?;
        let total = x.rows();
        let split_at = if options.validation_data.is_none() && options.validation_split > 0.0 {
            (total as f64 * (1.0 - options.validation_split as f64)).floor() as usize
        } else {
            total
        };
        if split_at == 0 {
            return Err(Error::Config(format!("fit: validation_split leaves no training samples out of {total}")));
        }
        let val_idx: Vec<usize> = (split_at..total).collect();
        let validation = match options.validation_data {
            Some((vx, vy)) => Validation::Data(vx, vy),
            None if !val_idx.is_empty() => Validation::Split(x, y, &val_idx),
            None => Validation::None,
        };
        let mut data = TrainData::Memory {
            x,
            y,
            idx: (0..split_at).collect(),
            rng: rng::derive(self.seed, SHUFFLE_STREAM),
            shuffle: options.shuffle,
            pos: 0,
            batch: options.batch_size.min(split_at),
        };
        self.with_trainer(|m, trainer| m.fit_loop(trainer, &mut data, validation, options, resumed))
    }

    /// `fit` over a stream (data larger than memory): batches come from `source`'s
    /// background thread, an epoch at a time. `validation_data` is evaluated from memory
    /// each epoch; `validation_split` and `sample_weight` need in-memory data.
    pub fn fit_stream(&mut self, source: &mut Prefetch, options: FitOptions) -> Result<History> {
        if options.validation_split > 0.0 || options.sample_weight.is_some() {
            return Err(Error::Config("fit_stream: validation_split and sample_weight need in-memory data; give validation_data".into()));
        }
        if options.batch_size == 0 {
            return Err(Error::Config("fit: batch_size must be at least 1".into()));
        }
        if source.is_empty() {
            return Err(Error::data(source.name(), "no samples"));
        }
        if !self.is_built() {
            self.build(&[source.features()])?;
        }
        let want = self.input_shape().map_or(0, |s| s.iter().product::<usize>());
        if source.features() != want {
            return Err(Error::shape(format!("streamed data {}", source.name()), format!("{want} features per sample"), source.features()));
        }
        if let Some((vx, vy)) = options.validation_data {
            self.prepare(vx, Some(vy), "validation data")?;
        }
        let resumed = self.resume_from(options.backup.as_ref())?;
        let validation = options.validation_data.map_or(Validation::None, |(vx, vy)| Validation::Data(vx, vy));
        let batch = options.batch_size.min(source.len());
        let mut data = TrainData::Stream { source, batch, cur: None };
        self.with_trainer(|m, trainer| m.fit_loop(trainer, &mut data, validation, options, resumed))
    }

    /// With a backup that exists, restores weights, optimizer, random streams, epoch and
    /// history from it (the fit then resumes after that epoch).
    fn resume_from(&mut self, backup: Option<&BackupAndRestore>) -> Result<Option<Restored>> {
        let Some(b) = backup else { return Ok(None) };
        std::fs::create_dir_all(&b.backup_dir).map_err(|e| Error::io(&b.backup_dir, e))?;
        if b.path().exists() { self.load_checkpoint(b.path()).map(Some) } else { Ok(None) }
    }

    fn fit_loop(
        &mut self,
        trainer: &mut Trainer,
        data: &mut TrainData,
        validation: Validation,
        mut options: FitOptions,
        resumed: Option<Restored>,
    ) -> Result<History> {
        let total = data.samples();
        let batch = data.batch();
        let steps = total.div_ceil(batch);
        let outputs = self.output_units();
        let weights = match (options.sample_weight, &options.class_weight) {
            (None, None) => None,
            (per_sample, per_class) => {
                if let Some(sw) = per_sample {
                    let all = data.rows_total();
                    if sw.data().len() != all {
                        return Err(Error::shape("fit: sample_weight", format!("{all} values (one per sample)"), sw.shape()));
                    }
                    if let Some((i, w)) = sw.data().iter().enumerate().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
                        return Err(Error::data("sample_weight", format!("weight {w} at sample {i} must be finite and ≥ 0")));
                    }
                }
                let per_class = per_class.as_ref().map_or(Vec::new(), |m| {
                    let n = m.keys().max().map_or(0, |k| k + 1);
                    (0..n).map(|c| m.get(&c).copied().unwrap_or(1.0)).collect()
                });
                if let Some(w) = per_class.iter().find(|w| !(w.is_finite() && **w >= 0.0)) {
                    return Err(Error::Config(format!("fit: class_weight {w} must be finite and ≥ 0")));
                }
                Some(SampleWeights { per_sample: per_sample.map(Tensor::data), per_class, sparse: trainer.loss.sparse_targets() })
            }
        };
        let mut metrics = trainer.metric_states(outputs);
        let mut val_metrics = trainer.metric_states(outputs);

        let (start_epoch, mut history) = match resumed {
            Some(r) => (r.epoch, r.history),
            None => (0, History::default()),
        };
        data.replay(start_epoch.min(options.epochs));
        let mut progress = ProgressCallback::new(options.verbose);
        let mut user = std::mem::take(&mut options.callbacks);
        let mut callbacks: Vec<&mut dyn Callback> = vec![&mut progress];
        callbacks.extend(user.iter_mut().map(|c| c.as_mut() as &mut dyn Callback));

        let mut logs = Logs::new();
        logs.set("loss", 0.0);
        for m in &metrics {
            logs.set(&m.name, 0.0);
        }

        macro_rules! notify {
            ($method:ident $(, $arg:expr)*) => {{
                let mut ctx = TrainContext {
                    params: &mut self.network.store,
                    optimizer: trainer.optimizer.as_mut(),
                    epochs: options.epochs,
                    steps_per_epoch: steps,
                    stop_training: false,
                };
                for cb in callbacks.iter_mut() {
                    cb.$method($($arg,)* &mut ctx);
                }
                ctx.stop_training
            }};
        }

        let mut stop = notify!(on_train_begin);
        for epoch in start_epoch..options.epochs {
            if stop {
                break;
            }
            data.begin_epoch(epoch)?;
            metrics.iter_mut().for_each(MetricState::reset);
            stop |= notify!(on_epoch_begin, epoch);
            let mut loss_sum = 0.0;
            let mut seen = 0usize;
            let mut b = 0;
            while let Some((x, y, rows)) = data.next()? {
                loss_sum += trainer.train_step(&mut self.network, (x, y, rows), &mut metrics, weights.as_ref())?;
                seen += rows.len(x.rows());
                b += 1;
                logs.set("loss", loss_sum / seen as f64);
                // Ranking metrics (AUC) sort everything seen: computed once per epoch.
                for m in metrics.iter().filter(|m| !m.metric.is_expensive()) {
                    logs.set(&m.name, m.result());
                }
                stop |= notify!(on_batch_end, b - 1, &logs);
                if stop {
                    break;
                }
            }
            for m in metrics.iter().filter(|m| m.metric.is_expensive()) {
                logs.set(&m.name, m.result());
            }
            let val_loss = match validation {
                Validation::Data(vx, vy) => Some(evaluate_rows(&self.network, trainer, vx, vy, Rows::All, batch, &mut val_metrics)?),
                Validation::Split(x, y, idx) => Some(evaluate_rows(&self.network, trainer, x, y, Rows::Pick(idx), batch, &mut val_metrics)?),
                Validation::None => None,
            };
            if let Some(val_loss) = val_loss {
                logs.set("val_loss", val_loss);
                for m in &val_metrics {
                    logs.set(&format!("val_{}", m.name), m.result());
                }
            }
            history.record(epoch, &logs);
            if let Some(b) = &options.backup {
                super::checkpoint::write(&b.path(), &self.network, trainer.optimizer.as_ref(), epoch + 1, &history)?;
            }
            stop |= notify!(on_epoch_end, epoch, &logs);
        }
        notify!(on_train_end, &logs);
        drop(callbacks);
        if let Some(b) = options.backup.as_ref().filter(|b| b.delete_checkpoint) {
            let path = b.path();
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(history)
    }

    /// Keras's `evaluate`: loss and metrics over `(x, y)`, in batches of `batch_size`.
    pub fn evaluate(&mut self, x: &Tensor, y: &Tensor, batch_size: usize) -> Result<Logs> {
        self.prepare(x, Some(y), "evaluation data")?;
        let (loss, metrics) = self.with_trainer(|m, trainer| {
            let mut metrics = trainer.metric_states(m.output_units());
            let loss = evaluate_rows(&m.network, trainer, x, y, Rows::All, batch_size.max(1), &mut metrics)?;
            Ok((loss, metrics))
        })?;
        let mut logs = Logs::new();
        logs.set("loss", loss);
        for m in &metrics {
            logs.set(&m.name, m.result());
        }
        Ok(logs)
    }

    /// Keras's `predict`: the model's raw outputs for `x`, `[samples, outputs]`.
    pub fn predict(&mut self, x: &Tensor, batch_size: usize) -> Result<Tensor> {
        if !self.is_built() {
            return Err(Error::State("predict: the model has no weights yet (build, fit or load it first)".into()));
        }
        check_inputs(self, x, "prediction inputs")?;
        // An uncompiled model predicts too, on a tape of its own.
        let mut own = None;
        let tape = match &mut self.trainer {
            Some(t) => &mut t.tape,
            None => own.insert(crate::autograd::Tape::new()),
        };
        let net = &self.network;
        let outputs = net.output_units();
        let mut out = Vec::with_capacity(x.rows() * outputs);
        let result = tape.no_grad(|tape| -> Result<()> {
            for rows in batches(Rows::All, x.rows(), batch_size) {
                tape.reset();
                let n = rows.len(x.rows());
                let xin = tape.input_with(Shape::matrix(n, x.row_len()), |b| gather_into(b, x, rows));
                let y = net.forward(tape, xin, false)?;
                out.extend_from_slice(tape.value(&net.store, y));
            }
            Ok(())
        });
        result?;
        Tensor::new(out, &[x.rows(), outputs])
    }

    /// One gradient step on a whole batch (Keras's `train_on_batch`); returns its mean
    /// loss. After the first call with a given batch shape, this allocates nothing.
    pub fn train_on_batch(&mut self, x: &Tensor, y: &Tensor) -> Result<f32> {
        self.prepare(x, Some(y), "batch")?;
        let loss = self.with_trainer(|m, trainer| trainer.train_step(&mut m.network, (x, y, Rows::All), &mut [], None))?;
        Ok((loss / x.rows().max(1) as f64) as f32)
    }
}

fn not_compiled() -> Error {
    Error::State("the model must be compiled (optimizer, loss, metrics) before training or evaluation".into())
}

/// Mean loss over the chosen rows, without recording for backward; fills `metrics`.
fn evaluate_rows(net: &crate::nn::Network, trainer: &mut Trainer, x: &Tensor, y: &Tensor, rows: Rows, batch: usize, metrics: &mut [MetricState]) -> Result<f64> {
    metrics.iter_mut().for_each(MetricState::reset);
    let total = rows.len(x.rows());
    let mut loss_sum = 0.0;
    let was = trainer.tape.grad_enabled();
    trainer.tape.set_grad_enabled(false);
    let result = (|| -> Result<()> {
        for b in batches(rows, x.rows(), batch) {
            loss_sum += trainer.eval_step(net, (x, y, b), metrics)?;
        }
        Ok(())
    })();
    trainer.tape.set_grad_enabled(was);
    result?;
    Ok(loss_sum / total.max(1) as f64)
}
