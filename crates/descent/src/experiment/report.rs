//! `descent report RUN`: one self-contained HTML file (inline SVG and CSS, no network,
//! opens from disk) with what a run recorded — its summary and machine, the doctor's
//! findings, learning curves, the learning rate, per-layer gradient norms and update
//! ratios, weight histograms over epochs, the confusion matrix on the held-out split,
//! timings, the configuration and, when `descent explain` ran, its permutation
//! importance and the PNG heatmaps of its explained samples and classes.
//!
//! Each chart is a `<figure class="chart">`; a small inline script checks, in the
//! browser, that every figure holds a drawn chart and records the count on `<body>`
//! (`data-charts`, `data-empty-charts`) — what the headless-Chromium test reads.

use std::fmt::Write as _;
use std::path::Path;

use super::doctor::{diagnose, experiment_baseline, Consult, RunRecord};
use super::DataSource;
use crate::error::{Error, Result};
use crate::io::chart::{line_chart, xy_chart, Series, XAxis, XySeries};
use crate::train::Model;

use crate::io::chart::xml_escape as esc;

/// The report of the run folder `dir`, as HTML text.
pub fn run_report(dir: &Path) -> Result<String> {
    let record = RunRecord::load(dir)?;
    let t = &record.telemetry;
    let exp = &record.experiment;
    let mut html = page_start(&format!("descent report: {}", exp.name()));

    // --- summary ----------------------------------------------------------------------
    let metrics: Option<serde_json::Value> = std::fs::read_to_string(dir.join(super::METRICS_FILE)).ok().and_then(|s| serde_json::from_str(&s).ok());
    let missing = super::missing_run_files(dir);
    let status = match (&record.status, missing.is_empty()) {
        (Some(s), _) => s.clone(),
        (None, true) => "completed".into(),
        (None, false) => format!("incomplete: no {} (killed while training or writing, or still running)", missing.join(", ")),
    };
    let (seconds, waiting) = t.epochs.iter().fold((0.0, 0.0), |(s, w), e| (s + e.seconds, w + e.data_seconds));
    let mut rows: Vec<(String, String)> = vec![
        ("run folder".into(), dir.display().to_string()),
        ("status".into(), status),
        ("epochs".into(), format!("{} of {} planned", t.epochs.len(), t.epochs_planned)),
        ("steps".into(), format!("{} (batch {}, {} samples per epoch)", t.steps.loss.len(), t.batch_size, t.samples_per_epoch)),
        ("parameters".into(), t.parameters.to_string()),
        ("optimizer".into(), t.optimizer.name.clone()),
        ("training time".into(), format!("{seconds:.2} s, {:.0} steps/s, {:.1}% waiting for data", t.steps.loss.len() as f64 / seconds.max(1e-9), 100.0 * waiting / seconds.max(1e-9))),
        ("machine".into(), format!("{} ({} threads, SIMD {})", t.machine.cpu, t.machine.threads, t.machine.simd)),
    ];
    if let Some(test) = metrics.as_ref().and_then(|m| m.get("test")).and_then(|v| v.as_object()) {
        let shown: Vec<String> = test.iter().filter_map(|(k, v)| v.as_f64().map(|v| format!("{k} {v:.4}"))).collect();
        rows.push(("held-out".into(), shown.join(", ")));
    }
    if let Some(d) = &t.divergence {
        rows.push(("divergence".into(), d.to_string()));
    }
    html += "<section id=\"summary\"><h2>Summary</h2><table>\n";
    for (k, v) in &rows {
        let _ = writeln!(html, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    html += "</table></section>\n";

    // --- the doctor -------------------------------------------------------------------
    let mut ceiling = || super::doctor::machine_ceiling(&record);
    let findings = diagnose(&record, Consult { lr_find: None, baseline: experiment_baseline(exp), ceiling: Some(&mut ceiling) });
    html += "<section id=\"findings\"><h2>The doctor's findings</h2>\n";
    if findings.is_empty() {
        html += "<p class=\"healthy\">No findings: training looks healthy (stable, fitting, not overfitting, not waiting for data).</p>\n";
    }
    for f in &findings {
        let _ = writeln!(html, "<pre class=\"finding\">{}</pre>", esc(&f.to_string()));
    }
    if !findings.is_empty() {
        let _ = writeln!(html, "<p class=\"note\">The exact fix as an experiment file: <code>descent doctor {} --fix fixed.toml</code></p>", esc(&dir.display().to_string()));
    }
    html += "</section>\n";

    // --- curves -------------------------------------------------------------------------
    html += "<section id=\"curves\"><h2>Learning curves</h2>\n";
    let names: Vec<String> = t.epochs.iter().flat_map(|e| e.logs.keys().cloned()).fold(Vec::new(), |mut v, k| {
        if !v.contains(&k) {
            v.push(k);
        }
        v
    });
    let per_epoch = |name: &str| -> Vec<f64> { t.epochs.iter().map(|e| e.logs.get(name).copied().unwrap_or(f64::NAN)).collect() };
    let losses: Vec<(String, Vec<f64>)> = names.iter().filter(|n| n.ends_with("loss")).map(|n| (n.clone(), per_epoch(n))).collect();
    let others: Vec<(String, Vec<f64>)> = names.iter().filter(|n| !n.ends_with("loss")).map(|n| (n.clone(), per_epoch(n))).collect();
    for (what, group) in [("loss", &losses), ("metrics", &others)] {
        if group.is_empty() {
            continue;
        }
        let series: Vec<Series> = group.iter().map(|(n, v)| Series { label: n, values: v }).collect();
        figure(&mut html, what, &line_chart(&format!("{}: {what} per epoch", exp.name()), "epoch", what, 1, &series));
    }
    html += "</section>\n";

    // --- optimization -------------------------------------------------------------------
    html += "<section id=\"optimization\"><h2>Optimization</h2>\n";
    let steps: Vec<(f64, f64)> = t.steps.learning_rate.iter().enumerate().map(|(i, &l)| ((i + 1) as f64, l as f64)).collect();
    figure(&mut html, "learning_rate", &xy_chart("learning rate per step", "step", "learning rate", XAxis::Index, None, &[XySeries { label: "learning rate", points: steps, dots: false }], &[]));
    let loss_steps: Vec<(f64, f64)> = t.steps.loss.iter().enumerate().map(|(i, &l)| ((i + 1) as f64, l as f64)).collect();
    figure(&mut html, "step_loss", &xy_chart("training loss per step", "step", "loss", XAxis::Index, None, &[XySeries { label: "loss", points: loss_steps, dots: false }], &[]));
    let per_layer = |pick: fn(&crate::train::LayerSeries) -> &Vec<f32>| -> Vec<XySeries> {
        t.layers
            .iter()
            .filter(|l| l.parameters > 0)
            .map(|l| XySeries {
                label: &l.name,
                points: t.sample_steps.iter().zip(pick(l)).filter(|(_, v)| **v > 0.0).map(|(&s, &v)| ((s + 1) as f64, (v as f64).log10())).collect(),
                dots: false,
            })
            .collect()
    };
    figure(&mut html, "grad_norm", &xy_chart("gradient norm per layer", "step", "log10 gradient norm", XAxis::Index, None, &per_layer(|l| &l.grad_norm), &[]));
    figure(&mut html, "update_ratio", &xy_chart("update / weight ratio per layer (healthy near 1e-3)", "step", "log10 update ratio", XAxis::Index, None, &per_layer(|l| &l.update_ratio), &[]));
    html += "</section>\n";

    // --- weights ------------------------------------------------------------------------
    html += "<section id=\"weights\"><h2>Weight histograms over epochs</h2>\n";
    for l in t.layers.iter().filter(|l| !l.histograms.is_empty()) {
        figure(&mut html, &format!("weights_{}", l.name), &histogram_chart(&l.name, &l.histograms));
    }
    html += "</section>\n";

    // --- confusion matrix ---------------------------------------------------------------
    html += "<section id=\"confusion\"><h2>Confusion matrix (held-out split)</h2>\n";
    match confusion(dir, &record) {
        Ok(Some(svg)) => figure(&mut html, "confusion", &svg),
        Ok(None) => html += "<p class=\"note\">Not a classifier, or no held-out split (test_split = 0).</p>\n",
        Err(e) => {
            let _ = writeln!(html, "<p class=\"note\">No confusion matrix: {}</p>", esc(&e.to_string()));
        }
    }
    html += "</section>\n";

    // --- explanations (written by `descent explain`) ---------------------------------------
    if let Some(section) = explanations(dir)? {
        html += &section;
    }

    // --- timings and configuration -------------------------------------------------------
    html += "<section id=\"timings\"><h2>Timings</h2><table>\n<tr><th>epoch</th><th>steps</th><th>seconds</th><th>steps/s</th><th>waiting for data</th><th>clipped</th><th>skipped</th></tr>\n";
    for e in &t.epochs {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{:.3}</td><td>{:.0}</td><td>{:.1}%</td><td>{}</td><td>{}</td></tr>",
            e.epoch + 1,
            e.steps,
            e.seconds,
            e.steps as f64 / e.seconds.max(1e-9),
            100.0 * e.data_seconds / e.seconds.max(1e-9),
            e.clipped,
            e.skipped
        );
    }
    html += "</table></section>\n";
    let config = std::fs::read_to_string(dir.join("config.toml")).map_err(|e| Error::io(dir.join("config.toml"), e))?;
    let _ = writeln!(html, "<section id=\"config\"><h2>Configuration</h2><pre>{}</pre></section>", esc(&config));
    html += &page_end();
    Ok(html)
}

/// The start of a self-contained report page (doctype, style, the title as heading);
/// [`page_end`] closes it. Shared by the run report and the study and comparison reports.
pub fn page_start(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\n<style>{STYLE}</style></head>\n<body>\n<h1>{}</h1>\n",
        esc(title),
        esc(title)
    )
}

/// The end of a report page: the script that checks, in the browser, that every chart
/// figure is drawn.
pub fn page_end() -> String {
    format!("{CHECK_SCRIPT}</body></html>\n")
}

/// The explanations `descent explain` saved in `dir` (None when it has not run): the
/// permutation importance of the top features, and each explained sample's and class's
/// heatmaps, embedded as PNG.
fn explanations(dir: &Path) -> Result<Option<String>> {
    let path = dir.join("explain.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::data(path.display().to_string(), format!("not the JSON `descent explain` writes: {e}")))?;
    let mut html = String::from("<section id=\"explanations\"><h2>Explanations (descent explain)</h2>\n");
    let metric = json["metric"].as_str().unwrap_or("score");
    let mut importance: Vec<(String, f64, f64)> = json["permutation_importance"]
        .as_array()
        .map(|a| a.iter().map(|i| (i["name"].as_str().unwrap_or("?").to_string(), i["mean"].as_f64().unwrap_or(f64::NAN), i["std"].as_f64().unwrap_or(0.0))).collect())
        .unwrap_or_default();
    importance.sort_by(|a, b| b.1.total_cmp(&a.1));
    importance.truncate(10);
    if !importance.is_empty() {
        let _ = writeln!(
            html,
            "<p>{} — {} {:.4}; permutation importance over {} repeats: the drop in {} when a feature is shuffled (mean ± std), top {}.</p>",
            esc(json["source"].as_str().unwrap_or("")),
            esc(metric),
            json["score"].as_f64().unwrap_or(f64::NAN),
            json["n_repeats"],
            esc(metric),
            importance.len()
        );
        figure(&mut html, "permutation_importance", &importance_chart(&importance));
    }
    for (key, what) in [("samples", "Samples"), ("classes", "Per class")] {
        let Some(items) = json[key].as_array() else { continue };
        let drawn: Vec<&serde_json::Value> = items.iter().filter(|i| i["heatmap"].is_string()).collect();
        if drawn.is_empty() {
            continue;
        }
        let _ = writeln!(html, "<h3>{what}</h3>");
        for item in drawn {
            let name = item["heatmap"].as_str().unwrap_or_default();
            let file = dir.join(name);
            let bytes = std::fs::read(&file).map_err(|e| Error::io(&file, e))?;
            let caption = item["caption"].as_str().unwrap_or(name);
            let _ = writeln!(
                html,
                "<figure class=\"chart\" data-chart=\"{}\"><img alt=\"{}\" src=\"{}\"><figcaption>{}</figcaption></figure>",
                esc(name.trim_end_matches(".png")),
                esc(caption),
                crate::io::heatmap::png_data_url(&bytes),
                esc(caption)
            );
        }
    }
    html += "</section>\n";
    Ok(Some(html))
}

/// Horizontal bars of (name, mean, std), the std drawn as a whisker.
fn importance_chart(rows: &[(String, f64, f64)]) -> String {
    let (label_w, bar_w, row_h) = (190.0, 420.0, 22.0);
    let hi = rows.iter().map(|r| (r.1 + r.2).abs().max(r.1.abs())).fold(0.0f64, f64::max).max(1e-12);
    let lo = rows.iter().map(|r| (r.1 - r.2).min(0.0)).fold(0.0f64, f64::min);
    let span = hi - lo;
    let x_of = |v: f64| label_w + bar_w * (v - lo) / span;
    let height = row_h * rows.len() as f64 + 30.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        label_w + bar_w + 80.0
    );
    for (i, (name, mean, std)) in rows.iter().enumerate() {
        let y = 8.0 + i as f64 * row_h;
        let (a, b) = (x_of(0.0), x_of(*mean));
        let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", label_w - 6.0, y + 13.0, esc(name));
        let _ = writeln!(svg, "<rect x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#4477aa\"/>", a.min(b), (b - a).abs().max(0.5), row_h - 6.0);
        let _ = writeln!(
            svg,
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/><text x=\"{:.1}\" y=\"{:.1}\">{mean:+.4}</text>",
            x_of(mean - std),
            x_of(mean + std),
            y + (row_h - 6.0) / 2.0,
            y + (row_h - 6.0) / 2.0,
            x_of(hi) + 6.0,
            y + 13.0
        );
    }
    let _ = writeln!(svg, "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"4\" y2=\"{1:.1}\" stroke=\"#888\"/>", x_of(0.0), height - 22.0);
    svg + "</svg>\n"
}

/// A chart (`svg`) in a figure the page's check counts, named `name`.
pub fn figure(html: &mut String, name: &str, svg: &str) {
    let _ = writeln!(html, "<figure class=\"chart\" data-chart=\"{}\">\n{svg}</figure>", esc(name));
}

/// One line per recorded epoch (at most six, evenly spaced): the share of the layer's
/// kernel values per bin, each histogram over its own range on a shared axis.
fn histogram_chart(layer: &str, histograms: &[crate::train::Histogram]) -> String {
    let n = histograms.len();
    let picks: Vec<usize> = if n <= 6 { (0..n).collect() } else { (0..6).map(|k| k * (n - 1) / 5).collect() };
    let labels: Vec<String> = picks.iter().map(|&i| format!("epoch {}", histograms[i].epoch + 1)).collect();
    let series: Vec<XySeries> = picks
        .iter()
        .zip(&labels)
        .map(|(&i, label)| {
            let h = &histograms[i];
            let total = h.counts.iter().sum::<u32>().max(1) as f64;
            let width = (h.hi - h.lo) as f64 / h.counts.len() as f64;
            let points = h.counts.iter().enumerate().map(|(b, &c)| (h.lo as f64 + (b as f64 + 0.5) * width, c as f64 / total)).collect();
            XySeries { label, points, dots: false }
        })
        .collect();
    xy_chart(&format!("'{layer}' kernel values"), "weight", "share of weights", XAxis::Linear, None, &series, &[])
}

/// The held-out confusion matrix as an SVG heatmap (None: not a classifier, or no
/// held-out split).
fn confusion(dir: &Path, record: &RunRecord) -> Result<Option<String>> {
    let exp = &record.experiment;
    if record.status.is_some() || matches!(exp.data.source, DataSource::Text { .. } | DataSource::Npy { stream: true, .. }) {
        return Ok(None);
    }
    let (_, test) = exp.load_splits()?;
    let Some(mut test) = test else { return Ok(None) };
    let (mut model, saved) = Model::load(dir)?;
    saved.preprocessing.apply(&mut test.x)?;
    let Some(cm) = model.confusion_matrix(&test.x, &test.y, 256)? else { return Ok(None) };
    let k = cm.classes;
    let cell = (360.0 / k as f64).clamp(12.0, 40.0);
    let (left, top) = (70.0, 50.0);
    let side = cell * k as f64;
    let max = cm.counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">confusion matrix: {} samples, accuracy {:.4}</text>\n",
        left + side + 40.0,
        top + side + 50.0,
        left + side / 2.0,
        cm.counts.iter().sum::<u64>(),
        (0..k).map(|i| cm.counts[i * k + i]).sum::<u64>() as f64 / cm.counts.iter().sum::<u64>().max(1) as f64
    );
    for t in 0..k {
        for p in 0..k {
            let c = cm.counts[t * k + p];
            let shade = (255.0 * (1.0 - (c as f64 / max).sqrt())).round() as u8;
            let (x, y) = (left + p as f64 * cell, top + t as f64 * cell);
            let _ = writeln!(svg, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cell:.1}\" height=\"{cell:.1}\" fill=\"rgb({shade},{shade},255)\" stroke=\"#ddd\"><title>true {t}, predicted {p}: {c}</title></rect>");
            if cell >= 20.0 && c > 0 {
                let color = if shade < 110 { "white" } else { "black" };
                let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"{color}\">{c}</text>", x + cell / 2.0, y + cell / 2.0 + 4.0);
            }
        }
        let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{t}</text>", left - 4.0, top + (t as f64 + 0.5) * cell + 4.0);
        let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t}</text>", left + (t as f64 + 0.5) * cell, top + side + 14.0);
    }
    let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">predicted class</text>", left + side / 2.0, top + side + 34.0);
    let _ = writeln!(svg, "<text x=\"16\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.1})\">true class</text>", top + side / 2.0, top + side / 2.0);
    Ok(Some(svg + "</svg>\n"))
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
h1{font-size:1.6em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}\
table{border-collapse:collapse}th,td{padding:.2em .8em;border-bottom:1px solid #eee;text-align:left}\
pre{background:#f6f6f6;padding:.8em;overflow-x:auto}pre.finding{border-left:4px solid #d62728}\
p.healthy{color:#2a7a2a;font-weight:bold}p.note{color:#666}figure.chart{display:inline-block;margin:.5em}";

/// Checks in the browser that every chart figure holds a drawn SVG (a line with
/// points, or cells), and records the counts on `<body>`; an empty chart is a console
/// error.
const CHECK_SCRIPT: &str = r#"<script>
// Run at the load event, once embedded pictures are decoded.
window.addEventListener("load", function () {
  var figures = document.querySelectorAll("figure.chart");
  var empty = 0;
  figures.forEach(function (f) {
    var img = f.querySelector("img");
    if (img) {
      // A picture (a PNG heatmap): decoded, with pixels, and laid out.
      if (!(img.complete && img.naturalWidth > 0 && img.getBoundingClientRect().width > 0)) {
        empty += 1;
        console.error("empty picture: " + f.getAttribute("data-chart"));
      }
      return;
    }
    var svg = f.querySelector("svg");
    var drawn = svg && Array.prototype.some.call(svg.querySelectorAll("polyline"), function (p) { return p.getAttribute("points").trim().length > 0; });
    drawn = drawn || (svg && (svg.querySelectorAll("rect").length > 1 || svg.querySelectorAll("circle").length > 0));
    var box = svg && svg.getBoundingClientRect();
    if (!drawn || !box || box.width === 0 || box.height === 0) {
      empty += 1;
      console.error("empty chart: " + f.getAttribute("data-chart"));
    }
  });
  document.body.setAttribute("data-charts", String(figures.length));
  document.body.setAttribute("data-empty-charts", String(empty));
});
</script>
"#;
