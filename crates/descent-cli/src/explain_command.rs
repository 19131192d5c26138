//! `descent explain RUN [--data FILE]`: permutation feature importance on labelled
//! data; integrated gradients and saliency of a few samples, and their average over the
//! samples of each class — printed, saved as `explain.json` in the run folder and, for
//! image inputs, drawn as PNG heatmaps over the image (`explain_sample_K.png`,
//! `explain_class_K.png`), which `descent report` shows.

use std::path::Path;

use descent::io::heatmap::Heatmap;
use descent::io::write_atomic;
use descent::train::explain::{integrated_gradients, permutation_importance, saliency};
use descent::train::Model;
use descent::{Error, Result};

use crate::commands::labelled_data;

pub struct ExplainOptions {
    pub samples: usize,
    /// Rows scored by permutation importance (a seeded random subset when there are
    /// more): each feature costs `repeats` evaluations of them.
    pub max_samples: usize,
    pub repeats: usize,
    pub steps: usize,
    pub seed: u64,
    /// Explain only this class: its first samples, for its output, and its aggregate.
    pub class: Option<usize>,
    /// Samples of each class averaged into the class's attributions (0: none).
    pub per_class: usize,
}

/// The integrated gradients and saliency of some samples, summed.
struct Explained {
    image: Vec<f64>,
    ig: Vec<f64>,
    saliency: Vec<f64>,
    largest_gap: f32,
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
    let image = match sample_dims.as_slice() {
        [h, w] => Some((*h, *w, 1)),
        [h, w, c] => Some((*h, *w, *c)),
        _ => None,
    };
    let units = model.network().output_units_of(0);
    let class_of = |r: usize| class_of_row(y.row(r), units);
    if let Some(k) = o.class {
        if units < 2 || k >= units {
            return Err(Error::Config(format!("--class {k}: the model has {units} output{}, so classes 0..{}", if units == 1 { "" } else { "s" }, units.max(2) - 1)));
        }
    }
    // The output explained for row r: --class, else the row's own class, else output 0
    // (one output: a regression or a binary classifier's logit).
    let target_of = |r: usize| o.class.or_else(|| class_of(r)).unwrap_or(0).min(units.saturating_sub(1));

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

    // Earlier heatmaps of this run would be shown beside these by `descent report`.
    remove_earlier_heatmaps(run)?;

    // Integrated gradients and saliency of the first samples (of --class, if given).
    let chosen: Vec<usize> = (0..x.rows()).filter(|&r| o.class.is_none() || class_of(r) == o.class).take(o.samples).collect();
    if chosen.is_empty() && o.samples > 0 {
        return Err(Error::Config(format!("no sample of {source} is labelled {}", o.class.unwrap_or(0))));
    }
    let mut samples_json = Vec::new();
    for &r in &chosen {
        let target = target_of(r);
        let one = explain_rows(&mut model, &x, &[r], target, o.steps)?;
        let label = class_of(r).map_or_else(|| format!("{:?}", y.row(r)), |c| c.to_string());
        let (out, base_out, gap) = one.1;
        println!("sample {r} (label {label}, explained output {target}): F(x) = {out:.4}, F(baseline 0) = {base_out:.4}, Σ attributions − ΔF = {gap:.2e} (completeness gap)");
        println!("  largest integrated gradients: {}", largest(&one.0.ig, 5, &feature_name));
        let caption = format!("sample {r} (label {label}), output {target}: input · saliency |∂F/∂x| · integrated gradients (red +, blue −)");
        if let Some(dims) = image {
            let file = run.join(format!("explain_sample_{r}.png"));
            write_heatmap(&file, &one.0, dims)?;
            println!("  heatmaps: {}", file.display());
        }
        samples_json.push(serde_json::json!({
            "sample": r, "label": label, "class": target, "output": out, "baseline_output": base_out, "completeness_gap": gap,
            "integrated_gradients": one.0.ig, "saliency": one.0.saliency, "caption": caption,
            "heatmap": image.map(|_| format!("explain_sample_{r}.png")),
        }));
    }

    // Per class: the mean attributions of its first `per_class` samples, each for its
    // own class's output.
    let mut classes_json = Vec::new();
    if o.per_class > 0 && units >= 2 && (0..x.rows()).all(|r| class_of(r).is_some()) {
        let classes: Vec<usize> = match o.class {
            Some(k) => vec![k],
            None => (0..units).collect(),
        };
        println!("per class (the mean over up to {} samples of each, for its own output):", o.per_class);
        for k in classes {
            let rows: Vec<usize> = (0..x.rows()).filter(|&r| class_of(r) == Some(k)).take(o.per_class).collect();
            if rows.is_empty() {
                continue;
            }
            let (mean, _) = explain_rows(&mut model, &x, &rows, k, o.steps)?;
            println!("  class {k} ({} samples, largest completeness gap {:.2e}): {}", rows.len(), mean.largest_gap, largest(&mean.ig, 5, &feature_name));
            let caption = format!("class {k}, the mean of {} samples: input · saliency · integrated gradients (red +, blue −)", rows.len());
            if let Some(dims) = image {
                write_heatmap(&run.join(format!("explain_class_{k}.png")), &mean, dims)?;
            }
            classes_json.push(serde_json::json!({
                "class": k, "samples": rows, "largest_completeness_gap": mean.largest_gap,
                "mean_integrated_gradients": mean.ig, "mean_saliency": mean.saliency, "caption": caption,
                "heatmap": image.map(|_| format!("explain_class_{k}.png")),
            }));
        }
    }
    let json = serde_json::json!({
        "source": source, "metric": metric, "score": base, "n_repeats": o.repeats, "ig_steps": o.steps,
        "permutation_importance": importances.iter().map(|i| serde_json::json!({"feature": i.feature, "name": feature_name(i.feature), "mean": i.mean, "std": i.std})).collect::<Vec<_>>(),
        "samples": samples_json,
        "classes": classes_json,
    });
    let out = run.join("explain.json");
    write_atomic(&out, serde_json::to_string_pretty(&json).expect("json").as_bytes())?;
    println!("wrote {}", out.display());
    Ok(())
}

/// A row's class: its label when it is one integer below `units`, the hot index of a
/// one-hot row, else None (a regression target).
fn class_of_row(label: &[f32], units: usize) -> Option<usize> {
    match label {
        [v] if *v >= 0.0 && v.fract() == 0.0 && (*v as usize) < units.max(2) => Some(*v as usize),
        many if many.len() == units && units > 1 && many.iter().all(|&v| v == 0.0 || v == 1.0) && many.iter().filter(|&&v| v == 1.0).count() == 1 => {
            many.iter().position(|&v| v == 1.0)
        }
        _ => None,
    }
}

/// The mean input, integrated gradients and saliency of `rows` for output `target`,
/// and the first row's (F(x), F(baseline), completeness gap).
fn explain_rows(model: &mut Model, x: &descent::tensor::Tensor, rows: &[usize], target: usize, steps: usize) -> Result<(Explained, (f32, f32, f32))> {
    let n = x.row_len();
    let mut sum = Explained { image: vec![0.0; n], ig: vec![0.0; n], saliency: vec![0.0; n], largest_gap: 0.0 };
    let mut first = (0.0, 0.0, 0.0);
    let s = saliency(model, &x.select_rows(rows), &vec![target; rows.len()])?;
    for (i, &r) in rows.iter().enumerate() {
        let a = integrated_gradients(model, x.row(r), None, target, steps)?;
        if i == 0 {
            first = (a.output, a.baseline_output, a.completeness_gap);
        }
        sum.largest_gap = sum.largest_gap.max(a.completeness_gap.abs());
        let scale = 1.0 / rows.len() as f64;
        for j in 0..n {
            sum.image[j] += x.row(r)[j] as f64 * scale;
            sum.ig[j] += a.attributions[j] as f64 * scale;
            sum.saliency[j] += s[i * n + j] as f64 * scale;
        }
    }
    Ok((sum, first))
}

/// The `k` features of largest |attribution|, named, with their values.
fn largest(values: &[f64], k: usize, name: &dyn Fn(usize) -> String) -> String {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[j].abs().total_cmp(&values[i].abs()));
    order.iter().take(k).map(|&j| format!("{} {:+.3}", name(j), values[j])).collect::<Vec<_>>().join(", ")
}

fn write_heatmap(file: &Path, e: &Explained, (h, w, c): (usize, usize, usize)) -> Result<()> {
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let (image, saliency, ig) = (f32s(&e.image), f32s(&e.saliency), f32s(&e.ig));
    let png = Heatmap { image: &image, saliency: &saliency, integrated_gradients: &ig, h, w, c }.png()?;
    write_atomic(file, &png)
}

/// Deletes the heatmaps an earlier `descent explain` drew in the run folder (they are
/// redrawn from the model; nothing else is touched).
fn remove_earlier_heatmaps(run: &Path) -> Result<()> {
    let entries = std::fs::read_dir(run).map_err(|e| Error::io(run, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = (name.starts_with("explain_sample_") || name.starts_with("explain_class_")) && (name.ends_with(".png") || name.ends_with(".svg"));
        if ours {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}
