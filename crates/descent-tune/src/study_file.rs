//! `descent tune STUDY.toml`: a study over an experiment file, defined in TOML.
//!
//! ```toml
//! [study]
//! experiment = "classic.toml"   # relative to this file
//! sampler = "tpe"               # grid | random | tpe
//! pruner = "median"             # none | median | successive_halving | hyperband (or a table)
//! trials = 30
//!
//! [objective]
//! metric = "accuracy"           # scored on the validation folds
//! folds = 3                     # k-fold CV of the training split; 1 = one validation split
//!
//! [space."compile.optimizer.learning_rate"]
//! type = "log_uniform"
//! low = 1e-4
//! high = 1e-1
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use descent::config_file::ConfigFile;
use descent::experiment::Experiment;
use descent::{Error, Result};

use crate::cv::cross_validate;
use crate::folds::FoldSpec;
use crate::pruner::{HyperbandPruner, MedianPruner, NoPruner, Pruner, SuccessiveHalvingPruner};
use crate::sampler::{sample_uniform, GridSampler, RandomSampler, Sampler, TpeSampler};
use crate::space::{apply, parse_space, Params, Space};
use crate::store::{Store, StudyInfo};
use crate::study::{Study, StudyOptions, Trial, TrialError};
use crate::trial::{Direction, TrialRecord};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StudyToml {
    study: StudySection,
    #[serde(default)]
    objective: ObjectiveSection,
    space: toml::Table,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StudySection {
    /// Defaults to the file's stem.
    #[serde(default)]
    pub name: Option<String>,
    /// The experiment file being tuned, relative to the study file.
    pub experiment: PathBuf,
    /// The SQLite file (default `<study file stem>.sqlite` beside the study file), or a
    /// PostgreSQL server: `postgresql://user:password@host/database`.
    #[serde(default)]
    pub storage: Option<PathBuf>,
    #[serde(default = "default_sampler")]
    pub sampler: String,
    /// Random trials before TPE starts modelling.
    #[serde(default)]
    pub n_startup_trials: Option<usize>,
    #[serde(default)]
    pub pruner: Option<toml::Value>,
    #[serde(default = "default_trials")]
    pub trials: usize,
    #[serde(default)]
    pub timeout_seconds: Option<f64>,
    /// Parallel trials (default: the cores ÷ threads).
    #[serde(default)]
    pub jobs: Option<usize>,
    /// Threads per trial.
    #[serde(default = "one")]
    pub threads: usize,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Retrain the best configuration on the whole training split at the end and
    /// score it on the held-out test split (a run folder, as `descent fit`).
    #[serde(default = "yes")]
    pub refit: bool,
    /// Seconds between a worker's heartbeats on its running trials (workers sharing a
    /// study: `mpirun -np N descent tune`, or several `descent tune` at once).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_seconds: f64,
    /// A running trial silent this long belongs to a dead worker: it is retried.
    #[serde(default = "default_grace")]
    pub grace_seconds: f64,
}

fn default_heartbeat() -> f64 {
    5.0
}
fn default_grace() -> f64 {
    30.0
}

fn default_sampler() -> String {
    "tpe".into()
}
fn default_trials() -> usize {
    20
}
fn one() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn default_seed() -> u64 {
    descent::nn::DEFAULT_SEED
}

/// What a trial is scored by.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectiveSection {
    /// A compiled metric or `loss`, measured on the validation folds.
    pub metric: String,
    /// Defaults to minimize for losses and errors, maximize otherwise.
    pub direction: Option<Direction>,
    /// k of k-fold cross-validation; 1 scores on one validation split instead.
    pub folds: usize,
    /// The validation fraction when `folds` = 1.
    pub validation_split: f64,
    pub stratified: bool,
    pub repeats: usize,
}

impl Default for ObjectiveSection {
    fn default() -> Self {
        ObjectiveSection { metric: "loss".into(), direction: None, folds: 3, validation_split: 0.2, stratified: false, repeats: 1 }
    }
}

/// Minimize for losses and errors, maximize for scores.
pub fn default_direction(metric: &str) -> Direction {
    let m = metric.to_ascii_lowercase();
    let is_error = ["loss", "mse", "mae", "rmse", "error", "crossentropy", "hinge", "huber"].iter().any(|k| m.contains(k));
    if is_error { Direction::Minimize } else { Direction::Maximize }
}

impl ObjectiveSection {
    pub fn direction(&self) -> Direction {
        self.direction.unwrap_or_else(|| default_direction(&self.metric))
    }

    /// The folds, and how many of them to run.
    pub fn fold_spec(&self, seed: u64) -> Result<(FoldSpec, usize)> {
        if self.folds == 1 {
            if !(self.validation_split > 0.0 && self.validation_split < 1.0) {
                return Err(Error::Config(format!("objective.validation_split = {} is outside (0, 1)", self.validation_split)));
            }
            // One validation split = the first fold of round(1 / fraction) folds.
            let k = (1.0 / self.validation_split).round().max(2.0) as usize;
            Ok((FoldSpec { folds: k, stratified: self.stratified, repeats: 1, shuffle: true, seed }, 1))
        } else {
            Ok((FoldSpec { folds: self.folds, stratified: self.stratified, repeats: self.repeats, shuffle: true, seed }, usize::MAX))
        }
    }
}

/// An error in the study file at `path` (a located one's message starts with its line).
fn at_file(path: &Path, e: Error) -> Error {
    match e {
        Error::Config(message) => Error::Format { path: path.into(), message },
        Error::Invalid { key, message } => Error::Format { path: path.into(), message: format!("`{key}`: {message}") },
        other => other,
    }
}

/// A parsed study file, with paths resolved.
pub struct StudyDef {
    pub name: String,
    pub section: StudySection,
    pub objective: ObjectiveSection,
    pub experiment: Experiment,
    pub space: Space,
    pub storage: PathBuf,
}

impl StudyDef {
    pub fn from_file(path: &Path) -> Result<StudyDef> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.into(), source: e })?;
        Self::from_text(&text, path)
    }

    /// A study file's `text` as if it were at `path`: its folder resolves the experiment
    /// and the storage, its stem names them by default, and errors name it (a study
    /// defined in code, e.g. from Python, has no file of its own).
    pub fn from_text(text: &str, path: &Path) -> Result<StudyDef> {
        // Errors name the key and its line, as an experiment file's do.
        let doc = ConfigFile::parse(text).map_err(|e| at_file(path, e))?;
        doc.check_finite().map_err(|e| at_file(path, e))?;
        let file: StudyToml = toml::from_str(text).map_err(|e| at_file(path, doc.locate_toml_error(&e)))?;
        let base = path.parent().unwrap_or(Path::new(""));
        let experiment = Experiment::from_file(base.join(&file.study.experiment))?;
        let space = parse_space(&file.space).map_err(|e| at_file(path, doc.locate(e)))?;
        let stem = path.file_stem().map_or("study".into(), |s| s.to_string_lossy().into_owned());
        let storage = match &file.study.storage {
            // A server shared by every worker, wherever they run.
            Some(s) if crate::db::is_server_url(s) => s.clone(),
            Some(s) => {
                descent::experiment::check_inside("study.storage", s, true).map_err(|e| at_file(path, doc.locate(e)))?;
                base.join(s)
            }
            None => base.join(format!("{stem}.sqlite")),
        };
        let name = file.study.name.clone().unwrap_or(stem);
        descent::experiment::check_name("study.name", &name).map_err(|e| at_file(path, doc.locate(e)))?;
        let def = StudyDef {
            name,
            section: file.study,
            objective: file.objective,
            experiment,
            space,
            storage,
        };
        def.check().map_err(|e| at_file(path, doc.locate(e)))?;
        Ok(def)
    }

    /// Catches mistakes before any trial runs: the sampler, pruner and folds must make
    /// sense, the metric must be compiled, and a sampled point must give a valid
    /// experiment (a misspelt parameter path fails here, naming it).
    fn check(&self) -> Result<()> {
        let (beat, grace) = (self.section.heartbeat_seconds, self.section.grace_seconds);
        if !(beat.is_finite() && beat > 0.0) {
            return Err(Error::invalid("study.heartbeat_seconds", format!("{beat} must be a positive number of seconds")));
        }
        if !(grace.is_finite() && grace >= 2.0 * beat) {
            return Err(Error::invalid("study.grace_seconds", format!("{grace} must be at least twice heartbeat_seconds ({beat}), or live workers' trials would be taken from them")));
        }
        self.sampler()?;
        self.pruner()?;
        self.objective.fold_spec(self.section.seed)?;
        let m = &self.objective.metric;
        if m != "loss" && !self.experiment.compile.metrics.iter().any(|c| c == m) {
            return Err(Error::invalid(
                "objective.metric",
                format!("`{m}` is not compiled by the experiment (its metrics: loss, {})", self.experiment.compile.metrics.join(", ")),
            ));
        }
        if self.space.params.is_empty() {
            return Err(Error::Config("the [space] is empty: add at least one parameter".into()));
        }
        let mut rng = descent::rng::seeded(self.section.seed);
        let mut point = Params::new();
        for p in &self.space.params {
            if Space::is_active(p, &point) {
                point.insert(p.name.clone(), sample_uniform(&p.distribution, &mut rng));
            }
        }
        apply(&self.experiment, &point).map(|_| ())
    }

    pub fn sampler(&self) -> Result<Box<dyn Sampler>> {
        Ok(match self.section.sampler.as_str() {
            "grid" => Box::new(GridSampler::new(&self.space)?),
            "random" => Box::new(RandomSampler),
            "tpe" => {
                let mut t = TpeSampler::default();
                if let Some(n) = self.section.n_startup_trials {
                    t.n_startup_trials = n;
                }
                Box::new(t)
            }
            other => return Err(Error::invalid("study.sampler", format!("`{other}` is not one of grid, random, tpe"))),
        })
    }

    /// Intermediate steps per trial: epochs × folds run.
    fn max_steps(&self) -> u64 {
        let folds = if self.objective.folds == 1 { 1 } else { self.objective.folds * self.objective.repeats.max(1) };
        (self.experiment.fit.epochs * folds) as u64
    }

    pub fn pruner(&self) -> Result<Box<dyn Pruner>> {
        let table = match &self.section.pruner {
            None => return Ok(Box::new(NoPruner)),
            Some(toml::Value::String(s)) => toml::Table::from_iter([("name".to_string(), toml::Value::String(s.clone()))]),
            Some(toml::Value::Table(t)) => t.clone(),
            Some(other) => return Err(Error::invalid("study.pruner", format!("must be a name or a table, not {other}"))),
        };
        let name = table.get("name").and_then(|v| v.as_str()).unwrap_or("").to_string();
        // An integer ≥ `min` (a value below it is an error, never raised silently).
        let int_from = |key: &str, default: u64, min: u64| -> Result<u64> {
            match table.get(key) {
                None => Ok(default),
                Some(toml::Value::Integer(i)) if *i >= min as i64 => Ok(*i as u64),
                Some(v) if min == 0 => Err(Error::invalid(&format!("study.pruner.{key}"), format!("{v} must be a non-negative integer"))),
                Some(v) => Err(Error::invalid(&format!("study.pruner.{key}"), format!("{v} must be an integer ≥ {min}"))),
            }
        };
        let int = |key: &str, default: u64| int_from(key, default, 0);
        let allowed: &[&str] = match name.as_str() {
            "none" => &["name"],
            "median" => &["name", "n_startup_trials", "n_warmup_steps"],
            "successive_halving" => &["name", "min_resource", "reduction_factor", "min_early_stopping_rate"],
            "hyperband" => &["name", "min_resource", "max_resource", "reduction_factor"],
            other => return Err(Error::invalid("study.pruner", format!("`{other}` is not one of none, median, successive_halving, hyperband"))),
        };
        if let Some(k) = table.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Error::invalid("study.pruner", format!("unknown key `{k}` for {name} (expected one of {})", allowed[1..].join(", "))));
        }
        Ok(match name.as_str() {
            "none" => Box::new(NoPruner),
            "median" => Box::new(MedianPruner { n_startup_trials: int("n_startup_trials", 5)? as usize, n_warmup_steps: int("n_warmup_steps", 0)? }),
            "successive_halving" => {
                let rate = int("min_early_stopping_rate", 0)?;
                let p = SuccessiveHalvingPruner {
                    min_resource: int_from("min_resource", 1, 1)?,
                    reduction_factor: int_from("reduction_factor", 3, 2)?,
                    min_early_stopping_rate: u32::try_from(rate).unwrap_or(u32::MAX),
                };
                // The first rung, min_resource · η^s, must be a step count (checked, not wrapped).
                if p.first_rung().is_none() {
                    return Err(Error::invalid(
                        "study.pruner",
                        format!("min_resource · reduction_factor^min_early_stopping_rate = {} · {}^{} overflows a step count", p.min_resource, p.reduction_factor, rate),
                    ));
                }
                Box::new(p)
            }
            _ => {
                let p = HyperbandPruner {
                    min_resource: int_from("min_resource", 1, 1)?,
                    max_resource: int_from("max_resource", self.max_steps(), 1)?,
                    reduction_factor: int_from("reduction_factor", 3, 2)?,
                };
                if p.max_resource < p.min_resource {
                    return Err(Error::invalid("study.pruner.max_resource", format!("{} is below min_resource {}", p.max_resource, p.min_resource)));
                }
                Box::new(p)
            }
        })
    }

    /// What the database keeps to rebuild any trial's experiment later.
    pub fn info(&self) -> StudyInfo {
        StudyInfo {
            name: self.name.clone(),
            direction: self.objective.direction(),
            metric: self.objective.metric.clone(),
            config: serde_json::json!({
                "experiment": self.experiment.to_toml(),
                "objective": self.objective,
                "space": self.space,
            }),
        }
    }

    /// Opens the study in its database (resuming it if it exists).
    pub fn open(&self) -> Result<Study> {
        let store = Store::open_for_work(&self.storage, self.info())?;
        Study::with(store, self.sampler()?, self.pruner()?, self.section.seed)
    }

    pub fn options(&self, verbose: bool) -> StudyOptions {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = self.section.threads.max(1);
        StudyOptions {
            n_trials: self.section.trials,
            timeout: self.section.timeout_seconds.map(Duration::from_secs_f64),
            jobs: self.section.jobs.unwrap_or((cores / threads).max(1)),
            threads,
            verbose,
            heartbeat: Duration::from_secs_f64(self.section.heartbeat_seconds),
            grace: Duration::from_secs_f64(self.section.grace_seconds),
        }
    }

    /// The objective: sample the space, cross-validate the resulting experiment and
    /// report each fold-epoch's validation metric (step = fold · epochs + epoch + 1),
    /// so pruners compare trials at the same fold and epoch.
    pub fn evaluate(&self, trial: &mut Trial) -> std::result::Result<f64, TrialError> {
        for p in &self.space.params {
            if Space::is_active(p, trial.params()) {
                trial.suggest(&p.name, &p.distribution)?;
            }
        }
        let mut exp = apply(&self.experiment, trial.params())?;
        exp.fit.verbose = 0;
        let (spec, max_folds) = self.objective.fold_spec(self.section.seed)?;
        let metric = &self.objective.metric;
        let column = format!("val_{metric}");
        let epochs = exp.fit.epochs as u64;
        let mut failure: Option<Error> = None;
        let report = cross_validate(&exp, &spec, max_folds, |pos, epoch, logs| {
            let value = logs.get(&column).unwrap_or(f64::NAN);
            if let Err(e) = trial.report(pos as u64 * epochs + epoch as u64 + 1, value) {
                failure = Some(e);
                return false;
            }
            !trial.should_prune()
        })?;
        if let Some(e) = failure {
            return Err(e.into());
        }
        let Some(report) = report else { return Err(TrialError::Pruned) };
        trial.set_scores(report.to_json());
        let (mean, _) = report.mean_std(metric);
        if mean.is_nan() {
            return Err(TrialError::Failed(Error::State(format!("metric `{metric}` was not measured"))));
        }
        Ok(mean)
    }
}

/// The experiment of a stored trial: the study's experiment with the trial's values.
pub fn trial_experiment(info: &StudyInfo, trial: &TrialRecord) -> Result<Experiment> {
    let text = info.config["experiment"]
        .as_str()
        .ok_or_else(|| Error::State(format!("study `{}` has no stored experiment (created through the Rust API?)", info.name)))?;
    // A database may come from someone else: its trials may set only parameters of the
    // study's own search space (not, say, `output.dir`).
    let space: Vec<&str> = info.config["space"]["params"].as_array().map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect()).unwrap_or_default();
    if let Some(key) = trial.params.keys().find(|k| !space.contains(&k.as_str())) {
        return Err(Error::State(format!(
            "study `{}`: trial {} sets `{key}`, which is not a parameter of the study's search space ({}); the database was altered",
            info.name,
            trial.number,
            if space.is_empty() { "none stored".to_string() } else { space.join(", ") }
        )));
    }
    let mut exp = apply(&Experiment::from_toml(text)?, &trial.params)?;
    // The name comes from the study database: checked as a folder name again.
    descent::experiment::check_name("study name in the database", &info.name)?;
    exp.name = Some(format!("{}-trial-{}", info.name, trial.number));
    exp.fit.verbose = 1;
    Ok(exp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::ParamValue;

    const STUDY: &str = include_str!("../../../examples/tune_classic.toml");
    const CLASSIC: &str = include_str!("../../../examples/classic.toml");

    /// The error of reading `study` (beside a copy of the classic experiment).
    fn error(study: &str) -> String {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("descent-study-file-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("classic.toml"), CLASSIC).unwrap();
        let path = dir.join("s.toml");
        std::fs::write(&path, study).unwrap();
        let e = StudyDef::from_file(&path).map(|_| ()).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        e
    }

    #[test]
    fn a_number_that_is_not_finite_is_refused_at_every_key_of_a_study() {
        let numbers = ConfigFile::parse(STUDY).unwrap().numbers();
        assert!(numbers.len() >= 10, "{numbers:?}");
        for (key, span) in numbers {
            let line = STUDY[..span.start].matches('\n').count() + 1;
            for bad in ["nan", "-inf"] {
                let e = error(&format!("{}{bad}{}", &STUDY[..span.start], &STUDY[span.end..]));
                assert!(e.contains(&format!("s.toml: line {line}: `{key}` = {bad}: {bad} is not a finite number")), "{key}: {e}");
            }
        }
    }

    #[test]
    fn a_stored_trial_may_set_only_parameters_of_the_search_space() {
        // A received database whose trial writes `output.dir` (or any key outside the
        // study's [space]) is refused before its experiment is built.
        let space = parse_space(&toml::from_str("[\"fit.batch_size\"]\ntype = \"categorical\"\nchoices = [16, 32]").unwrap()).unwrap();
        let info = StudyInfo {
            name: "s".into(),
            direction: crate::Direction::Maximize,
            metric: "accuracy".into(),
            config: serde_json::json!({ "experiment": CLASSIC, "space": space }),
        };
        let mut trial = TrialRecord {
            number: 3,
            state: crate::TrialState::Complete,
            params: Params::from([("fit.batch_size".to_string(), ParamValue::Int(16))]),
            value: Some(0.9),
            scores: serde_json::Value::Null,
            intermediate: Vec::new(),
            attempts: 1,
            seconds: None,
            message: None,
        };
        assert_eq!(trial_experiment(&info, &trial).unwrap().fit.batch_size, 16);
        trial.params.insert("output.dir".into(), ParamValue::Str("/home/someone".into()));
        let e = trial_experiment(&info, &trial).unwrap_err().to_string();
        assert!(e.contains("trial 3 sets `output.dir`, which is not a parameter of the study's search space (fit.batch_size)"), "{e}");
    }

    #[test]
    fn study_errors_name_the_key_and_line() {
        for (from, to, want) in [
            ("high = 0.3", "high = 0.00001", "line 22: `space.compile.optimizer.learning_rate`: needs 0 < low < high"),
            ("n_warmup_steps = 5", "n_warmup_steps = -5", "line 9: `study.pruner.n_warmup_steps` = -5"),
            ("n_warmup_steps = 5", "n_warmup_step = 5", "line 9: `study.pruner.n_warmup_step` = 5: unknown key"),
            ("sampler = \"tpe\"", "sampler = \"tpx\"", "line 8: `study.sampler` = \"tpx\""),
            ("metric = \"accuracy\"", "metric = \"acc\"", "line 14: `objective.metric` = \"acc\": `acc` is not compiled"),
            ("type = \"int\"", "type = \"integer\"", "line 34: `space.model.layers.0.units.type` = \"integer\": unknown variant"),
            ("\"sgd\" }", "\"sdg\" }", "line 31: `space.compile.optimizer.momentum.when.compile.optimizer.name` = \"sdg\""),
            ("trials = 60", "trails = 60", "line 10: `study.trails` = 60: unknown field `trails`"),
            ("seed = 42", "seed = 42\nstorage = \"../../other.sqlite\"", "line 12: `study.storage` = \"../../other.sqlite\""),
            ("n_warmup_steps = 5 }", "n_warmup_steps = 5 }\n[study.x]", "line 10: `study.x`: unknown field `x`"),
            ("{ name = \"median\", n_warmup_steps = 5 }", "{ name = \"successive_halving\", reduction_factor = 1 }", "line 9: `study.pruner.reduction_factor` = 1: 1 must be an integer ≥ 2"),
            ("{ name = \"median\", n_warmup_steps = 5 }", "{ name = \"successive_halving\", min_early_stopping_rate = 4294967296 }", "line 9: `study.pruner.min_early_stopping_rate` = 4294967296: min_resource · reduction_factor^min_early_stopping_rate = 1 · 3^4294967296 overflows"),
            ("{ name = \"median\", n_warmup_steps = 5 }", "{ name = \"hyperband\", min_resource = 0 }", "line 9: `study.pruner.min_resource` = 0"),
            ("{ name = \"median\", n_warmup_steps = 5 }", "{ name = \"hyperband\", min_resource = 9, max_resource = 3 }", "line 9: `study.pruner.max_resource` = 3: 3 is below min_resource 9"),
        ] {
            assert!(STUDY.contains(from), "{from}");
            let e = error(&STUDY.replacen(from, to, 1));
            assert!(e.contains(&format!("s.toml: {want}")), "{to}: {e}");
        }
    }
}
