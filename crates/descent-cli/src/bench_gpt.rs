//! `descent bench w5`: nanoGPT's shakespeare_char model at its CPU size
//! (examples/shakespeare_char.toml: 4 layers, 4 heads, width 128, windows of 64, batch
//! 12), training tokens/s over timed steps after a warm-up, beside PyTorch (eager with
//! `scaled_dot_product_attention`, and `torch.compile`) and JAX (a jitted step, and the
//! steps as one jitted `lax.scan`); then generation tokens/s (500 tokens from one
//! prompt, temperature 0.8, top-k 200) beside PyTorch's with a key/value cache. Each run
//! is its own process; rounds alternate the systems.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use descent::data::{BatchStream, TextWindows};
use descent::experiment::Experiment;
use descent::tensor::Tensor;
use descent::train::SampleOptions;
use descent::{Error, Result};

use crate::bench_mlp::{max_rss_mb, median, run_json};

const EXAMPLE: &str = "examples/shakespeare_char.toml";

/// Training FLOPs per token (as bench/shakespeare.py counts them): 6 × the matrices'
/// parameters (embedding lookups excluded, the head included) plus attention's
/// 6·layers·T·C for the causal score and value products.
fn train_flops_per_token(vocab: usize) -> f64 {
    let (l, c, t) = (4.0, 128.0, 64.0);
    6.0 * (l * 12.0 * c * c + c * vocab as f64) + 6.0 * l * t * c
}

/// The child side: warm-up, timed steps, generation; one JSON line on stdout.
pub fn child(steps: usize, warmup: usize) -> Result<()> {
    let exp = Experiment::from_file(EXAMPLE)?;
    let (corpus, mut model) = exp.text_model()?;
    let metrics: Vec<&str> = Vec::new();
    model.compile(exp.compile.optimizer.build()?, exp.compile.loss, &metrics)?;
    let (batch, block) = (exp.fit.batch_size, 64);
    let mut windows = TextWindows::new(corpus.train.clone(), block, (warmup + steps) * batch, 0, "tiny Shakespeare")?;
    windows.begin_epoch(0)?;
    let mut batches = Vec::with_capacity(warmup + steps);
    for _ in 0..warmup + steps {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        windows.next_batch(batch, &mut x, &mut y)?;
        batches.push((Tensor::new(x, &[batch, block])?, Tensor::new(y, &[batch, block])?));
    }
    for (x, y) in &batches[..warmup] {
        model.train_on_batch(x, y)?;
    }
    let t = Instant::now();
    let mut loss = 0.0;
    for (x, y) in &batches[warmup..] {
        loss = model.train_on_batch(x, y)?;
    }
    let sec = t.elapsed().as_secs_f64();
    let tokens = (steps * batch * block) as f64;
    let tok = corpus.tokenizer.clone();
    let prompt = tok.encode("ROMEO:")?;
    let opts = SampleOptions { max_tokens: 500, temperature: 0.8, top_k: Some(200), top_p: None, seed: 1 };
    let g = Instant::now();
    let made = model.generate(&prompt, &opts, |_| Ok(()))?.len();
    let gen_sec = g.elapsed().as_secs_f64();
    let json = serde_json::json!({
        "system": "descent", "workload": "w5", "threads": rayon::current_num_threads(), "steps": steps,
        "tokens_per_s": tokens / sec, "ms_per_step": 1e3 * sec / steps as f64,
        "gflops": train_flops_per_token(tok.vocab_size()) * tokens / sec / 1e9, "loss": loss,
        "gen_tokens_per_s": made as f64 / gen_sec, "gen_tokens": made, "max_rss_mb": max_rss_mb(),
    });
    println!("{json}");
    Ok(())
}

pub fn w5(rounds: usize, python: Option<&Path>, out_dir: &Path, steps: usize) -> Result<()> {
    let me = std::env::current_exe().map_err(|e| Error::State(e.to_string()))?;
    let python = python.filter(|p| p.exists());
    let threads = rayon::current_num_threads().to_string();
    let steps_arg = steps.to_string();
    let mut systems: Vec<&str> = vec!["descent"];
    if python.is_some() {
        systems.extend(["PyTorch eager", "PyTorch compile", "JAX step", "JAX scan"]);
    }
    let mut runs: Vec<(&str, Vec<serde_json::Value>)> = systems.iter().map(|s| (*s, Vec::new())).collect();
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        for (system, rows) in runs.iter_mut() {
            let mut cmd = match *system {
                "descent" => {
                    let mut c = Command::new(&me);
                    c.args(["bench-child", "w5", "--samples", &steps_arg]);
                    c
                }
                other => {
                    let (script, mode) = match other.split_once(' ').expect("system mode") {
                        ("PyTorch", m) => ("bench/w5_torch.py", m),
                        (_, m) => ("bench/w5_jax.py", m),
                    };
                    let mut c = Command::new(python.expect("venv"));
                    c.args([script, "--mode", mode, "--steps", &steps_arg, "--threads", &threads]);
                    c
                }
            };
            rows.push(run_json(&mut cmd, system)?);
        }
    }
    let ceiling = crate::bench_mlp::ceilings(true).0;
    let col = |rows: &[serde_json::Value], k: &str| -> Vec<f64> { rows.iter().filter_map(|r| r[k].as_f64()).collect() };
    let med = |rows: &[serde_json::Value], k: &str| -> f64 {
        let v = col(rows, k);
        if v.is_empty() { f64::NAN } else { median(v) }
    };
    let ours = med(&runs[0].1, "tokens_per_s");
    let ours_gen = med(&runs[0].1, "gen_tokens_per_s");
    let mut md = String::from(
        "| system | training tokens/s [range] | ms/step | GFLOP/s (% of sgemm ceiling) | loss after the timed steps | generation tokens/s | peak RSS MB | descent speedup (training / generation) |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (s, rows) in &runs {
        let v = col(rows, "tokens_per_s");
        let (m, lo, hi) = (median(v.clone()), v.iter().cloned().fold(f64::MAX, f64::min), v.iter().cloned().fold(0.0, f64::max));
        let g = med(rows, "gflops");
        let gen = med(rows, "gen_tokens_per_s");
        let gen_text = if gen.is_nan() { "—".to_string() } else { format!("{gen:.0}") };
        let speed = if *s == "descent" {
            "—".to_string()
        } else if gen.is_nan() {
            format!("{:.2}× / —", ours / m)
        } else {
            format!("{:.2}× / {:.2}×", ours / m, ours_gen / gen)
        };
        md += &format!(
            "| {s} | {m:.0} [{lo:.0}–{hi:.0}] | {:.1} | {g:.1} ({:.0}%) | {:.3} | {gen_text} | {:.0} | {speed} |\n",
            med(rows, "ms_per_step"),
            100.0 * g / ceiling,
            med(rows, "loss"),
            med(rows, "max_rss_mb"),
        );
    }
    md += &format!(
        "\n{steps} timed training steps of 12 windows × 64 characters after 20 warm-up steps (compilation, for torch.compile and JAX), AdamW with global clipping; GFLOP/s counts 6 × the matrices' parameters per token plus attention, against this machine's sgemm ceiling ({ceiling:.0} GFLOP/s, measured by this command). Generation: 500 tokens after \"ROMEO:\" at temperature 0.8, top-k 200 (both with a key/value cache while the context fits the 64-token window, then recomputing the window for each token: learned positions shift, as nanoGPT crops).\n"
    );
    if python.is_none() {
        md += "\nPyTorch and JAX were not run (no .venv/bin/python: `bash scripts/setup_python.sh`).\n";
    }
    println!("{md}");
    std::fs::create_dir_all(out_dir).map_err(|e| Error::Io { path: out_dir.into(), source: e })?;
    let json = serde_json::json!({
        "workload": "w5", "rounds": rounds, "steps": steps, "threads": rayon::current_num_threads(), "sgemm_ceiling_gflops": ceiling,
        "runs": runs.iter().map(|(s, r)| serde_json::json!({"system": s, "runs": r})).collect::<Vec<_>>(),
    });
    descent::io::write_atomic(out_dir.join("w5.json"), serde_json::to_string_pretty(&json).expect("json").as_bytes())?;
    descent::io::write_atomic(out_dir.join("w5.md"), md.as_bytes())?;
    eprintln!("wrote {}/w5.json and w5.md", out_dir.display());
    Ok(())
}
