//! `descent doctor`, `descent lr-find` and `descent report`.

use std::path::Path;

use descent::experiment::doctor::{diagnose, experiment_baseline, fixed_experiment, machine_ceiling, Consult, RunRecord};
use descent::experiment::{Experiment, LrFindOptions, LrFinding};
use descent::io::write_atomic;
use descent::Result;

pub fn doctor(run: &Path, fix: Option<&Path>, lr_find: bool) -> Result<()> {
    let record = RunRecord::load(run)?;
    let exp = &record.experiment;
    let mut cached: Option<Option<f64>> = None;
    let mut range_test = || {
        *cached.get_or_insert_with(|| match exp.lr_find(&LrFindOptions::default()) {
            Ok(f) => {
                eprintln!("(ran the learning-rate range test: {})", f.toml_line());
                Some(f.valley)
            }
            Err(e) => {
                eprintln!("(the learning-rate range test could not run: {e})");
                None
            }
        })
    };
    let mut ceiling = || machine_ceiling(&record);
    let consult = Consult { lr_find: if lr_find { Some(&mut range_test) } else { None }, baseline: experiment_baseline(exp), ceiling: Some(&mut ceiling) };
    let findings = diagnose(&record, consult);
    match &record.status {
        Some(s) => println!("run {} ({s}, no model saved)", run.display()),
        None => println!("run {}", run.display()),
    }
    if findings.is_empty() {
        println!("no findings: training looks healthy (stable, fitting, not overfitting, not waiting for data)");
    }
    for f in &findings {
        print!("\n{f}");
    }
    if let Some(out) = fix {
        if findings.iter().all(|f| f.edits.is_empty()) {
            println!("\nnothing to change: no --fix file written");
        } else {
            write_atomic(out, fixed_experiment(&record, &findings)?.as_bytes())?;
            println!("\nwrote the corrected experiment to {} (run it: descent fit {})", out.display(), out.display());
        }
    }
    Ok(())
}

pub fn lr_find(file: &Path, out: Option<&Path>, steps: usize) -> Result<()> {
    let exp = Experiment::from_file(file)?;
    let options = LrFindOptions { steps, ..Default::default() };
    let f: LrFinding = exp.lr_find(&options)?;
    println!(
        "learning-rate range test: {} steps from {:e} to {:e}{}",
        f.learning_rates.len(),
        options.start,
        f.learning_rates.last().copied().unwrap_or(options.end),
        if f.stopped_early { " (stopped: the loss exceeded 4× its best)" } else { "" }
    );
    println!("suggestions: valley {:.3e}, steep {:.3e}, minimum/10 {:.3e}", f.valley, f.steep, f.minimum);
    println!("in [compile] optimizer: {}", f.toml_line());
    let svg = out.map(Path::to_path_buf).unwrap_or_else(|| Path::new(&format!("{}_lr_find.svg", exp.name())).to_path_buf());
    write_atomic(&svg, f.chart(&format!("{}: learning-rate range test", exp.name())).as_bytes())?;
    println!("chart: {}", svg.display());
    Ok(())
}

pub fn report(run: &Path, out: Option<&Path>) -> Result<()> {
    if run.is_file() {
        return crate::tune_commands::study_report(run, None, out).map(|path| println!("report: {}", path.display()));
    }
    let html = descent::experiment::report::run_report(run)?;
    let out = out.map(Path::to_path_buf).unwrap_or_else(|| run.join("report.html"));
    write_atomic(&out, html.as_bytes())?;
    println!("report: {}", out.display());
    Ok(())
}
