//! `descent cv | tune | study | compare` end to end on the bundled digits data,
//! including a study killed with SIGKILL mid-trial and resumed by rerunning the command.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use descent_tune::{Store, TrialState};

mod common;
use common::{descent, text, workdir};

/// The small digits experiment with `epochs` epochs and the given optimizer, written to
/// `dir/name.toml`.
fn experiment(dir: &Path, name: &str, epochs: usize, optimizer: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, common::experiment_toml(&common::digits(), optimizer, epochs, 0, "")).unwrap();
    path
}

#[test]
fn cv_reports_every_fold_and_mean_std() {
    let dir = workdir("cv");
    let exp = experiment(&dir, "exp", 10, "\"adam\"");
    let out = descent(&["cv", exp.to_str().unwrap(), "--folds", "3", "--stratified", "--json", "cv.json"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("mean ± std") && t.contains("3-fold stratified"), "{t}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("cv.json")).unwrap()).unwrap();
    let folds = json["accuracy"]["folds"].as_array().unwrap();
    assert_eq!(folds.len(), 3);
    let mean = json["accuracy"]["mean"].as_f64().unwrap();
    assert!(mean > 0.9, "digits 3-fold CV accuracy {mean}");
    // Bad fold counts are errors, not panics.
    let out = descent(&["cv", exp.to_str().unwrap(), "--folds", "1"], &dir);
    assert!(!out.status.success() && text(&out).contains("at least 2"), "{}", text(&out));
}

#[test]
fn compare_ranks_optimizers_with_a_paired_test_and_a_chart() {
    let dir = workdir("compare");
    let exp = experiment(&dir, "base", 3, "\"adam\"");
    let out = descent(
        &["compare", exp.to_str().unwrap(), "--optimizers", "adam,sgd@0.001", "--folds", "3", "--svg", "curves.svg", "--report", "compare.html"],
        &dir,
    );
    assert!(out.status.success(), "{}", text(&out));
    let t = text(&out);
    // Adam at 1e-3 beats plain SGD at 1e-3 after 3 epochs by a wide margin.
    let adam_line = t.lines().find(|l| l.starts_with("1 ")).expect("a rank-1 row");
    assert!(adam_line.contains("adam") && adam_line.contains("leader"), "{t}");
    let sgd_line = t.lines().find(|l| l.starts_with("2 ")).expect("a rank-2 row");
    // rank, contender, loss mean ± std, accuracy mean ± std, Δ, p (then * when significant)
    let p: f64 = sgd_line.split_whitespace().nth(9).unwrap().parse().unwrap();
    // A 0.63 accuracy gap with fold spreads of 0.016 is significant even with 3 folds (p ≈ 0.002).
    assert!(p < 0.05 && sgd_line.ends_with(" *"), "{sgd_line}");
    let svg = std::fs::read_to_string(dir.join("curves.svg")).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 2);
    // The report: the same ranking, each contender's folds, the curves.
    let html = std::fs::read_to_string(dir.join("compare.html")).unwrap();
    assert!(html.contains(&xml_text(adam_line)) && html.contains("<th>sgd@0.001</th>") && html.contains("data-chart=\"curves\""), "{html}");
    // Unknown optimizers are named.
    let out = descent(&["compare", exp.to_str().unwrap(), "--optimizers", "adam,adamm"], &dir);
    assert!(!out.status.success() && text(&out).contains("unknown optimizer `adamm`"), "{}", text(&out));
}

/// `s` as it reads inside HTML.
fn xml_text(s: &str) -> String {
    descent::io::chart::xml_escape(s)
}

fn write_study(dir: &Path, experiment: &Path, extra: &str) -> PathBuf {
    let path = dir.join("study.toml");
    std::fs::write(&path, common::study_toml(&experiment.display().to_string(), 10, extra)).unwrap();
    path
}

/// Kills and reaps the child if the test fails before it does.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn tune_resumes_after_sigkill_without_losing_or_repeating_trials() {
    let dir = workdir("kill");
    // Long enough per trial (2 folds × 40 epochs) that the kill lands mid-trial.
    let exp = experiment(&dir, "exp", 40, "\"adam\"");
    let study = write_study(&dir, &exp, "refit = false");
    let db = dir.join("study.sqlite");
    // Wait for two finished trials and one in flight, then SIGKILL. Should the kill
    // land between two trials (one finished in the moment between the poll and the
    // kill), run the study again and kill it again: the test needs a trial that really
    // was interrupted.
    let mut attempts = 0;
    let (interrupted, finished) = loop {
        attempts += 1;
        assert!(attempts <= 5, "no kill landed inside a trial in 5 tries");
        let mut child = Reap(
            Command::new(env!("CARGO_BIN_EXE_descent"))
                .args(["tune", study.to_str().unwrap(), "--quiet"])
                .current_dir(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        let before_kill = loop {
            assert!(Instant::now() < deadline, "the study made no progress");
            std::thread::sleep(Duration::from_millis(15));
            let Ok(store) = Store::open_read(&db, None) else { continue };
            let Ok(trials) = store.trials() else { continue };
            let done = trials.iter().filter(|t| t.state == TrialState::Complete).count();
            if done >= 2 && trials.iter().any(|t| t.state == TrialState::Running && !t.params.is_empty()) {
                child.0.kill().unwrap();
                child.0.wait().unwrap();
                break Store::open_read(&db, None).unwrap().trials().unwrap();
            }
            assert!(done < 9, "the study finished before it could be killed");
        };
        let interrupted: Vec<_> = before_kill.iter().filter(|t| t.state == TrialState::Running).cloned().collect();
        let finished: Vec<_> = before_kill.iter().filter(|t| t.state == TrialState::Complete).cloned().collect();
        if !interrupted.is_empty() {
            break (interrupted, finished);
        }
        eprintln!("note: kill {attempts} landed between trials; again");
    };
    // The same command resumes.
    let out = descent(&["tune", study.to_str().unwrap(), "--quiet"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let after = Store::open_read(&db, None).unwrap().trials().unwrap();
    assert_eq!(after.len(), 10, "exactly the budget, none counted twice");
    let numbers: Vec<u64> = after.iter().map(|t| t.number).collect();
    assert_eq!(numbers, (0..10).collect::<Vec<_>>());
    assert!(after.iter().all(|t| t.state == TrialState::Complete), "{after:?}");
    for f in &finished {
        let t = &after[f.number as usize];
        assert_eq!((t.value, &t.params, t.attempts), (f.value, &f.params, 1), "finished trials are kept as they were");
    }
    for i in &interrupted {
        let t = &after[i.number as usize];
        assert_eq!(t.attempts, 2, "interrupted trial {} retried once", i.number);
        // With its own parameters: every value chosen before the kill is kept (two
        // workers: the other one may have been killed between two of its choices, so
        // its retry makes the rest).
        for (k, v) in &i.params {
            assert_eq!(t.params.get(k), Some(v), "trial {} kept `{k}`", i.number);
        }
        assert_eq!(t.intermediate.len(), 80, "its values come from the retry alone");
    }
    // study show | best | export.
    let out = descent(&["study", "show", db.to_str().unwrap()], &dir);
    assert!(out.status.success() && text(&out).contains("complete"), "{}", text(&out));
    let out = descent(&["study", "best", db.to_str().unwrap()], &dir);
    assert!(out.status.success() && text(&out).contains("cv accuracy"), "{}", text(&out));
    let out = descent(&["study", "export", db.to_str().unwrap(), "--out", "best.toml"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    // The export is a ready-to-run experiment.
    let out = descent(&["fit", "best.toml", "--epochs", "2", "--verbose", "0"], &dir);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn tune_grid_with_pruning_finishes_and_refits_the_best() {
    let dir = workdir("grid");
    let exp = experiment(&dir, "exp", 3, "\"adam\"");
    let study = dir.join("grid.toml");
    std::fs::write(
        &study,
        format!(
            r#"
[study]
experiment = "{}"
sampler = "grid"
pruner = {{ name = "hyperband", min_resource = 1, reduction_factor = 3 }}
trials = 100
[objective]
metric = "accuracy"
folds = 1
stratified = true
[space."compile.optimizer.name"]
type = "categorical"
choices = ["adam", "sgd"]
[space."compile.optimizer.momentum"]
type = "uniform"
low = 0.0
high = 0.99
grid = [0.0, 0.9]
when = {{ "compile.optimizer.name" = "sgd" }}
"#,
            exp.display()
        ),
    )
    .unwrap();
    let out = descent(&["tune", study.to_str().unwrap()], &dir);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    // adam, sgd with momentum 0 and 0.9: three grid points, then the study stops.
    assert!(t.contains("3 trials:"), "{t}");
    assert!(t.contains("held-out test: loss"), "{t}");
    // A typo in a searched key fails before any trial, naming it.
    std::fs::write(&study, std::fs::read_to_string(&study).unwrap().replace("compile.optimizer.momentum", "compile.optimizer.momentun")).unwrap();
    let out = descent(&["tune", study.to_str().unwrap()], &dir);
    assert!(!out.status.success() && text(&out).contains("momentun"), "{}", text(&out));
}

/// A study of 5 trials (2-fold CV of 6 epochs each, then a refit of the best) over the
/// digits experiment `name`.toml, written to `dir/name-study.toml`; its database is
/// `name.sqlite` and the refit's run folders go to `name-runs/`.
fn small_study(dir: &Path, name: &str) -> PathBuf {
    let exp = common::experiment_toml(&common::digits(), "\"adam\"", 6, 0, "") + &format!("[output]\ndir = \"{name}-runs\"\n");
    std::fs::write(dir.join(format!("{name}.toml")), exp).unwrap();
    let study = common::study_toml(&format!("{name}.toml"), 5, &format!("name = \"kills\"\nstorage = \"{name}.sqlite\""));
    let path = dir.join(format!("{name}-study.toml"));
    std::fs::write(&path, study).unwrap();
    path
}

#[test]
fn tune_killed_at_20_seeded_moments_ends_as_the_uninterrupted_study() {
    use rand::Rng;
    let dir = workdir("kills");
    let straight = small_study(&dir, "straight");
    let started = Instant::now();
    let out = descent(&["tune", straight.to_str().unwrap(), "--quiet"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let full = started.elapsed();
    let want = Store::open_read(&dir.join("straight.sqlite"), None).unwrap().trials().unwrap();
    assert_eq!(want.len(), 5);
    let refit_model = |runs: &str| -> Vec<Vec<u8>> {
        let mut folders: Vec<PathBuf> = std::fs::read_dir(dir.join(runs)).unwrap().map(|e| e.unwrap().path()).collect();
        folders.sort();
        // Every refit folder is whole or visibly not; the whole ones are the same model.
        folders.iter().filter(|d| descent::experiment::missing_run_files(d).is_empty()).map(|d| std::fs::read(d.join("model.safetensors")).unwrap()).collect()
    };
    let want_refit = refit_model("straight-runs");

    let study = small_study(&dir, "killed");
    let db = dir.join("killed.sqlite");
    let mut rng = descent::rng::seeded(20_261_204);
    let (mut finished_first, mut interrupted) = (0, 0);
    for i in 0..20 {
        // Moment i in the i-th twentieth of the uninterrupted study's time: the 20 cover
        // sampling, training folds, recording values, exporting the best and its refit.
        // Should the study finish first (the machine got faster), earlier.
        let mut at = full.mul_f64((i as f64 + rng.random::<f64>()) / 20.0);
        loop {
            let _ = std::fs::remove_file(&db);
            let _ = std::fs::remove_dir_all(dir.join("killed-runs"));
            if common::run_and_kill(&["tune", study.to_str().unwrap(), "--quiet"], &dir, at) {
                break;
            }
            finished_first += 1;
            assert!(finished_first < 20, "the study keeps finishing before its kill");
            at = at.mul_f64(0.7);
        }
        if let Ok(trials) = Store::open_read(&db, None).and_then(|s| s.trials()) {
            interrupted += trials.iter().filter(|t| t.state == TrialState::Running).count();
        }
        // The same command resumes and completes the study.
        let out = descent(&["tune", study.to_str().unwrap(), "--quiet"], &dir);
        assert!(out.status.success(), "moment {i}: {}", text(&out));
        let got = Store::open_read(&db, None).unwrap().trials().unwrap();
        assert_eq!(got.len(), 5, "moment {i}: exactly the budget, none counted twice");
        for (g, w) in got.iter().zip(&want) {
            // The same trial as uninterrupted: number, parameters, value, and its
            // per-epoch values from one attempt alone (2 folds × 6 epochs).
            assert_eq!((g.number, g.state, &g.params, g.value), (w.number, w.state, &w.params, w.value), "moment {i}");
            assert_eq!(g.intermediate, w.intermediate, "moment {i}: trial {}", g.number);
        }
        let refits = refit_model("killed-runs");
        assert!(!refits.is_empty() && refits.iter().all(|m| *m == want_refit[0]), "moment {i}: the refit differs");
    }
    eprintln!("20 moments over {:.3} s: {interrupted} kills inside a trial, {finished_first} moments moved earlier", full.as_secs_f64());
    assert!(interrupted >= 5, "only {interrupted} of 20 kills landed inside a trial");
}

#[test]
fn workers_sharing_a_study_split_its_trials_and_retry_a_killed_workers_trial() {
    let dir = workdir("workers");
    workers_share_a_study(&dir, "shared.sqlite", &dir.join("shared.sqlite"), "shared");
    std::fs::remove_dir_all(&dir).ok();
}

/// The same on a PostgreSQL server (what machines sharing a study use): `.ci/run` starts
/// one and sets `DESCENT_TEST_POSTGRES`.
#[cfg(feature = "postgres")]
#[test]
fn workers_sharing_a_study_on_a_postgresql_server_retry_a_killed_workers_trial() {
    let url = std::env::var("DESCENT_TEST_POSTGRES").expect("set DESCENT_TEST_POSTGRES to a PostgreSQL server URL to run the PostgreSQL tests");
    let dir = workdir("workers-pg");
    // A study of its own: the server keeps every earlier run's.
    let name = format!("shared-{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis());
    workers_share_a_study(&dir, &url, Path::new(&url), &name);
    // `descent study show` reads it from the server too.
    let out = descent(&["study", "show", &url, "--study", &name], &dir);
    assert!(out.status.success() && text(&out).contains("(9 trials)"), "{}", text(&out));
    std::fs::remove_dir_all(&dir).ok();
}

/// Three `descent tune` processes at once on one study (what three machines do with a
/// shared database), one of them SIGKILLed in the middle of a trial: the others take its
/// trial over once its heartbeat is older than the grace period, and the study ends with
/// exactly its budget, every trial complete and counted once.
fn workers_share_a_study(dir: &Path, storage: &str, db: &Path, name: &str) {
    let exp = common::experiment_toml(&common::digits(), "\"adam\"", 8, 0, "");
    std::fs::write(dir.join("exp.toml"), exp).unwrap();
    let extra = format!("name = \"{name}\"\nstorage = \"{storage}\"\nrefit = false\nheartbeat_seconds = 0.1\ngrace_seconds = 1.0");
    std::fs::write(dir.join("study.toml"), common::study_toml("exp.toml", 9, &extra)).unwrap();
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_descent"))
            .args(["tune", "study.toml", "--quiet"])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut workers: Vec<std::process::Child> = (0..3).map(|_| spawn()).collect();
    let victim = workers[2].id();
    let open = || Store::open_read(db, Some(name));
    // Kill the victim once it is running a trial.
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed_trial = loop {
        assert!(Instant::now() < deadline, "the victim never ran a trial");
        let running = open().and_then(|s| {
            let workers = s.workers()?;
            let trials = s.trials()?;
            Ok(trials.into_iter().find(|t| t.state == TrialState::Running && workers.iter().any(|(n, w)| *n == t.number && w.as_deref().is_some_and(|w| w.ends_with(&format!(":{victim}"))))).map(|t| t.number))
        });
        if let Ok(Some(n)) = running {
            unsafe { libc::kill(victim as i32, libc::SIGKILL) };
            break n;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = workers[2].wait();
    for w in &mut workers[..2] {
        let out = w.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(w.stderr.as_mut().unwrap(), &mut err).ok();
        assert!(out.success(), "{err}");
    }
    let store = open().unwrap();
    let trials = store.trials().unwrap();
    let numbers: Vec<u64> = trials.iter().map(|t| t.number).collect();
    assert_eq!(numbers, (0..9).collect::<Vec<u64>>(), "the budget, each number once");
    assert!(trials.iter().all(|t| t.state == TrialState::Complete), "{trials:?}");
    let retried = trials.iter().find(|t| t.number == killed_trial).unwrap();
    assert_eq!(retried.attempts, 2, "the killed worker's trial ran again, once");
    // Its intermediate values are the retry's alone: one per fold-epoch.
    assert_eq!(retried.intermediate.len(), 16, "{:?}", retried.intermediate);
    let by: std::collections::BTreeSet<String> = store.workers().unwrap().into_iter().filter_map(|(_, w)| w).collect();
    eprintln!("{}: trial {killed_trial} retried; trials finished by {} workers: {by:?}", descent_tune::db::shown(Path::new(storage)), by.len());
    assert!(by.len() >= 2, "the survivors shared the trials: {by:?}");
    let last_runner = store.workers().unwrap().into_iter().find(|(n, _)| *n == killed_trial).and_then(|(_, w)| w).unwrap();
    assert!(!last_runner.ends_with(&format!(":{victim}")), "trial {killed_trial} was finished by a survivor, not {last_runner}");
}
