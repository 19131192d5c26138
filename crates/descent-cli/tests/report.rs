//! `descent report RUN` in a real headless Chromium (Debian's `chromium`, installed by
//! `.ci/run`): the page loads from disk with no console errors, every chart is present
//! and drawn, and a screenshot is saved. Also `descent doctor` and `descent lr-find`
//! through the binary, and `descent explain`.

mod common;
use common::{descent, digits, experiment_toml, text, workdir};

use std::path::Path;
use std::process::Command;

fn chromium() -> &'static str {
    for name in ["chromium", "chromium-browser"] {
        if Command::new(name).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return name;
        }
    }
    panic!("a headless Chromium is needed: apt install chromium (.ci/run installs it)");
}

/// Chromium's flags for a headless run as root in a container, with the page's console
/// written to standard error.
fn headless(profile: &Path) -> Vec<String> {
    ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--enable-logging=stderr", "--v=0"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect()
}

#[test]
fn the_report_loads_in_chromium_with_every_chart_drawn() {
    let dir = workdir("report");
    std::fs::write(dir.join("small.toml"), experiment_toml(&digits(), "{ name = \"adam\", learning_rate = 0.003 }", 4, 0, "validation_split = 0.1")).unwrap();
    let fit = descent(&["fit", "small.toml"], &dir);
    assert!(fit.status.success(), "{}", text(&fit));
    let run = dir.join("runs/small-001");
    let report = descent(&["report", run.to_str().unwrap()], &dir);
    assert!(report.status.success(), "{}", text(&report));
    let page = run.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing fetched from anywhere.
    for remote in ["http://", "https://", "src=\"//"] {
        assert!(!html.replace("http://www.w3.org/2000/svg", "").contains(remote), "the report refers to {remote}");
    }
    let expected = ["loss", "metrics", "learning_rate", "step_loss", "grad_norm", "update_ratio", "weights_dense", "weights_dense_1", "confusion"];
    for name in expected {
        assert!(html.contains(&format!("data-chart=\"{name}\"")), "chart {name} missing");
    }
    assert!(html.contains("No findings"), "a healthy run has no findings");

    let browser = chromium();
    let url = format!("file://{}", page.display());
    let dom = Command::new(browser).args(headless(&dir.join("profile-dom"))).args(["--dump-dom", &url]).output().unwrap();
    let (dom_text, console) = (String::from_utf8_lossy(&dom.stdout), String::from_utf8_lossy(&dom.stderr));
    assert!(dom.status.success(), "chromium failed: {console}");
    let charts = format!("data-charts=\"{}\"", expected.len());
    assert!(dom_text.contains(&charts), "the page's own check did not count {} charts: {}", expected.len(), &dom_text[..dom_text.len().min(400)]);
    assert!(dom_text.contains("data-empty-charts=\"0\""), "an empty chart: {console}");
    let errors: Vec<&str> = console.lines().filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught")).collect();
    assert!(errors.is_empty(), "console messages: {errors:?}");

    let shot = dir.join("report.png");
    let png = Command::new(browser)
        .args(headless(&dir.join("profile-shot")))
        .args([&format!("--screenshot={}", shot.display()), "--window-size=1200,3600", "--hide-scrollbars", &url])
        .output()
        .unwrap();
    assert!(png.status.success(), "{}", String::from_utf8_lossy(&png.stderr));
    let bytes = std::fs::read(&shot).expect("the screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert!(bytes.len() > 20_000, "a blank screenshot ({} bytes)", bytes.len());
    eprintln!("screenshot: {}", shot.display());

    // The same run explained: importance per feature, and complete attributions.
    let explain = descent(&["explain", run.to_str().unwrap(), "--samples", "2", "--repeats", "3"], &dir);
    let out = text(&explain);
    assert!(explain.status.success() && out.contains("permutation importance (3 repeats"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("explain.json")).unwrap()).unwrap();
    assert_eq!(json["permutation_importance"].as_array().unwrap().len(), 64);
    for s in json["samples"].as_array().unwrap() {
        let change = s["output"].as_f64().unwrap() - s["baseline_output"].as_f64().unwrap();
        assert!(s["completeness_gap"].as_f64().unwrap().abs() < 0.05 * change.abs().max(1.0), "{s}");
    }
}

#[test]
fn doctor_and_lr_find_from_the_command_line() {
    let dir = workdir("doctor");
    std::fs::write(dir.join("slowlr.toml"), experiment_toml(&digits(), "{ name = \"adam\", learning_rate = 1e-6 }", 5, 0, "")).unwrap();
    let fit = descent(&["fit", "slowlr.toml"], &dir);
    assert!(fit.status.success(), "{}", text(&fit));
    let doctor = descent(&["doctor", "runs/slowlr-001", "--fix", "fixed.toml"], &dir);
    let out = text(&doctor);
    assert!(doctor.status.success(), "{out}");
    assert!(out.contains("[poor (underfit)] the learning rate is too low") && out.contains("learning_rate = "), "{out}");
    let fixed = std::fs::read_to_string(dir.join("fixed.toml")).unwrap();
    assert!(fixed.starts_with("# descent doctor's fix") && !fixed.contains("learning_rate = 1e-6"), "{fixed}");
    let refit = descent(&["fit", "fixed.toml"], &dir);
    assert!(refit.status.success(), "{}", text(&refit));

    let lr = descent(&["lr-find", "slowlr.toml", "--out", "lr.svg"], &dir);
    let out = text(&lr);
    assert!(lr.status.success(), "{out}");
    assert!(out.contains("suggestions: valley") && out.contains("in [compile] optimizer: learning_rate = "), "{out}");
    assert!(std::fs::read_to_string(dir.join("lr.svg")).unwrap().contains("<polyline"));
    // A folder that is not a run folder, and a complete run without telemetry, are refused
    // with the reason.
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let bad = descent(&["doctor", "empty"], &dir);
    assert!(!bad.status.success() && text(&bad).contains("not a run folder, or one killed before it wrote anything: it holds none of config.toml"), "{}", text(&bad));
    let run = dir.join("runs/slowlr-002");
    std::fs::remove_file(run.join("telemetry.json")).unwrap();
    let bad = descent(&["doctor", run.to_str().unwrap()], &dir);
    assert!(!bad.status.success() && text(&bad).contains("no telemetry.json"), "{}", text(&bad));
}

/// Loads `page` in headless Chromium: the page's own check counts `charts` drawn charts
/// and none empty, and the console has no errors.
fn loads_cleanly(dir: &Path, page: &Path, charts: usize) {
    let url = format!("file://{}", page.display());
    let dom = Command::new(chromium()).args(headless(&dir.join("profile-study"))).args(["--dump-dom", &url]).output().unwrap();
    let (dom_text, console) = (String::from_utf8_lossy(&dom.stdout), String::from_utf8_lossy(&dom.stderr));
    assert!(dom.status.success(), "chromium failed: {console}");
    assert!(dom_text.contains(&format!("data-charts=\"{charts}\"")), "not {charts} charts: {}", &dom_text[..dom_text.len().min(400)]);
    assert!(dom_text.contains("data-empty-charts=\"0\""), "an empty chart: {console}");
    let errors: Vec<&str> = console.lines().filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught")).collect();
    assert!(errors.is_empty(), "console messages: {errors:?}");
}

#[test]
fn tune_writes_a_study_report_that_loads_in_chromium() {
    let dir = workdir("study-report");
    std::fs::write(dir.join("e.toml"), experiment_toml(&digits(), "\"adam\"", 3, 0, "")).unwrap();
    std::fs::write(dir.join("s.toml"), common::study_toml("e.toml", 6, "")).unwrap();
    let tune = descent(&["tune", "s.toml", "--quiet"], &dir);
    assert!(tune.status.success() && text(&tune).contains("report: "), "{}", text(&tune));
    let page = dir.join("s-report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    for chart in ["history", "param_compile.optimizer.learning_rate", "param_model.layers.0.units"] {
        assert!(html.contains(&format!("data-chart=\"{chart}\"")), "chart {chart} missing");
    }
    assert!(html.contains("best trial") && html.contains("Parameter importance"));
    loads_cleanly(&dir, &page, 3);
    // `descent report` on the database writes the same page.
    let again = descent(&["report", "s.sqlite", "--out", "again.html"], &dir);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(std::fs::read_to_string(dir.join("again.html")).unwrap(), html);
}
