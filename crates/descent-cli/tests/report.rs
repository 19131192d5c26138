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

/// The bundled digits as IDX files of 8×8 images (values 0–16 fit a byte), so a
/// convnet sees them as images: `(images, labels)` in `dir`.
fn digits_as_idx(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let csv = std::fs::read_to_string(digits()).unwrap();
    let rows: Vec<Vec<u8>> = csv.lines().skip(1).map(|l| l.split(',').map(|v| v.trim().parse::<f32>().unwrap() as u8).collect()).collect();
    let n = rows.len() as u32;
    let mut images = [0x0000_0803u32, n, 8, 8].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
    let mut labels = [0x0000_0801u32, n].iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
    for r in &rows {
        assert_eq!(r.len(), 65, "64 pixels and the label");
        images.extend_from_slice(&r[..64]);
        labels.push(r[64]);
    }
    let (x, y) = (dir.join("digits-images.idx"), dir.join("digits-labels.idx"));
    std::fs::write(&x, images).unwrap();
    std::fs::write(&y, labels).unwrap();
    (x, y)
}

/// PNG bytes' width and height, from the IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let be = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn an_image_models_explanations_are_png_heatmaps_per_sample_and_class_in_the_report() {
    let dir = workdir("explain-images");
    let (images, labels) = digits_as_idx(&dir);
    let toml = format!(
        r#"
seed = 5
[data]
format = "idx"
images = "{}"
labels = "{}"
x_scale = 0.0625
test_split = 0.2
[model]
layers = [{{ type = "conv2d", filters = 8, kernel_size = 3, activation = "relu" }}, {{ type = "flatten" }}, {{ type = "dense", units = 10 }}]
[compile]
optimizer = {{ name = "adam", learning_rate = 0.01 }}
loss = {{ name = "sparse_categorical_crossentropy", from_logits = true }}
metrics = ["accuracy"]
[fit]
epochs = 4
verbose = 0
"#,
        images.display(),
        labels.display()
    );
    std::fs::write(dir.join("conv.toml"), toml).unwrap();
    let fit = descent(&["fit", "conv.toml"], &dir);
    assert!(fit.status.success(), "{}", text(&fit));
    let run = dir.join("runs/conv-001");
    let r = run.to_str().unwrap();

    // One class: its samples, explained for its output, and its mean.
    let one = descent(&["explain", r, "--class", "3", "--samples", "2", "--per-class", "4", "--repeats", "1", "--max-samples", "60"], &dir);
    assert!(one.status.success(), "{}", text(&one));
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("explain.json")).unwrap()).unwrap();
    let samples = json["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 2);
    assert!(samples.iter().all(|s| s["label"] == "3" && s["class"] == 3), "{samples:?}");
    let classes = json["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 1);
    assert_eq!(classes[0]["samples"].as_array().unwrap().len(), 4);
    // The class's mean attributions are the mean of its samples' (its first two are
    // the two samples explained above).
    let first: Vec<usize> = classes[0]["samples"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(first[..2], [samples[0]["sample"].as_u64().unwrap() as usize, samples[1]["sample"].as_u64().unwrap() as usize]);
    for bad in [["--class", "10"], ["--class", "-1"]] {
        let refused = descent(&["explain", r, bad[0], bad[1], "--repeats", "1"], &dir);
        assert!(!refused.status.success(), "{}", text(&refused));
    }
    let out = text(&descent(&["explain", r, "--class", "10", "--repeats", "1"], &dir));
    assert!(out.contains("--class 10: the model has 10 outputs, so classes 0..9"), "{out}");

    // Every class, then the report: the heatmaps replace the earlier ones.
    let all = descent(&["explain", r, "--samples", "2", "--per-class", "3", "--repeats", "1", "--max-samples", "60"], &dir);
    let out = text(&all);
    assert!(all.status.success() && out.contains("per class (the mean over up to 3 samples"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("explain.json")).unwrap()).unwrap();
    assert_eq!(json["classes"].as_array().unwrap().len(), 10);
    for c in json["classes"].as_array().unwrap() {
        // Integrated gradients stay complete on a convnet (midpoint rule, 50 steps).
        assert!(c["largest_completeness_gap"].as_f64().unwrap() < 0.05, "{c}");
    }
    let mut pictures: Vec<String> =
        std::fs::read_dir(&run).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("explain_") && n.ends_with(".png")).collect();
    pictures.sort();
    let samples: Vec<String> = json["samples"].as_array().unwrap().iter().map(|s| s["heatmap"].as_str().unwrap().to_string()).collect();
    assert_eq!(pictures.len(), 12, "2 samples and 10 classes, the --class run's removed: {pictures:?}");
    assert!(samples.iter().all(|s| pictures.contains(s)), "{samples:?} {pictures:?}");
    // Three 8×8 panels of 21-pixel cells with two 6-pixel gaps.
    assert_eq!(png_size(&std::fs::read(run.join(&pictures[0])).unwrap()), (3 * 8 * 21 + 12, 8 * 21));

    let report = descent(&["report", r], &dir);
    assert!(report.status.success(), "{}", text(&report));
    let page = run.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<img alt=").count(), 12);
    assert!(html.contains("data-chart=\"permutation_importance\"") && html.contains("data-chart=\"explain_class_7\""));
    // The run's charts (loss, metrics, learning rate, step loss, gradient norms, update
    // ratios, two weight histograms, confusion), the importance bars and 12 pictures.
    loads_cleanly(&dir, &page, 9 + 1 + 12);
}

#[test]
fn fit_warns_once_live_when_the_loss_spikes_or_the_model_overfits() {
    let dir = workdir("live-warnings");
    let warnings = |out: &str| out.lines().filter(|l| l.starts_with("warning:")).map(str::to_string).collect::<Vec<_>>();
    // Healthy: nothing.
    std::fs::write(dir.join("healthy.toml"), experiment_toml(&digits(), "{ name = \"adam\", learning_rate = 0.003 }", 4, 2, "validation_split = 0.1")).unwrap();
    let fit = descent(&["fit", "healthy.toml"], &dir);
    assert!(fit.status.success() && warnings(&text(&fit)).is_empty(), "{}", text(&fit));
    // Adam at 10: spikes, one warning, and no overfitting claimed for the rising
    // validation loss that comes with it.
    std::fs::write(dir.join("high.toml"), experiment_toml(&digits(), "{ name = \"adam\", learning_rate = 10.0 }", 6, 2, "validation_split = 0.1")).unwrap();
    let fit = descent(&["fit", "high.toml"], &dir);
    let w = warnings(&text(&fit));
    assert!(fit.status.success() && w.len() == 1 && w[0].starts_with("warning: loss spike number 2 at epoch 1, step "), "{}", text(&fit));
    // 162 samples for a 2×256 network: overfits; the warning comes at the epoch the
    // doctor's rule first holds, and once.
    let overfit = experiment_toml(&digits(), "{ name = \"adam\", learning_rate = 0.002 }", 60, 2, "validation_split = 0.3")
        .replace("test_split = 0.2", "test_split = 0.9")
        .replace("{ type = \"dense\", units = 32, activation = \"relu\" }", "{ type = \"dense\", units = 256, activation = \"relu\" }, { type = \"dense\", units = 256, activation = \"relu\" }");
    std::fs::write(dir.join("overfit.toml"), overfit).unwrap();
    let fit = descent(&["fit", "overfit.toml"], &dir);
    let out = text(&fit);
    let w = warnings(&out);
    assert!(fit.status.success() && w.len() == 1 && w[0].starts_with("warning: the model overfits: val_loss was lowest at epoch "), "{out}");
    // The rule (unit-tested beside it) holds first at the epoch warned of.
    let history = std::fs::read_to_string(dir.join("runs/overfit-001/history.csv")).unwrap();
    let mut lines = history.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
    let column = |name: &str| -> Vec<f64> {
        let c = header.iter().position(|h| *h == name).unwrap();
        rows.iter().map(|r| r[c]).collect()
    };
    let (val, train) = (column("val_loss"), column("loss"));
    let first = (1..=val.len()).find(|&e| descent::train::warning_signs::overfitting(&val[..e], &train[..e]).is_some()).unwrap();
    let warned: usize = w[0].rsplit(" at epoch ").next().unwrap().split(',').next().unwrap().parse().unwrap();
    assert_eq!(warned, first, "{w:?}");
}
