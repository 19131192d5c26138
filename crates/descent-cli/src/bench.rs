//! `descent bench w3`: one optimizer step over 10 tensors of 1M parameters (W3 of
//! WORKLOADS.md) for every optimizer, beside PyTorch's implementations of the same
//! optimizer (per-tensor loop, foreach, fused) and beside a trivial pass with exactly the
//! optimizer's memory traffic (the bandwidth ceiling), all measured by this command.
//! Rounds interleave the systems (descent, PyTorch, descent, …); medians over rounds.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use descent::autograd::ParamStore;
use descent::optim::{Optimizer, OptimizerConfig};
use descent::rng;
use descent::tensor::kernels::bandwidth::traffic_pass;
use descent::tensor::Shape;
use descent::{Error, Result};
use rand_distr::{Distribution, StandardNormal};

const TENSORS: usize = 10;
const TENSOR_LEN: usize = 1_000_000;
const WARMUP: usize = 5;
const STEPS: usize = 50;

/// The W3 contenders: every optimizer with its default hyperparameters, and SGD with
/// momentum (the form most people run).
fn contenders() -> Vec<(String, OptimizerConfig)> {
    let mut out: Vec<(String, OptimizerConfig)> =
        OptimizerConfig::NAMES.iter().map(|n| (n.to_string(), OptimizerConfig::named(n).expect("named"))).collect();
    let mut momentum = OptimizerConfig::named("sgd").expect("sgd");
    if let descent::optim::RuleConfig::Sgd(s) = &mut momentum.rule {
        s.momentum = 0.9;
    }
    out.insert(1, ("sgd_momentum".into(), momentum));
    out
}

fn w3_store(seed: u64) -> ParamStore {
    let mut r = rng::seeded(seed);
    // Huge-page-backed like a model's store (1,000,000 is a multiple of the alignment).
    let mut s = ParamStore::with_capacity(TENSORS * 1_000_000);
    for i in 0..TENSORS {
        s.add(format!("t{i}.kernel"), Shape::matrix(1000, 1000), |b| b.iter_mut().for_each(|v| *v = StandardNormal.sample(&mut r)));
    }
    for g in s.grads_mut() {
        *g = StandardNormal.sample(&mut r);
    }
    assert_eq!(s.len(), TENSORS * 1_000_000, "the store was allocated at its final size");
    s
}

/// Bytes per parameter a step moves: parameters and state read and written once, the
/// gradient read once — plus the extra passes of the per-tensor rules (LAMB re-reads p, m,
/// v and rewrites p after its norms; LARS reads p and g for its norms first; Adafactor
/// reads p for its RMS, then g and p for the second moments and for RMS(u)).
fn bytes_moved(name: &str, states: usize) -> f64 {
    let single = 4.0 * (2.0 * (1 + states) as f64 + 1.0);
    single
        + match name {
            "lamb" => 16.0,
            "lars" => 8.0,
            "adafactor" => 20.0,
            _ => 0.0,
        }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    v[v.len() / 2]
}

fn time_steps(mut step: impl FnMut()) -> f64 {
    let mut times = Vec::with_capacity(STEPS);
    for i in 0..WARMUP + STEPS {
        let t = Instant::now();
        step();
        if i >= WARMUP {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    median(times)
}

/// ms per step of one optimizer, and its number of per-parameter state buffers.
fn time_optimizer(cfg: &OptimizerConfig, store: &mut ParamStore) -> Result<(f64, usize)> {
    let mut opt: Box<dyn Optimizer> = cfg.build()?;
    let ms = time_steps(|| opt.step(store));
    Ok((ms, opt.save_state().buffers.len()))
}


/// The ceiling for an optimizer with `states` buffers (see `kernels::bandwidth`).
fn time_ceiling(store: &mut ParamStore, states: &mut [Vec<f32>]) -> f64 {
    let (mut values, grads, _) = store.host_parts_mut();
    let (values, grads) = (std::ops::DerefMut::deref_mut(&mut values), std::ops::Deref::deref(&grads));
    time_steps(|| traffic_pass(values, states, grads))
}

/// One run of the PyTorch script for one optimizer: (variant, ms) for each implementation.
fn torch_run(python: &Path, optimizer: &str) -> Result<Vec<(String, f64)>> {
    let out = Command::new(python)
        .arg("bench/w3_torch.py")
        .args(["--threads", &rayon::current_num_threads().to_string(), "--steps", &STEPS.to_string(), "--warmup", &WARMUP.to_string()])
        .args(["--only", optimizer])
        .output()
        .map_err(|e| Error::Io { path: python.into(), source: e })?;
    if !out.status.success() {
        return Err(Error::State(format!("bench/w3_torch.py failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    let mut rows = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| Error::State(format!("torch output `{line}`: {e}")))?;
        rows.push((v["variant"].as_str().unwrap_or("?").to_string(), v["ms"].as_f64().unwrap_or(f64::NAN)));
    }
    Ok(rows)
}

pub fn w3(rounds: usize, python: Option<&Path>, out_dir: &Path, only: &[String]) -> Result<()> {
    let contenders: Vec<_> = contenders().into_iter().filter(|(n, _)| only.is_empty() || only.contains(n)).collect();
    if contenders.is_empty() {
        return Err(Error::Config(format!("--only {}: no such optimizer", only.join(","))));
    }
    let mut store = w3_store(7);
    let python = python.filter(|p| p.exists());
    let mut ours: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut ceilings: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut state_counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut theirs: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    let params = (TENSORS * TENSOR_LEN) as f64;
    eprintln!("W3: {TENSORS} tensors × {TENSOR_LEN} f32, {rounds} rounds, {} threads", rayon::current_num_threads());
    // The machine is shared and drifts: each contender's descent step, its traffic
    // ceiling and PyTorch's implementations are measured back to back, every round.
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        for (name, cfg) in &contenders {
            let (ms, states) = time_optimizer(cfg, &mut store)?;
            ours.entry(name.clone()).or_default().push(ms);
            state_counts.insert(name.clone(), states);
            let mut bufs: Vec<Vec<f32>> = (0..states.min(3)).map(|_| descent::tensor::alloc::zeroed(store.len())).collect();
            ceilings.entry(name.clone()).or_default().push(time_ceiling(&mut store, &mut bufs));
            if let Some(py) = python {
                for (variant, ms) in torch_run(py, name)? {
                    theirs.entry((name.clone(), variant)).or_default().push(ms);
                }
            }
        }
    }
    let spread = |v: &[f64]| format!("{:.2}–{:.2}", v.iter().cloned().fold(f64::MAX, f64::min), v.iter().cloned().fold(0.0, f64::max));
    let mut md = String::from(
        "| optimizer | state buffers | bytes/param | descent ms [range] | GB/s | % of ceiling | PyTorch best ms (variant) | PyTorch ms per variant | descent speedup |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut json_rows = Vec::new();
    for (name, _) in &contenders {
        let runs = &ours[name];
        let ms = median(runs.clone());
        let bytes = bytes_moved(name, state_counts[name]);
        let gbs = bytes * params / (ms * 1e-3) / 1e9;
        let ceil_ms = median(ceilings[name].clone());
        // The ceiling runs the single-pass traffic; scale it to the bytes this rule moves.
        let pct = 100.0 * ceil_ms * (bytes / bytes_moved("", state_counts[name])) / ms;
        let variants: Vec<(String, f64)> =
            theirs.iter().filter(|((o, _), _)| o == name).map(|((_, v), t)| (v.clone(), median(t.clone()))).collect();
        let best = variants.iter().cloned().min_by(|a, b| a.1.partial_cmp(&b.1).expect("finite"));
        let (best_txt, speedup) = match &best {
            Some((v, t)) => (format!("{t:.2} ({v})"), format!("{:.2}×", t / ms)),
            None => ("—".into(), "—".into()),
        };
        let all: Vec<String> = variants.iter().map(|(v, t)| format!("{v} {t:.2}")).collect();
        md += &format!(
            "| {name} | {} | {bytes:.0} | {ms:.2} [{}] | {gbs:.1} | {pct:.0}% | {best_txt} | {} | {speedup} |\n",
            state_counts[name],
            spread(runs),
            if all.is_empty() { "—".into() } else { all.join(", ") }
        );
        json_rows.push(serde_json::json!({
            "optimizer": name, "state_buffers": state_counts[name], "bytes_per_param": bytes,
            "descent_ms": ms, "descent_ms_runs": runs, "gb_per_s": gbs, "ceiling_ms": ceil_ms, "ceiling_ms_runs": ceilings[name], "percent_of_ceiling": pct,
            "pytorch": variants.iter().map(|(v, t)| serde_json::json!({"variant": v, "ms": t})).collect::<Vec<_>>(),
        }));
    }
    md += "\nCeiling: per optimizer, a pass with exactly its memory traffic (parameters and state read and written once, gradients read once) and no arithmetic, measured right beside it; % of ceiling = ceiling time / optimizer time. LAMB and LARS make a second pass (per-tensor norms first), Adafactor three: their bytes/param count those passes, and their ceiling is scaled to them.\n";
    if python.is_none() {
        md += "\nPyTorch was not run (no .venv/bin/python: `bash scripts/setup_python.sh`).\n";
    }
    println!("{md}");
    std::fs::create_dir_all(out_dir).map_err(|e| Error::Io { path: out_dir.into(), source: e })?;
    let json = serde_json::json!({ "workload": "W3", "threads": rayon::current_num_threads(), "rounds": rounds, "rows": json_rows });
    descent::io::write_atomic(out_dir.join("w3.json"), serde_json::to_string_pretty(&json).expect("json").as_bytes())?;
    descent::io::write_atomic(out_dir.join("w3.md"), md.as_bytes())?;
    eprintln!("wrote {}/w3.json and w3.md", out_dir.display());
    Ok(())
}
