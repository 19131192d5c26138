//! `descent fit` with `backup_and_restore`, killed with SIGKILL at 20 seeded random
//! moments (anywhere: starting, training, writing the backup, writing the run folder)
//! and rerun after each: the backup is always a valid checkpoint that never moves back,
//! a run killed any number of times stays one run folder, complete or visibly not, and
//! every completed run is byte-identical to an uninterrupted one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use descent::experiment::{missing_run_files, Experiment};
use rand::Rng;

mod common;
use common::{descent, run_and_kill, run_and_kill_when, text, workdir};

fn experiment(backup: bool, out: &str) -> String {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");
    let mut text = format!(
        r#"
name = "exp"
seed = 5
[data]
format = "csv"
path = "{data}"
standardize = true
[model]
layers = [
  {{ type = "dense", units = 256, activation = "relu" }},
  {{ type = "dropout", rate = 0.2 }},
  {{ type = "dense", units = 10 }},
]
[compile]
optimizer = {{ name = "adam", learning_rate = {{ name = "cosine_decay", initial_learning_rate = 0.003, decay_steps = 2000 }} }}
loss = {{ name = "sparse_categorical_crossentropy", from_logits = true }}
metrics = ["accuracy"]
[fit]
epochs = 40
validation_split = 0.1
verbose = 0
[output]
dir = "{out}"
"#
    );
    if backup {
        text += "\n[[callbacks]]\ntype = \"backup_and_restore\"\n";
    }
    text
}

/// Epochs recorded in the backup, checking on the way that it is a valid checkpoint.
fn backup_epoch(exp: &Experiment, path: &Path) -> Option<usize> {
    if !path.exists() {
        return None;
    }
    let mut model = exp.build_model(&[64]).unwrap();
    model.compile(exp.compile.optimizer.build().unwrap(), exp.compile.loss, &["accuracy"]).unwrap();
    Some(model.load_checkpoint(path).expect("the backup is always a complete checkpoint").epoch)
}

/// The run folders under `root`, in order.
fn run_folders(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(root) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).filter(|p| !p.ends_with("exp-backup")).collect(),
        Err(_) => Vec::new(),
    };
    dirs.sort();
    dirs
}

fn model_bytes(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("model.safetensors")).unwrap()
}

/// Checks a run folder tree after a kill or a finished run: at most one run folder (a run
/// killed any number of times stays one), whole or visibly not, a whole one equal to the
/// uninterrupted run; the backup, if any, a valid checkpoint at no earlier epoch than
/// `epoch` (updated). Returns where a kill landed: 0 before the first backup, 1 in
/// training, 2 once training was over (writing the run folder).
fn check_after(runs: &Path, exp: &Experiment, epoch: &mut usize, is_straight: &dyn Fn(&Path) -> bool) -> usize {
    let folders = run_folders(runs);
    assert!(folders.len() <= 1, "one run, one folder: {folders:?}");
    let complete = folders.first().is_some_and(|run| missing_run_files(run).is_empty());
    if complete {
        assert!(is_straight(&folders[0]), "{} differs from the uninterrupted run", folders[0].display());
    }
    match backup_epoch(exp, &runs.join("exp-backup/backup.safetensors")) {
        Some(e) => {
            assert!(e >= *epoch && e <= 40, "the backup went from epoch {epoch} to {e}");
            *epoch = e;
            if e < 40 { 1 } else { 2 }
        }
        None => {
            // None written yet, or the run completed and removed it.
            assert!(*epoch == 0 || complete, "the backup at epoch {epoch} vanished before its run completed");
            if complete { 2 } else { 0 }
        }
    }
}

#[test]
fn a_fit_killed_at_20_seeded_moments_resumes_to_the_uninterrupted_result() {
    let dir = workdir("resume");
    std::fs::write(dir.join("straight.toml"), experiment(false, "straight")).unwrap();
    std::fs::write(dir.join("exp.toml"), experiment(true, "runs")).unwrap();
    let started = Instant::now();
    let out = descent(&["fit", "straight.toml"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let full = started.elapsed();
    let straight = dir.join("straight/exp-001");
    let (want_model, want_history) = (model_bytes(&straight), std::fs::read_to_string(straight.join("history.csv")).unwrap());
    let is_straight = |run: &Path| model_bytes(run) == want_model && std::fs::read_to_string(run.join("history.csv")).unwrap() == want_history;

    let exp = Experiment::from_file(dir.join("exp.toml")).unwrap();
    let runs = dir.join("runs");
    let mut rng = descent::rng::seeded(20_261_203);
    let mut landed = [0; 3];
    let mut finished_first = 0;
    for i in 0..23 {
        let mut epoch = 0;
        // Moment i in the i-th twentieth of an uninterrupted run's time (starting,
        // training, writing), so the 20 cover it all; writing the run folder takes under
        // a twentieth, so three more moments fall inside it: a random delay after its
        // first file appears.
        // Should the run finish first (the machine got faster), earlier.
        let mut at = full.mul_f64((i as f64 + rng.random::<f64>()) / 20.0);
        let mut delay = Duration::from_micros(rng.random_range(0..3000));
        loop {
            let _ = std::fs::remove_dir_all(&runs);
            let killed = match i {
                0..20 => run_and_kill(&["fit", "exp.toml"], &dir, at),
                _ => {
                    let mut writing: Option<Duration> = None;
                    run_and_kill_when(&["fit", "exp.toml"], &dir, &mut |t| match writing {
                        Some(since) => t >= since + delay,
                        None => {
                            writing = runs.join("exp-001/config.toml").exists().then_some(t);
                            false
                        }
                    })
                }
            };
            if killed {
                landed[check_after(&runs, &exp, &mut epoch, &is_straight)] += 1;
                break;
            }
            finished_first += 1;
            assert!(finished_first < 20, "the run keeps finishing before its kill");
            (at, delay) = (at.mul_f64(0.7), delay.mul_f64(0.7));
        }
        // Every other one is killed again while it resumes.
        if i % 2 == 1 {
            let left = full.mul_f64(1.0 - epoch as f64 / 40.0);
            if run_and_kill(&["fit", "exp.toml"], &dir, left.mul_f64(rng.random::<f64>())) {
                check_after(&runs, &exp, &mut epoch, &is_straight);
            }
        }
        // The same command finishes the run from its backup.
        let out = descent(&["fit", "exp.toml"], &dir);
        assert!(out.status.success(), "{}", text(&out));
        check_after(&runs, &exp, &mut epoch, &is_straight);
        let folders = run_folders(&runs);
        assert!(folders.len() == 1 && missing_run_files(&folders[0]).is_empty(), "moment {i}: {folders:?}");
        assert!(!runs.join("exp-backup").exists(), "the backup is removed once the run folder is complete");
        let partial: Vec<_> = std::fs::read_dir(&folders[0]).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n.to_string_lossy().contains(".tmp-")).collect();
        assert!(partial.is_empty(), "partial writes left behind: {partial:?}");
    }
    eprintln!(
        "20 moments over {:.3} s and 3 while writing: killed {} before the first backup, {} in training, {} once training was over; {finished_first} moments moved earlier",
        full.as_secs_f64(),
        landed[0],
        landed[1],
        landed[2]
    );
}
