//! `descent bench w1|w2`: the MLP workloads of docs/workloads.md, descent beside JAX
//! (a whole epoch as one jitted `lax.scan`, the strongest peer on small models, and a
//! jitted step per batch), PyTorch eager and Keras.
//!
//! Each measurement runs in its own process (descent re-executes itself as
//! `descent bench-child w1|w2`), so peak memory and start-up are measured the same way
//! for every system; rounds alternate the systems, and medians are reported.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use descent::data::{teacher_classification, TeacherSpec};
use descent::nn::{Activation, Dense, Loss};
use descent::train::Sequential;
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

pub(crate) fn max_rss_mb() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v[v.len() / 2]
}

/// The child side: one workload, one JSON line on stdout.
/// `telemetry`: steps between telemetry samples, as `[fit] telemetry_every` (0: none).
/// W1 or W2 of docs/workloads.md: (teacher, features, hidden widths, batch, epochs).
pub(crate) fn mlp_workload(workload: &str) -> Result<(TeacherSpec, usize, &'static [usize], usize, usize)> {
    match workload {
        "w1" => Ok((TeacherSpec::W1, 100, &[64], 32, 10)),
        "w2" => Ok((TeacherSpec::W2, 784, &[1024, 1024], 256, 2)),
        other => Err(Error::Config(format!("unknown workload `{other}` (w1, w2)"))),
    }
}

/// Their model: Dense(h, ReLU) for each hidden width → Dense(10); Adam(1e-3), sparse
/// cross-entropy from logits, accuracy.
pub(crate) fn mlp_model(features: usize, hidden: &[usize]) -> Result<descent::train::Model> {
    let mut layers: Vec<Box<dyn descent::nn::Layer>> = Vec::new();
    for (i, h) in hidden.iter().enumerate() {
        let d = Dense::new(*h, Activation::Relu);
        layers.push(Box::new(if i == 0 { d.input_shape(&[features]) } else { d }));
    }
    layers.push(Box::new(Dense::new(10, Activation::Linear)));
    let mut model = Sequential::new(layers)?;
    model.compile(Adam::new(1e-3), Loss::sparse_categorical_crossentropy(true), &["accuracy"])?;
    Ok(model)
}

pub fn child(workload: &str, telemetry: usize) -> Result<()> {
    let (spec, features, hidden, batch, epochs) = mlp_workload(workload)?;
    let generating = Instant::now();
    let (train, test) = teacher_classification(&spec, 60_000, 10_000, 0)?;
    let generation = generating.elapsed();
    // Start-up with the data in memory: build, compile and run the first training step.
    let t = Instant::now();
    let mut model = mlp_model(features, hidden)?;
    let first: Vec<usize> = (0..batch).collect();
    model.train_on_batch(&train.x.select_rows(&first), &train.y.select_rows(&first))?;
    let first_step_ms = t.elapsed().as_secs_f64() * 1e3;
    let exec_to_first_step_ms = exec_to_now_ms().map(|ms| ms - generation.as_secs_f64() * 1e3);
    let mut timer = EpochTimer { start: None, seconds: Vec::new() };
    let mut recorder = (telemetry > 0).then(|| descent::train::Telemetry::new(telemetry));
    model.fit(
        &train.x,
        &train.y,
        FitOptions { epochs, batch_size: batch, verbose: 0, callbacks: vec![Box::new(&mut timer)], telemetry: recorder.as_mut(), ..Default::default() },
    )?;
    let seconds = timer.seconds;
    let acc = model.evaluate(&test.x, &test.y, 1024)?.get("accuracy").unwrap_or(f64::NAN);
    let steps = train.len().div_ceil(batch) as f64;
    let sec = median(seconds[1..].to_vec());
    let p: usize = model.params().count();
    let weights: usize = p - model.layers().iter().filter_map(|l| l.params().get(1).map(|b| model.params().entry(*b).shape.numel())).sum::<usize>();
    let json = serde_json::json!({
        "system": if telemetry > 0 { "descent" } else { "descent (telemetry off)" }, "workload": workload, "threads": rayon::current_num_threads(),
        "sec_per_epoch": sec, "steps_per_s": steps / sec, "samples_per_s": train.len() as f64 / sec,
        "gflops": 6.0 * weights as f64 * train.len() as f64 / sec / 1e9,
        "test_accuracy": acc, "max_rss_mb": max_rss_mb(), "first_step_ms": first_step_ms,
        "exec_to_first_step_ms": exec_to_first_step_ms,
        "telemetry_sampling_share": recorder.as_ref().map(|t| t.sampling_seconds / t.epochs.iter().map(|e| e.seconds).sum::<f64>()),
    });
    println!("{json}");
    Ok(())
}

/// Set by the parent to the wall-clock time (ns since the Unix epoch) just before it
/// spawns the child, so the child can report start-up from process creation.
const SPAWN_ENV: &str = "DESCENT_BENCH_SPAWN_NS";

fn unix_ns() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// Milliseconds since the parent spawned this process (exec, dynamic loading, runtime
/// start-up and everything since), when the parent said when that was.
fn exec_to_now_ms() -> Option<f64> {
    let spawned: u128 = std::env::var(SPAWN_ENV).ok()?.parse().ok()?;
    Some(unix_ns().saturating_sub(spawned) as f64 / 1e6)
}

pub(crate) fn run_json(cmd: &mut Command, what: &str) -> Result<serde_json::Value> {
    let out = cmd.output().map_err(|e| Error::State(format!("{what}: {e}")))?;
    if !out.status.success() {
        return Err(Error::State(format!("{what} failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str(line).map_err(|e| Error::State(format!("{what} printed `{line}`: {e}")))
}

pub fn mlp(workload: &str, rounds: usize, python: Option<&Path>, out_dir: &Path) -> Result<()> {
    let me = std::env::current_exe().map_err(|e| Error::State(e.to_string()))?;
    let python = python.filter(|p| p.exists());
    let threads = rayon::current_num_threads().to_string();
    // (system, runs): descent, then the peers when the venv has them, strongest first.
    // descent as `descent fit` trains (telemetry every 50 steps, its default) and with
    // the telemetry off: the recording's overhead, measured side by side.
    let mut systems: Vec<(&str, Vec<serde_json::Value>)> = vec![("descent", Vec::new()), ("descent (telemetry off)", Vec::new())];
    if let Some(py) = python {
        // descent's own Python front (python/), when the venv has it installed: the same
        // engine driven from Python, which should run at the CLI's speed.
        let has_front = Command::new(py).args(["-c", "import descent._native"]).output().is_ok_and(|o| o.status.success());
        if has_front {
            systems.push(("descent (Python)", Vec::new()));
        }
        for peer in ["JAX scan", "JAX step", "PyTorch", "Keras"] {
            systems.push((peer, Vec::new()));
        }
    }
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        for (system, runs) in systems.iter_mut() {
            let mut cmd = match *system {
                "descent" | "descent (telemetry off)" => {
                    let mut c = Command::new(&me);
                    let every = if *system == "descent" { "50" } else { "0" };
                    c.args(["bench-child", workload, "--telemetry", every]);
                    c
                }
                "descent (Python)" => {
                    let mut c = Command::new(python.expect("venv"));
                    c.args(["python/bench/mlp.py", "--workload", workload, "--child"]);
                    c
                }
                "JAX scan" | "JAX step" => {
                    let mut c = Command::new(python.expect("venv"));
                    let form = if *system == "JAX scan" { "scan" } else { "step" };
                    c.args(["bench/mlp_jax.py", workload, "--form", form, "--threads", &threads]);
                    c
                }
                "PyTorch" => {
                    let mut c = Command::new(python.expect("venv"));
                    c.arg(format!("bench/{workload}_torch.py")).args(["--threads", &threads]);
                    if workload == "w1" {
                        c.args(["--epochs", "10"]);
                    }
                    c
                }
                _ => {
                    let mut c = Command::new(python.expect("venv"));
                    c.args(["bench/keras_mlp.py", workload, "--threads", &threads]).env("KERAS_BACKEND", "tensorflow");
                    c
                }
            };
            cmd.env(SPAWN_ENV, unix_ns().to_string());
            runs.push(run_json(&mut cmd, system)?);
        }
    }
    let gemm_ceiling = if workload == "w2" { Some(ceilings(true).0) } else { None };
    let (key, unit) = if workload == "w1" { ("steps_per_s", "steps/s") } else { ("samples_per_s", "samples/s") };
    let col = |rows: &[serde_json::Value], k: &str| -> Vec<f64> { rows.iter().filter_map(|r| r[k].as_f64()).collect() };
    let med = |rows: &[serde_json::Value], k: &str| -> Option<f64> {
        let v = col(rows, k);
        if v.is_empty() { None } else { Some(median(v)) }
    };
    let ours = med(&systems[0].1, key).unwrap_or(f64::NAN);
    let mut md = format!(
        "| system | {unit} [range] | GFLOP/s | held-out accuracy | peak RSS MB | descent speedup |\n|---|---|---|---|---|---|\n"
    );
    for (system, runs) in &systems {
        let v = col(runs, key);
        let m = median(v.clone());
        let lo = v.iter().cloned().fold(f64::MAX, f64::min);
        let hi = v.iter().cloned().fold(0.0, f64::max);
        let fmt = |x: Option<f64>, d: usize| x.map_or("—".into(), |x| format!("{x:.d$}"));
        md += &format!(
            "| {} | {m:.0} [{lo:.0}–{hi:.0}] | {} | {} | {} | {} |\n",
            runs.first().and_then(|r| r["system"].as_str()).unwrap_or(system),
            fmt(med(runs, "gflops"), 1),
            fmt(med(runs, "test_accuracy"), 3),
            fmt(med(runs, "max_rss_mb"), 0),
            if *system == "descent" { "—".into() } else { format!("{:.2}×", ours / m) }
        );
    }
    if let Some(share) = med(&systems[0].1, "telemetry_sampling_share") {
        md += &format!("\ntelemetry's per-layer samples took {:.2}% of descent's training time (timed inside the run, so the machine's noise does not enter).", 100.0 * share);
    }
    if let Some(off) = med(&systems[1].1, key) {
        md += &format!("\ndescent's telemetry (every 50 steps, `descent fit`'s default) costs {:.1}% of the {unit} of the same run without it.\n", 100.0 * (1.0 - ours / off));
    }
    if let Some(first) = med(&systems[0].1, "first_step_ms") {
        md += &format!("\ndescent: build + compile + first training step {first:.1} ms (data in memory).\n");
    }
    if let Some(exec) = med(&systems[0].1, "exec_to_first_step_ms") {
        md += &format!("descent: process spawn to end of the first training step {exec:.1} ms, less the time spent generating the data set (so: data in memory).\n");
    }
    if let Some(ceiling) = gemm_ceiling {
        let g = med(&systems[0].1, "gflops").unwrap_or(f64::NAN);
        md += &format!("descent reaches {g:.0} GFLOP/s = {:.0}% of this machine's sgemm ceiling ({ceiling:.0} GFLOP/s: the best of descent's GEMM and, with --features compare-gemm, the gemm crate; measured by this command).\n", 100.0 * g / ceiling);
    }
    if python.is_none() {
        md += "\nJAX, PyTorch and Keras were not run (no .venv/bin/python: `bash scripts/setup_python.sh`).\n";
    }
    println!("{md}");
    std::fs::create_dir_all(out_dir).map_err(|e| Error::Io { path: out_dir.into(), source: e })?;
    let json = serde_json::json!({
        "workload": workload, "rounds": rounds, "threads": rayon::current_num_threads(),
        "runs": systems.iter().map(|(s, r)| serde_json::json!({"system": s, "runs": r})).collect::<Vec<_>>(),
    });
    descent::io::write_atomic(out_dir.join(format!("{workload}.json")), serde_json::to_string_pretty(&json).expect("json").as_bytes())?;
    descent::io::write_atomic(out_dir.join(format!("{workload}.md")), md.as_bytes())?;
    eprintln!("wrote {}/{workload}.json and {workload}.md", out_dir.display());
    Ok(())
}

/// W0: the machine's ceilings, measured with descent's own kernels — sgemm 2048³ and
/// STREAM triad over 2^25 floats. Returns (GFLOP/s, GB/s).
pub fn ceilings(print: bool) -> (f64, f64) {
    use descent::tensor::kernels::bandwidth::triad;
    use descent::tensor::kernels::matmul::sgemm_ceiling_gflops;
    let n = 2048;
    let ours = sgemm_ceiling_gflops(n, 5);
    let len = 1 << 25;
    let (mut x, y, z) = (descent::tensor::alloc::zeroed(len), descent::tensor::alloc::filled(len, 1.0), descent::tensor::alloc::filled(len, 2.0));
    let mut stream = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        triad(&mut x, &y, &z, 3.0);
        stream.push(12.0 * len as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    let crate_gemm = crate_gemm_gflops(n);
    let s = median(stream);
    if print {
        let other = crate_gemm.map_or(" (build with --features compare-gemm to also measure the gemm crate)".to_string(), |g| format!(", gemm crate {g:.1}"));
        println!("w0: sgemm 2048³: descent {ours:.1} GFLOP/s{other}; STREAM triad 2^25 f32 {s:.1} GB/s ({} threads)", rayon::current_num_threads());
    }
    (ours.max(crate_gemm.unwrap_or(0.0)), s)
}

/// The `gemm` crate (x86-v4 kernels) on the same product, when built with `compare-gemm`.
#[cfg(feature = "compare-gemm")]
fn crate_gemm_gflops(n: usize) -> Option<f64> {
    // The operands of descent's own measurement (`sgemm_ceiling_gflops`).
    let a: Vec<f32> = (0..n * n).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let mut c = vec![0.0f32; n * n];
    let threads = rayon::current_num_threads();
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        // SAFETY: all three matrices are n×n, row-major, and do not alias.
        unsafe {
            gemm::gemm(
                n, n, n, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), 1, n as isize, b.as_ptr(), 1, n as isize,
                1.0, 1.0, false, false, false, gemm::Parallelism::Rayon(threads),
            );
        }
        runs.push(2.0 * (n * n * n) as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    Some(median(runs))
}

#[cfg(not(feature = "compare-gemm"))]
fn crate_gemm_gflops(_n: usize) -> Option<f64> {
    None
}
