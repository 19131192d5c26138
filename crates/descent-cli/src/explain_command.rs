//! `descent explain RUN [--data FILE]`: permutation feature importance on labelled
//! data, and integrated gradients and saliency of a few samples — printed, saved as
//! `explain.json` in the run folder, and, for image inputs, drawn as SVG heatmaps
//! over the image.

use std::fmt::Write as _;
use std::path::Path;

use descent::io::write_atomic;
use descent::train::explain::{integrated_gradients, permutation_importance, saliency};
use descent::train::Model;
use descent::Result;

use crate::commands::labelled_data;

pub struct ExplainOptions {
    pub samples: usize,
    /// Rows scored by permutation importance (a seeded random subset when there are
    /// more): each feature costs `repeats` evaluations of them.
    pub max_samples: usize,
    pub repeats: usize,
    pub steps: usize,
    pub seed: u64,
}

pub fn explain(run: &Path, data: Option<&Path>, label_column: Option<String>, o: &ExplainOptions) -> Result<()> {
    let (mut model, saved) = Model::load(run)?;
    let (x, y, source) = labelled_data(run, &model, &saved, data, label_column)?;
    let sample_dims = x.sample_dims().to_vec();
    let feature_name = |j: usize| -> String {
        match sample_dims.as_slice() {
            [_, w, c] => format!("pixel ({}, {}) channel {}", j / c / w, j / c % w, j % c),
            [_, w] => format!("pixel ({}, {})", j / w, j % w),
            _ => format!("feature {j}"),
        }
    };

    // Permutation importance.
    let (px, py) = if x.rows() > o.max_samples {
        use rand::seq::SliceRandom;
        let mut rows: Vec<usize> = (0..x.rows()).collect();
        rows.shuffle(&mut descent::rng::derive(o.seed, 0x5EB5E7));
        rows.truncate(o.max_samples);
        rows.sort_unstable();
        (x.select_rows(&rows), y.select_rows(&rows))
    } else {
        (x.clone(), y.clone())
    };
    let (base, metric, importances) = permutation_importance(&mut model, &px, &py, o.repeats, o.seed)?;
    let mut ranked: Vec<&descent::train::explain::Importance> = importances.iter().collect();
    ranked.sort_by(|a, b| b.mean.total_cmp(&a.mean));
    println!("{source}: {} samples (permutation importance on {}); {metric} {base:.4}", x.rows(), px.rows());
    println!("permutation importance ({} repeats; the drop in {metric} when the feature is shuffled), top 10:", o.repeats);
    for imp in ranked.iter().take(10) {
        println!("  {:<28} {:+.4} ± {:.4}", feature_name(imp.feature), imp.mean, imp.std);
    }

    // Integrated gradients and saliency of the first samples, for their true class.
    let classes: Vec<usize> = (0..x.rows().min(o.samples)).map(|r| y.data()[r] as usize).collect();
    let mut samples_json = Vec::new();
    for (r, &class) in classes.iter().enumerate() {
        let a = integrated_gradients(&mut model, x.row(r), None, class, o.steps)?;
        let s = saliency(&mut model, &x.select_rows(&[r]), &[class])?;
        let mut top: Vec<usize> = (0..a.attributions.len()).collect();
        top.sort_by(|&i, &j| a.attributions[j].abs().total_cmp(&a.attributions[i].abs()));
        println!(
            "sample {r} (class {class}): F(x) = {:.4}, F(baseline 0) = {:.4}, Σ attributions − ΔF = {:.2e} (completeness gap)",
            a.output, a.baseline_output, a.completeness_gap
        );
        let shown: Vec<String> = top.iter().take(5).map(|&j| format!("{} {:+.3}", feature_name(j), a.attributions[j])).collect();
        println!("  largest integrated gradients: {}", shown.join(", "));
        if let [h, w, ..] = sample_dims.as_slice() {
            let file = run.join(format!("explain_sample_{r}.svg"));
            write_atomic(&file, heatmaps(x.row(r), &s, &a.attributions, *h, *w, sample_dims.get(2).copied().unwrap_or(1), r, class).as_bytes())?;
            println!("  heatmaps: {}", file.display());
        }
        samples_json.push(serde_json::json!({
            "sample": r, "class": class, "output": a.output, "baseline_output": a.baseline_output,
            "completeness_gap": a.completeness_gap, "integrated_gradients": a.attributions, "saliency": s,
        }));
    }
    let json = serde_json::json!({
        "source": source, "metric": metric, "score": base, "n_repeats": o.repeats, "ig_steps": o.steps,
        "permutation_importance": importances.iter().map(|i| serde_json::json!({"feature": i.feature, "name": feature_name(i.feature), "mean": i.mean, "std": i.std})).collect::<Vec<_>>(),
        "samples": samples_json,
    });
    let out = run.join("explain.json");
    write_atomic(&out, serde_json::to_string_pretty(&json).expect("json").as_bytes())?;
    println!("wrote {}", out.display());
    Ok(())
}

/// The image, its saliency and its integrated gradients side by side (channels summed).
#[allow(clippy::too_many_arguments)]
fn heatmaps(image: &[f32], saliency: &[f32], ig: &[f32], h: usize, w: usize, c: usize, sample: usize, class: usize) -> String {
    let cell = (160.0 / w.max(h) as f64).max(2.0);
    let (pw, ph) = (cell * w as f64, cell * h as f64);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\" shape-rendering=\"crispEdges\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"16\">sample {sample} (class {class}): input · saliency |∂F/∂x| · integrated gradients (red +, blue −)</text>\n",
        3.0 * pw + 40.0,
        ph + 30.0
    );
    let per_pixel = |v: &[f32]| -> Vec<f32> { v.chunks_exact(c).map(|p| p.iter().sum()).collect() };
    let panels = [per_pixel(image), per_pixel(saliency), per_pixel(ig)];
    for (k, values) in panels.iter().enumerate() {
        let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let scale = values.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
        let x0 = 10.0 + k as f64 * (pw + 10.0);
        for (i, &v) in values.iter().enumerate() {
            let color = match k {
                0 => {
                    let g = (255.0 * (1.0 - (v - lo) / (hi - lo).max(1e-12))) as u8;
                    format!("rgb({g},{g},{g})")
                }
                1 => {
                    let g = (255.0 * (1.0 - v / scale)) as u8;
                    format!("rgb(255,{g},{})", g / 2 + 127)
                }
                _ => {
                    let t = (255.0 * (1.0 - v.abs() / scale)) as u8;
                    if v >= 0.0 { format!("rgb(255,{t},{t})") } else { format!("rgb({t},{t},255)") }
                }
            };
            let _ = writeln!(svg, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{cell:.1}\" height=\"{cell:.1}\" fill=\"{color}\"/>", x0 + (i % w) as f64 * cell, 24.0 + (i / w) as f64 * cell);
        }
    }
    svg + "</svg>\n"
}
