//! Keras's `fit`, `evaluate`, `predict` and `train_on_batch` over the [`Trainer`]: the
//! epoch loop (data order, validation, callbacks, backups) around its step.

use rand::seq::SliceRandom;

use super::callbacks::{Callback, History, Logs, TrainContext};
use super::progress::ProgressCallback;
use super::batch::{batches, gather_into, Inputs, Rows, SampleWeights};
use super::validate::{check_input, check_targets};
use super::checkpoint::Restored;
use super::telemetry::{Divergence, EpochRecord, Telemetry};
use super::{Model, Trainer};
use crate::data::Prefetch;
use crate::error::{Error, Result};
use crate::nn::MetricState;
use crate::rng;
use crate::tensor::Tensor;
use crate::distributed::{share, Communicator, DataParallel};

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
    /// 0 silent, 1 progress bar, 2 one line per epoch. Above 0, `fit` also warns once
    /// on standard error when the loss spikes for the second time or the model begins
    /// to overfit ([`super::warning_signs`]).
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
    /// Records the run's telemetry (see [`Telemetry`]) when given.
    pub telemetry: Option<&'a mut Telemetry>,
    /// Stop with [`Error::Diverged`] at the first step whose loss is not finite (unless
    /// the optimizer skipped that step: `skip_nonfinite`). On by default; off, training
    /// goes on after one warning (Keras's behaviour without `TerminateOnNaN`).
    pub stop_on_divergence: bool,
    /// Trains data-parallel over this group of ranks (when it has more than one):
    /// `batch_size` is the global batch, of which each rank takes its consecutive share;
    /// gradients, losses and metrics are summed over ranks. Only rank 0 writes backups,
    /// shows progress and should be given telemetry and file-writing callbacks.
    pub data_parallel: Option<&'a mut dyn Communicator>,
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
            telemetry: None,
            stop_on_divergence: true,
            data_parallel: None,
        }
    }
}

/// Where `fit_loop` gets its training batches.
enum TrainData<'d> {
    /// In memory: shuffled indices, a batch of rows at a time.
    Memory { xs: Inputs<'d>, ys: Inputs<'d>, idx: Vec<usize>, rng: rng::Rng, shuffle: bool, pos: usize, batch: usize },
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
            TrainData::Memory { xs, .. } => xs.rows(),
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
    fn next(&mut self) -> Result<Option<(Inputs<'_>, Inputs<'_>, Rows<'_>)>> {
        match self {
            TrainData::Memory { xs, ys, idx, pos, batch, .. } => {
                if *pos >= idx.len() {
                    return Ok(None);
                }
                let end = (*pos + *batch).min(idx.len());
                let rows = Rows::Pick(&idx[*pos..end]);
                *pos = end;
                Ok(Some((*xs, *ys, rows)))
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
                Ok(Some((Inputs::One(bx), Inputs::One(by), Rows::All)))
            }
        }
    }
}

/// The telemetry's record of an epoch of `steps` steps that began at `started`.
fn epoch_record(epoch: usize, steps: usize, started: std::time::Instant, data_seconds: f64, t: &Telemetry, skipped: u64, logs: &Logs) -> EpochRecord {
    let clipped = t.steps.clipped.iter().rev().take(steps).filter(|c| **c).count();
    EpochRecord { epoch, steps, seconds: started.elapsed().as_secs_f64(), data_seconds, clipped, skipped, logs: logs.iter().map(|(k, v)| (k.to_string(), v)).collect() }
}

/// What `fit_loop` validates on after each epoch.
#[derive(Clone, Copy)]
enum Validation<'v> {
    None,
    Data(Inputs<'v>, Inputs<'v>),
    /// The rows `idx` of the training arrays (Keras's `validation_split`).
    Split(Inputs<'v>, Inputs<'v>, &'v [usize]),
}

impl Validation<'_> {
    /// In words, for ranks to compare.
    fn describe(&self) -> String {
        match self {
            Validation::None => "no".into(),
            Validation::Data(x, _) => format!("{} rows of", x.rows()),
            Validation::Split(_, _, idx) => format!("{} split rows of", idx.len()),
        }
    }
}


impl Model {
    /// Builds the model for `xs` if needed and checks `xs` (and the targets `ys`, one
    /// tensor per output) against it: one tensor per input, each with that input's
    /// features, all with the same samples.
    fn prepare(&mut self, xs: Inputs, ys: Option<Inputs>, source: &str) -> Result<()> {
        self.prepare_inputs(xs, source)?;
        if let Some(ys) = ys {
            if ys.len() != self.num_outputs() {
                return Err(self.count_error(source, ys.len(), "target", "outputs", self.output_names()));
            }
            let trainer = self.trainer.as_ref().ok_or_else(not_compiled)?;
            let several = ys.len() > 1;
            for (k, name) in self.output_names().enumerate() {
                let check = |what: &str| check_targets(&trainer.losses[k], self.network.output_shape_of(k), xs.get(0), ys.get(k), what);
                // The output's name goes into the message only on failure (checked again
                // to word it): train_on_batch runs this every step, which must not allocate.
                if let Err(e) = check(source) {
                    return Err(if several { check(&format!("{source}, output '{name}'")).err().unwrap_or(e) } else { e });
                }
            }
        }
        Ok(())
    }

    /// "`got` <kind> tensor(s) for a model with these <ports>", naming them.
    fn count_error<'n>(&self, source: &str, got: usize, kind: &str, ports: &str, names: impl Iterator<Item = &'n str>) -> Error {
        let names: Vec<&str> = names.collect();
        Error::Config(format!("{source}: {got} {kind} tensor(s) for model '{}', which has {} {ports} ({})", self.name(), names.len(), names.join(", ")))
    }

    /// The inputs' part of [`Model::prepare`] (prediction needs no compiled model).
    fn prepare_inputs(&mut self, xs: Inputs, source: &str) -> Result<()> {
        if xs.len() != self.num_inputs() {
            return Err(self.count_error(source, xs.len(), "input", "inputs", self.input_names()));
        }
        let x = xs.get(0);
        if !self.is_built() {
            if x.shape().rank() < 2 {
                return Err(Error::shape(source, "inputs of shape [samples, features…]", x.shape()));
            }
            let shape = self.input_shape_for(0, x.sample_dims());
            self.build(&shape)?;
        }
        for i in 0..xs.len() {
            check_input(self, i, xs.get(i), source)?;
            if xs.get(i).rows() != x.rows() {
                let name = self.input_names().nth(i).unwrap_or("?").to_string();
                return Err(Error::shape(format!("{source}, input '{name}'"), format!("{} samples (as the first input)", x.rows()), xs.get(i).rows()));
            }
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
        self.fit_with(Inputs::One(x), Inputs::One(y), options)
    }

    /// `fit` for a model with several inputs: one tensor per input, in the model's input
    /// order, all with the same samples. Validation by `validation_split`.
    pub fn fit_inputs(&mut self, xs: &[&Tensor], y: &Tensor, options: FitOptions) -> Result<History> {
        self.fit_with(Inputs::Many(xs), Inputs::One(y), options)
    }

    /// `fit` for a model with several outputs: one target tensor per output, in the
    /// model's output order (and one input tensor per input). The loss trained is
    /// Σ wₖ·lossₖ (see [`Model::compile_outputs`]); the history has `loss`, each
    /// `<output>_loss` and each `<output>_<metric>`. Validation by `validation_split`.
    pub fn fit_outputs(&mut self, xs: &[&Tensor], ys: &[&Tensor], options: FitOptions) -> Result<History> {
        if options.validation_data.is_some() {
            return Err(Error::Config("fit_outputs: validation_data holds one target tensor; use validation_split".into()));
        }
        self.fit_with(Inputs::Many(xs), Inputs::Many(ys), options)
    }

    fn fit_with(&mut self, xs: Inputs, ys: Inputs, options: FitOptions) -> Result<History> {
        self.prepare(xs, Some(ys), "training data")?;
        if options.batch_size == 0 {
            return Err(Error::Config("fit: batch_size must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&options.validation_split) {
            return Err(Error::Config(format!("fit: validation_split = {} is outside [0, 1)", options.validation_split)));
        }
        if let Some((vx, vy)) = options.validation_data {
            self.prepare(Inputs::One(vx), Some(Inputs::One(vy)), "validation data")?;
        }
        let resumed = self.resume_from(options.backup.as_ref())?;
        let total = xs.rows();
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
            Some((vx, vy)) => Validation::Data(Inputs::One(vx), Inputs::One(vy)),
            None if !val_idx.is_empty() => Validation::Split(xs, ys, &val_idx),
            None => Validation::None,
        };
        let mut data = TrainData::Memory {
            xs,
            ys,
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
        if self.num_outputs() != 1 {
            return Err(Error::Config(format!("fit_stream: model '{}' has {} outputs; streams carry one target tensor", self.name(), self.num_outputs())));
        }
        if let Some((vx, vy)) = options.validation_data {
            self.prepare(Inputs::One(vx), Some(Inputs::One(vy)), "validation data")?;
        }
        let resumed = self.resume_from(options.backup.as_ref())?;
        let validation = options.validation_data.map_or(Validation::None, |(vx, vy)| Validation::Data(Inputs::One(vx), Inputs::One(vy)));
        // Data-parallel, the stream holds this rank's shard and gives its share of each
        // global batch.
        let batch = match options.data_parallel.as_deref().filter(|c| c.size() > 1) {
            Some(c) => share(options.batch_size, c.rank(), c.size()).len(),
            None => options.batch_size.min(source.len()),
        };
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
        let several = self.num_outputs() > 1;
        let mut dp = options.data_parallel.take().filter(|c| c.size() > 1).map(|c| DataParallel::new(c, &self.network.store));
        // Synchronized batch norms sum their statistics over the ranks from the tape;
        // one process (or a later fit alone) leaves the tape on its own.
        trainer.tape.set_replicas(dp.as_mut().map(|dp| dp.comm.replica_sum()));
        let streamed = matches!(data, TrainData::Stream { .. });
        if let Some(dp) = &mut dp {
            if options.batch_size < dp.size() {
                return Err(Error::Config(format!("fit: batch_size {} is smaller than the {} data-parallel ranks sharing each batch", options.batch_size, dp.size())));
            }
            // A stream holds one rank's shard (its length differs by rank); in memory
            // every rank holds the whole set and must agree on it.
            let rows = if streamed { String::from("a stream") } else { format!("{} training rows", data.rows_total()) };
            let agreed = format!("batch {} over {} ranks, {} epochs, {rows}, {} validation", options.batch_size, dp.size(), options.epochs, validation.describe());
            super::parallel::check_ranks_agree(dp, &self.network.store, &agreed)?;
        }
        let rank = dp.as_ref().map_or(0, |dp| dp.rank());
        // Steps of an epoch: a stream's shards may differ in length, and an epoch then
        // lasts as long as the longest (ranks that ran out step with no rows).
        let steps = match &mut dp {
            Some(dp) if streamed => {
                let mut longest = [total.div_ceil(batch) as f64];
                dp.comm.gather_all(&longest[0].to_le_bytes()).iter().for_each(|b| longest[0] = longest[0].max(f64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]))));
                longest[0] as usize
            }
            _ => total.div_ceil(batch),
        };
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
                if several && !per_class.is_empty() {
                    return Err(Error::Config("fit: class_weight is for models with one output (as in Keras); give sample_weight".into()));
                }
                Some(SampleWeights { per_sample: per_sample.map(Tensor::data), per_class, sparse: trainer.loss().sparse_targets() })
            }
        };
        let mut metrics = trainer.metric_states(&self.network);
        let mut val_metrics = trainer.metric_states(&self.network);
        // Several outputs: each one's mean loss is logged as `<output>_loss` too.
        let output_names: Vec<String> = if several { self.output_names().map(str::to_string).collect() } else { Vec::new() };
        let mut output_sums = vec![0.0f64; output_names.len()];
        // A data-parallel step's sums over ranks: rows, loss, each output's loss.
        let mut step_sums = vec![0.0f64; 1 + output_names.len()];

        let (start_epoch, mut history) = match resumed {
            Some(r) => (r.epoch, r.history),
            None => (0, History::default()),
        };
        data.replay(start_epoch.min(options.epochs));
        let mut progress = ProgressCallback::new(if rank == 0 { options.verbose } else { 0 });
        let mut user = std::mem::take(&mut options.callbacks);
        // Callbacks may stop training after any batch; data-parallel, the ranks then agree
        // on it after every batch: one more sum a step, only when some rank has
        // callbacks (rank 0 alone has those that write files).
        let stops_per_batch = match &mut dp {
            Some(dp) => dp.sum1(!user.is_empty() as u8 as f64) > 0.0,
            None => false,
        };
        let mut callbacks: Vec<&mut dyn Callback> = vec![&mut progress];
        callbacks.extend(user.iter_mut().map(|c| c.as_mut() as &mut dyn Callback));

        let mut logs = Logs::new();
        logs.set("loss", 0.0);
        for name in &output_names {
            logs.set(&format!("{name}_loss"), 0.0);
        }
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
        // Every rank stops when any does.
        macro_rules! agree {
            ($stop:expr) => {
                match &mut dp {
                    Some(dp) => dp.sum1($stop as u8 as f64) > 0.0,
                    None => $stop,
                }
            };
        }

        if let Some(t) = options.telemetry.as_deref_mut() {
            t.begin(&self.network, trainer.optimizer.as_ref(), batch, total, steps, options.epochs, start_epoch);
        }
        let mut warned_divergence = false;
        let mut live = (options.verbose > 0 && rank == 0).then(super::warning_signs::LiveWarnings::new);
        let mut stop = agree!(notify!(on_train_begin));
        for epoch in start_epoch..options.epochs {
            if stop {
                break;
            }
            data.begin_epoch(epoch)?;
            metrics.iter_mut().for_each(MetricState::reset);
            stop |= agree!(notify!(on_epoch_begin, epoch));
            let mut loss_sum = 0.0;
            let mut seen = 0usize;
            let mut b = 0;
            output_sums.iter_mut().for_each(|s| *s = 0.0);
            let epoch_started = std::time::Instant::now();
            let mut data_seconds = 0.0;
            let skipped_before = trainer.optimizer.skipped_steps();
            let mut exhausted = false;
            loop {
                let waited = std::time::Instant::now();
                // A rank whose stream shard ran out keeps stepping, with no rows, until
                // every rank's has.
                let next = if exhausted { None } else { data.next()? };
                exhausted = next.is_none();
                data_seconds += waited.elapsed().as_secs_f64();
                let (lr, skipped) = (trainer.optimizer.learning_rate(), trainer.optimizer.skipped_steps());
                // Rows this rank trains on, and in the whole step (over every rank).
                let (mine, n, rows_in_step) = match (next, &mut dp) {
                    (None, None) => break,
                    (Some((xs, ys, rows)), None) => {
                        let n = rows.len(xs.rows());
                        (Some((xs, ys, rows)), n, n)
                    }
                    (next, Some(dp)) if streamed => {
                        let n = next.as_ref().map_or(0, |(xs, _, rows)| rows.len(xs.rows()));
                        let all = dp.sum1(n as f64) as usize;
                        if all == 0 {
                            break;
                        }
                        (next, n, all)
                    }
                    (None, Some(_)) => break,
                    (Some((xs, ys, rows)), Some(dp)) => {
                        let all = rows.len(xs.rows());
                        let part = rows.share_of(xs.rows(), dp.rank(), dp.size());
                        (Some((xs, ys, part)), part.len(xs.rows()), all)
                    }
                };
                if let Some(t) = options.telemetry.as_deref_mut() {
                    t.step_begins(b + 1 == steps);
                }
                // This rank's gradient weighs its share of the step's rows in the sum.
                let weight = (n as f64 / rows_in_step as f64) as f32;
                let mut step_loss = match (mine, &mut dp) {
                    (Some(batch), dp) if n > 0 => trainer.train_step(&mut self.network, batch, &mut metrics, weights.as_ref(), options.telemetry.as_deref_mut(), dp.as_mut().map(|dp| (dp, weight)))?,
                    (_, Some(dp)) => {
                        trainer.idle_step(&mut self.network, dp);
                        0.0
                    }
                    (_, None) => unreachable!("one process always has rows"),
                };
                if let Some(dp) = &mut dp {
                    step_sums[0] = step_loss;
                    for (s, l) in step_sums[1..].iter_mut().zip(trainer.output_losses()) {
                        *s = if n > 0 { l as f64 * n as f64 } else { 0.0 };
                    }
                    dp.comm.sum(&mut step_sums);
                    step_loss = step_sums[0];
                }
                let n_all = rows_in_step;
                if let Some(t) = options.telemetry.as_deref_mut() {
                    t.step_ends((step_loss / n_all as f64) as f32, lr, &trainer.last_grad_stats());
                }
                if let Some(w) = live.as_mut().and_then(|l| l.step((step_loss / n_all as f64) as f32, epoch, b)) {
                    eprintln!("{w}");
                }
                if !step_loss.is_finite() && trainer.optimizer.skipped_steps() == skipped && !warned_divergence {
                    let global_step = trainer.optimizer.iterations().saturating_sub(1);
                    let d = Divergence { epoch, step: b, global_step, learning_rate: lr, origin: trainer.locate_nonfinite(&self.network) };
                    warned_divergence = true;
                    if let Some(t) = options.telemetry.as_deref_mut() {
                        t.divergence = Some(d.clone());
                    }
                    if options.stop_on_divergence {
                        if let Some(t) = options.telemetry.as_deref_mut() {
                            logs.set("loss", f64::NAN);
                            t.epoch_ends(epoch_record(epoch, b + 1, epoch_started, data_seconds, t, trainer.optimizer.skipped_steps() - skipped_before, &logs), &self.network);
                        }
                        let kept = options.backup.as_ref().map(|b| b.path()).filter(|p| p.exists());
                        let kept = kept.map_or(String::new(), |p| format!("; the last finite checkpoint (end of epoch {}) is kept at {}", epoch, p.display()));
                        return Err(Error::Diverged(format!("{d}{kept}. Lower the learning rate, add warmup or clipping; `on_divergence = \"continue\"` in [fit] trains on regardless")));
                    }
                    if rank == 0 {
                        eprintln!("warning: {d}; training continues (on_divergence = \"continue\")");
                    }
                }
                loss_sum += step_loss;
                seen += n_all;
                b += 1;
                logs.set("loss", loss_sum / seen as f64);
                for (k, name) in output_names.iter().enumerate() {
                    let step_sum = match &dp {
                        Some(_) => step_sums[1 + k],
                        None => trainer.output_losses().nth(k).unwrap_or(0.0) as f64 * n as f64,
                    };
                    output_sums[k] += step_sum;
                    logs.set(&format!("{name}_loss"), output_sums[k] / seen as f64);
                }
                // Ranking metrics (AUC) sort everything seen: computed once per epoch.
                // (Data-parallel, these batch-level values are this rank's own rows';
                // the epoch's are over every rank.)
                for m in metrics.iter().filter(|m| !m.metric.is_expensive()) {
                    logs.set(&m.name, m.result());
                }
                let stop_now = notify!(on_batch_end, b - 1, &logs);
                stop |= if stops_per_batch { agree!(stop_now) } else { stop_now };
                if stop {
                    break;
                }
            }
            if let Some(dp) = &mut dp {
                metrics.iter_mut().for_each(|m| m.merge_over(&mut *dp.comm));
                super::parallel::average_frozen_state(dp, &mut self.network.store);
            }
            for m in &metrics {
                logs.set(&m.name, m.result());
            }
            let val_loss = match validation {
                Validation::Data(vx, vy) => Some(evaluate_rows(&self.network, trainer, vx, vy, Rows::All, batch, &mut val_metrics, dp.as_mut())?),
                Validation::Split(xs, ys, idx) => Some(evaluate_rows(&self.network, trainer, xs, ys, Rows::Pick(idx), batch, &mut val_metrics, dp.as_mut())?),
                Validation::None => None,
            };
            if let Some((val_loss, val_outputs)) = val_loss {
                logs.set("val_loss", val_loss);
                for (name, l) in output_names.iter().zip(&val_outputs) {
                    logs.set(&format!("val_{name}_loss"), *l);
                }
                for m in &val_metrics {
                    logs.set(&format!("val_{}", m.name), m.result());
                }
            }
            history.record(epoch, &logs);
            if let Some(w) = live.as_mut().and_then(|l| l.epoch(&history)) {
                eprintln!("{w}");
            }
            if let Some(t) = options.telemetry.as_deref_mut() {
                t.epoch_ends(epoch_record(epoch, b, epoch_started, data_seconds, t, trainer.optimizer.skipped_steps() - skipped_before, &logs), &self.network);
            }
            if let Some(b) = options.backup.as_ref().filter(|_| rank == 0) {
                super::checkpoint::write(&b.path(), &self.network, trainer.optimizer.as_ref(), epoch + 1, &history)?;
            }
            stop |= agree!(notify!(on_epoch_end, epoch, &logs));
        }
        notify!(on_train_end, &logs);
        drop(callbacks);
        if let Some(dp) = &mut dp {
            super::parallel::check_weights_agree(dp, &self.network.store)?;
        }
        if let Some(b) = options.backup.as_ref().filter(|b| b.delete_checkpoint && rank == 0) {
            let path = b.path();
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        Ok(history)
    }

    /// Keras's `evaluate`: loss and metrics over `(x, y)`, in batches of `batch_size`.
    pub fn evaluate(&mut self, x: &Tensor, y: &Tensor, batch_size: usize) -> Result<Logs> {
        self.evaluate_with(Inputs::One(x), Inputs::One(y), batch_size)
    }

    /// `evaluate` for a model with several inputs (one tensor per input).
    pub fn evaluate_inputs(&mut self, xs: &[&Tensor], y: &Tensor, batch_size: usize) -> Result<Logs> {
        self.evaluate_with(Inputs::Many(xs), Inputs::One(y), batch_size)
    }

    /// `evaluate` for a model with several outputs (one target tensor per output):
    /// `loss`, each `<output>_loss` and each `<output>_<metric>`.
    pub fn evaluate_outputs(&mut self, xs: &[&Tensor], ys: &[&Tensor], batch_size: usize) -> Result<Logs> {
        self.evaluate_with(Inputs::Many(xs), Inputs::Many(ys), batch_size)
    }

    fn evaluate_with(&mut self, xs: Inputs, ys: Inputs, batch_size: usize) -> Result<Logs> {
        self.prepare(xs, Some(ys), "evaluation data")?;
        let ((loss, per_output), metrics) = self.with_trainer(|m, trainer| {
            let mut metrics = trainer.metric_states(&m.network);
            let loss = evaluate_rows(&m.network, trainer, xs, ys, Rows::All, batch_size.max(1), &mut metrics, None)?;
            Ok((loss, metrics))
        })?;
        let mut logs = Logs::new();
        logs.set("loss", loss);
        if per_output.len() > 1 {
            for (name, l) in self.output_names().zip(&per_output) {
                logs.set(&format!("{name}_loss"), *l);
            }
        }
        for m in &metrics {
            logs.set(&m.name, m.result());
        }
        Ok(logs)
    }

    /// Keras's `predict`: the model's raw outputs for `x`, `[samples, outputs]`.
    pub fn predict(&mut self, x: &Tensor, batch_size: usize) -> Result<Tensor> {
        self.predict_with(Inputs::One(x), batch_size).map(|mut outs| outs.swap_remove(0))
    }

    /// `predict` for a model with several inputs (one tensor per input): its first output.
    pub fn predict_inputs(&mut self, xs: &[&Tensor], batch_size: usize) -> Result<Tensor> {
        self.predict_with(Inputs::Many(xs), batch_size).map(|mut outs| outs.swap_remove(0))
    }

    /// `predict` for a model with several outputs: one tensor per output, in order.
    pub fn predict_outputs(&mut self, xs: &[&Tensor], batch_size: usize) -> Result<Vec<Tensor>> {
        self.predict_with(Inputs::Many(xs), batch_size)
    }

    fn predict_with(&mut self, xs: Inputs, batch_size: usize) -> Result<Vec<Tensor>> {
        if !self.is_built() {
            return Err(Error::State("predict: the model has no weights yet (build, fit or load it first)".into()));
        }
        self.prepare_inputs(xs, "prediction inputs")?;
        // An uncompiled model predicts too, on a tape of its own.
        let mut own = None;
        let tape = match &mut self.trainer {
            Some(t) => &mut t.tape,
            None => own.insert(crate::autograd::Tape::new()),
        };
        let net = &self.network;
        let total = xs.rows();
        let mut outs: Vec<Vec<f32>> = (0..net.num_outputs()).map(|k| Vec::with_capacity(total * net.output_units_of(k))).collect();
        let mut vars = Vec::with_capacity(xs.len());
        let mut ys = Vec::with_capacity(outs.len());
        let result = tape.no_grad(|tape| -> Result<()> {
            for rows in batches(Rows::All, total, batch_size) {
                tape.reset();
                let n = rows.len(total);
                vars.clear();
                for i in 0..xs.len() {
                    let x = xs.get(i);
                    vars.push(tape.input_with(net.input_batch_shape(i, n, x.row_len()), |b| gather_into(b, x, rows)));
                }
                net.forward_outputs(tape, &vars, false, &mut ys)?;
                for (out, &y) in outs.iter_mut().zip(&ys) {
                    out.extend_from_slice(std::ops::Deref::deref(&tape.value(&net.store, y)));
                }
            }
            Ok(())
        });
        result?;
        outs.into_iter().enumerate().map(|(k, out)| Tensor::new(out, &[total, net.output_units_of(k)])).collect()
    }

    /// One gradient step on a whole batch (Keras's `train_on_batch`); returns its mean
    /// loss. After the first call with a given batch shape, this allocates nothing.
    pub fn train_on_batch(&mut self, x: &Tensor, y: &Tensor) -> Result<f32> {
        self.prepare(Inputs::One(x), Some(Inputs::One(y)), "batch")?;
        let loss = self.with_trainer(|m, trainer| trainer.train_step(&mut m.network, (Inputs::One(x), Inputs::One(y), Rows::All), &mut [], None, None, None))?;
        Ok((loss / x.rows().max(1) as f64) as f32)
    }

    /// `train_on_batch` for a model with several inputs and outputs (one tensor each);
    /// returns the batch's mean total loss Σ wₖ·lossₖ.
    pub fn train_on_batch_outputs(&mut self, xs: &[&Tensor], ys: &[&Tensor]) -> Result<f32> {
        let (xs, ys) = (Inputs::Many(xs), Inputs::Many(ys));
        self.prepare(xs, Some(ys), "batch")?;
        let loss = self.with_trainer(|m, trainer| trainer.train_step(&mut m.network, (xs, ys, Rows::All), &mut [], None, None, None))?;
        Ok((loss / xs.rows().max(1) as f64) as f32)
    }
}

fn not_compiled() -> Error {
    Error::State("the model must be compiled (optimizer, loss, metrics) before training or evaluation".into())
}

/// Mean loss over the chosen rows, and each output's mean loss, without recording for
/// backward; fills `metrics`. Data-parallel, each rank evaluates its share of the rows
/// and the sums and metrics are combined over ranks.
#[allow(clippy::too_many_arguments)]
fn evaluate_rows(net: &crate::nn::Network, trainer: &mut Trainer, xs: Inputs, ys: Inputs, rows: Rows, batch: usize, metrics: &mut [MetricState], dp: Option<&mut DataParallel>) -> Result<(f64, Vec<f64>)> {
    metrics.iter_mut().for_each(MetricState::reset);
    let total = rows.len(xs.rows());
    let rows = match &dp {
        Some(dp) => rows.share_of(xs.rows(), dp.rank(), dp.size()),
        None => rows,
    };
    // Summed loss, then each output's.
    let mut sums = vec![0.0f64; 1 + net.num_outputs()];
    let was = trainer.tape.grad_enabled();
    trainer.tape.set_grad_enabled(false);
    let result = (|| -> Result<()> {
        for b in batches(rows, xs.rows(), batch) {
            sums[0] += trainer.eval_step(net, (xs, ys, b), metrics)?;
            let n = b.len(xs.rows()) as f64;
            sums[1..].iter_mut().zip(trainer.output_losses()).for_each(|(s, l)| *s += l as f64 * n);
        }
        Ok(())
    })();
    trainer.tape.set_grad_enabled(was);
    result?;
    if let Some(dp) = dp {
        dp.comm.sum(&mut sums);
        metrics.iter_mut().for_each(|m| m.merge_over(&mut *dp.comm));
    }
    let n = total.max(1) as f64;
    Ok((sums[0] / n, sums[1..].iter().map(|s| s / n).collect()))
}
