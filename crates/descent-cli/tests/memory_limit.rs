//! A memory-mapped data set larger than the process may hold trains to completion:
//! `descent fit` runs under `ulimit -v` (virtual memory, so even mapping the whole file
//! at once would fail) on a 307 MB `.npy` file with a 250 MB limit. The same experiment
//! loading the data into memory fails under that limit, which shows the limit binds.

use std::path::Path;
use std::process::Command;

use descent::data::write_npy_f32;
use descent::rng::hash_uniform;

const ROWS: usize = 300_000;
const FEATURES: usize = 256;
const LIMIT_KB: usize = 250_000;

fn experiment(stream: bool) -> String {
    format!(
        r#"
[data]
format = "npy"
x = "x.npy"
y = "y.npy"
stream = {stream}
window_mb = 16
test_split = 0.0
[model]
layers = [{{ type = "dense", units = 16, activation = "relu" }}, {{ type = "dense", units = 2 }}]
[compile]
optimizer = {{ name = "adam", learning_rate = 0.003 }}
loss = {{ name = "sparse_categorical_crossentropy", from_logits = true }}
metrics = ["accuracy"]
[fit]
epochs = 1
batch_size = 512
verbose = 0
"#
    )
}

fn fit_limited(dir: &Path, file: &str) -> std::process::Output {
    let bin = env!("CARGO_BIN_EXE_descent");
    // Bound what the address space holds besides the data on any machine: two worker
    // threads and two malloc arenas (each arena reserves 64 MB of address space).
    Command::new("sh")
        .env("RAYON_NUM_THREADS", "2")
        .env("MALLOC_ARENA_MAX", "2")
        .arg("-c")
        .arg(format!("ulimit -v {LIMIT_KB} && exec '{bin}' fit {file} --out runs"))
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn mapped_data_larger_than_the_memory_limit_trains() {
    let dir = std::env::temp_dir().join(format!("descent-memlimit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    write_npy_f32(dir.join("x.npy"), &[ROWS, FEATURES], hash_uniform).unwrap();
    // The label: whether the first two features sum above zero.
    write_npy_f32(dir.join("y.npy"), &[ROWS], |r, _| (hash_uniform(r, 0) + hash_uniform(r, 1) > 0.0) as u8 as f32).unwrap();
    let size = std::fs::metadata(dir.join("x.npy")).unwrap().len();
    assert!(size > LIMIT_KB as u64 * 1024, "the data ({size} bytes) must exceed the limit");
    std::fs::write(dir.join("stream.toml"), experiment(true)).unwrap();
    std::fs::write(dir.join("load.toml"), experiment(false)).unwrap();

    let out = fit_limited(&dir, "stream.toml");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "streamed fit failed under the limit: {text}");
    let metrics = std::fs::read_to_string(dir.join("runs/stream-001/metrics.json")).unwrap();
    let metrics: serde_json::Value = serde_json::from_str(&metrics).unwrap();
    assert_eq!(metrics["train_samples"], ROWS);
    let acc = metrics["final_epoch"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.9, "it learned the rule: accuracy {acc}");

    // The limit binds: loading the whole file fails under it — for want of memory, not
    // for any other reason — and the same experiment succeeds without it.
    let out = fit_limited(&dir, "load.toml");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "loading the whole file should not fit under the limit: {text}");
    assert!(text.contains("memory allocation of") || text.contains("Cannot allocate memory"), "it failed for want of memory: {text}");
    let out = Command::new(env!("CARGO_BIN_EXE_descent")).args(["fit", "load.toml", "--out", "runs"]).current_dir(&dir).output().unwrap();
    assert!(out.status.success(), "without the limit it loads and trains: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}
