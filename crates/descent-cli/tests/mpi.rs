//! `mpirun -np N descent fit`: data-parallel training over MPI (feature `mpi`; `.ci/run`
//! installs OpenMPI and runs these with `cargo test -p descent-cli --features mpi --test
//! mpi`). N ranks sharing each batch must give what one process gives with the whole
//! batch, the same bits every time, and a rank that dies must end the group.
#![cfg(feature = "mpi")]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{digits, experiment_toml, text, workdir};

/// `mpirun -np <np> descent <args>` in `cwd` (oversubscribed: the tests run 4 ranks on 2
/// cores; allowed as root, as CI runs).
fn mpirun_command(np: usize, args: &[&str], cwd: &Path) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--oversubscribe", "-np", &np.to_string(), env!("CARGO_BIN_EXE_descent")])
        .args(args)
        .current_dir(cwd)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        // A hang fails the test instead of stalling it.
        .env("MPIEXEC_TIMEOUT", "300")
        // One kernel thread per rank: the ranks share the cores.
        .env("RAYON_NUM_THREADS", "1");
    c
}

fn mpirun(np: usize, args: &[&str], cwd: &Path) -> Output {
    mpirun_command(np, args, cwd).output().expect("mpirun runs (Debian: openmpi-bin)")
}

/// The tensors of a safetensors file (all f32 here), by name.
fn tensors(path: &Path) -> BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut out = BTreeMap::new();
    for (name, t) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        let off = &t["data_offsets"];
        let (a, b) = (off[0].as_u64().unwrap() as usize, off[1].as_u64().unwrap() as usize);
        out.insert(name.clone(), data[a..b].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect());
    }
    out
}

/// The largest ‖a − b‖ / ‖b‖ over the tensors of two weight files.
fn relative_difference(a: &Path, b: &Path) -> f64 {
    let (a, b) = (tensors(a), tensors(b));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    a.iter()
        .map(|(name, x)| {
            let y = &b[name];
            let diff: f64 = x.iter().zip(y).map(|(p, q)| (*p as f64 - *q as f64).powi(2)).sum();
            let norm: f64 = y.iter().map(|q| (*q as f64).powi(2)).sum();
            (diff / norm.max(1e-30)).sqrt()
        })
        .fold(0.0, f64::max)
}

/// The digits experiment the tests train: batch 64 of 1,293 training rows (so the
/// last batch, 13 rows, splits unevenly over 2 and 4 ranks), Adam, a validation split,
/// the weights saved after every step (`steps/<step>`).
fn write_experiment(dir: &Path, epochs: usize, extra: &str) -> PathBuf {
    let fit = format!("batch_size = 64\nvalidation_split = 0.1\n{extra}");
    let mut toml = experiment_toml(&digits(), r#"{ name = "adam", learning_rate = 0.005 }"#, epochs, 0, &fit);
    toml.push_str("\n[[callbacks]]\ntype = \"model_checkpoint\"\ndir = \"steps/{step}\"\nsave_freq_steps = 1\nsave_weights_only = true\n");
    let path = dir.join("exp.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn fit(np: Option<usize>, exp: &Path, out: &Path) {
    let args = ["fit", exp.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let o = match np {
        None => common::descent(&args, exp.parent().unwrap()),
        Some(np) => mpirun(np, &args, exp.parent().unwrap()),
    };
    assert!(o.status.success(), "{}", text(&o));
}

/// Trains the test experiment, as `edit` changes it, in one process and with 2 and 4
/// ranks, and checks the weights after each of the first 5 steps and at the end
/// (≤ 1e-6 relative, per tensor), the history, and that two runs with 4 ranks are
/// bit-identical.
fn ranks_match_one_process(name: &str, edit: impl Fn(String) -> String) {
    let dir = workdir(name);
    let exp = &write_experiment(&dir, 2, "");
    std::fs::write(exp, edit(std::fs::read_to_string(exp).unwrap())).unwrap();
    fit(None, exp, &dir.join("one"));
    let one = dir.join("one/exp-001");
    for np in [2, 4] {
        let out = dir.join(format!("np{np}"));
        fit(Some(np), exp, &out);
        let run = out.join("exp-001");
        // One run folder, written by rank 0 alone.
        assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1, "np {np}");
        for step in 1..=5 {
            let (a, b) = (run.join(format!("steps/{step}/model.safetensors")), one.join(format!("steps/{step}/model.safetensors")));
            let d = relative_difference(&a, &b);
            eprintln!("np {np}, after step {step}: max relative difference {d:.2e}");
            assert!(d <= 1e-6, "np {np}, step {step}: {d:.3e}");
        }
        let d = relative_difference(&run.join("model.safetensors"), &one.join("model.safetensors"));
        eprintln!("np {np}, end of training (42 steps): max relative difference {d:.2e}");
        assert!(d <= 1e-6, "np {np}, end: {d:.3e}");
        // Losses and metrics are summed over ranks: the history is one process's.
        let (h, h1) = (std::fs::read_to_string(run.join("history.csv")).unwrap(), std::fs::read_to_string(one.join("history.csv")).unwrap());
        for (row, row1) in h.lines().zip(h1.lines()).skip(1) {
            for (v, v1) in row.split(',').zip(row1.split(',')) {
                let (v, v1): (f64, f64) = (v.parse().unwrap(), v1.parse().unwrap());
                assert!((v - v1).abs() <= 1e-5 * v1.abs().max(1.0), "np {np}: history {row} against {row1}");
            }
        }
    }
    // The same N, the same bits: sums are taken in rank order.
    let again = dir.join("np4-again");
    fit(Some(4), exp, &again);
    let same = std::fs::read(again.join("exp-001/model.safetensors")).unwrap() == std::fs::read(dir.join("np4/exp-001/model.safetensors")).unwrap();
    assert!(same, "two runs with 4 ranks differ");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ranks_sharing_each_batch_train_what_one_process_trains_with_the_whole_batch() {
    ranks_match_one_process("mpi-equivalence", |toml| toml);
}

#[test]
fn a_bucket_reduced_while_backward_runs_gives_what_one_process_trains() {
    // Two hidden layers of 512: 300k weights, so two gradient buckets. The first (under
    // 1 MiB: the last layer and the second's bias) starts its reduction while backward
    // goes on; the second is summed in place once backward is over.
    //
    // Smooth units and plain momentum. With ReLU, the last bits that differ between
    // sums taken in another order can flip a unit that sits at 0 for one sample; with
    // Adam, which divides each gradient by its own size, a weight whose gradient
    // nearly cancels takes a visibly different step. Measured on this model, 4 ranks:
    // ReLU and Adam 2.6e-7 after step 6, then 2.9e-4 after step 7 (unit 106 of the
    // second layer flipped); tanh and Adam 4.2e-6 after step 1 (first-layer biases
    // whose gradients cancel).
    ranks_match_one_process("mpi-equivalence-buckets", |toml| {
        let wide = toml
            .replace(r#"units = 32, activation = "relu" }"#, r#"units = 512, activation = "tanh" }, { type = "dense", units = 512, activation = "tanh" }"#)
            .replace(r#"{ name = "adam", learning_rate = 0.005 }"#, r#"{ name = "sgd", learning_rate = 0.05, momentum = 0.9 }"#);
        assert_eq!(wide.matches("tanh").count() + wide.matches("momentum").count(), 3, "{wide}");
        wide
    });
}

/// Dense (no bias: batch norm removes it) → BatchNormalization → tanh → Dense, with
/// SGD and momentum (smooth units and no per-weight rescaling, as the bucket test
/// explains), batch norm `synchronized` or not.
fn with_batch_norm(toml: String, synchronized: bool) -> String {
    let bn = format!(r#"units = 32, use_bias = false }}, {{ type = "batch_normalization", synchronized = {synchronized} }}, {{ type = "activation", activation = "tanh" }}"#);
    let edited = toml
        .replace(r#"units = 32, activation = "relu" }"#, &bn)
        .replace(r#"{ name = "adam", learning_rate = 0.005 }"#, r#"{ name = "sgd", learning_rate = 0.05, momentum = 0.9 }"#);
    assert!(edited.contains("batch_normalization") && edited.contains("momentum"), "{edited}");
    edited
}

#[test]
fn synchronized_batch_norm_over_ranks_trains_what_one_process_trains_with_the_whole_batch() {
    // Every rank normalizes with the statistics of the whole global batch (two sums
    // over the ranks in forward, one in backward), so N ranks give one process's
    // weights and moving statistics, the uneven last batch (13 rows) included.
    ranks_match_one_process("mpi-sync-bn", |toml| with_batch_norm(toml, true));
    // Without it each of 2 ranks normalizes its own 32 rows: the check above fails.
    let dir = workdir("mpi-local-bn");
    let exp = &write_experiment(&dir, 1, "");
    std::fs::write(exp, with_batch_norm(std::fs::read_to_string(exp).unwrap(), false)).unwrap();
    fit(None, exp, &dir.join("one"));
    fit(Some(2), exp, &dir.join("np2"));
    let step = |run: &str| dir.join(format!("{run}/exp-001/steps/1/model.safetensors"));
    let d = relative_difference(&step("np2"), &step("one"));
    eprintln!("unsynchronized batch norm, 2 ranks, after step 1: relative difference {d:.2e}");
    assert!(d > 1e-4, "per-rank statistics should move the model (weights, moving statistics) away from one process's: {d:.2e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn ranks_that_read_different_experiments_are_refused_before_training() {
    let dir = workdir("mpi-mismatch");
    let a = write_experiment(&dir, 2, "");
    let b = dir.join("other.toml");
    std::fs::write(&b, std::fs::read_to_string(&a).unwrap().replace("epochs = 2", "epochs = 3")).unwrap();
    // One rank each (MPMD): what two machines with different copies of the file do.
    let o = Command::new("mpirun")
        .args(["--oversubscribe", "-np", "1", env!("CARGO_BIN_EXE_descent"), "fit", a.to_str().unwrap(), ":", "-np", "1", env!("CARGO_BIN_EXE_descent"), "fit", b.to_str().unwrap()])
        .args(["--out", dir.join("runs").to_str().unwrap()])
        .current_dir(&dir)
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .unwrap();
    let t = text(&o);
    assert!(!o.status.success(), "{t}");
    assert!(t.contains("rank 1 read a different experiment than rank 0"), "{t}");
    assert!(!dir.join("runs/exp-001/model.safetensors").exists(), "{t}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_killed_rank_ends_the_group_and_the_rerun_resumes_to_the_uninterrupted_result() {
    let dir = workdir("mpi-kill");
    let backup = "[[callbacks]]\ntype = \"backup_and_restore\"\n";
    let exp = dir.join("exp.toml");
    let toml = experiment_toml(&digits(), r#"{ name = "adam", learning_rate = 0.001 }"#, 60, 0, "batch_size = 32\n") + backup;
    std::fs::write(&exp, toml).unwrap();
    let runs = dir.join("runs");
    let args = ["fit", exp.to_str().unwrap(), "--out", runs.to_str().unwrap()];
    // The uninterrupted result, and how long it takes.
    let started = Instant::now();
    let o = mpirun(2, &["fit", exp.to_str().unwrap(), "--out", dir.join("whole").to_str().unwrap()], &dir);
    assert!(o.status.success(), "{}", text(&o));
    let whole = started.elapsed();
    // Kill one rank (not mpirun) as soon as the first backup exists: 59 of 60 epochs
    // are then left to run, so the kill lands in training however busy the machine.
    let mut child = mpirun_command(2, &args, &dir).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let backup_file = dir.join("runs/exp-backup/backup.safetensors");
    let deadline = Instant::now() + whole * 4 + Duration::from_secs(20);
    while !backup_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let ranks = descendants(child.id());
    assert!(!ranks.is_empty(), "no rank processes found under mpirun");
    let victim = *ranks.last().unwrap();
    let killed_at = Instant::now();
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    // The others stop within a bounded time, with an error, not a hang.
    let bound = Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if killed_at.elapsed() > bound {
            child.kill().ok();
            panic!("the group did not stop within {bound:?} of a rank being killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).ok();
    eprintln!("group stopped {:?} after the kill: {status}", killed_at.elapsed());
    assert!(!status.success(), "{stderr}");
    assert!(backup_file.exists(), "the backup survives the kill");
    // Rerun: resumes from the backup and ends exactly where the uninterrupted run did.
    let o = mpirun(2, &args, &dir);
    assert!(o.status.success(), "{}", text(&o));
    let (a, b) = (std::fs::read(dir.join("runs/exp-001/model.safetensors")).unwrap(), std::fs::read(dir.join("whole/exp-001/model.safetensors")).unwrap());
    assert!(a == b, "the resumed run differs from the uninterrupted one");
    assert_eq!(std::fs::read_to_string(dir.join("runs/exp-001/history.csv")).unwrap(), std::fs::read_to_string(dir.join("whole/exp-001/history.csv")).unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

/// Every process below `pid`, children first (from /proc).
fn descendants(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // pid (comm) state ppid …: the command may hold spaces, so read after ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).and_then(|v| v.parse::<u32>().ok());
            if ppid == Some(p) {
                all.push(child);
                frontier.push(child);
            }
        }
    }
    // Only the descent ranks, not helper daemons.
    all.into_iter().filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "descent")).collect()
}

/// A fresh folder holding `exp.toml` (the digits, `epochs` epochs) and `study.toml`
/// (`trials` trials over it, with the study's `extra` lines).
fn write_study(name: &str, epochs: usize, trials: usize, extra: &str) -> PathBuf {
    let dir = workdir(name);
    std::fs::write(dir.join("exp.toml"), experiment_toml(&digits(), "\"adam\"", epochs, 0, "")).unwrap();
    std::fs::write(dir.join("study.toml"), common::study_toml("exp.toml", trials, extra)).unwrap();
    dir
}

#[test]
fn a_study_under_mpirun_spreads_its_trials_over_the_ranks() {
    let dir = write_study("mpi-tune", 4, 6, "name = \"ranks\"\nstorage = \"ranks.sqlite\"\nrefit = true");
    let o = mpirun(2, &["tune", "study.toml", "--quiet"], &dir);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    // Rank 0 alone reports and refits, once every rank's trials are done.
    assert_eq!(t.matches("6 trials: 6 complete").count(), 1, "{t}");
    assert_eq!(t.matches("retrained on the whole training split").count(), 1, "{t}");
    let store = descent_tune::Store::open_read(&dir.join("ranks.sqlite"), None).unwrap();
    let trials = store.trials().unwrap();
    assert_eq!(trials.iter().map(|t| t.number).collect::<Vec<_>>(), (0..6).collect::<Vec<u64>>());
    assert!(trials.iter().all(|t| t.state == descent_tune::TrialState::Complete && t.attempts == 1));
    let workers: std::collections::BTreeSet<String> = store.workers().unwrap().into_iter().filter_map(|(_, w)| w).collect();
    assert_eq!(workers.len(), 2, "both ranks ran trials: {workers:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_study_whose_rank_is_killed_resumes_to_its_budget_with_nothing_lost_or_repeated() {
    // Trials of 2 folds × 30 epochs (a few tenths of a second each), long enough to be
    // caught running.
    let dir = write_study("mpi-tune-kill", 30, 8, "name = \"killed\"\nstorage = \"killed.sqlite\"\nrefit = false");
    let db = dir.join("killed.sqlite");
    // Kill a rank while it runs a trial; should the study end before one is caught
    // running (a much faster machine), start it over.
    let (mut child, victim, trial) = 'attempt: loop {
        let _ = std::fs::remove_file(&db);
        let mut child = mpirun_command(2, &["tune", "study.toml", "--quiet"], &dir).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                continue 'attempt;
            }
            let ranks = descendants(child.id());
            let running = descent_tune::Store::open_read(&db, None).and_then(|s| {
                let trials = s.trials()?;
                Ok(s.workers()?.into_iter().find_map(|(n, w)| {
                    let pid: u32 = w?.rsplit(':').next()?.parse().ok()?;
                    let running = trials.iter().any(|t| t.number == n && t.state == descent_tune::TrialState::Running);
                    (running && ranks.contains(&pid)).then_some((pid, n))
                }))
            });
            if let Ok(Some((victim, trial))) = running {
                break 'attempt (child, victim, trial);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("no rank was ever seen running a trial");
    };
    unsafe { libc::kill(victim as i32, libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert!(!status.success(), "the group must fail when a rank is killed");
    // The rerun retries what was running (the killed rank's trial, and whatever the
    // others were running when mpirun ended them) and uses exactly the budget.
    let o = mpirun(2, &["tune", "study.toml", "--quiet"], &dir);
    assert!(o.status.success(), "{}", text(&o));
    let trials = descent_tune::Store::open_read(&db, None).unwrap().trials().unwrap();
    assert_eq!(trials.iter().map(|t| t.number).collect::<Vec<_>>(), (0..8).collect::<Vec<u64>>(), "the budget, each number once");
    assert!(trials.iter().all(|t| t.state == descent_tune::TrialState::Complete), "{trials:?}");
    let retried = trials.iter().find(|t| t.number == trial).unwrap();
    assert_eq!(retried.attempts, 2, "trial {trial}, killed with its rank, ran again once");
    assert_eq!(retried.intermediate.len(), 60, "only the retry's values are kept");
    std::fs::remove_dir_all(&dir).ok();
}
