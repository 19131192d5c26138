//! Helpers shared by the CLI's integration tests (each test crate compiles this module and
//! uses part of it).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the `descent` binary in `cwd`.
pub fn descent(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_descent")).args(args).current_dir(cwd).output().expect("runs")
}

/// Standard output and error together, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A fresh temporary folder for one test.
pub fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("descent-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The bundled digits data.
pub fn digits() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv").to_string()
}

/// A small classifier experiment (Dense 32 ReLU → 10, sparse cross-entropy from logits,
/// accuracy, seed 3, 20% held out) on `data`, with `extra_fit` appended to `[fit]`.
pub fn experiment_toml(data: &str, optimizer: &str, epochs: usize, verbose: u8, extra_fit: &str) -> String {
    format!(
        r#"
seed = 3
[data]
format = "csv"
path = "{data}"
test_split = 0.2
standardize = true
[model]
layers = [{{ type = "dense", units = 32, activation = "relu" }}, {{ type = "dense", units = 10 }}]
[compile]
optimizer = {optimizer}
loss = {{ name = "sparse_categorical_crossentropy", from_logits = true }}
metrics = ["accuracy"]
[fit]
epochs = {epochs}
verbose = {verbose}
{extra_fit}
"#
    )
}

/// `descent args` in `cwd`, killed with SIGKILL `at` after it started: true when the kill
/// landed, false when the command finished first (it must then have succeeded).
pub fn run_and_kill(args: &[&str], cwd: &Path, at: std::time::Duration) -> bool {
    run_and_kill_when(args, cwd, &mut |elapsed| elapsed >= at)
}

/// `descent args` in `cwd`, killed with SIGKILL as soon as `now(time since it started)`
/// says so (asked every 200 µs): true when the kill landed, false when the command
/// finished first (it must then have succeeded).
pub fn run_and_kill_when(args: &[&str], cwd: &Path, now: &mut dyn FnMut(std::time::Duration) -> bool) -> bool {
    use std::time::{Duration, Instant};
    let log = cwd.join("killed-run.log");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(args)
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("runs");
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{}", std::fs::read_to_string(&log).unwrap_or_default());
            return false;
        }
        if now(started.elapsed()) {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A random-search study of `trials` trials (2-fold CV, one worker) over the learning rate
/// and the first layer's units of `experiment`; `extra` goes into `[study]`.
pub fn study_toml(experiment: &str, trials: usize, extra: &str) -> String {
    format!(
        r#"
[study]
experiment = "{experiment}"
trials = {trials}
jobs = 1
sampler = "random"
{extra}
[objective]
metric = "accuracy"
folds = 2
[space."compile.optimizer.learning_rate"]
type = "log_uniform"
low = 1e-3
high = 3e-2
[space."model.layers.0.units"]
type = "int"
low = 8
high = 64
"#
    )
}
