//! The training doctor: reads a run folder (its config and `telemetry.json`) and names
//! what went wrong — unstable, poor (underfit), overfit or slow — each finding with its
//! evidence (numbers, epochs, steps), its likely cause and a concrete fix as TOML edits
//! that `descent doctor RUN --fix OUT.toml` applies to the run's experiment.
//!
//! The rules, in the order they are tried (one finding per problem, the most specific
//! cause; a diverged run gets only its instability finding):
//!
//! - **unstable**: a non-finite loss (where it first appeared); a loss that ended above
//!   the trivial baseline; loss spikes (a step above 3× the median of the 20 before it
//!   and above the loss training started from); gradient-norm explosions (a sampled norm
//!   above 20× the median). Fixes from the Deep Learning Tuning Playbook: a lower
//!   learning rate (the range test's `valley` when the doctor may run it), clipping at
//!   the 90th percentile of the observed norms — or, when more than half the updates are
//!   already clipped, a lower rate instead.
//! - **poor / underfit**, when the final training loss is above a quarter of the trivial
//!   baseline (predicting the class prior, or the targets' mean): dead ReLUs (≥ half a
//!   layer's units dead), vanishing gradients (the first layer's gradient norm below
//!   1e-3 of the last's, or saturated sigmoid/tanh: hidden sigmoid/tanh become relu
//!   with He initialization), a learning rate too low (median update/weight ratio below
//!   1e-4, against the ~1e-3 of healthy training; vanishing gradients also make it
//!   small, so they are tried first), still improving at the end (train longer), else
//!   too little capacity (four times the hidden units).
//! - **overfit**: the validation loss rose ≥ 10% above its best, ≥ 2 epochs after it,
//!   while the training loss fell (the gap widening) — early stopping with the best
//!   weights restored and decoupled weight decay; dropout, more data or augmentation.
//! - **slow**: more than 30% of the time waiting for data; a batch under 8 samples;
//!   training steps below 5% of the machine's matrix-multiply ceiling (3× the forward
//!   pass's FLOPs a sample, over the time not spent waiting for data, against sgemm
//!   measured on this machine when it is the run's) — the telemetry sampling too often,
//!   or a batch too small for the model's work.
//!
//! The spike and overfitting rules are `train::warning_signs`', which `fit` also
//! applies live to warn as they happen.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Experiment;
use crate::error::{Error, Result};
use crate::nn::Loss;
use crate::train::{warning_signs, Telemetry};

#[cfg(test)]
#[path = "doctor_tests.rs"]
mod tests;

/// The decoupled weight decay the overfitting fix adds: Keras AdamW's default.
const WEIGHT_DECAY: f64 = 0.004;

/// The four problems of training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    Unstable,
    Underfit,
    Overfit,
    Slow,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Problem::Unstable => "unstable",
            Problem::Underfit => "poor (underfit)",
            Problem::Overfit => "overfit",
            Problem::Slow => "slow",
        })
    }
}

/// One step of a path into the experiment's TOML: a key or an array index.
#[derive(Clone, Debug, PartialEq)]
pub enum Key {
    Name(String),
    Index(usize),
}

/// A change to the experiment: set the value at a path, or append to the array there.
#[derive(Clone, Debug, PartialEq)]
pub struct Edit {
    pub path: Vec<Key>,
    pub value: toml::Value,
    pub append: bool,
}

impl Edit {
    fn set(path: &str, value: impl Into<toml::Value>) -> Edit {
        Edit { path: parse_path(path), value: value.into(), append: false }
    }
    fn append(path: &str, value: impl Into<toml::Value>) -> Edit {
        Edit { path: parse_path(path), value: value.into(), append: true }
    }
}

/// `compile.optimizer.learning_rate`, `model.layers[0].units`.
fn parse_path(path: &str) -> Vec<Key> {
    let mut keys = Vec::new();
    for part in path.split('.') {
        match part.split_once('[') {
            Some((name, rest)) => {
                keys.push(Key::Name(name.to_string()));
                keys.push(Key::Index(rest.trim_end_matches(']').parse().expect("index in a doctor path")));
            }
            None => keys.push(Key::Name(part.to_string())),
        }
    }
    keys
}

impl std::fmt::Display for Edit {
    /// As a TOML line under its table: `[compile.optimizer] learning_rate = 0.001`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (last, table) = self.path.split_last().expect("non-empty path");
        let mut head = String::new();
        for k in table {
            match k {
                Key::Name(n) if head.is_empty() => head.push_str(n),
                Key::Name(n) => {
                    head.push('.');
                    head.push_str(n);
                }
                Key::Index(i) => head.push_str(&format!("[{i}]")),
            }
        }
        let last = match last {
            Key::Name(n) => n.clone(),
            Key::Index(i) => format!("[{i}]"),
        };
        let value = inline(&self.value);
        match (self.append, head.is_empty()) {
            (true, true) => write!(f, "{last} += {value}"),
            (true, false) => write!(f, "[{head}] {last} += {value}"),
            (false, true) => write!(f, "{last} = {value}"),
            (false, false) => write!(f, "[{head}] {last} = {value}"),
        }
    }
}

/// A value as inline TOML.
fn inline(v: &toml::Value) -> String {
    match v {
        toml::Value::Table(t) => {
            let parts: Vec<String> = t.iter().map(|(k, v)| format!("{k} = {}", inline(v))).collect();
            format!("{{ {} }}", parts.join(", "))
        }
        toml::Value::Array(a) => format!("[{}]", a.iter().map(inline).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// One thing the doctor found.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub problem: Problem,
    /// A short name: `diverged`, `dead_relu`, …
    pub code: &'static str,
    pub title: String,
    /// The numbers behind it.
    pub evidence: Vec<String>,
    pub cause: String,
    /// What to change, in words (the edits are the exact TOML).
    pub fix: String,
    pub edits: Vec<Edit>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "[{}] {}", self.problem, self.title)?;
        for e in &self.evidence {
            writeln!(f, "  evidence: {e}")?;
        }
        writeln!(f, "  likely cause: {}", self.cause)?;
        writeln!(f, "  fix: {}", self.fix)?;
        for e in &self.edits {
            writeln!(f, "    {e}")?;
        }
        Ok(())
    }
}

/// A run folder as the doctor reads it.
pub struct RunRecord {
    pub dir: PathBuf,
    pub experiment: Experiment,
    /// The run's `config.toml` as a table (what `--fix` edits).
    pub config: toml::Table,
    pub telemetry: Telemetry,
    /// `diverged` or `failed` for a run that stopped with an error.
    pub status: Option<String>,
}

impl RunRecord {
    /// Reads `config.toml`, `telemetry.json` and `status.json` (when present) of `dir`.
    pub fn load(dir: &Path) -> Result<RunRecord> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))
        };
        let missing = super::missing_run_files(dir);
        if !dir.join("telemetry.json").exists() && !missing.is_empty() && !dir.join(super::STATUS_FILE).exists() {
            let message = match dir.join("config.toml").exists() {
                true => format!("an incomplete run folder: no {} (the run was killed, or is still running): run it again", missing.join(", ")),
                false => format!("not a run folder, or one killed before it wrote anything: it holds none of {}", missing.join(", ")),
            };
            return Err(Error::format(dir, message));
        }
        if !dir.join("telemetry.json").exists() {
            return Err(Error::format(
                dir,
                "no telemetry.json in this run folder (a run made with `telemetry_every = 0`, or by a descent before telemetry): rerun it to diagnose it",
            ));
        }
        let text = read("config.toml")?;
        let config: toml::Table = text.parse().map_err(|e: toml::de::Error| Error::format(dir.join("config.toml"), e.to_string()))?;
        let experiment = Experiment::from_toml(&text).map_err(|e| Error::format(dir.join("config.toml"), e.to_string()))?;
        let telemetry = Telemetry::from_json(&read("telemetry.json")?).map_err(|m| Error::format(dir.join("telemetry.json"), m))?;
        let status = match dir.join(super::STATUS_FILE).exists() {
            true => {
                let v: serde_json::Value = serde_json::from_str(&read(super::STATUS_FILE)?).map_err(|e| Error::format(dir.join(super::STATUS_FILE), e.to_string()))?;
                v.get("status").and_then(|s| s.as_str()).map(str::to_string)
            }
            false => None,
        };
        Ok(RunRecord { dir: dir.to_path_buf(), experiment, config, telemetry, status })
    }

    /// One logged value per epoch (NaN where missing).
    fn series(&self, name: &str) -> Vec<f64> {
        self.telemetry.epochs.iter().map(|e| e.logs.get(name).copied().unwrap_or(f64::NAN)).collect()
    }

    /// The learning rate the run started with.
    fn learning_rate(&self) -> f64 {
        // Through f32's shortest decimal form: 1e-6, not 9.999999974752427e-7.
        self.telemetry.steps.learning_rate.first().map_or(1e-3, |&l| l.to_string().parse().unwrap_or(l as f64))
    }
}

/// What the doctor may consult beyond the run folder.
pub struct Consult<'a> {
    /// The range test on the run's experiment, run when a finding blames the learning
    /// rate (`None`: fall back to ×0.1 / ×10 rules).
    pub lr_find: Option<&'a mut dyn FnMut() -> Option<f64>>,
    /// The trivial baseline's loss on the training data (class prior, targets' mean).
    pub baseline: Option<f64>,
    /// The machine's matrix-multiply ceiling in GFLOP/s (`machine_ceiling`), measured
    /// only when the run trained long enough to judge its speed (`None`: not judged).
    pub ceiling: Option<&'a mut dyn FnMut() -> Option<f64>>,
}

/// Names the problems of a run; a healthy run gets none.
pub fn diagnose(run: &RunRecord, mut consult: Consult) -> Vec<Finding> {
    let mut findings = Vec::new();
    let t = &run.telemetry;
    let lr = run.learning_rate();
    let mut suggest = |fallback: f64| -> (f64, String) {
        match consult.lr_find.as_mut().and_then(|f| f()) {
            Some(v) => (super::round3(v), "the learning-rate range test's `valley` (descent lr-find)".to_string()),
            None => (super::round3(fallback), "no range test run".to_string()),
        }
    };
    let losses = run.series("loss");
    let first_loss = warning_signs::starting_loss(&t.steps.loss);
    let final_loss = losses.iter().rev().copied().find(|l| l.is_finite());
    let baseline = consult.baseline;
    let grad_norms: Vec<f64> = t.steps.grad_norm.iter().chain(&t.sample_grad_norm).map(|&g| g as f64).filter(|g| g.is_finite()).collect();
    let clipped = t.steps.clipped.iter().filter(|c| **c).count();
    let clipped_share = clipped as f64 / t.steps.clipped.len().max(1) as f64;

    // --- unstable -------------------------------------------------------------------
    if let Some(d) = &t.divergence {
        let (new_lr, why) = suggest(lr / 10.0);
        let new_lr = if new_lr < lr { new_lr } else { super::round3(lr / 10.0) };
        let mut evidence = vec![format!("{d}")];
        if let Some(max) = grad_norms.iter().copied().reduce(f64::max) {
            evidence.push(format!("largest gradient norm observed {max:.3e} (median {:.3e})", median(grad_norms.iter().copied())));
        }
        findings.push(Finding {
            problem: Problem::Unstable,
            code: "diverged",
            title: "the loss diverged to a non-finite value".into(),
            evidence,
            cause: format!("updates too large for the loss surface at learning rate {lr:e} (or non-finite input)"),
            fix: format!("lower the learning rate to {new_lr:e} ({why}); add warmup or clipping if it still spikes"),
            edits: vec![Edit::set("compile.optimizer.learning_rate", new_lr)],
        });
        return findings;
    }
    let spikes = warning_signs::spike_steps(&t.steps.loss);
    // An explosion is judged against the norms before it: early training's large
    // gradients (a loss far from its minimum) are not explosions.
    let explosion = {
        let g = &t.sample_grad_norm;
        (5..g.len())
            .map(|i| (i, g[i] as f64, median(g[..i].iter().map(|&x| x as f64))))
            .filter(|(_, g, m)| g.is_finite() && *g > 20.0 * m)
            .max_by(|a, b| (a.1 / a.2).total_cmp(&(b.1 / b.2)))
            .map(|(i, g, m)| (t.sample_steps[i], g, m))
    };
    let above_baseline = match (final_loss, baseline) {
        (Some(f), Some(b)) if f > 1.5 * b => Some((f, b)),
        _ => None,
    };
    if above_baseline.is_some() || spikes.len() >= warning_signs::SPIKES_TO_WARN || explosion.is_some() || clipped_share > 0.5 {
        let mut evidence = Vec::new();
        if let Some((f, b)) = above_baseline {
            evidence.push(format!("final training loss {f:.4} is above the trivial baseline {b:.4} (predicting the prior; training started at {first_loss:.4})"));
        }
        if !spikes.is_empty() {
            let shown: Vec<String> = spikes.iter().take(5).map(|s| format!("step {}", s + 1)).collect();
            evidence.push(format!("{} loss spikes (a step above 3× the median of the 20 before it and above the starting loss), at {}", spikes.len(), shown.join(", ")));
        }
        if let Some((step, g, m)) = explosion {
            evidence.push(format!("gradient norm {g:.3e} at step {} is {:.0}× the median {m:.3e} of the samples before it", step + 1, g / m));
        }
        if t.optimizer.clipnorm.is_some() || t.optimizer.global_clipnorm.is_some() {
            evidence.push(format!("{:.0}% of the updates were clipped", 100.0 * clipped_share));
        }
        let p90 = percentile(&grad_norms, 0.9);
        let (fix, edits) = if clipped_share > 0.5 || above_baseline.is_some() || p90.is_none() {
            let (new_lr, why) = suggest(lr / 10.0);
            let new_lr = if new_lr < lr { new_lr } else { super::round3(lr / 10.0) };
            let reason = if clipped_share > 0.5 { "more than half the updates are clipped, so clipping is doing the learning rate's job: " } else { "" };
            (format!("{reason}lower the learning rate to {new_lr:e} ({why})"), vec![Edit::set("compile.optimizer.learning_rate", new_lr)])
        } else {
            let c = super::round3(p90.unwrap_or(1.0));
            (format!("clip the global gradient norm at {c:e}, the 90th percentile of the observed norms"), vec![Edit::set("compile.optimizer.global_clipnorm", c)])
        };
        findings.push(Finding {
            problem: Problem::Unstable,
            code: if above_baseline.is_some() { "loss_above_baseline" } else if explosion.is_some() { "gradient_explosion" } else if spikes.len() >= warning_signs::SPIKES_TO_WARN { "loss_spikes" } else { "clipped_too_often" },
            title: "training is unstable".into(),
            evidence,
            cause: format!("steps too large for the curvature at learning rate {lr:e}, or rare large gradients"),
            fix,
            edits,
        });
        if above_baseline.is_some() {
            return findings;
        }
    }

    // --- overfit --------------------------------------------------------------------
    let val = run.series("val_loss");
    // An unstable run's rising validation loss is its instability, not overfitting.
    let mut overfit = false;
    let unstable = findings.iter().any(|f| f.problem == Problem::Unstable);
    if let Some((best, last)) = warning_signs::overfitting(&val, &losses).filter(|_| !unstable) {
        let (best_val, final_val, train_best, train_final) = (val[best], val[last], losses[best], losses[last]);
        overfit = true;
        let edit = {
            let mut es = toml::Table::new();
            es.insert("type".into(), "early_stopping".into());
            es.insert("monitor".into(), "val_loss".into());
            es.insert("patience".into(), toml::Value::Integer(((last - best) as i64 / 2).clamp(2, 5)));
            es.insert("restore_best_weights".into(), true.into());
            Edit::append("callbacks", toml::Value::Table(es))
        };
        // Decoupled weight decay, when the optimizer has none (nor coupled L2) yet.
        let optimizer = run.config.get("compile").and_then(|c| c.get("optimizer"));
        let decay = optimizer
            .filter(|o| o.is_table() && o.get("weight_decay").is_none() && o.get("l2").is_none())
            .map(|_| Edit::set("compile.optimizer.weight_decay", WEIGHT_DECAY));
        findings.push(Finding {
            problem: Problem::Overfit,
            code: "overfit",
            title: "the model overfits: validation loss rises while training loss falls".into(),
            evidence: vec![
                format!("val_loss was lowest at epoch {} ({best_val:.4}) and ended at {final_val:.4} (+{:.0}%) at epoch {}", best + 1, 100.0 * (final_val / best_val - 1.0), last + 1),
                format!("training loss fell from {train_best:.4} to {train_final:.4} meanwhile; the gap grew from {:.4} to {:.4}", best_val - train_best, final_val - train_final),
            ],
            cause: "the model memorizes the training samples: too much capacity or too many epochs for this much data".into(),
            fix: match decay {
                Some(_) => format!("stop early and keep the best epoch's weights, and decay the weights (weight_decay = {WEIGHT_DECAY}, Keras AdamW's default); dropout, more data or augmentation also help, and cross-validation (descent cv) chooses among them"),
                None => "stop early and keep the best epoch's weights; also consider stronger weight decay, dropout, more data or augmentation, and cross-validation (descent cv) to choose among them".into(),
            },
            edits: std::iter::once(edit).chain(decay).collect(),
        });
    }

    // --- underfit -------------------------------------------------------------------
    // Without a baseline (streamed data), the loss training started from stands in for
    // it: a freshly initialized model predicts close to the prior.
    let healthy_loss = match (final_loss, baseline.or(first_loss.is_finite().then_some(first_loss))) {
        (Some(f), Some(b)) => f <= 0.25 * b,
        _ => false,
    };
    if !healthy_loss && !overfit {
        if let Some(f) = underfit(run, &mut suggest, final_loss, baseline, &losses, &val) {
            findings.push(f);
        }
    }

    // --- slow -----------------------------------------------------------------------
    let (seconds, waiting): (f64, f64) = t.epochs.iter().fold((0.0, 0.0), |(s, w), e| (s + e.seconds, w + e.data_seconds));
    if seconds > 0.0 && waiting / seconds > 0.3 {
        let streamed = matches!(run.experiment.data.source, super::DataSource::Npy { stream: true, .. });
        let edits = if streamed { vec![Edit::set("data.stream", false)] } else { Vec::new() };
        findings.push(Finding {
            problem: Problem::Slow,
            code: "data_bound",
            title: "training waits for data".into(),
            evidence: vec![format!("{:.0}% of the training time ({waiting:.2} s of {seconds:.2} s) went to waiting for the next batch", 100.0 * waiting / seconds)],
            cause: "the input pipeline (reading, decoding, preprocessing) is slower than the training step".into(),
            fix: if streamed { "load the data into memory (it is read once then) — or give the stream a larger window_mb".into() } else { "make the input pipeline faster (preprocess once, store as .npy)".into() },
            edits,
        });
    }
    let throughput = consult.ceiling.as_mut().and_then(|measure| Throughput::of(t, measure));
    let rate_evidence = throughput.as_ref().map(|r| r.to_string());
    if t.batch_size < 8 && t.samples_per_epoch >= 64 {
        findings.push(Finding {
            problem: Problem::Slow,
            code: "batch_too_small",
            title: "the batch is too small to use the cores".into(),
            evidence: std::iter::once(format!("batch_size {} on {} threads", t.batch_size, t.machine.threads)).chain(rate_evidence).collect(),
            cause: "each step's work is too small to split across threads; per-step overhead dominates".into(),
            fix: "train with batches of 32 (and tune the learning rate for it)".into(),
            edits: vec![Edit::set("fit.batch_size", 32)],
        });
    } else if let Some(r) = throughput.filter(|r| r.share() < FAR_BELOW_CEILING) {
        // The recorder's own share first: it is the cause a setting removes outright.
        let sampling = t.sampling_seconds / r.seconds;
        let (cause, fix, edits) = if sampling > 0.2 {
            let every = (t.every * 10).max(50);
            (
                format!("the telemetry samples every {} steps and its per-layer statistics took {:.0}% of the training time", t.every, 100.0 * sampling),
                format!("sample less often: telemetry_every = {every}"),
                vec![Edit::set("fit.telemetry_every", every as i64)],
            )
        } else {
            let batch = (t.batch_size * 4).min(t.samples_per_epoch.max(1)).max(t.batch_size);
            (
                format!("the work of a step ({:.2e} FLOPs at batch_size {}) is too small for the cores: per-op overhead and memory traffic dominate the products", 3.0 * t.forward_flops_per_sample * t.batch_size as f64, t.batch_size),
                format!("train with batches of {batch}, and retune the learning rate for them (descent lr-find)"),
                vec![Edit::set("fit.batch_size", batch as i64)],
            )
        };
        findings.push(Finding {
            problem: Problem::Slow,
            code: "below_ceiling",
            title: "throughput is far below this machine's ceiling".into(),
            evidence: vec![r.to_string()],
            cause,
            fix,
            edits,
        });
    }
    findings
}

/// Below this share of the machine's matrix-multiply ceiling a run is slow: a healthy
/// small model reaches far more (the classic example, 9.5 kFLOP a sample, reaches
/// 49 GFLOP/s = 24% of this machine's 203; at batch 1 it reaches 2.3%).
const FAR_BELOW_CEILING: f64 = 0.05;

/// Training shorter than this is not judged for speed: thread wake-ups and timer
/// granularity dominate it, and a run that short is not slow in any way that matters.
const SHORTEST_TIMED_SECONDS: f64 = 0.5;

/// What a run's training steps reached against the machine's ceiling.
struct Throughput {
    gflops: f64,
    ceiling: f64,
    seconds: f64,
}

impl Throughput {
    /// From the telemetry's FLOP count and timings (the time waiting for data left
    /// out: that is the data-bound rule's) and the ceiling `measure` gives on this
    /// machine; `None` when the run recorded no FLOPs or trained too briefly.
    fn of(t: &Telemetry, measure: &mut dyn FnMut() -> Option<f64>) -> Option<Throughput> {
        let (seconds, waiting) = t.epochs.iter().fold((0.0, 0.0), |(s, w), e| (s + e.seconds, w + e.data_seconds));
        let computing = seconds - waiting;
        let samples: usize = t.epochs.iter().map(|e| (e.steps * t.batch_size).min(t.samples_per_epoch)).sum();
        if t.forward_flops_per_sample <= 0.0 || computing < SHORTEST_TIMED_SECONDS || samples == 0 {
            return None;
        }
        let ceiling = measure().filter(|c| c.is_finite() && *c > 0.0)?;
        Some(Throughput { gflops: 3.0 * t.forward_flops_per_sample * samples as f64 / computing / 1e9, ceiling, seconds: computing })
    }

    fn share(&self) -> f64 {
        self.gflops / self.ceiling
    }
}

impl std::fmt::Display for Throughput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "training reached {:.2} GFLOP/s (3× the forward pass's products), {:.1}% of this machine's {:.0} GFLOP/s matrix-multiply ceiling",
            self.gflops,
            100.0 * self.share(),
            self.ceiling
        )
    }
}

/// This machine's matrix-multiply ceiling, when it is the machine `run` trained on
/// (same processor, SIMD level and thread count): a ceiling measured elsewhere says
/// nothing about the run's speed.
pub fn machine_ceiling(run: &RunRecord) -> Option<f64> {
    let here = crate::train::Machine::current();
    (here == run.telemetry.machine).then(|| crate::tensor::kernels::matmul::sgemm_ceiling_gflops(1024, 5))
}

/// The underfit finding, with its most specific cause.
fn underfit(run: &RunRecord, suggest: &mut dyn FnMut(f64) -> (f64, String), final_loss: Option<f64>, baseline: Option<f64>, losses: &[f64], val: &[f64]) -> Option<Finding> {
    let t = &run.telemetry;
    let lr = run.learning_rate();
    let final_loss = final_loss?;
    let base_text = baseline.map_or(String::new(), |b| format!(" (trivial baseline {b:.4}: predicting the class prior or the mean)"));
    let loss_evidence = format!("final training loss {final_loss:.4}{base_text}");
    let stuck = baseline.is_some_and(|b| final_loss > 0.8 * b);
    let last_half = t.sample_steps.len() / 2;
    let tail = |v: &[f32]| median(v[last_half..].iter().map(|&x| x as f64));
    // Dead ReLUs: the worst layer at the last sample.
    let dead = t.layers.iter().enumerate().filter_map(|(i, l)| l.dead_fraction.last().filter(|d| d.is_finite()).map(|d| (i, *d as f64))).max_by(|a, b| a.1.total_cmp(&b.1));
    if let Some((_, d)) = dead.filter(|(_, d)| *d >= 0.5) {
        let mut edits = Vec::new();
        let mut names = Vec::new();
        for l in t.layers.iter().filter(|l| l.dead_fraction.last().is_some_and(|d| *d >= 0.5)) {
            if let Some(k) = layer_index(&run.config, &l.name) {
                edits.push(Edit::set(&format!("model.layers[{k}].kernel_initializer"), "he_normal"));
                edits.push(Edit::set(&format!("model.layers[{k}].bias_initializer"), "zeros"));
            }
            names.push(format!("'{}' {:.0}%", l.name, 100.0 * *l.dead_fraction.last().unwrap_or(&0.0)));
        }
        return Some(Finding {
            problem: Problem::Underfit,
            code: "dead_relu",
            title: "ReLU units are dead".into(),
            evidence: vec![format!("units at zero for every sample of the batch at the end of training: {}", names.join(", ")), loss_evidence],
            cause: format!("a unit whose pre-activation is negative for every input gets no gradient and never recovers: an initialization that starts them negative (or a step that pushed them there; {:.0}% dead)", 100.0 * d),
            fix: "initialize ReLU layers with He normal weights and zero biases (or lower the learning rate, or use leaky_relu)".into(),
            edits,
        });
    }
    let with_params: Vec<&crate::train::LayerSeries> = t.layers.iter().filter(|l| l.parameters > 0).collect();
    let (first, last) = (with_params.first().map(|l| tail(&l.grad_norm)), with_params.last().map(|l| tail(&l.grad_norm)));
    let saturated = t.layers.iter().filter_map(|l| l.saturated_fraction.last().filter(|s| s.is_finite()).map(|s| (l, *s as f64))).max_by(|a, b| a.1.total_cmp(&b.1));
    let vanishing = matches!((first, last), (Some(f), Some(l)) if with_params.len() >= 3 && l > 0.0 && f / l < 1e-3);
    if stuck && (vanishing || saturated.is_some_and(|(_, s)| s > 0.5)) {
        let mut evidence = vec![loss_evidence];
        if let (Some(f), Some(l)) = (first, last) {
            evidence.push(format!("gradient norm of the first layer {f:.2e}, of the last {l:.2e} ({:.1e} of it; median of the second half of training)", f / l));
        }
        if let Some((l, s)) = saturated.filter(|(_, s)| *s >= 0.1) {
            evidence.push(format!("{:.0}% of '{}' outputs saturated ({})", 100.0 * s, l.name, l.activation.as_deref().unwrap_or("")));
        }
        // The hidden sigmoid/tanh layers become relu with He initialization; the output
        // layer keeps its activation (a sigmoid there is the model's output, not a cause).
        let mut edits = Vec::new();
        if let Some(toml::Value::Array(layers)) = run.config.get("model").and_then(|m| m.get("layers")) {
            for (i, l) in layers.iter().enumerate().take(layers.len().saturating_sub(1)) {
                if matches!(l.get("activation").and_then(|a| a.as_str()), Some("sigmoid" | "tanh")) {
                    edits.push(Edit::set(&format!("model.layers[{i}].activation"), "relu"));
                    edits.push(Edit::set(&format!("model.layers[{i}].kernel_initializer"), "he_normal"));
                }
            }
        }
        return Some(Finding {
            problem: Problem::Underfit,
            code: "vanishing_gradients",
            title: "gradients vanish before they reach the first layers".into(),
            evidence,
            cause: "saturating activations or a deep stack without normalization shrink the gradient layer by layer".into(),
            fix: match edits.is_empty() {
                false => "replace the saturating hidden activations with relu and he_normal initialization (or add batch or layer normalization, or residual connections)".into(),
                true => "add batch or layer normalization between the layers, or residual connections (or use gelu with he_normal initialization)".into(),
            },
            edits,
        });
    }
    let ratios: Vec<f64> = t.layers.iter().filter(|l| l.parameters > 0).map(|l| tail(&l.update_ratio)).filter(|r| r.is_finite()).collect();
    let ratio = median(ratios.iter().copied());
    if ratio.is_finite() && ratio < 1e-4 && stuck {
        let (new_lr, why) = suggest(lr * 10.0);
        let new_lr = if new_lr > lr { new_lr } else { super::round3(lr * 10.0) };
        return Some(Finding {
            problem: Problem::Underfit,
            code: "lr_too_low",
            title: "the learning rate is too low: training barely moves".into(),
            evidence: vec![format!("median update/weight ratio {ratio:.1e} per step (healthy training is near 1e-3)"), loss_evidence],
            cause: format!("learning rate {lr:e} makes each step change the weights by about {ratio:.0e} of their size"),
            fix: format!("raise the learning rate to {new_lr:e} ({why})"),
            edits: vec![Edit::set("compile.optimizer.learning_rate", new_lr)],
        });
    }
    let trend = if val.iter().all(|v| v.is_finite()) && !val.is_empty() { val } else { losses };
    let improving = trend.len() >= 3 && {
        let n = trend.len();
        trend[n - 1] < 0.98 * trend[n - 2] && trend[n - 2] < 0.98 * trend[n - 3]
    };
    if improving {
        let epochs = run.experiment.fit.epochs;
        let n = trend.len();
        return Some(Finding {
            problem: Problem::Underfit,
            code: "still_improving",
            title: "still improving when training stopped".into(),
            evidence: vec![format!("the {} fell {:.1}% and {:.1}% in the last two epochs", if trend.as_ptr() == val.as_ptr() { "validation loss" } else { "training loss" }, 100.0 * (1.0 - trend[n - 1] / trend[n - 2]), 100.0 * (1.0 - trend[n - 2] / trend[n - 3])), loss_evidence],
            cause: "training ended before the loss levelled off".into(),
            fix: format!("train longer: {} epochs instead of {epochs} (with early stopping to stop when it levels off)", epochs * 2),
            edits: vec![Edit::set("fit.epochs", (epochs * 2) as i64)],
        });
    }
    if stuck {
        let mut edits = Vec::new();
        if let Some(toml::Value::Array(layers)) = run.config.get("model").and_then(|m| m.get("layers")) {
            let dense: Vec<usize> = layers.iter().enumerate().filter(|(_, l)| l.get("type").and_then(|t| t.as_str()) == Some("dense")).map(|(i, _)| i).collect();
            for &i in dense.iter().take(dense.len().saturating_sub(1)) {
                if let Some(u) = layers[i].get("units").and_then(|u| u.as_integer()) {
                    edits.push(Edit::set(&format!("model.layers[{i}].units"), u * 4));
                }
            }
        }
        return Some(Finding {
            problem: Problem::Underfit,
            code: "too_little_capacity",
            title: "the model cannot fit the training data".into(),
            evidence: vec![loss_evidence, format!("the loss levelled off with healthy updates (median update/weight ratio {ratio:.1e})")],
            cause: "too little capacity for the task".into(),
            fix: "widen the hidden layers (four times the units) or add a layer".into(),
            edits,
        });
    }
    None
}

/// The index in `[model] layers` of the layer named `name` (explicit or automatic:
/// `dense`, `dense_1`, … counted by type).
fn layer_index(config: &toml::Table, name: &str) -> Option<usize> {
    let layers = config.get("model")?.get("layers")?.as_array()?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (i, l) in layers.iter().enumerate() {
        let kind = l.get("type").and_then(|t| t.as_str()).unwrap_or("");
        let explicit = l.get("name").and_then(|n| n.as_str());
        let c = counts.entry(kind.to_string()).or_insert(0);
        let auto = if *c == 0 { kind.to_string() } else { format!("{kind}_{c}") };
        *c += 1;
        if explicit.unwrap_or(&auto) == name {
            return Some(i);
        }
    }
    None
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[((v.len() - 1) as f64 * q).round() as usize])
}

/// The trivial baseline's loss on an experiment's training split (None for text and
/// streamed sources, which are not loaded whole, and for losses without a baseline).
pub fn experiment_baseline(exp: &Experiment) -> Option<f64> {
    if matches!(exp.data.source, super::DataSource::Text { .. } | super::DataSource::Npy { stream: true, .. }) {
        return None;
    }
    let (train, _) = exp.load_splits().ok()?;
    baseline_loss(&exp.compile.loss, &train.y)
}

/// The loss of the trivial predictor on the training data: the class prior's entropy
/// for cross-entropies, the targets' variance for squared error, the mean absolute
/// deviation for absolute error.
pub fn baseline_loss(loss: &Loss, y: &crate::tensor::Tensor) -> Option<f64> {
    let data = y.data();
    let rows = y.rows().max(1);
    let cols = data.len() / rows;
    let entropy = |p: &[f64]| -p.iter().filter(|p| **p > 0.0).map(|p| p * p.ln()).sum::<f64>();
    match loss {
        Loss::SparseCategoricalCrossentropy { .. } => {
            let k = data.iter().map(|&c| c as usize).max()? + 1;
            let mut counts = vec![0.0f64; k];
            data.iter().for_each(|&c| counts[c as usize] += 1.0);
            let p: Vec<f64> = counts.iter().map(|c| c / data.len() as f64).collect();
            Some(entropy(&p))
        }
        Loss::CategoricalCrossentropy { .. } => {
            let mut p = vec![0.0f64; cols];
            data.chunks_exact(cols).for_each(|r| r.iter().zip(&mut p).for_each(|(v, s)| *s += *v as f64 / rows as f64));
            Some(entropy(&p))
        }
        Loss::BinaryCrossentropy { .. } => {
            let mut p = vec![0.0f64; cols];
            data.chunks_exact(cols).for_each(|r| r.iter().zip(&mut p).for_each(|(v, s)| *s += *v as f64 / rows as f64));
            Some(p.iter().map(|&q| entropy(&[q, 1.0 - q])).sum::<f64>() / cols as f64)
        }
        Loss::MeanSquaredError | Loss::MeanAbsoluteError => {
            let mut total = 0.0;
            for c in 0..cols {
                let col = data.iter().skip(c).step_by(cols).map(|&v| v as f64);
                let mean = col.clone().sum::<f64>() / rows as f64;
                total += match loss {
                    Loss::MeanSquaredError => col.map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64,
                    _ => col.map(|v| (v - mean).abs()).sum::<f64>() / rows as f64,
                };
            }
            Some(total / cols as f64)
        }
        _ => None,
    }
}

/// Applies `edits` to `config`: sets each value (creating tables on the way; a string
/// optimizer `"adam"` becomes `{ name = "adam" }` first) or appends to an array.
pub fn apply_edits(config: &mut toml::Table, edits: &[Edit]) -> Result<()> {
    let mut root = toml::Value::Table(std::mem::take(config));
    let result = edits.iter().try_for_each(|e| apply_one(&mut root, &e.path, e));
    if let toml::Value::Table(t) = root {
        *config = t;
    }
    result
}

fn apply_one(v: &mut toml::Value, path: &[Key], edit: &Edit) -> Result<()> {
    let bad = |why: &str| Error::State(format!("cannot apply `{edit}`: {why}"));
    match path {
        [] => Err(bad("empty path")),
        [Key::Name(n), rest @ ..] => {
            // A name given as a string (`optimizer = "adam"`) becomes a table.
            if let toml::Value::String(s) = v {
                let mut t = toml::Table::new();
                t.insert("name".into(), toml::Value::String(s.clone()));
                *v = toml::Value::Table(t);
            }
            let t = v.as_table_mut().ok_or_else(|| bad(&format!("`{n}` is not inside a table")))?;
            match rest {
                [] if edit.append => {
                    let entry = t.entry(n.clone()).or_insert_with(|| toml::Value::Array(Vec::new()));
                    entry.as_array_mut().ok_or_else(|| bad(&format!("`{n}` is not an array")))?.push(edit.value.clone());
                    Ok(())
                }
                [] => {
                    t.insert(n.clone(), edit.value.clone());
                    Ok(())
                }
                _ => apply_one(t.entry(n.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new())), rest, edit),
            }
        }
        [Key::Index(i), rest @ ..] if !rest.is_empty() => {
            let child = v.as_array_mut().and_then(|a| a.get_mut(*i)).ok_or_else(|| bad(&format!("no element {i}")))?;
            apply_one(child, rest, edit)
        }
        [Key::Index(_)] => Err(bad("a path ends with a key")),
        _ => Err(bad("malformed path")),
    }
}

/// The run's experiment with every finding's edits applied, as TOML text (checked to
/// parse as an experiment).
pub fn fixed_experiment(run: &RunRecord, findings: &[Finding]) -> Result<String> {
    let mut config = run.config.clone();
    let edits: Vec<Edit> = findings.iter().flat_map(|f| f.edits.iter().cloned()).collect();
    apply_edits(&mut config, &edits)?;
    let text = toml::to_string_pretty(&config).map_err(|e| Error::State(e.to_string()))?;
    Experiment::from_toml(&text)?;
    let header = findings.iter().map(|f| format!("#   [{}] {}\n", f.problem, f.title)).collect::<String>();
    Ok(format!("# descent doctor's fix of {}:\n{header}{}", run.dir.display(), text))
}
