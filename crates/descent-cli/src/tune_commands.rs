//! `descent cv | tune | study | compare`: cross-validation, hyperparameter studies and
//! configuration comparisons (the work is in the descent-tune crate).

use std::path::{Path, PathBuf};

use descent::distributed::Communicator;
use descent::experiment::Experiment;
use descent::io::write_atomic;
use descent::{Error, Result};
use descent_tune::compare::{compare, with_optimizer, Contender};
use descent_tune::cv::cross_validate_many;
use descent_tune::space::describe;
use descent_tune::study_file::{trial_experiment, StudyDef};
use descent_tune::{FoldSpec, Store, TrialRecord, TrialState};

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Folds run in parallel, one thread each, unless the user asks otherwise.
fn jobs_threads(jobs: Option<usize>, threads: usize) -> Result<(usize, usize)> {
    let threads = threads.max(1);
    let jobs = jobs.unwrap_or((cores() / threads).max(1));
    if jobs * threads > cores() {
        return Err(Error::Config(format!("--jobs {jobs} × --threads {threads} would oversubscribe the {} cores", cores())));
    }
    Ok((jobs, threads))
}

pub struct FoldArgs {
    pub folds: usize,
    pub stratified: bool,
    pub repeats: usize,
    pub seed: Option<u64>,
    pub jobs: Option<usize>,
    pub threads: usize,
    pub epochs: Option<usize>,
}

impl FoldArgs {
    fn spec(&self, exp: &Experiment) -> FoldSpec {
        FoldSpec { folds: self.folds, stratified: self.stratified, repeats: self.repeats, shuffle: true, seed: self.seed.unwrap_or(exp.seed) }
    }
}

fn load_experiment(file: &Path, epochs: Option<usize>) -> Result<Experiment> {
    let mut exp = Experiment::from_file(file)?;
    if let Some(e) = epochs {
        exp.fit.epochs = e;
        exp.validate()?;
    }
    Ok(exp)
}

/// `descent cv FILE`: k-fold cross-validation of one experiment.
pub fn cv(file: &Path, args: &FoldArgs, json: Option<&Path>) -> Result<()> {
    let exp = load_experiment(file, args.epochs)?;
    let spec = args.spec(&exp);
    let (jobs, threads) = jobs_threads(args.jobs, args.threads)?;
    eprintln!(
        "{}-fold{} cross-validation of {} ({} epochs per fold, {jobs} folds at a time); the held-out test split is not used",
        spec.folds,
        if spec.stratified { " stratified" } else { "" },
        exp.name(),
        exp.fit.epochs
    );
    let (mut reports, _) = cross_validate_many(&[(exp.name(), &exp)], &spec, jobs, threads)?;
    let report = reports.remove(0);
    print!("{}", report.table());
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&report.to_json()).expect("json");
        write_atomic(path, text.as_bytes())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `descent tune STUDY.toml`: runs (or resumes) a study.
/// `descent tune`; under `mpirun -np N`, each rank is one worker of the same study (one
/// trial at a time unless `--jobs` or the study says otherwise), and rank 0 reports and
/// refits once every rank's trials are done.
pub fn tune(file: &Path, trials: Option<usize>, jobs: Option<usize>, verbose: bool, mut group: Option<&mut dyn Communicator>) -> Result<()> {
    let mut def = StudyDef::from_file(file)?;
    if let Some(t) = trials {
        def.section.trials = t;
    }
    let rank = group.as_deref().map_or(0, |g| g.rank());
    let mut opts = def.options(verbose && rank == 0);
    if group.is_some() && def.section.jobs.is_none() {
        opts.jobs = 1;
    }
    if let Some(j) = jobs {
        opts.jobs = j;
    }
    if let Some(g) = group.as_deref_mut() {
        let mine = format!("{} trials of study `{}` in {}", opts.n_trials, def.name, descent_tune::db::shown(&def.storage));
        let all = g.gather_all(mine.as_bytes());
        if let Some(r) = all.iter().position(|a| a != &all[0]) {
            return Err(Error::Config(format!(
                "{}: rank {r} would run {} but rank 0 {} (every rank must run the same study)",
                file.display(),
                String::from_utf8_lossy(&all[r]),
                String::from_utf8_lossy(&all[0])
            )));
        }
    }
    let study = def.open()?;
    if rank == 0 {
        eprintln!(
            "study `{}` in {}: {} sampler, {} pruner, {} trials, {} × {} thread(s), {} {} by {}",
            def.name,
            descent_tune::db::shown(&def.storage),
            def.section.sampler,
            study.pruner_name(),
            opts.n_trials,
            opts.jobs,
            opts.threads,
            def.objective.direction().as_str(),
            def.objective.metric,
            if def.objective.folds == 1 { "one validation split".to_string() } else { format!("{}-fold CV", def.objective.folds) }
        );
    }
    study.optimize(&opts, |trial| def.evaluate(trial))?;
    if let Some(g) = group {
        // Every rank's trials are done when all have come here.
        g.sum(&mut [0.0]);
        if g.rank() != 0 {
            return Ok(());
        }
    }
    let all = study.trials()?;
    let count = |s: TrialState| all.iter().filter(|t| t.state == s).count();
    println!(
        "\n{} trials: {} complete, {} pruned, {} failed",
        all.len(),
        count(TrialState::Complete),
        count(TrialState::Pruned),
        count(TrialState::Failed)
    );
    let Some(best) = study.best()? else {
        return Err(Error::State("no trial completed".into()));
    };
    println!("best trial #{}: {} = {:.4}  ({})", best.number, def.objective.metric, best.value.unwrap_or(f64::NAN), describe(&best.params));
    let store = Store::open_read(&def.storage, Some(&def.name))?;
    let exported = beside(&def.storage, &def.name, "best.toml");
    export(&store.info, &best, &exported)?;
    println!("its experiment: {} (run it with `descent fit {}`)", exported.display(), exported.display());
    println!("report: {}", study_report(&def.storage, Some(&def.name), None)?.display());
    if def.section.refit {
        let mut exp = trial_experiment(&store.info, &best)?;
        exp.fit.verbose = 0;
        let run = exp.run(None)?;
        let test: Vec<String> = run.test.iter().map(|(n, v)| format!("{n} {v:.4}")).collect();
        println!("retrained on the whole training split → held-out test: {} ({})", test.join(", "), run.dir.display());
    }
    Ok(())
}

/// Writes the HTML report of the study in `db` (to `out`, default `<stem>-report.html`
/// beside it); returns where.
pub fn study_report(db: &Path, name: Option<&str>, out: Option<&Path>) -> Result<PathBuf> {
    let store = Store::open_read(db, name)?;
    let html = descent_tune::report::study_report(&store.info, &store.trials()?);
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| beside(db, &store.info.name, "report.html"));
    write_atomic(&out, html.as_bytes())?;
    Ok(out)
}

/// `<stem>-<what>` beside a study file, or — for a study on a server — `<study
/// name>-<what>` in the current folder.
fn beside(storage: &Path, study: &str, what: &str) -> PathBuf {
    if descent_tune::db::is_server_url(storage) {
        return PathBuf::from(format!("{study}-{what}"));
    }
    let stem = storage.file_stem().map_or("study".into(), |s| s.to_string_lossy().into_owned());
    storage.with_file_name(format!("{stem}-{what}"))
}

fn export(info: &descent_tune::StudyInfo, trial: &TrialRecord, path: &Path) -> Result<()> {
    let exp = trial_experiment(info, trial)?;
    let header = format!(
        "# Trial {} of study `{}`: {} = {:.6} ({}).\n# Exported by descent from its study database.\n\n",
        trial.number,
        info.name,
        info.metric,
        trial.value.unwrap_or(f64::NAN),
        describe(&trial.params)
    );
    write_atomic(path, (header + &exp.to_toml()).as_bytes())
}

/// `descent study show|best|export DB`.
pub fn study(action: &str, db: &Path, name: Option<&str>, out: Option<&Path>) -> Result<()> {
    let store = Store::open_read(db, name)?;
    let info = &store.info;
    match action {
        "show" => {
            let trials = store.trials()?;
            println!("study `{}`: {} {} ({} trials)", info.name, info.direction.as_str(), info.metric, trials.len());
            println!("{:>5}  {:<9} {:>10} {:>8} {:>6} {:>8}  params", "trial", "state", info.metric, "steps", "tries", "seconds");
            for t in &trials {
                println!(
                    "{:>5}  {:<9} {:>10} {:>8} {:>6} {:>8}  {}{}",
                    t.number,
                    t.state.as_str(),
                    t.value.map_or("—".into(), |v| format!("{v:.4}")),
                    t.intermediate.len(),
                    t.attempts,
                    t.seconds.map_or("—".into(), |s| format!("{s:.1}")),
                    describe(&t.params),
                    t.message.as_ref().map_or(String::new(), |m| format!("  ({m})"))
                );
            }
            Ok(())
        }
        "best" => {
            let best = store.best()?.ok_or_else(|| Error::State(format!("study `{}` has no complete trial", info.name)))?;
            println!("best trial #{}: {} = {:.6}", best.number, info.metric, best.value.unwrap_or(f64::NAN));
            for (k, v) in &best.params {
                println!("  {k} = {v}");
            }
            if let serde_json::Value::Object(scores) = &best.scores {
                for (metric, s) in scores {
                    println!("  cv {metric}: {:.4} ± {:.4}", s["mean"].as_f64().unwrap_or(f64::NAN), s["std"].as_f64().unwrap_or(f64::NAN));
                }
            }
            Ok(())
        }
        "export" => {
            let best = store.best()?.ok_or_else(|| Error::State(format!("study `{}` has no complete trial", info.name)))?;
            let path = out.map(Path::to_path_buf).unwrap_or_else(|| beside(db, &info.name, "best.toml"));
            export(info, &best, &path)?;
            println!("wrote {} (trial #{})", path.display(), best.number);
            Ok(())
        }
        other => Err(Error::Config(format!("unknown study action `{other}` (show, best, export)"))),
    }
}

/// `descent compare FILE... | --optimizers a,b BASE`.
pub fn compare_cmd(files: &[PathBuf], optimizers: &[String], metric: &str, args: &FoldArgs, svg: Option<&Path>, report: Option<&Path>) -> Result<()> {
    let contenders: Vec<Contender> = if optimizers.is_empty() {
        files
            .iter()
            .map(|f| {
                let exp = load_experiment(f, args.epochs)?;
                Ok(Contender { label: exp.name().to_string(), experiment: exp })
            })
            .collect::<Result<_>>()?
    } else {
        let [base] = files else {
            return Err(Error::Config("--optimizers takes exactly one base experiment file".into()));
        };
        let base = load_experiment(base, args.epochs)?;
        optimizers.iter().map(|o| with_optimizer(&base, o)).collect::<Result<_>>()?
    };
    let spec = args.spec(&contenders[0].experiment);
    let (jobs, threads) = jobs_threads(args.jobs, args.threads)?;
    eprintln!("{} contenders × {} folds, {jobs} at a time", contenders.len(), spec.folds * spec.repeats);
    let result = compare(&contenders, &spec, metric, jobs, threads)?;
    print!("{}", result.table());
    if let Some(path) = svg {
        write_atomic(path, result.curves_svg().as_bytes())?;
        println!("learning curves: {}", path.display());
    }
    if let Some(path) = report {
        write_atomic(path, descent_tune::report::compare_report(&result).as_bytes())?;
        println!("report: {}", path.display());
    }
    Ok(())
}
