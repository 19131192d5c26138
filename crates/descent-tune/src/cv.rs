//! k-fold cross-validation of an experiment. The experiment's held-out test split is
//! set aside first and never touched; folds are cut from the training split, and each
//! fold fits its own preprocessing on its own training part.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use descent::data::Dataset;
use descent::experiment::Experiment;
use descent::train::{Callback, History, Logs, TrainContext};
use descent::{Error, Result};

use crate::folds::{Fold, FoldSpec};
use crate::stats::mean_std;

/// One fold's outcome.
#[derive(Clone, Debug)]
pub struct FoldResult {
    pub repeat: usize,
    pub index: usize,
    /// Loss and metrics on the fold's validation part after training.
    pub scores: Logs,
    /// Per-epoch logs, with `val_*` measured on the fold's validation part.
    pub history: History,
    pub train_samples: usize,
    pub valid_samples: usize,
    pub seconds: f64,
}

/// All folds of one cross-validation.
#[derive(Clone, Debug, Default)]
pub struct CvReport {
    pub folds: Vec<FoldResult>,
}

impl CvReport {
    /// Metric names in the order the folds logged them (`loss`, `accuracy`, …).
    pub fn metric_names(&self) -> Vec<String> {
        self.folds.first().map(|f| f.scores.iter().map(|(n, _)| n.to_string()).collect()).unwrap_or_default()
    }
    /// One metric's value on each fold.
    pub fn values(&self, metric: &str) -> Vec<f64> {
        self.folds.iter().filter_map(|f| f.scores.get(metric)).collect()
    }
    pub fn mean_std(&self, metric: &str) -> (f64, f64) {
        mean_std(&self.values(metric))
    }
    /// The mean over folds of a history column per epoch (folds that stopped early
    /// contribute to the epochs they ran).
    pub fn curve(&self, column: &str) -> Vec<f64> {
        let longest = self.folds.iter().filter_map(|f| f.history.get(column).map(<[f64]>::len)).max().unwrap_or(0);
        (0..longest)
            .map(|e| {
                let vals: Vec<f64> = self.folds.iter().filter_map(|f| f.history.get(column).and_then(|v| v.get(e)).copied()).collect();
                vals.iter().sum::<f64>() / vals.len() as f64
            })
            .collect()
    }
    /// `{metric: {mean, std, folds: [...]}}` for storing and printing.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for name in self.metric_names() {
            let (mean, std) = self.mean_std(&name);
            m.insert(name.clone(), serde_json::json!({ "mean": mean, "std": std, "folds": self.values(&name) }));
        }
        serde_json::Value::Object(m)
    }
    /// The table `descent cv` prints: one row per fold, then mean ± std.
    pub fn table(&self) -> String {
        let names = self.metric_names();
        let mut out = format!("{:<10}", "fold");
        names.iter().for_each(|n| out += &format!(" {n:>18}"));
        out += "\n";
        for f in &self.folds {
            let label = if self.folds.iter().any(|g| g.repeat > 0) { format!("{}.{}", f.repeat + 1, f.index + 1) } else { format!("{}", f.index + 1) };
            out += &format!("{label:<10}");
            names.iter().for_each(|n| out += &format!(" {:>18.4}", f.scores.get(n).unwrap_or(f64::NAN)));
            out += "\n";
        }
        out += &format!("{:<10}", "mean ± std");
        for n in &names {
            let (m, s) = self.mean_std(n);
            out += &format!(" {:>18}", format!("{m:.4} ± {s:.4}"));
        }
        out + "\n"
    }
}

/// The folds of an experiment's training split (after the held-out test split is set
/// aside), with the training split itself.
pub fn experiment_folds(exp: &Experiment, spec: &FoldSpec) -> Result<(Dataset, Vec<Fold>)> {
    let (train, _test) = exp.load_splits()?;
    let labels = if spec.stratified { Some(train.class_labels()?) } else { None };
    let folds = spec.split(train.len(), labels.as_deref())?;
    Ok((train, folds))
}

/// Calls a closure after every epoch; stops training when it returns false.
struct EpochHook<'f>(&'f mut dyn FnMut(usize, &Logs) -> bool, bool);

impl Callback for EpochHook<'_> {
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, ctx: &mut TrainContext) {
        if !(self.0)(epoch, logs) {
            self.1 = true;
            ctx.stop_training = true;
        }
    }
}

/// Trains and scores one fold. `on_epoch(epoch, logs)` sees every epoch's logs (with
/// `val_*` on the fold's validation part) and may return false to stop: then `None`.
pub fn run_fold(
    exp: &Experiment,
    train: &Dataset,
    fold: &Fold,
    on_epoch: &mut dyn FnMut(usize, &Logs) -> bool,
) -> Result<Option<FoldResult>> {
    let name = format!("{} fold {}", train.name, fold.index + 1);
    let (tr, va) = (train.select(&fold.train, format!("{name} (train)")), train.select(&fold.valid, format!("{name} (validation)")));
    let mut hook = EpochHook(on_epoch, false);
    let trained = exp.train_on(tr, Some(va), true, None, vec![Box::new(&mut hook) as Box<dyn Callback>], None)?;
    if hook.1 {
        return Ok(None);
    }
    Ok(Some(FoldResult {
        repeat: fold.repeat,
        index: fold.index,
        scores: trained.valid,
        history: trained.history,
        train_samples: fold.train.len(),
        valid_samples: fold.valid.len(),
        seconds: trained.train_seconds,
    }))
}

/// Cross-validates `exp`: the first `max_folds` folds in turn (all with
/// `usize::MAX`; 1 gives a single validation split). `on_epoch(fold_position, epoch,
/// logs)` may return false to stop (then `Ok(None)`), which is how pruning ends a trial.
pub fn cross_validate(
    exp: &Experiment,
    spec: &FoldSpec,
    max_folds: usize,
    mut on_epoch: impl FnMut(usize, usize, &Logs) -> bool,
) -> Result<Option<CvReport>> {
    let (train, folds) = experiment_folds(exp, spec)?;
    let mut report = CvReport::default();
    for (pos, fold) in folds.iter().take(max_folds).enumerate() {
        let mut hook = |epoch: usize, logs: &Logs| on_epoch(pos, epoch, logs);
        match run_fold(exp, &train, fold, &mut hook)? {
            Some(r) => report.folds.push(r),
            None => return Ok(None),
        }
    }
    Ok(Some(report))
}

/// Cross-validates several experiments on the same folds (the folds depend only on the
/// training split's size, labels and `spec`, which must agree), all folds of all
/// experiments shared among `jobs` workers with `threads` threads each. Returns one
/// report per experiment and the (validation, training) sizes of the first fold.
pub fn cross_validate_many(
    experiments: &[(&str, &Experiment)],
    spec: &FoldSpec,
    jobs: usize,
    threads: usize,
) -> Result<(Vec<CvReport>, (usize, usize))> {
    let mut prepared = Vec::new();
    for (_, exp) in experiments {
        let mut exp = (*exp).clone();
        exp.fit.verbose = 0;
        let (train, folds) = experiment_folds(&exp, spec)?;
        prepared.push((exp, train, folds));
    }
    let first = &prepared[0].2;
    for ((label, _), p) in experiments.iter().zip(&prepared).skip(1) {
        if &p.2 != first {
            return Err(Error::Config(format!(
                "`{label}` trains on different data than `{}` ({} vs {} samples), so they cannot share folds",
                experiments[0].0,
                p.1.len(),
                prepared[0].1.len()
            )));
        }
    }
    let tasks: Vec<(usize, usize)> = (0..prepared.len()).flat_map(|c| (0..first.len()).map(move |f| (c, f))).collect();
    let results: Mutex<Vec<Option<FoldResult>>> = Mutex::new(vec![None; tasks.len()]);
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..jobs.max(1) {
            s.spawn(|| {
                let pool = match rayon::ThreadPoolBuilder::new().num_threads(threads.max(1)).build() {
                    Ok(p) => p,
                    Err(e) => return *failure.lock().unwrap() = Some(Error::State(format!("thread pool: {e}"))),
                };
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= tasks.len() || failure.lock().unwrap().is_some() {
                        break;
                    }
                    let (c, f) = tasks[i];
                    let (exp, train, folds) = &prepared[c];
                    match pool.install(|| run_fold(exp, train, &folds[f], &mut |_, _| true)) {
                        Ok(r) => results.lock().unwrap()[i] = r,
                        Err(e) => *failure.lock().unwrap() = Some(Error::State(format!("`{}` fold {}: {e}", experiments[c].0, f + 1))),
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap() {
        return Err(e);
    }
    let mut results = results.into_inner().unwrap().into_iter();
    let reports = (0..prepared.len())
        .map(|_| CvReport { folds: results.by_ref().take(first.len()).map(|r| r.expect("every fold ran")).collect() })
        .collect();
    Ok((reports, (first[0].valid.len(), first[0].train.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits(epochs: usize) -> Experiment {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");
        Experiment::from_toml(&format!(
            r#"
            [data]
            format = "csv"
            path = "{path}"
            test_split = 0.2
            standardize = true
            [model]
            layers = [{{ type = "dense", units = 32, activation = "relu" }}, {{ type = "dense", units = 10 }}]
            [compile]
            optimizer = "adam"
            loss = {{ name = "sparse_categorical_crossentropy", from_logits = true }}
            metrics = ["accuracy"]
            [fit]
            epochs = {epochs}
            verbose = 0
            "#
        ))
        .unwrap()
    }

    #[test]
    fn folds_cover_the_training_split_only_and_stop_on_request() {
        let exp = digits(2);
        let spec = FoldSpec { folds: 4, stratified: true, ..Default::default() };
        let (train, folds) = experiment_folds(&exp, &spec).unwrap();
        // 1797 digits, 20% held out → 1438 to cut into folds; the test split is never among them.
        assert_eq!(train.len(), 1438);
        assert!(folds.iter().all(|f| f.train.len() + f.valid.len() == 1438));
        let mut seen = Vec::new();
        let report = cross_validate(&exp, &spec, usize::MAX, |pos, epoch, logs| {
            assert!(logs.get("val_accuracy").is_some(), "validation metrics every epoch");
            seen.push((pos, epoch));
            true
        })
        .unwrap()
        .unwrap();
        assert_eq!(seen.len(), 8);
        assert_eq!(report.values("accuracy").len(), 4);
        assert_eq!(report.curve("val_accuracy").len(), 2);
        // The hook can stop the whole cross-validation (pruning).
        let stopped = cross_validate(&exp, &spec, usize::MAX, |pos, _, _| pos < 1).unwrap();
        assert!(stopped.is_none());
        // max_folds = 1: a single validation split.
        let one = cross_validate(&exp, &spec, 1, |_, _, _| true).unwrap().unwrap();
        assert_eq!(one.folds.len(), 1);
    }
}
