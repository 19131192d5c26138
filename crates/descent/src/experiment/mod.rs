//! An experiment in one TOML file: data, model, compile, fit, seed and output. This is
//! what `descent fit FILE` runs; the schema is documented in docs/experiment.md.

pub mod doctor;
mod gpt;
mod lr_find;
pub mod report;
mod run;
mod run_folder;

pub use gpt::GptPreset;

pub use lr_find::{round3, suggestions, LrFindOptions, LrFinding};
pub use run::{add_text_scores, RunSummary, Trained};
pub use run_folder::{missing_run_files, next_run_dir, METRICS_FILE, STATUS_FILE};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::LabelColumn;
use crate::config_file::ConfigFile;
use crate::error::{Error, Result};
use crate::nn::{InputConfig, LayerConfig, Loss, DEFAULT_SEED};
use crate::optim::OptimizerConfig;
use crate::train::CallbackConfig;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Names the run folder; defaults to the file's stem.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_seed")]
    pub seed: u64,
    pub data: DataConfig,
    pub model: ModelSection,
    pub compile: CompileSection,
    #[serde(default)]
    pub fit: FitSection,
    #[serde(default)]
    pub output: OutputSection,
    /// `[[callbacks]]` tables: early stopping, checkpoints, CSV log, … (docs/experiment.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callbacks: Vec<CallbackConfig>,
    /// The file this experiment was read from, to point errors found later (when the
    /// model is built) at their line. Not part of the experiment: never saved.
    #[serde(skip)]
    pub source: SourceFile,
}

/// Where an experiment was read from. Two experiments that say the same are equal
/// wherever they were read from.
#[derive(Clone, Debug, Default)]
pub struct SourceFile(pub Option<PathBuf>);

impl PartialEq for SourceFile {
    fn eq(&self, _: &SourceFile) -> bool {
        true
    }
}

fn default_seed() -> u64 {
    DEFAULT_SEED
}

/// Where the samples come from, plus the held-out split and preprocessing.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DataConfig {
    #[serde(flatten)]
    pub source: DataSource,
    /// Fraction of samples held out (shuffled with the seed) for the final evaluation.
    /// Not used by `teacher`, which generates its own held-out set.
    pub test_split: f64,
    /// Multiply every feature by this first (e.g. 0.00392 = 1/255 for 8-bit pixels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x_scale: Option<f32>,
    /// Standardize each feature with the training split's mean and std.
    pub standardize: bool,
    /// Scale each feature to [0, 1] with the training split's min and max.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub minmax: bool,
    /// Keep each class's proportion in the train/test split.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stratify: bool,
}

impl DataConfig {
    /// The preprocessing steps to fit on the training split.
    pub fn preprocess(&self) -> crate::data::PreprocessSpec {
        crate::data::PreprocessSpec { x_scale: self.x_scale, standardize: self.standardize, minmax: self.minmax }
    }
}

fn default_test_split() -> f64 {
    0.2
}

/// The keys of `[data]` shared by every format.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DataCommon {
    #[serde(default = "default_test_split")]
    test_split: f64,
    #[serde(default)]
    x_scale: Option<f32>,
    #[serde(default)]
    standardize: bool,
    #[serde(default)]
    minmax: bool,
    #[serde(default)]
    stratify: bool,
}

// serde cannot combine `flatten` with `deny_unknown_fields`, so split the table by hand:
// the shared keys go to `DataCommon`, the rest must be exactly one format's keys.
impl<'de> Deserialize<'de> for DataConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_json::Value::deserialize(d)?;
        crate::config_util::refuse_null(&v, "data")?;
        let serde_json::Value::Object(mut table) = v else {
            return Err(D::Error::custom("`data` must be a table"));
        };
        let mut common = serde_json::Map::new();
        for key in ["test_split", "x_scale", "standardize", "minmax", "stratify"] {
            if let Some(v) = table.remove(key) {
                common.insert(key.to_string(), v);
            }
        }
        let common: DataCommon = serde_json::from_value(common.into()).map_err(|e| D::Error::custom(format!("data: {e}")))?;
        let source: DataSource = serde_json::from_value(table.into()).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("unknown field") {
                D::Error::custom(format!("data: {msg} (or one of the keys every format takes: test_split, x_scale, standardize, minmax, stratify)"))
            } else {
                D::Error::custom(format!("data: {msg}"))
            }
        })?;
        Ok(DataConfig {
            source,
            test_split: common.test_split,
            x_scale: common.x_scale,
            standardize: common.standardize,
            minmax: common.minmax,
            stratify: common.stratify,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum DataSource {
    /// A CSV file with one sample per row and a label column.
    Csv {
        path: PathBuf,
        #[serde(default = "default_label")]
        label_column: LabelColumn,
        #[serde(default = "yes")]
        header: bool,
        #[serde(default = "comma")]
        delimiter: char,
        /// Text columns to one-hot encode (their categories are saved with the model).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        categorical: Vec<String>,
    },
    /// Features and targets in two `.npy` files. With `stream = true` they are read
    /// through memory-mapped windows of `window_mb` MB instead of loaded (data larger
    /// than memory; needs `test_split = 0`).
    Npy {
        x: PathBuf,
        y: PathBuf,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stream: bool,
        #[serde(default = "default_window_mb")]
        window_mb: usize,
    },
    /// Features and targets as two arrays of one `.npz` archive.
    Npz {
        path: PathBuf,
        #[serde(default = "default_x_key")]
        x: String,
        #[serde(default = "default_y_key")]
        y: String,
    },
    /// MNIST-style IDX image and label files (`.gz` read through gzip), and optionally
    /// a separate test set (MNIST's and Fashion-MNIST's `t10k` files), which is then the
    /// held-out set instead of a `test_split` of the training files.
    Idx {
        images: PathBuf,
        labels: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test_images: Option<PathBuf>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        test_labels: Option<PathBuf>,
    },
    /// A UTF-8 text file for a language model: tokenized (`char` or GPT-2's `gpt2` BPE),
    /// split by position (the last `val_fraction` validates), served as next-token
    /// windows of `block_size` ids at random offsets.
    Text {
        path: PathBuf,
        #[serde(default)]
        tokenizer: crate::data::TokenizerKind,
        block_size: usize,
        #[serde(default = "default_val_fraction")]
        val_fraction: f64,
    },
    /// The benchmark workloads' synthetic task (labels from a random teacher network).
    Teacher {
        #[serde(default = "default_teacher_train")]
        train: usize,
        #[serde(default = "default_teacher_test")]
        test: usize,
        #[serde(default = "default_teacher_features")]
        features: usize,
        #[serde(default = "default_teacher_hidden")]
        hidden: usize,
        #[serde(default = "default_teacher_classes")]
        classes: usize,
    },
}

fn default_val_fraction() -> f64 {
    0.1
}
fn default_window_mb() -> usize {
    64
}
fn default_label() -> LabelColumn {
    LabelColumn::Name("label".into())
}
fn yes() -> bool {
    true
}
fn comma() -> char {
    ','
}
fn default_x_key() -> String {
    "x".into()
}
fn default_y_key() -> String {
    "y".into()
}
fn default_teacher_train() -> usize {
    60_000
}
fn default_teacher_test() -> usize {
    10_000
}
fn default_teacher_features() -> usize {
    100
}
fn default_teacher_hidden() -> usize {
    32
}
fn default_teacher_classes() -> usize {
    10
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A functional model's input (`[[model.inputs]]` with `name` and optional `shape`);
    /// layers refer to it by name. Without it, layers with `inputs` refer to `input_layer`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<LayerConfig>,
    /// A functional model's output layer (default: the last layer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
    /// `[model.gpt]`: the GPT preset instead of `layers` (expanded into them once the
    /// data's vocabulary is known; `descent summary` shows the result).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpt: Option<GptPreset>,
}

impl ModelSection {
    /// The section with a preset written out as its layers, for a vocabulary of `vocab`
    /// ids and windows of `block` (no preset: unchanged).
    pub fn expanded(&self, vocab: usize, block: usize) -> ModelSection {
        match &self.gpt {
            None => self.clone(),
            Some(g) => {
                let (inputs, layers, outputs) = g.expand(vocab, block);
                ModelSection { inputs, layers, outputs, gpt: None }
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompileSection {
    #[serde(deserialize_with = "optimizer_name_or_table")]
    pub optimizer: OptimizerConfig,
    #[serde(deserialize_with = "loss_name_or_table")]
    pub loss: Loss,
    #[serde(default)]
    pub metrics: Vec<String>,
}

fn optimizer_name_or_table<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<OptimizerConfig, D::Error> {
    crate::config_util::name_or_table(d, "optimizer")
}
fn loss_name_or_table<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Loss, D::Error> {
    crate::config_util::name_or_table(d, "loss")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FitSection {
    pub epochs: usize,
    pub batch_size: usize,
    pub validation_split: f32,
    pub shuffle: bool,
    /// 0 silent, 1 progress bar, 2 one line per epoch.
    pub verbose: u8,
    /// Weight per class index, e.g. `{ "0" = 1.0, "1" = 5.0 }` (unlisted classes: 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_weight: Option<std::collections::BTreeMap<String, f32>>,
    /// Text data: train for this many steps (batches) instead of `epochs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<usize>,
    /// Text data: validate every this many steps (one history row each).
    pub eval_interval: usize,
    /// Text data: the validation batches scored at each evaluation (a fixed set).
    pub eval_iters: usize,
    /// What a non-finite loss does: `stop` the run with an error (no model saved), or
    /// `continue` after one warning.
    pub on_divergence: OnDivergence,
    /// Steps between telemetry samples (per-layer statistics; see `telemetry.json`);
    /// 0 records no telemetry.
    pub telemetry_every: usize,
}

/// `[fit] on_divergence`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDivergence {
    #[default]
    Stop,
    Continue,
}

impl Default for FitSection {
    fn default() -> Self {
        FitSection {
            epochs: 10,
            batch_size: 32,
            validation_split: 0.0,
            shuffle: true,
            verbose: 1,
            class_weight: None,
            max_steps: None,
            eval_interval: 250,
            eval_iters: 20,
            on_divergence: OnDivergence::Stop,
            telemetry_every: 50,
        }
    }
}

impl FitSection {
    /// A telemetry recorder, unless `telemetry_every` is 0.
    pub fn telemetry(&self) -> Option<crate::train::Telemetry> {
        (self.telemetry_every > 0).then(|| crate::train::Telemetry::new(self.telemetry_every))
    }

    /// `class_weight` with its keys as class indices.
    pub fn class_weights(&self) -> Result<Option<std::collections::BTreeMap<usize, f32>>> {
        let Some(m) = &self.class_weight else { return Ok(None) };
        m.iter()
            .map(|(k, w)| {
                let c: usize = k.parse().map_err(|_| Error::invalid(&format!("fit.class_weight.{k}"), "is not a class index".to_string()))?;
                if !(w.is_finite() && *w >= 0.0) {
                    return Err(Error::invalid(&format!("fit.class_weight.{k}"), format!("weight {w} of class {c} must be finite and ≥ 0")));
                }
                Ok((c, *w))
            })
            .collect::<Result<_>>()
            .map(Some)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Folder that receives one sub-folder per run (relative to the working directory).
    pub dir: PathBuf,
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection { dir: PathBuf::from("runs") }
    }
}

impl Experiment {
    /// Parses and checks an experiment. Relative data paths are resolved against the
    /// folder of the file, so an experiment runs the same from any working directory.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Experiment> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut exp = Experiment::from_toml(&text).map_err(|e| match e {
            Error::Config(m) => Error::format(path, m),
            other => other,
        })?;
        if exp.name.is_none() {
            exp.name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        exp.source = SourceFile(Some(path.to_path_buf()));
        let base = path.parent().unwrap_or(Path::new(""));
        exp.resolve_paths(base);
        Ok(exp)
    }

    /// Parses TOML text (paths stay as written).
    ///
    /// Every error names the key and its line: a number that is not finite anywhere, a
    /// value of the wrong type or range, an unknown key.
    pub fn from_toml(text: &str) -> Result<Experiment> {
        let file = ConfigFile::parse(text)?;
        file.check_finite()?;
        let exp: Experiment = toml::from_str(text).map_err(|e| file.locate_toml_error(&e))?;
        exp.validate().map_err(|e| file.locate(e))?;
        Ok(exp)
    }

    /// An error at a key of this experiment (`Error::Invalid`, e.g. a layer's `units`
    /// found invalid when the model is built) pointed at its line in the file it was
    /// read from; other errors, or an experiment not read from a file, pass unchanged.
    pub fn locate(&self, e: Error) -> Error {
        let (Error::Invalid { .. }, Some(path)) = (&e, &self.source.0) else { return e };
        let Ok(text) = std::fs::read_to_string(path) else { return e };
        let Ok(file) = ConfigFile::parse(&text) else { return e };
        match file.locate(e) {
            Error::Config(m) => Error::format(path, m),
            other => other,
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("experiment serializes")
    }

    fn resolve_paths(&mut self, base: &Path) {
        // Absolute, so the resolved copy saved in a run folder still points at the data.
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                let joined = base.join(&*p);
                *p = std::fs::canonicalize(&joined).or_else(|_| std::path::absolute(&joined)).unwrap_or(joined);
            }
        };
        match &mut self.data.source {
            DataSource::Csv { path, .. } | DataSource::Npz { path, .. } | DataSource::Text { path, .. } => fix(path),
            DataSource::Npy { x, y, .. } => {
                fix(x);
                fix(y);
            }
            DataSource::Idx { images, labels, test_images, test_labels } => {
                fix(images);
                fix(labels);
                test_images.iter_mut().chain(test_labels.iter_mut()).for_each(fix);
            }
            DataSource::Teacher { .. } => {}
        }
    }

    /// Value checks serde cannot express; each error names the key and the allowed range.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, msg: String| Err(Error::invalid(key, msg));
        if let Some(name) = &self.name {
            check_name("name", name)?;
        }
        if !(0.0..1.0).contains(&self.data.test_split) {
            return bad("data.test_split", format!("{} is outside [0, 1)", self.data.test_split));
        }
        if let Some(s) = self.data.x_scale {
            if !(s.is_finite() && s != 0.0) {
                return bad("data.x_scale", format!("{s} must be a finite, non-zero number"));
            }
        }
        if self.data.standardize && self.data.minmax {
            return bad("data.minmax", "choose standardize or minmax, not both".into());
        }
        let is_text = matches!(self.data.source, DataSource::Text { .. });
        match (&self.model.gpt, self.model.layers.is_empty()) {
            (Some(_), false) => return bad("model.gpt", "give the gpt preset or `layers`, not both".into()),
            (Some(g), true) => {
                g.validate()?;
                if !is_text {
                    return bad("model.gpt", "the gpt preset takes its vocabulary from text data (`data.format = \"text\"`)".into());
                }
            }
            (None, true) => return bad("model.layers", "needs at least one layer (or a `[model.gpt]` preset)".into()),
            (None, false) => {}
        }
        if let DataSource::Text { block_size, val_fraction, .. } = &self.data.source {
            if *block_size == 0 {
                return bad("data.block_size", "must be at least 1".into());
            }
            if !(0.0..1.0).contains(val_fraction) {
                return bad("data.val_fraction", format!("{val_fraction} is outside [0, 1)"));
            }
            if self.data.test_split != default_test_split() && self.data.test_split != 0.0 {
                return bad("data.test_split", "text is split by position with `val_fraction`, not by `test_split`".into());
            }
            if self.fit.validation_split != 0.0 || self.data.x_scale.is_some() || self.data.standardize || self.data.minmax || self.data.stratify {
                return bad("data", "text data takes no validation_split, x_scale, standardize, minmax or stratify".into());
            }
            if self.fit.eval_interval == 0 || self.fit.eval_iters == 0 {
                return bad(if self.fit.eval_interval == 0 { "fit.eval_interval" } else { "fit.eval_iters" }, "must be at least 1".into());
            }
        } else if self.fit.max_steps.is_some() {
            return bad("fit.max_steps", "counts steps of text data; other data trains for `epochs`".into());
        }
        if self.fit.max_steps == Some(0) {
            return bad("fit.max_steps", "must be at least 1".into());
        }
        // A functional graph's names are checked now, before any data is read (shapes
        // come with the data).
        let graph = crate::nn::ModelConfig {
            name: self.name().to_string(),
            input_shape: None,
            inputs: self.model.inputs.iter().map(|i| InputConfig { name: i.name.clone(), shape: None }).collect(),
            layers: self.model.layers.clone(),
            outputs: self.model.outputs.clone(),
        };
        if graph.is_functional() && self.model.gpt.is_none() {
            if graph.inputs.len() > 1 || graph.outputs.len() > 1 {
                return bad(
                    if graph.inputs.len() > 1 { "model.inputs" } else { "model.outputs" },
                    format!(
                        "{} inputs and {} outputs, but an experiment's data gives one feature array and one target \
                         (models with several inputs or outputs train from Rust today)",
                        graph.inputs.len(),
                        graph.outputs.len()
                    ),
                );
            }
            crate::nn::Network::from_config(graph)?;
        }
        if self.fit.epochs == 0 {
            return bad("fit.epochs", "must be at least 1".into());
        }
        if self.fit.batch_size == 0 {
            return bad("fit.batch_size", "must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.fit.validation_split) {
            return bad("fit.validation_split", format!("{} is outside [0, 1)", self.fit.validation_split));
        }
        self.fit.class_weights()?;
        if let DataSource::Npy { stream: true, window_mb, .. } = &self.data.source {
            if self.data.test_split != 0.0 || self.fit.validation_split != 0.0 {
                return bad("data.stream", "streamed data cannot be split; set data.test_split = 0 and fit.validation_split = 0".into());
            }
            if *window_mb == 0 {
                return bad("data.window_mb", "must be at least 1".into());
            }
        }
        if self.fit.verbose > 2 {
            return bad("fit.verbose", format!("{} is not one of 0 (silent), 1 (progress bar), 2 (one line per epoch)", self.fit.verbose));
        }
        for m in &self.compile.metrics {
            crate::train::parse_metric(m).map_err(|e| Error::invalid("compile.metrics", e))?;
        }
        self.compile.optimizer.build().map_err(|e| Error::invalid("compile.optimizer", e))?;
        check_inside("output.dir", &self.output.dir, true)?;
        for (i, c) in self.callbacks.iter().enumerate() {
            if let Some((key, path)) = c.written_path() {
                check_inside(&format!("callbacks[{i}].{key}"), path, false)?;
            }
            if c.backup(Path::new(""), "").is_none() {
                c.build(Path::new("")).map_err(|e| Error::invalid(&format!("callbacks[{i}]"), e))?;
            }
        }
        if let DataSource::Csv { delimiter, .. } = &self.data.source {
            if !delimiter.is_ascii() {
                return bad("data.delimiter", format!("`{delimiter}` must be a single ASCII character"));
            }
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("experiment")
    }
}

/// A path from a config file that descent writes under (an output folder, a checkpoint,
/// log or backup folder): it may not climb out of the folder it is relative to with
/// `..`, and where `absolute_ok` is false it must be relative (it is inside a run or
/// output folder), so a received file cannot aim descent's writes — or the backup's
/// deletion — anywhere else.
pub fn check_inside(key: &str, path: impl AsRef<Path>, absolute_ok: bool) -> Result<()> {
    use std::path::Component;
    let path = path.as_ref();
    let shown = path.display();
    if path.as_os_str().is_empty() {
        return Err(Error::invalid(key, "is empty".to_string()));
    }
    for c in path.components() {
        match c {
            Component::ParentDir => return Err(Error::invalid(key, format!("\"{shown}\" may not climb out of its folder with `..`"))),
            Component::RootDir | Component::Prefix(_) if !absolute_ok => {
                return Err(Error::invalid(key, format!("\"{shown}\" must be a relative path (inside the run's folder)")))
            }
            _ => {}
        }
    }
    Ok(())
}

/// A name that becomes a folder or file name (`runs/<name>-NNN`, a study's trials): one
/// plain path component, so a received experiment or study cannot write outside its
/// folder (no `/`, `\\`, `..`, `.`, NUL or empty name).
pub fn check_name(key: &str, name: &str) -> Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(Error::invalid(key, format!("{name:?} must be a single plain name (no `/`, `\\`, `..`): it names a folder")));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
