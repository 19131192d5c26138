//! A study: trials of an objective, chosen by a sampler, stopped early by a pruner,
//! recorded in the SQLite store, run in parallel on the local cores.
//!
//! ```no_run
//! use descent_tune::{Study, StudyOptions, Direction, TrialError};
//! let study = Study::open("lr.sqlite".as_ref(), "lr", Direction::Minimize, "loss").unwrap();
//! study.optimize(&StudyOptions { n_trials: 30, ..Default::default() }, |trial| {
//!     let lr = trial.suggest_float("lr", 1e-4, 1e-1, true)?;
//!     Ok::<f64, TrialError>((lr.ln() + 5.0).powi(2))
//! }).unwrap();
//! println!("{:?}", study.best().unwrap());
//! ```

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::pruner::{NoPruner, Pruner};
use crate::sampler::{Plan, Sampler, TpeSampler};
use crate::space::{describe, Distribution, ParamValue, Params};
use crate::store::{StudyInfo, Store};
use crate::trial::{Direction, TrialRecord, TrialState};
use descent::{rng, Error, Result};

/// How a trial ended other than with a value.
#[derive(Debug)]
pub enum TrialError {
    /// The pruner stopped it (return this after [`Trial::should_prune`] says so).
    Pruned,
    /// It failed; the study records the message and goes on, except for configuration
    /// errors, which would fail every trial alike and so end the study.
    Failed(Error),
}

impl From<Error> for TrialError {
    fn from(e: Error) -> Self {
        TrialError::Failed(e)
    }
}

/// Budget and parallelism of [`Study::optimize`].
#[derive(Clone, Debug)]
pub struct StudyOptions {
    /// Total trials in the study, counting those of earlier (resumed) runs.
    pub n_trials: usize,
    /// No new trial starts after this long (running ones finish).
    pub timeout: Option<Duration>,
    /// Trials run at once.
    pub jobs: usize,
    /// Threads each trial's kernels use. `jobs × threads` must not exceed the cores.
    pub threads: usize,
    /// Print the live table.
    pub verbose: bool,
    /// How often this worker stamps the heartbeat of its running trials.
    pub heartbeat: Duration,
    /// A running trial silent for longer belongs to a dead worker and is retried
    /// (Optuna's `grace_period`; keep it several heartbeats long).
    pub grace: Duration,
}

impl Default for StudyOptions {
    fn default() -> Self {
        StudyOptions { n_trials: 20, timeout: None, jobs: 1, threads: 1, verbose: false, heartbeat: Duration::from_secs(5), grace: Duration::from_secs(30) }
    }
}

pub struct Study {
    store: Mutex<Store>,
    sampler: Box<dyn Sampler>,
    pruner: Box<dyn Pruner>,
    pub direction: Direction,
    pub metric: String,
    pub seed: u64,
}

/// The random stream of parameter `name` in trial `number`. Each parameter has its
/// own, so a draw does not depend on which parameters were drawn before it: a trial
/// retried after a crash, some of its values already recorded, draws the others as
/// its first attempt did (one stream per trial made the retry's draws shift by the
/// recorded ones: measured, a retried trial took 55 units where its first attempt
/// had taken 50).
fn parameter_rng(seed: u64, number: u64, name: &str) -> rng::Rng {
    // FNV-1a: a stable hash of the name (std's hasher may change between releases).
    let h = name.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01B3));
    rng::derive(seed ^ h, 0x7121 + number)
}

/// One running trial, handed to the objective.
pub struct Trial<'s> {
    study: &'s Study,
    pub number: u64,
    params: Params,
    /// Values fixed before the trial started (a grid point or a retried trial's).
    fixed: Option<Params>,
    intermediate: Vec<(u64, f64)>,
    prune: bool,
    scores: serde_json::Value,
}

impl Trial<'_> {
    /// A value for parameter `name` from `dist`: the fixed one if the trial has one,
    /// else the sampler's choice given the study so far. Recorded at once, so a retry
    /// after a crash sees the same value.
    pub fn suggest(&mut self, name: &str, dist: &Distribution) -> Result<ParamValue> {
        if let Some(v) = self.params.get(name) {
            return Ok(v.clone());
        }
        let value = match self.fixed.as_ref().and_then(|f| f.get(name)) {
            Some(v) => v.clone(),
            None => {
                let history = self.study.lock().trials()?;
                let mut rng = parameter_rng(self.study.seed, self.number, name);
                self.study.sampler.sample(name, dist, &history, self.study.direction, &mut rng)
            }
        };
        if !dist.contains(&value) {
            return Err(Error::Config(format!("trial {}: stored value {value} of `{name}` is outside {dist:?}", self.number)));
        }
        self.params.insert(name.to_string(), value.clone());
        // Store the fixed point whole (plus anything asked beyond it): another worker's
        // grid sampler must see every value this trial has taken, not the part asked so far.
        let mut stored = self.fixed.clone().unwrap_or_default();
        stored.extend(self.params.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.study.lock().set_params(self.number, &stored)?;
        Ok(value)
    }

    pub fn suggest_float(&mut self, name: &str, low: f64, high: f64, log: bool) -> Result<f64> {
        let d = if log { Distribution::LogUniform { low, high } } else { Distribution::Uniform { low, high } };
        d.check(name)?;
        Ok(self.suggest(name, &d)?.as_f64().expect("numeric"))
    }

    pub fn suggest_int(&mut self, name: &str, low: i64, high: i64) -> Result<i64> {
        let d = Distribution::Int { low, high, step: 1, log: false };
        d.check(name)?;
        match self.suggest(name, &d)? {
            ParamValue::Int(i) => Ok(i),
            other => Err(Error::State(format!("`{name}` holds {other}, not an integer"))),
        }
    }

    pub fn suggest_categorical(&mut self, name: &str, choices: &[&str]) -> Result<String> {
        let d = Distribution::Categorical { choices: choices.iter().map(|c| ParamValue::Str(c.to_string())).collect() };
        d.check(name)?;
        Ok(self.suggest(name, &d)?.to_string())
    }

    /// Records an intermediate value (e.g. validation accuracy after an epoch) and asks
    /// the pruner whether to stop; see [`Trial::should_prune`].
    pub fn report(&mut self, step: u64, value: f64) -> Result<()> {
        self.intermediate.push((step, value));
        let store = self.study.lock();
        store.report(self.number, step, value)?;
        let others = store.trials()?;
        drop(store);
        let me = TrialRecord {
            number: self.number,
            state: TrialState::Running,
            params: self.params.clone(),
            value: None,
            scores: serde_json::Value::Null,
            intermediate: self.intermediate.clone(),
            attempts: 1,
            seconds: None,
            message: None,
        };
        self.prune = self.study.pruner.should_prune(&me, step, &others, self.study.direction);
        Ok(())
    }

    /// Whether the last reported value was bad enough to stop this trial.
    pub fn should_prune(&self) -> bool {
        self.prune
    }

    /// Extra scores to store with the trial (e.g. every metric's CV mean and std).
    pub fn set_scores(&mut self, scores: serde_json::Value) {
        self.scores = scores;
    }

    pub fn params(&self) -> &Params {
        &self.params
    }
}

impl Study {
    /// Opens or creates study `name` in the SQLite file at `path`, with TPE and no pruner.
    pub fn open(path: &Path, name: &str, direction: Direction, metric: &str) -> Result<Study> {
        let info = StudyInfo { name: name.into(), direction, metric: metric.into(), config: serde_json::Value::Null };
        Study::with(Store::open_for_work(path, info)?, Box::new(TpeSampler::default()), Box::new(NoPruner), descent::nn::DEFAULT_SEED)
    }

    /// A study over an opened store with the given sampler, pruner and seed.
    pub fn with(store: Store, sampler: Box<dyn Sampler>, pruner: Box<dyn Pruner>, seed: u64) -> Result<Study> {
        let (direction, metric) = (store.info.direction, store.info.metric.clone());
        Ok(Study { store: Mutex::new(store), sampler, pruner, direction, metric, seed })
    }

    pub fn with_sampler(mut self, sampler: Box<dyn Sampler>) -> Study {
        self.sampler = sampler;
        self
    }
    pub fn with_pruner(mut self, pruner: Box<dyn Pruner>) -> Study {
        self.pruner = pruner;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        // A worker that panicked mid-statement cannot leave SQLite inconsistent, so the
        // store stays usable after a poisoned lock.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn pruner_name(&self) -> &'static str {
        self.pruner.name()
    }

    pub fn trials(&self) -> Result<Vec<TrialRecord>> {
        self.lock().trials()
    }
    pub fn best(&self) -> Result<Option<TrialRecord>> {
        self.lock().best()
    }

    /// The next trial to run: a queued retry first, then a new one while the budget
    /// allows. `None` when the budget or the sampler's grid is used up.
    /// One transaction, so other workers (processes sharing the study) see the budget
    /// and the grid as they stand and never take the same trial. `Ok(None)` with
    /// `waiting` set: the budget is taken but other workers still run trials; one of
    /// them may die and leave its trial to retry, so this worker waits instead of
    /// leaving.
    fn next_trial(&self, n_trials: usize, grace: Duration, waiting: &mut bool) -> Result<Option<Trial<'_>>> {
        *waiting = false;
        let store = self.lock();
        let next = store.in_transaction(|store| {
            store.requeue_stale(grace.as_secs_f64())?;
            Ok(match store.claim_queued()? {
                Some((n, p)) => Some((n, Some(p))),
                None => {
                    let history = store.trials()?;
                    let others_running = history.iter().any(|t| t.state == TrialState::Running);
                    if history.len() >= n_trials {
                        *waiting = others_running;
                        return Ok(None);
                    }
                    match self.sampler.plan(&history) {
                        Plan::Exhausted => {
                            *waiting = others_running;
                            None
                        }
                        Plan::Fixed(p) => Some((store.create_trial(&p)?, Some(p))),
                        Plan::Sample => Some((store.create_trial(&Params::new())?, None)),
                    }
                }
            })
        })?;
        let Some((number, fixed)) = next else { return Ok(None) };
        Ok(Some(Trial {
            study: self,
            number,
            params: Params::new(),
            fixed,
            intermediate: Vec::new(),
            prune: false,
            scores: serde_json::Value::Null,
        }))
    }

    /// Runs trials until `n_trials` exist and are finished (counting earlier runs'),
    /// the grid is done, or the timeout passes. Queued trials of an interrupted run
    /// are retried first. Returns the trials run by this call, by number.
    pub fn optimize<F>(&self, opts: &StudyOptions, objective: F) -> Result<Vec<TrialRecord>>
    where
        F: Fn(&mut Trial) -> std::result::Result<f64, TrialError> + Sync,
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if opts.jobs == 0 || opts.threads == 0 {
            return Err(Error::Config("jobs and threads must be at least 1".into()));
        }
        if opts.jobs * opts.threads > cores {
            return Err(Error::Config(format!(
                "jobs × threads = {} × {} would oversubscribe the {cores} cores; lower one of them",
                opts.jobs, opts.threads
            )));
        }
        let started = Instant::now();
        let table = crate::live::LiveTable::new(self, opts)?;
        let stop = AtomicBool::new(false);
        let fatal: Mutex<Option<Error>> = Mutex::new(None);
        let ran: Mutex<Vec<u64>> = Mutex::new(Vec::new());
        // This worker's running trials, whose heartbeat a thread stamps.
        let running: Mutex<Vec<u64>> = Mutex::new(Vec::new());
        let workers_left = std::sync::atomic::AtomicUsize::new(opts.jobs);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut last = Instant::now();
                while workers_left.load(Ordering::SeqCst) > 0 {
                    std::thread::sleep(Duration::from_millis(20).min(opts.heartbeat));
                    if last.elapsed() >= opts.heartbeat {
                        let numbers = running.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        if !numbers.is_empty() {
                            if let Err(e) = self.lock().heartbeat(&numbers) {
                                eprintln!("warning: heartbeat of trials {numbers:?}: {e}");
                            }
                        }
                        last = Instant::now();
                    }
                }
            });
            for _ in 0..opts.jobs {
                s.spawn(|| {
                    // The heartbeat thread ends when every worker has.
                    struct Leaving<'a>(&'a std::sync::atomic::AtomicUsize);
                    impl Drop for Leaving<'_> {
                        fn drop(&mut self) {
                            self.0.fetch_sub(1, Ordering::SeqCst);
                        }
                    }
                    let _leaving = Leaving(&workers_left);
                    let pool = match rayon::ThreadPoolBuilder::new().num_threads(opts.threads).build() {
                        Ok(p) => p,
                        Err(e) => {
                            *fatal.lock().unwrap() = Some(Error::State(format!("thread pool: {e}")));
                            return stop.store(true, Ordering::SeqCst);
                        }
                    };
                    while !stop.load(Ordering::SeqCst) && opts.timeout.is_none_or(|t| started.elapsed() < t) {
                        let mut waiting = false;
                        let mut trial = match self.next_trial(opts.n_trials, opts.grace, &mut waiting) {
                            Ok(Some(t)) => t,
                            Ok(None) if waiting => {
                                std::thread::sleep(opts.heartbeat.min(Duration::from_millis(250)));
                                continue;
                            }
                            Ok(None) => break,
                            Err(e) => {
                                *fatal.lock().unwrap() = Some(e);
                                return stop.store(true, Ordering::SeqCst);
                            }
                        };
                        table.started(trial.number);
                        running.lock().unwrap_or_else(|p| p.into_inner()).push(trial.number);
                        let t0 = Instant::now();
                        let outcome = pool.install(|| objective(&mut trial));
                        running.lock().unwrap_or_else(|p| p.into_inner()).retain(|n| *n != trial.number);
                        let seconds = t0.elapsed().as_secs_f64();
                        let last = trial.intermediate.last().map(|(_, v)| *v);
                        let (state, value, message) = match outcome {
                            Ok(v) => (TrialState::Complete, Some(v), None),
                            Err(TrialError::Pruned) => (TrialState::Pruned, last, None),
                            Err(TrialError::Failed(e)) => {
                                let msg = e.to_string();
                                if matches!(e, Error::Config(_) | Error::Format { .. } | Error::Io { .. }) {
                                    *fatal.lock().unwrap() = Some(Error::Config(format!("trial {} ({}): {msg}", trial.number, describe(&trial.params))));
                                    stop.store(true, Ordering::SeqCst);
                                }
                                (TrialState::Failed, None, Some(msg))
                            }
                        };
                        let finished = self.lock().finish(trial.number, state, value, &trial.scores, seconds, message.as_deref());
                        match finished {
                            Err(e) => {
                                *fatal.lock().unwrap() = Some(e);
                                return stop.store(true, Ordering::SeqCst);
                            }
                            Ok(false) => {
                                eprintln!("warning: trial {} went silent past the grace period and was given to another worker; this result is dropped", trial.number);
                                continue;
                            }
                            Ok(true) => {}
                        }
                        ran.lock().unwrap().push(trial.number);
                        table.finished(trial.number, state, value, &trial.params, seconds, message.as_deref());
                    }
                });
            }
        });
        table.done();
        if let Some(e) = fatal.into_inner().unwrap() {
            return Err(e);
        }
        let ran = ran.into_inner().unwrap();
        Ok(self.trials()?.into_iter().filter(|t| ran.contains(&t.number)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pruner::MedianPruner;
    use crate::sampler::{GridSampler, RandomSampler};
    use crate::space::{ParamSpec, Space};

    fn temp_db(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("descent-study-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("study.sqlite")
    }

    #[test]
    fn optimize_runs_the_budget_in_parallel_and_resumes_to_it() {
        let path = temp_db("budget");
        let objective = |t: &mut Trial| -> std::result::Result<f64, TrialError> {
            let x = t.suggest_float("x", -5.0, 5.0, false)?;
            let k = t.suggest_categorical("k", &["a", "b"])?;
            Ok((x - 1.0).powi(2) + if k == "a" { 0.0 } else { 1.0 })
        };
        let study = Study::open(&path, "s", Direction::Minimize, "f").unwrap();
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get()).min(2);
        let opts = StudyOptions { n_trials: 12, jobs, ..Default::default() };
        assert_eq!(study.optimize(&opts, objective).unwrap().len(), 12);
        drop(study);
        // Rerunning with a larger budget adds only the missing trials.
        let study = Study::open(&path, "s", Direction::Minimize, "f").unwrap();
        let more = study.optimize(&StudyOptions { n_trials: 15, ..opts.clone() }, objective).unwrap();
        assert_eq!(more.iter().map(|t| t.number).collect::<Vec<_>>(), vec![12, 13, 14]);
        let all = study.trials().unwrap();
        assert_eq!(all.len(), 15);
        assert!(all.iter().all(|t| t.state == TrialState::Complete && t.params.len() == 2));
        let best = study.best().unwrap().unwrap();
        assert!(all.iter().all(|t| t.value.unwrap() >= best.value.unwrap()));
        // Oversubscription is refused.
        let cores = std::thread::available_parallelism().unwrap().get();
        let err = study.optimize(&StudyOptions { jobs: cores, threads: 2, ..opts }, objective).unwrap_err();
        assert!(err.to_string().contains("oversubscribe"), "{err}");
    }

    #[test]
    fn a_retried_trial_draws_what_its_first_attempt_drew() {
        // The first attempt records `x`, then its worker dies; the retry takes the
        // recorded `x` and must draw `y` and `z` as an attempt that never died does.
        let draw = |t: &mut Trial| -> Vec<f64> {
            ["x", "y", "z"].iter().map(|n| t.suggest_float(n, 0.0, 1.0, false).unwrap()).collect()
        };
        let whole = Study::open(&temp_db("retry-a"), "s", Direction::Minimize, "f").unwrap().with_sampler(Box::new(RandomSampler));
        let want = draw(&mut whole.next_trial(1, Duration::from_secs(30), &mut false).unwrap().unwrap());
        let study = Study::open(&temp_db("retry-b"), "s", Direction::Minimize, "f").unwrap().with_sampler(Box::new(RandomSampler));
        let mut first = study.next_trial(1, Duration::from_secs(30), &mut false).unwrap().unwrap();
        assert_eq!(first.suggest_float("x", 0.0, 1.0, false).unwrap(), want[0]);
        drop(first);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(study.lock().requeue_stale(0.0).unwrap(), 1);
        let mut retry = study.next_trial(1, Duration::from_secs(30), &mut false).unwrap().unwrap();
        assert_eq!((retry.number, draw(&mut retry)), (0, want));
    }

    #[test]
    fn grid_study_ends_when_the_grid_is_done() {
        let path = temp_db("grid");
        let space = Space::new(vec![ParamSpec::new("n", Distribution::Int { low: 1, high: 4, step: 1, log: false })]).unwrap();
        let store = Store::open_for_work(&path, StudyInfo { name: "g".into(), direction: Direction::Maximize, metric: "m".into(), config: serde_json::Value::Null }).unwrap();
        let study = Study::with(store, Box::new(GridSampler::new(&space).unwrap()), Box::new(NoPruner), 1).unwrap();
        let d = space.params[0].distribution.clone();
        let ran = study.optimize(&StudyOptions { n_trials: 100, ..Default::default() }, |t| Ok(t.suggest("n", &d)?.as_f64().unwrap())).unwrap();
        let mut seen: Vec<f64> = ran.iter().map(|t| t.value.unwrap()).collect();
        seen.sort_by(f64::total_cmp);
        assert_eq!(seen, vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(study.best().unwrap().unwrap().value, Some(4.0));
    }

    #[test]
    fn parallel_grid_never_repeats_a_point() {
        // Two workers, a grid point asked for one parameter at a time: each point once.
        let path = temp_db("grid-par");
        let space = Space::new(vec![
            ParamSpec::new("a", Distribution::Int { low: 0, high: 3, step: 1, log: false }),
            ParamSpec::new("b", Distribution::Int { low: 0, high: 3, step: 1, log: false }),
        ])
        .unwrap();
        let store = Store::open_for_work(&path, StudyInfo { name: "g".into(), direction: Direction::Minimize, metric: "m".into(), config: serde_json::Value::Null }).unwrap();
        let study = Study::with(store, Box::new(GridSampler::new(&space).unwrap()), Box::new(NoPruner), 1).unwrap();
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get()).min(2);
        let ran = study
            .optimize(&StudyOptions { n_trials: 100, jobs, ..Default::default() }, |t| {
                let a = t.suggest("a", &space.params[0].distribution)?.as_f64().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
                let b = t.suggest("b", &space.params[1].distribution)?.as_f64().unwrap();
                Ok(a * 4.0 + b)
            })
            .unwrap();
        let mut values: Vec<f64> = ran.iter().map(|t| t.value.unwrap()).collect();
        values.sort_by(f64::total_cmp);
        assert_eq!(values, (0..16).map(|v| v as f64).collect::<Vec<_>>());
    }

    #[test]
    fn pruned_and_failed_trials_are_recorded() {
        let path = temp_db("prune");
        let study = Study::open(&path, "p", Direction::Maximize, "acc")
            .unwrap()
            .with_sampler(Box::new(RandomSampler))
            .with_pruner(Box::new(MedianPruner { n_startup_trials: 3, n_warmup_steps: 0 }));
        // Curves rise at a rate set by x; low-x trials fall below the median and are cut.
        let ran = study
            .optimize(&StudyOptions { n_trials: 20, ..Default::default() }, |t| {
                let x = t.suggest_float("x", 0.0, 1.0, false)?;
                if t.number == 5 {
                    return Err(TrialError::Failed(Error::State("diverged".into())));
                }
                for step in 1..=5 {
                    t.report(step, x * step as f64)?;
                    if t.should_prune() {
                        return Err(TrialError::Pruned);
                    }
                }
                Ok(5.0 * x)
            })
            .unwrap();
        let pruned: Vec<&TrialRecord> = ran.iter().filter(|t| t.state == TrialState::Pruned).collect();
        assert!(!pruned.is_empty());
        assert_eq!(ran[5].state, TrialState::Failed);
        assert_eq!(ran[5].message.as_deref(), Some("diverged"));
        // Every pruned trial was below the best complete one, and stopped early.
        let best = study.best().unwrap().unwrap().value.unwrap();
        assert!(pruned.iter().all(|t| t.intermediate.len() < 5 && t.params["x"].as_f64().unwrap() * 5.0 < best));
        // A configuration error ends the study instead of failing every trial alike.
        let err = study
            .optimize(&StudyOptions { n_trials: 30, ..Default::default() }, |_| Err(TrialError::Failed(Error::Config("bad key".into()))))
            .unwrap_err();
        assert!(err.to_string().contains("bad key"));
        assert_eq!(study.trials().unwrap().len(), 21);
    }
}
