//! TPE against random search on a known synthetic objective, over several seeds.
//! Run: cargo run --release -p descent-tune --example tpe_vs_random
//!
//! The objective mimics a tuning problem: a learning rate searched on a log scale
//! (best at 3e-3), a momentum-like parameter (best at 0.9), a width on a log-scale
//! integer range (best near 128), and a categorical choice where one option is best:
//!   f = (log10 lr + 2.5)² + 4 (m − 0.9)² + 0.5 (log2 w − 7)²/4 + [opt ≠ "b"] · 0.5
//! The minimum is 0. Each study has the same budget; the table shows the best value found.

use descent_tune::{Direction, RandomSampler, Sampler, Store, Study, StudyInfo, StudyOptions, TpeSampler, TrialError, Trial};

pub fn objective(t: &mut Trial) -> Result<f64, TrialError> {
    let lr = t.suggest_float("lr", 1e-5, 1.0, true)?;
    let m = t.suggest_float("momentum", 0.0, 0.999, false)?;
    let w = t.suggest_int("width", 8, 1024)? as f64;
    let opt = t.suggest_categorical("optimizer", &["a", "b", "c", "d"])?;
    Ok((lr.log10() + 2.5).powi(2) + 4.0 * (m - 0.9).powi(2) + 0.125 * (w.log2() - 7.0).powi(2) + if opt == "b" { 0.0 } else { 0.5 })
}

/// Best value found by one study of `trials` trials.
pub fn best_of(sampler: Box<dyn Sampler>, seed: u64, trials: usize, dir: &std::path::Path) -> f64 {
    let path = dir.join(format!("{}-{seed}.sqlite", sampler.name()));
    let _ = std::fs::remove_file(&path);
    let info = StudyInfo { name: "synthetic".into(), direction: Direction::Minimize, metric: "f".into(), config: serde_json::Value::Null };
    let store = Store::open_for_work(&path, info).unwrap();
    let study = Study::with(store, sampler, Box::new(descent_tune::NoPruner), seed).unwrap();
    study.optimize(&StudyOptions { n_trials: trials, ..Default::default() }, objective).unwrap();
    study.best().unwrap().unwrap().value.unwrap()
}

fn main() {
    let dir = std::env::temp_dir().join(format!("descent-tpe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trials = 60;
    println!("best f after {trials} trials (lower is better; minimum 0)\n\n| seed | random | TPE |\n|---|---|---|");
    let (mut r_all, mut t_all, mut wins) = (Vec::new(), Vec::new(), 0);
    for seed in 1..=10 {
        let r = best_of(Box::new(RandomSampler), seed, trials, &dir);
        let t = best_of(Box::new(TpeSampler::default()), seed, trials, &dir);
        wins += usize::from(t < r);
        println!("| {seed} | {r:.4} | {t:.4} |");
        r_all.push(r);
        t_all.push(t);
    }
    let (rm, rs) = descent_tune::stats::mean_std(&r_all);
    let (tm, ts) = descent_tune::stats::mean_std(&t_all);
    println!("| mean ± std | {rm:.4} ± {rs:.4} | {tm:.4} ± {ts:.4} |\n\nTPE found the better optimum on {wins} of 10 seeds.");
    std::fs::remove_dir_all(&dir).unwrap();
}
