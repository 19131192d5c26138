//! `descent bench w4`: Keras's `mnist_convnet` on Fashion-MNIST (examples/fashion_cnn.toml,
//! batch 128), one timed epoch after a warm-up, beside PyTorch eager (NCHW and
//! channels_last), JAX (the epoch as one jitted `lax.scan`) and Keras/TensorFlow. Each
//! run is its own process; rounds alternate the systems; every round runs each system
//! twice: on a quiet machine, and with a second thread of this process spinning on one
//! core (a busy neighbour), to see how much each system loses to it.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use descent::data::read_idx;
use descent::experiment::Experiment;
use descent::tensor::Tensor;
use descent::train::FitOptions;
use descent::{Error, Result};

use crate::bench_mlp::{max_rss_mb, median, run_json};

const FASHION: &str = "/usr/share/datasets/fashion-mnist";
const BATCH: usize = 128;
/// Multiply-adds per sample of the forward pass (conv 3×3×1→32 over 26×26, conv
/// 3×3×32→64 over 11×11, dense 1600→10); a training step is about 3× the forward FLOPs.
const FORWARD_MACS: usize = 26 * 26 * 32 * 9 + 11 * 11 * 64 * 288 + 1600 * 10;

fn fashion(split: &str, n: Option<usize>) -> Result<(Tensor, Tensor)> {
    let images = read_idx(format!("{FASHION}/{split}-images-idx3-ubyte.gz"))?;
    let labels = read_idx(format!("{FASHION}/{split}-labels-idx1-ubyte.gz"))?;
    let n = n.unwrap_or(images.rows()).min(images.rows());
    let x: Vec<f32> = images.data()[..n * 784].iter().map(|v| v / 255.0).collect();
    let y: Vec<u32> = labels.data()[..n].iter().map(|&c| c as u32).collect();
    Ok((Tensor::new(x, &[n, 28, 28])?, Tensor::from_classes(y, &[n, 1])?))
}

/// The child side: one timed epoch, one JSON line on stdout.
pub fn child(samples: usize, warmup: usize) -> Result<()> {
    let exp = Experiment::from_file("examples/fashion_cnn.toml")?;
    let (x, y) = fashion("train", Some(samples))?;
    let (xt, yt) = fashion("t10k", None)?;
    let mut model = exp.build_model(x.sample_dims())?;
    let metrics: Vec<&str> = exp.compile.metrics.iter().map(String::as_str).collect();
    model.compile(exp.compile.optimizer.build()?, exp.compile.loss, &metrics)?;
    let first: Vec<usize> = (0..(warmup * BATCH).min(samples)).collect();
    let quiet = |epochs| FitOptions { epochs, batch_size: BATCH, verbose: 0, ..Default::default() };
    model.fit(&x.select_rows(&first), &y.select_rows(&first), quiet(1))?;
    let t = Instant::now();
    model.fit(&x, &y, quiet(1))?;
    let sec = t.elapsed().as_secs_f64();
    let acc = model.evaluate(&xt, &yt, 1000)?.get("accuracy").unwrap_or(f64::NAN);
    let json = serde_json::json!({
        "system": "descent", "workload": "w4", "threads": rayon::current_num_threads(),
        "sec_per_epoch": sec, "samples_per_s": samples as f64 / sec,
        "gflops": 6.0 * FORWARD_MACS as f64 * samples as f64 / sec / 1e9,
        "test_accuracy": acc, "max_rss_mb": max_rss_mb(),
    });
    println!("{json}");
    Ok(())
}

/// Runs `f` while one thread spins (a busy neighbour on one core) when `busy`.
fn with_neighbour<R>(busy: bool, f: impl FnOnce() -> R) -> R {
    if !busy {
        return f();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let spinning = Arc::clone(&stop);
    let spinner = std::thread::spawn(move || {
        let mut x = 0u64;
        while !spinning.load(Ordering::Relaxed) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    });
    let out = f();
    stop.store(true, Ordering::Relaxed);
    let _ = spinner.join();
    out
}

pub fn w4(rounds: usize, python: Option<&Path>, out_dir: &Path, samples: usize) -> Result<()> {
    if !Path::new(FASHION).join("train-images-idx3-ubyte.gz").exists() {
        return Err(Error::Config(format!("W4 trains on Fashion-MNIST from {FASHION}: apt install dataset-fashion-mnist")));
    }
    let me = std::env::current_exe().map_err(|e| Error::State(e.to_string()))?;
    let python = python.filter(|p| p.exists());
    let threads = rayon::current_num_threads().to_string();
    let samples_arg = samples.to_string();
    let mut systems: Vec<&str> = vec!["descent"];
    if python.is_some() {
        systems.extend(["JAX scan", "PyTorch nchw", "PyTorch channels_last", "Keras"]);
    }
    // (system, busy) → runs.
    let mut runs: Vec<((&str, bool), Vec<serde_json::Value>)> = Vec::new();
    for &s in &systems {
        runs.push(((s, false), Vec::new()));
        runs.push(((s, true), Vec::new()));
    }
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        for ((system, busy), rows) in runs.iter_mut() {
            let mut cmd = match *system {
                "descent" => {
                    let mut c = Command::new(&me);
                    c.args(["bench-child", "w4", "--samples", &samples_arg]);
                    c
                }
                "JAX scan" => {
                    let mut c = Command::new(python.expect("venv"));
                    c.args(["bench/w4_jax.py", "--samples", &samples_arg, "--threads", &threads]);
                    c
                }
                "Keras" => {
                    let mut c = Command::new(python.expect("venv"));
                    c.args(["bench/w4_keras.py", "--samples", &samples_arg, "--threads", &threads]).env("KERAS_BACKEND", "tensorflow");
                    c
                }
                torch => {
                    let layout = torch.trim_start_matches("PyTorch ");
                    let mut c = Command::new(python.expect("venv"));
                    c.args(["bench/w4_torch.py", "--samples", &samples_arg, "--threads", &threads, "--layout", layout]);
                    c
                }
            };
            let what = format!("{system}{}", if *busy { " (busy neighbour)" } else { "" });
            rows.push(with_neighbour(*busy, || run_json(&mut cmd, &what))?);
        }
    }
    let ceiling = crate::bench_mlp::ceilings(true).0;
    let col = |rows: &[serde_json::Value], k: &str| -> Vec<f64> { rows.iter().filter_map(|r| r[k].as_f64()).collect() };
    let med = |rows: &[serde_json::Value], k: &str| -> f64 { median(col(rows, k)) };
    let quiet_of = |s: &str| runs.iter().find(|((n, b), _)| *n == s && !*b).map(|(_, r)| med(r, "samples_per_s")).unwrap_or(f64::NAN);
    let ours = quiet_of("descent");
    let mut md = String::from(
        "| system | samples/s quiet [range] | GFLOP/s (% of sgemm ceiling) | samples/s, busy neighbour (kept) | held-out accuracy | peak RSS MB | descent speedup (quiet) |\n|---|---|---|---|---|---|---|\n",
    );
    for &s in &systems {
        let quiet = &runs.iter().find(|((n, b), _)| *n == s && !*b).expect("run").1;
        let busy = &runs.iter().find(|((n, b), _)| *n == s && *b).expect("run").1;
        let v = col(quiet, "samples_per_s");
        let (m, lo, hi) = (median(v.clone()), v.iter().cloned().fold(f64::MAX, f64::min), v.iter().cloned().fold(0.0, f64::max));
        let g = med(quiet, "gflops");
        let b = med(busy, "samples_per_s");
        md += &format!(
            "| {} | {m:.0} [{lo:.0}–{hi:.0}] | {g:.1} ({:.0}%) | {b:.0} ({:.0}%) | {:.3} | {:.0} | {} |\n",
            quiet.first().and_then(|r| r["system"].as_str()).unwrap_or(s),
            100.0 * g / ceiling,
            100.0 * b / m,
            med(quiet, "test_accuracy"),
            med(quiet, "max_rss_mb"),
            if s == "descent" { "—".into() } else { format!("{:.2}×", ours / m) }
        );
    }
    md += &format!(
        "\nOne timed epoch over the first {samples} training images after a warm-up of 10 batches, batch 128; held-out accuracy on the 10,000 test images after that epoch. GFLOP/s counts 3 × the forward pass's {:.2} MFLOP per sample against this machine's sgemm ceiling ({ceiling:.0} GFLOP/s, measured by this command). Busy neighbour: a thread spinning on one core for the whole run.\n",
        2.0 * FORWARD_MACS as f64 / 1e6
    );
    if python.is_none() {
        md += "\nJAX, PyTorch and Keras were not run (no .venv/bin/python: `bash scripts/setup_python.sh`).\n";
    }
    println!("{md}");
    std::fs::create_dir_all(out_dir).map_err(|e| Error::Io { path: out_dir.into(), source: e })?;
    let json = serde_json::json!({
        "workload": "w4", "rounds": rounds, "samples": samples, "threads": rayon::current_num_threads(), "sgemm_ceiling_gflops": ceiling,
        "runs": runs.iter().map(|((s, b), r)| serde_json::json!({"system": s, "busy_neighbour": b, "runs": r})).collect::<Vec<_>>(),
    });
    descent::io::write_atomic(out_dir.join("w4.json"), serde_json::to_string_pretty(&json).expect("json").as_bytes())?;
    descent::io::write_atomic(out_dir.join("w4.md"), md.as_bytes())?;
    eprintln!("wrote {}/w4.json and w4.md", out_dir.display());
    Ok(())
}
