//! Running an experiment: load and split the data, fit the preprocessing on the
//! training split, build and train the model, evaluate on the held-out split, and write
//! a run folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::run_folder::{METRICS_FILE, STATUS_FILE};
use super::{DataSource, Experiment, OnDivergence};
use crate::data::stream::Transformed;
use crate::data::{fixed_windows, TextCorpus, TextWindows, Tokenizer};
use crate::data::{csv_categories, read_csv_dataset, read_idx, Categories, read_npy, read_npz, teacher_classification, BatchStream, CsvOptions, Dataset, NpyStream, Prefetch, Preprocessing, Shard, TeacherSpec};
use crate::distributed::{share, Communicator};
use crate::error::{Error, Result};
use crate::io::write_atomic;
use crate::nn::ModelConfig;
use crate::train::Model;
use crate::tensor::Tensor;
use crate::train::{check_dataset_targets, check_targets, Callback, CallbackConfig, FitOptions, History, Logs, Telemetry};

/// What `descent fit` reports at the end.
#[derive(Debug)]
pub struct RunSummary {
    pub dir: PathBuf,
    pub history: History,
    /// Loss and metrics on the held-out split (empty without one).
    pub test: Logs,
    pub train_seconds: f64,
    pub steps: u64,
    pub warnings: Vec<String>,
}

/// A model trained by [`Experiment::train_on`], with what it was trained with.
pub struct Trained {
    pub model: Model,
    /// Fitted on the training samples only.
    pub preprocessing: Preprocessing,
    pub history: History,
    /// Loss and metrics on the validation/held-out samples (empty without them).
    pub valid: Logs,
    pub warnings: Vec<String>,
    pub train_seconds: f64,
    pub train_samples: usize,
}

/// Adds what a language model's per-token cross-entropy (`loss`, in nats) means:
/// `perplexity` = e^loss, and `bits_per_char` (the character tokenizer) or
/// `bits_per_token` = loss / ln 2.
pub fn add_text_scores(scores: &mut Logs, tokenizer: &Tokenizer) {
    if let Some(loss) = scores.get("loss") {
        scores.set("perplexity", loss.exp());
        let bits = loss / std::f64::consts::LN_2;
        scores.set(if matches!(tokenizer, Tokenizer::Char { .. }) { "bits_per_char" } else { "bits_per_token" }, bits);
    }
}

/// What [`Experiment::train_text`] returns.
struct TextTrained {
    model: Model,
    preprocessing: Preprocessing,
    history: History,
    valid: Logs,
    warnings: Vec<String>,
    train_seconds: f64,
    train_samples: usize,
    valid_samples: usize,
}

/// `[samples, features…]` → `[samples, features]`; `[samples]` → `[samples, 1]`.
fn as_matrix(t: Tensor) -> Result<Tensor> {
    let (rows, cols) = (t.dims()[0], t.row_len().max(1));
    Tensor::new(t.into_data(), &[rows, cols])
}

/// Inputs keep their per-sample shape (`[samples, 28, 28]` images stay images; the
/// model flattens them if it asks); `[samples]` → `[samples, 1]`.
fn as_samples(t: Tensor) -> Result<Tensor> {
    if t.shape().rank() >= 2 {
        return Ok(t);
    }
    as_matrix(t)
}

/// Targets as a matrix, a column of whole numbers as integer classes.
fn as_targets(t: Tensor) -> Result<Tensor> {
    as_matrix(t).map(Tensor::into_classes_if_whole)
}

impl Experiment {
    /// Loads the raw samples (before splitting) or, for `teacher`, the train and test sets.
    fn load_raw(&self) -> Result<(Dataset, Option<Dataset>)> {
        Ok(match &self.data.source {
            DataSource::Csv { path, label_column, header, delimiter, categorical } => {
                let opts = CsvOptions {
                    has_header: *header,
                    label_column: Some(label_column.clone()),
                    delimiter: *delimiter as u8,
                    categorical: categorical.iter().map(|c| Categories::learn(c)).collect(),
                };
                (read_csv_dataset(path, &opts)?, None)
            }
            DataSource::Npy { x, y, .. } => {
                let name = format!("{} / {}", x.display(), y.display());
                (Dataset::new(as_samples(read_npy(x)?)?, as_targets(read_npy(y)?)?, name)?, None)
            }
            DataSource::Npz { path, x, y } => {
                let (xs, ys) = (read_npz(path, x)?, read_npz(path, y)?);
                (Dataset::new(as_samples(xs)?, as_targets(ys)?, path.display().to_string())?, None)
            }
            DataSource::Idx { images, labels, test_images, test_labels } => {
                let read = |images: &PathBuf, labels: &PathBuf| {
                    Dataset::new(as_samples(read_idx(images)?)?, as_targets(read_idx(labels)?)?, images.display().to_string())
                };
                let test = match (test_images, test_labels) {
                    (Some(i), Some(l)) => Some(read(i, l)?),
                    (None, None) => None,
                    _ => return Err(Error::Config("data: `test_images` and `test_labels` go together (give both or neither)".into())),
                };
                (read(images, labels)?, test)
            }
            DataSource::Text { path, .. } => {
                return Err(Error::Config(format!(
                    "{}: text data trains with `descent fit` (its windows are drawn as it trains); cross-validation and studies take arrays",
                    path.display()
                )))
            }
            DataSource::Teacher { train, test, features, hidden, classes } => {
                let spec = TeacherSpec { features: *features, hidden: *hidden, classes: *classes };
                let (tr, te) = teacher_classification(&spec, *train, *test, self.seed)?;
                (tr, Some(te))
            }
        })
    }

    /// The one-hot categories of the CSV's categorical columns (learned from the file).
    pub fn categories(&self) -> Result<Vec<Categories>> {
        match &self.data.source {
            DataSource::Csv { path, header, delimiter, categorical, .. } if !categorical.is_empty() => {
                let opts = CsvOptions {
                    has_header: *header,
                    delimiter: *delimiter as u8,
                    categorical: categorical.iter().map(|c| Categories::learn(c)).collect(),
                    ..Default::default()
                };
                csv_categories(path, &opts)
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Train and held-out sets as loaded, before preprocessing (the split is fixed by the seed).
    pub fn load_splits(&self) -> Result<(Dataset, Option<Dataset>)> {
        let (all, given_test) = self.load_raw()?;
        Ok(match given_test {
            Some(test) => (all, Some(test)),
            None if self.data.test_split > 0.0 => {
                let (tr, te) = if self.data.stratify {
                    all.stratified_split(self.data.test_split, self.seed)?
                } else {
                    all.train_test_split(self.data.test_split, self.seed)?
                };
                (tr, Some(te))
            }
            None => (all, None),
        })
    }

    /// Class labels (of a sparse or binary cross-entropy): one class in all the data is
    /// an error — there is nothing to tell apart; classes the held-out split has and the
    /// training split lacks are a warning (the model never learns them).
    pub fn check_classes(&self, train: &Dataset, test: Option<&Dataset>) -> Result<Vec<String>> {
        use std::collections::BTreeSet;
        use crate::nn::Loss;
        if !matches!(self.compile.loss, Loss::SparseCategoricalCrossentropy { .. } | Loss::BinaryCrossentropy { .. }) {
            return Ok(Vec::new());
        }
        let classes = |d: &Dataset| -> BTreeSet<u32> { d.y.classes().map(|c| c.iter().copied().collect()).unwrap_or_default() };
        let (seen, held_out) = (classes(train), test.map(classes).unwrap_or_default());
        let all: BTreeSet<u32> = seen.union(&held_out).copied().collect();
        if all.len() == 1 {
            let rows = train.len() + test.map_or(0, Dataset::len);
            return Err(Error::data(&train.name, format!("the labels hold a single class ({}) in all {rows} rows: there is nothing to classify", all.first().expect("one"))));
        }
        let missing: Vec<String> = held_out.difference(&seen).map(u32::to_string).collect();
        Ok(match (missing.is_empty(), test) {
            (false, Some(t)) => vec![format!(
                "class{} {} of the held-out split ({}) never occur{} in the training split: the model cannot learn {}; `data.stratify = true` keeps every class in both",
                if missing.len() > 1 { "es" } else { "" },
                missing.join(", "),
                t.name,
                if missing.len() > 1 { "" } else { "s" },
                if missing.len() > 1 { "them" } else { "it" },
            )],
            _ => Vec::new(),
        })
    }

    /// The model of the `[model]` section for samples of per-sample shape `sample`
    /// (e.g. `[64]`, or `[28, 28]` images): its first input takes a declared shape, or
    /// the one [`Network::input_shape_for`] makes of `sample`.
    pub fn build_model(&self, sample: &[usize]) -> Result<Model> {
        self.build_model_of(&self.model, sample)
    }

    /// [`Experiment::build_model`] for another model section (a preset written out).
    fn build_model_of(&self, section: &super::ModelSection, sample: &[usize]) -> Result<Model> {
        let config = ModelConfig {
            name: self.name().to_string(),
            input_shape: None,
            inputs: section.inputs.clone(),
            layers: section.layers.clone(),
            outputs: section.outputs.clone(),
        };
        Model::build_from(config, Some(sample), self.seed)
    }

    /// Fits the preprocessing on `train`, builds, compiles and trains the model, and
    /// scores it on `valid` (preprocessed the same way). With `validate_each_epoch`,
    /// `valid` is also the validation data of every epoch (`val_*` in the history),
    /// as cross-validation and tuning need; otherwise `fit.validation_split` applies.
    /// The experiment's `[[callbacks]]` run after `callbacks`; those that write files
    /// (checkpoints, CSV logs) only when there is a `run_dir` to write them in.
    pub fn train_on<'a>(
        &self,
        train: Dataset,
        valid: Option<Dataset>,
        validate_each_epoch: bool,
        run_dir: Option<&Path>,
        callbacks: Vec<Box<dyn Callback + 'a>>,
        telemetry: Option<&mut Telemetry>,
    ) -> Result<Trained> {
        // Beside the run folders, so rerunning the same command finds it.
        let root = run_dir.map(|d| d.parent().unwrap_or(Path::new("")));
        self.train_in(train, valid, validate_each_epoch, (run_dir, root), callbacks, telemetry, None)
    }

    /// [`Experiment::train_on`] with the backup kept under `root` (when given) and,
    /// with `comm`, trained data-parallel over its ranks (those without a `run_dir`
    /// still resume from the backup, but write nothing).
    #[allow(clippy::too_many_arguments)]
    fn train_in<'a>(
        &self,
        mut train: Dataset,
        mut valid: Option<Dataset>,
        validate_each_epoch: bool,
        (run_dir, root): (Option<&Path>, Option<&Path>),
        mut callbacks: Vec<Box<dyn Callback + 'a>>,
        telemetry: Option<&mut Telemetry>,
        comm: Option<&mut dyn Communicator>,
    ) -> Result<Trained> {
        let backup = root.and_then(|r| self.backup_under(r));
        callbacks.extend(self.run_callbacks(run_dir)?);
        // With `stratify`, the validation split keeps class proportions too (instead of
        // Keras's last-samples rule).
        let mut stratified_val = None;
        if !validate_each_epoch && self.data.stratify && self.fit.validation_split > 0.0 {
            let (tr, va) = train.stratified_split(self.fit.validation_split as f64, self.seed ^ 0x5A1)?;
            train = tr;
            stratified_val = Some(va);
        }
        let (mut model, preprocessing, warnings) = self.compiled_for(&mut train)?;
        if let Some(v) = &mut stratified_val {
            preprocessing.apply(&mut v.x)?;
        }
        if let Some(v) = &mut valid {
            preprocessing.apply(&mut v.x)?;
        }
        let outputs = model.output_shape_of(0).to_vec();
        if let Some(v) = &valid {
            check_dataset_targets(&self.compile.loss, &outputs, v)?;
        }
        let started = Instant::now();
        let history = model.fit(
            &train.x,
            &train.y,
            FitOptions {
                epochs: self.fit.epochs,
                batch_size: self.fit.batch_size,
                validation_split: if validate_each_epoch || stratified_val.is_some() { 0.0 } else { self.fit.validation_split },
                validation_data: match &stratified_val {
                    Some(v) => Some((&v.x, &v.y)),
                    None => valid.as_ref().filter(|_| validate_each_epoch).map(|v| (&v.x, &v.y)),
                },
                shuffle: self.fit.shuffle,
                verbose: self.fit.verbose,
                callbacks,
                backup,
                sample_weight: None,
                class_weight: self.fit.class_weights()?,
                telemetry,
                stop_on_divergence: self.fit.on_divergence == OnDivergence::Stop,
                data_parallel: comm.map(|c| -> &mut dyn Communicator { c }),
            },
        )?;
        let train_seconds = started.elapsed().as_secs_f64();
        let valid_scores = match &valid {
            Some(v) => model.evaluate(&v.x, &v.y, self.fit.batch_size)?,
            None => Logs::new(),
        };
        Ok(Trained { model, preprocessing, history, valid: valid_scores, warnings, train_seconds, train_samples: train.len() })
    }

    /// Fits the preprocessing on `train` and applies it there, then builds and compiles
    /// the model for it and checks the targets against the model (naming the data).
    /// Returns the model, the preprocessing and the compile warnings.
    pub fn compiled_for(&self, train: &mut Dataset) -> Result<(Model, Preprocessing, Vec<String>)> {
        let mut preprocessing = Preprocessing::fit_with(&self.data.preprocess(), &train.x);
        preprocessing.categories = self.categories()?;
        preprocessing.apply(&mut train.x)?;
        let mut model = self.build_model(train.x.sample_dims())?;
        let metrics: Vec<&str> = self.compile.metrics.iter().map(String::as_str).collect();
        let warnings = model.compile(self.compile.optimizer.build()?, self.compile.loss, &metrics)?;
        check_dataset_targets(&self.compile.loss, model.output_shape_of(0), train)?;
        Ok((model, preprocessing, warnings))
    }

    /// The experiment's `[[callbacks]]` (but the backup, which `fit` takes apart) for a
    /// run in `run_dir`; without one, those that write files (checkpoints, CSV logs,
    /// TensorBoard) are left out.
    fn run_callbacks(&self, run_dir: Option<&Path>) -> Result<Vec<Box<dyn Callback>>> {
        let mut callbacks: Vec<Box<dyn Callback>> = Vec::new();
        for c in &self.callbacks {
            if let CallbackConfig::BackupAndRestore { .. } = c {
                continue;
            }
            let writes_files =
                matches!(c, CallbackConfig::ModelCheckpoint { .. } | CallbackConfig::CsvLogger { .. } | CallbackConfig::TensorBoard { .. });
            match run_dir {
                Some(dir) => callbacks.push(c.build(dir)?),
                None if !writes_files => callbacks.push(c.build(Path::new(""))?),
                None => {}
            }
        }
        Ok(callbacks)
    }

    /// Trains on data streamed from `.npy` files (`stream = true`): preprocessing is
    /// fitted in one pass over the stream, then applied to each batch on the prefetch
    /// thread. Returns the model, its preprocessing, the history and the seconds.
    fn train_streamed(&self, (run_dir, root): (Option<&Path>, &Path), telemetry: Option<&mut Telemetry>, comm: Option<&mut dyn Communicator>) -> Result<(Model, Preprocessing, History, f64, usize)> {
        let DataSource::Npy { x, y, window_mb, .. } = &self.data.source else {
            return Err(Error::State("train_streamed: not a streamed source".into()));
        };
        let open = |shard| NpyStream::open(x, y, *window_mb, self.seed, shard);
        // The preprocessing is fitted on the whole set, the same on every rank; each
        // rank then reads only its shard.
        let prep = Preprocessing::fit_stream(&self.data.preprocess(), &mut open(Shard::default())?)?;
        let shard = comm.as_deref().map_or(Shard::default(), |c| Shard { rank: c.rank(), world: c.size() });
        let stream = Transformed { inner: open(shard)?, prep: prep.clone() };
        let samples = stream.len();
        let mut source = Prefetch::new(Box::new(stream), 4);
        let mut model = self.build_model(&[source.features()])?;
        let metrics: Vec<&str> = self.compile.metrics.iter().map(String::as_str).collect();
        model.compile(self.compile.optimizer.build()?, self.compile.loss, &metrics)?;
        let callbacks = self.run_callbacks(run_dir)?;
        let started = Instant::now();
        let history = model.fit_stream(
            &mut source,
            FitOptions {
                epochs: self.fit.epochs,
                batch_size: self.fit.batch_size,
                verbose: self.fit.verbose,
                callbacks,
                backup: self.backup_under(root),
                class_weight: self.fit.class_weights()?,
                telemetry,
                stop_on_divergence: self.fit.on_divergence == OnDivergence::Stop,
                data_parallel: comm.map(|c| -> &mut dyn Communicator { c }),
                ..Default::default()
            },
        )?;
        Ok((model, prep, history, started.elapsed().as_secs_f64(), samples))
    }

    /// The tokenized corpus and the model for it (a preset written out for its vocabulary).
    pub fn text_model(&self) -> Result<(TextCorpus, Model)> {
        let DataSource::Text { path, tokenizer, block_size, val_fraction } = &self.data.source else {
            return Err(Error::State("text_model: not a text source".into()));
        };
        let corpus = TextCorpus::load(path, *tokenizer, *block_size, *val_fraction)?;
        let section = self.model.expanded(corpus.tokenizer.vocab_size(), *block_size);
        let model = self.build_model_of(&section, &[*block_size])?;
        Ok((corpus, model))
    }

    /// The fixed validation windows of a text experiment (`eval_iters` batches drawn once
    /// from the validation part with the seed; none when `val_fraction` is 0).
    pub fn validation_windows(&self, corpus: &TextCorpus) -> Result<Option<(Tensor, Tensor)>> {
        let DataSource::Text { block_size, .. } = &self.data.source else {
            return Err(Error::State("validation_windows: not a text source".into()));
        };
        if corpus.valid.is_empty() {
            return Ok(None);
        }
        fixed_windows(&corpus.valid, *block_size, self.fit.eval_iters * self.fit.batch_size, self.seed ^ 0x7E47_5A11).map(Some)
    }

    /// The model an experiment describes, built for its data (for `descent summary`).
    pub fn model_for_data(&self) -> Result<Model> {
        if let DataSource::Text { .. } = &self.data.source {
            return Ok(self.text_model()?.1);
        }
        let (train, _) = self.load_splits()?;
        self.build_model(train.x.sample_dims())
    }

    /// Trains a language model on text: windows at random offsets from the training
    /// part, `eval_interval` steps per history row (or one pass of windows per epoch
    /// without `max_steps`), scored each time on a fixed set of `eval_iters` batches of
    /// the validation part; the held-out scores are those batches' at the end.
    fn train_text(&self, (run_dir, root): (Option<&Path>, &Path), telemetry: Option<&mut Telemetry>, comm: Option<&mut dyn Communicator>) -> Result<TextTrained> {
        let DataSource::Text { path, block_size, .. } = &self.data.source else {
            return Err(Error::State("train_text: not a text source".into()));
        };
        let (corpus, mut model) = self.text_model()?;
        let block = *block_size;
        let metrics: Vec<&str> = self.compile.metrics.iter().map(String::as_str).collect();
        let warnings = model.compile(self.compile.optimizer.build()?, self.compile.loss, &metrics)?;
        let batch = self.fit.batch_size;
        let (per_epoch, epochs, total) = match self.fit.max_steps {
            Some(steps) => {
                let interval = self.fit.eval_interval.min(steps);
                (interval * batch, steps.div_ceil(interval), steps * batch)
            }
            None => {
                let windows = (corpus.train.len() / block).max(1);
                (windows, self.fit.epochs, windows * self.fit.epochs)
            }
        };
        let name = path.display().to_string();
        // Data-parallel, each rank draws its share of the windows from a stream of its own.
        let (rank, ranks) = comm.as_deref().map_or((0, 1), |c| (c.rank(), c.size()));
        let seed = if rank == 0 { self.seed } else { self.seed ^ (0xD15 + rank as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) };
        let (per_epoch_here, total_here) = (share(per_epoch, rank, ranks).len(), share(total, rank, ranks).len());
        let stream = TextWindows::new(corpus.train.clone(), block, per_epoch_here, seed, &name)?.limit_total(total_here);
        let valid = self.validation_windows(&corpus)?;
        if let Some((vx, vy)) = &valid {
            check_targets(&self.compile.loss, &model.output_shape_of(0).to_vec(), vx, vy, &format!("validation windows of {name}"))?;
        }
        let mut source = Prefetch::new(Box::new(stream), 4);
        let callbacks = self.run_callbacks(run_dir)?;
        let started = Instant::now();
        let history = model.fit_stream(
            &mut source,
            FitOptions {
                epochs,
                batch_size: batch,
                validation_data: valid.as_ref().map(|(x, y)| (x, y)),
                verbose: self.fit.verbose,
                callbacks,
                backup: self.backup_under(root),
                telemetry,
                stop_on_divergence: self.fit.on_divergence == OnDivergence::Stop,
                data_parallel: comm.map(|c| -> &mut dyn Communicator { c }),
                ..Default::default()
            },
        )?;
        let train_seconds = started.elapsed().as_secs_f64();
        let mut scores = match &valid {
            Some((vx, vy)) => model.evaluate(vx, vy, batch)?,
            None => Logs::new(),
        };
        add_text_scores(&mut scores, &corpus.tokenizer);
        let preprocessing = Preprocessing { tokenizer: Some(corpus.tokenizer.clone()), ..Default::default() };
        let valid_samples = valid.as_ref().map_or(0, |(x, _)| x.rows());
        Ok(TextTrained { model, preprocessing, history, valid: scores, warnings, train_seconds, train_samples: total.min(per_epoch * epochs), valid_samples })
    }

    /// Runs the experiment, writing a run folder under `output.dir` (or `out_root`).
    /// A run that fails after training began (a diverged loss) keeps its folder with
    /// the config, the telemetry and `status.json` saying why, and no model.
    pub fn run(&self, out_root: Option<&Path>) -> Result<RunSummary> {
        self.run_in(out_root, None).map_err(|e| self.locate(e))
    }

    /// [`Experiment::run`] as one rank of a data-parallel group (`mpirun -np N descent
    /// fit`): every rank trains on its share of each batch; rank 0 alone writes the
    /// run folder and the backups, and the summary of the others has no folder.
    pub fn run_data_parallel(&self, out_root: Option<&Path>, comm: &mut dyn Communicator) -> Result<RunSummary> {
        self.run_in(out_root, Some(comm)).map_err(|e| self.locate(e))
    }

    fn run_in(&self, out_root: Option<&Path>, comm: Option<&mut dyn Communicator>) -> Result<RunSummary> {
        let root = out_root.map(Path::to_path_buf).unwrap_or_else(|| self.output.dir.clone());
        let lead = comm.as_deref().is_none_or(|c| c.rank() == 0);
        let summary = self.train_and_write(&root, comm)?;
        if lead {
            self.finish_backup(&root)?;
        }
        Ok(summary)
    }

    fn train_and_write(&self, root: &Path, comm: Option<&mut dyn Communicator>) -> Result<RunSummary> {
        // Data-parallel, ranks other than 0 record and write nothing.
        let lead = comm.as_deref().is_none_or(|c| c.rank() == 0);
        let mut telemetry = if lead { self.fit.telemetry() } else { None };
        if let DataSource::Text { .. } = &self.data.source {
            let dir = if lead { Some(self.open_run_dir(root)?) } else { None };
            let t = self.train_text((dir.as_deref(), root), telemetry.as_mut(), comm);
            let t = self.keep_failed_run(dir.as_deref(), t, telemetry.as_ref())?;
            return self.write_run(dir, t.model, t.preprocessing, t.history, t.valid, t.warnings, t.train_seconds, t.train_samples, t.valid_samples, telemetry.as_ref());
        }
        if let DataSource::Npy { stream: true, .. } = &self.data.source {
            let dir = if lead { Some(self.open_run_dir(root)?) } else { None };
            let trained = self.train_streamed((dir.as_deref(), root), telemetry.as_mut(), comm);
            let (model, prep, history, train_seconds, train_samples) = self.keep_failed_run(dir.as_deref(), trained, telemetry.as_ref())?;
            return self.write_run(dir, model, prep, history, Logs::new(), Vec::new(), train_seconds, train_samples, 0, telemetry.as_ref());
        }
        let (train, test) = self.load_splits()?;
        let class_warnings = self.check_classes(&train, test.as_ref())?;
        let test_samples = test.as_ref().map_or(0, Dataset::len);
        let dir = if lead { Some(self.open_run_dir(root)?) } else { None };
        let trained = self.train_in(train, test, false, (dir.as_deref(), Some(root)), Vec::new(), telemetry.as_mut(), comm);
        let Trained { model, preprocessing: prep, history, valid: test_logs, mut warnings, train_seconds, train_samples } =
            self.keep_failed_run(dir.as_deref(), trained, telemetry.as_ref())?;
        warnings.splice(0..0, class_warnings);
        self.write_run(dir, model, prep, history, test_logs, warnings, train_seconds, train_samples, test_samples, telemetry.as_ref())
    }

    /// `result`, or — for a run that failed — its folder kept with what it recorded
    /// (config, telemetry, `status.json`; no model), or removed when training never
    /// began (it is empty then). Without a folder (a data-parallel rank other than 0),
    /// just `result`.
    fn keep_failed_run<T>(&self, dir: Option<&Path>, result: Result<T>, telemetry: Option<&Telemetry>) -> Result<T> {
        let error = match result {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(dir) = dir else { return Err(error) };
        let Some(t) = telemetry.filter(|t| !t.steps.loss.is_empty()) else {
            let _ = std::fs::remove_dir(dir);
            return Err(error);
        };
        let status = if matches!(error, Error::Diverged(_)) { "diverged" } else { "failed" };
        let json = serde_json::json!({ "status": status, "message": error.to_string() });
        write_atomic(dir.join("config.toml"), self.to_toml().as_bytes())?;
        self.save_telemetry(dir, t)?;
        write_atomic(dir.join(STATUS_FILE), json.to_string().as_bytes())?;
        let d = dir.display();
        Err(match error {
            Error::Diverged(m) => Error::Diverged(format!("{m}.\nNo model was saved; {d} keeps the run's telemetry: `descent doctor {d}` explains it")),
            other => other,
        })
    }

    /// `telemetry.json`, and the same series as TensorBoard scalars under
    /// `<log_dir>/telemetry/` of each `tensorboard` callback.
    fn save_telemetry(&self, dir: &Path, t: &Telemetry) -> Result<()> {
        write_atomic(dir.join("telemetry.json"), t.to_json().as_bytes())?;
        for c in &self.callbacks {
            if let CallbackConfig::TensorBoard { log_dir, .. } = c {
                t.write_tensorboard(&dir.join(log_dir).join("telemetry"))?;
            }
        }
        Ok(())
    }

    /// Writes the run folder: the resolved config, history, metrics and the model
    /// (nothing without a folder: a data-parallel rank other than 0).
    #[allow(clippy::too_many_arguments)]
    fn write_run(
        &self,
        dir: Option<PathBuf>,
        model: Model,
        prep: Preprocessing,
        history: History,
        test_logs: Logs,
        warnings: Vec<String>,
        train_seconds: f64,
        train_samples: usize,
        test_samples: usize,
        telemetry: Option<&Telemetry>,
    ) -> Result<RunSummary> {
        let steps = model.optimizer().map_or(0, |o| o.iterations());
        let Some(dir) = dir else {
            return Ok(RunSummary { dir: PathBuf::new(), history, test: test_logs, train_seconds, steps, warnings });
        };
        write_atomic(dir.join("config.toml"), self.to_toml().as_bytes())?;
        write_atomic(dir.join("history.csv"), history.to_csv().as_bytes())?;
        write_atomic(dir.join("loss.svg"), self.loss_chart(&history).as_bytes())?;
        if let Some(t) = telemetry {
            self.save_telemetry(&dir, t)?;
        }
        // The model before the final metrics: a folder with metrics.json is complete.
        model.save(&dir, &prep)?;
        let mut final_metrics = serde_json::Map::new();
        let logs_json = |l: &Logs| serde_json::Value::Object(l.iter().map(|(k, v)| (k.to_string(), v.into())).collect());
        if !test_logs.is_empty() {
            final_metrics.insert("test".into(), logs_json(&test_logs));
        }
        let mut last = Logs::new();
        for (name, values) in &history.metrics {
            if let Some(v) = values.last() {
                last.set(name, *v);
            }
        }
        final_metrics.insert("final_epoch".into(), logs_json(&last));
        final_metrics.insert("epochs".into(), history.epochs.len().into());
        final_metrics.insert("steps".into(), steps.into());
        final_metrics.insert("train_seconds".into(), train_seconds.into());
        final_metrics.insert("train_samples".into(), train_samples.into());
        final_metrics.insert("test_samples".into(), test_samples.into());
        let json = serde_json::to_string_pretty(&final_metrics).map_err(|e| Error::State(e.to_string()))?;
        write_atomic(dir.join(METRICS_FILE), json.as_bytes())?;
        Ok(RunSummary { dir, history, test: test_logs, train_seconds, steps, warnings })
    }
}

impl Experiment {
    /// The training and validation loss over the run, as an SVG line chart (`loss.svg`).
    fn loss_chart(&self, history: &History) -> String {
        use crate::io::chart::{line_chart, Series};
        let names = ["loss", "val_loss"];
        let series: Vec<Series> = names.iter().filter_map(|n| history.get(n).map(|values| Series { label: n, values })).collect();
        let (x_label, first) = match (&self.data.source, self.fit.max_steps) {
            (DataSource::Text { .. }, Some(_)) => (format!("evaluation (every {} steps)", self.fit.eval_interval), 1),
            _ => ("epoch".to_string(), 1),
        };
        line_chart(&format!("{}: loss", self.name()), &x_label, "loss (per token for text)", first, &series)
    }
}
