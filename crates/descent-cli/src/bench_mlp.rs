//! `descent bench w1|w2`: the MLP workloads of WORKLOADS.md, descent beside PyTorch.
//!
//! Each measurement runs in its own process (descent re-executes itself as
//! `descent bench-child w1|w2`), so peak memory and start-up are measured the same way
//! for both systems; rounds alternate descent and PyTorch, and medians are reported.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use descent::data::{teacher_classification, TeacherSpec};
use descent::nn::{Activation, Dense, Loss, Sequential};
use descent::optim::Adam;
use descent::train::{Callback, FitOptions, Logs, TrainContext};
use descent::{Error, Result};

/// Records the wall time of every epoch.
struct EpochTimer {
    start: Option<Instant>,
    seconds: Vec<f64>,
}

impl Callback for EpochTimer {
    fn on_epoch_begin(&mut self, _epoch: usize, _ctx: &mut TrainContext) {
        self.start = Some(Instant::now());
    }
    fn on_epoch_end(&mut self, _epoch: usize, _logs: &Logs, _ctx: &mut TrainContext) {
        if let Some(s) = self.start.take() {
            self.seconds.push(s.elapsed().as_secs_f64());
        }
    }
}

fn max_rss_mb() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v[v.len() / 2]
}

/// The child side: one workload, one JSON line on stdout.
pub fn child(workload: &str) -> Result<()> {
    let (spec, features, hidden, batch, epochs): (TeacherSpec, usize, &[usize], usize, usize) = match workload {
        "w1" => (TeacherSpec::W1, 100, &[64], 32, 10),
        "w2" => (TeacherSpec::W2, 784, &[1024, 1024], 256, 2),
        other => return Err(Error::Config(format!("unknown workload `{other}` (w1, w2)"))),
    };
    let (train, test) = teacher_classification(&spec, 60_000, 10_000, 0)?;
    // Start-up with the data in memory: build, compile and run the first training step.
    let t = Instant::now();
    let mut layers: Vec<Box<dyn descent::nn::Layer>> = Vec::new();
    for (i, h) in hidden.iter().enumerate() {
        let d = Dense::new(*h, Activation::Relu);
        layers.push(Box::new(if i == 0 { d.input_shape(&[features]) } else { d }));
    }
    layers.push(Box::new(Dense::new(10, Activation::Linear)));
    let mut model = Sequential::new(layers)?;
    model.compile(Adam::new(1e-3), Loss::sparse_categorical_crossentropy(true), &["accuracy"])?;
    let first: Vec<usize> = (0..batch).collect();
    model.train_on_batch(&train.x.select_rows(&first), &train.y.select_rows(&first))?;
    let first_step_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut timer = EpochTimer { start: None, seconds: Vec::new() };
    model.fit(
        &train.x,
        &train.y,
        FitOptions { epochs, batch_size: batch, verbose: 0, callbacks: vec![Box::new(TimerRef(&mut timer))], ..Default::default() },
    )?;
    let seconds = timer.seconds;
    let acc = model.evaluate(&test.x, &test.y, 1024)?.get("accuracy").unwrap_or(f64::NAN);
    let steps = train.len().div_ceil(batch) as f64;
    let sec = median(seconds[1..].to_vec());
    let p: usize = model.params().count();
    let weights: usize = p - model.layers().iter().filter_map(|l| l.params().get(1).map(|b| model.params().entry(*b).shape.numel())).sum::<usize>();
    let json = serde_json::json!({
        "system": "descent", "workload": workload, "threads": rayon::current_num_threads(),
        "sec_per_epoch": sec, "steps_per_s": steps / sec, "samples_per_s": train.len() as f64 / sec,
        "gflops": 6.0 * weights as f64 * train.len() as f64 / sec / 1e9,
        "test_accuracy": acc, "max_rss_mb": max_rss_mb(), "first_step_ms": first_step_ms,
    });
    println!("{json}");
    Ok(())
}

/// Lets a borrowed callback be passed where fit takes ownership.
struct TimerRef<'a>(&'a mut EpochTimer);

impl Callback for TimerRef<'_> {
    fn on_epoch_begin(&mut self, e: usize, c: &mut TrainContext) {
        self.0.on_epoch_begin(e, c)
    }
    fn on_epoch_end(&mut self, e: usize, l: &Logs, c: &mut TrainContext) {
        self.0.on_epoch_end(e, l, c)
    }
}

fn run_json(cmd: &mut Command, what: &str) -> Result<serde_json::Value> {
    let out = cmd.output().map_err(|e| Error::State(format!("{what}: {e}")))?;
    if !out.status.success() {
        return Err(Error::State(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str(line).map_err(|e| Error::State(format!("{what} printed `{line}`: {e}")))
}

pub fn mlp(workload: &str, rounds: usize, python: Option<&Path>) -> Result<()> {
    let me = std::env::current_exe().map_err(|e| Error::State(e.to_string()))?;
    let script = format!("bench/{workload}_torch.py");
    let python = python.filter(|p| p.exists());
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        ours.push(run_json(Command::new(&me).args(["bench-child", workload]), "descent")?);
        if let Some(py) = python {
            let mut cmd = Command::new(py);
            cmd.arg(&script).args(["--threads", &rayon::current_num_threads().to_string()]);
            if workload == "w1" {
                cmd.args(["--epochs", "10"]);
            }
            theirs.push(run_json(&mut cmd, &script)?);
        }
    }
    let key = if workload == "w1" { "steps_per_s" } else { "samples_per_s" };
    let col = |rows: &[serde_json::Value], k: &str| -> Vec<f64> { rows.iter().filter_map(|r| r[k].as_f64()).collect() };
    let range = |v: &[f64]| format!("{:.0}–{:.0}", v.iter().cloned().fold(f64::MAX, f64::min), v.iter().cloned().fold(0.0, f64::max));
    let d = col(&ours, key);
    println!("{workload}: descent {key} {:.0} [{}]", median(d.clone()), range(&d));
    for extra in ["gflops", "test_accuracy", "max_rss_mb", "first_step_ms"] {
        let v = col(&ours, extra);
        if !v.is_empty() {
            println!("  descent {extra}: {:.3}", median(v));
        }
    }
    if !theirs.is_empty() {
        let t = col(&theirs, key);
        println!("{workload}: PyTorch {key} {:.0} [{}]", median(t.clone()), range(&t));
        for extra in ["gflops", "test_accuracy", "max_rss_mb"] {
            let v = col(&theirs, extra);
            if !v.is_empty() {
                println!("  PyTorch {extra}: {:.3}", median(v));
            }
        }
        println!("{workload}: descent / PyTorch = {:.2}×", median(d) / median(t));
    }
    Ok(())
}
