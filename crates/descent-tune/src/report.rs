//! The HTML reports of a study (`descent report STUDY.sqlite`, and written by `descent
//! tune` when it finishes: the best trial, the objective by trial with the best so far,
//! each parameter's importance and its values against the objective, every trial) and of
//! a comparison (`descent compare --report`: the ranking with its paired tests, scores
//! per fold, learning curves). Self-contained pages, as the run report (no network,
//! charts as inline SVG).

use std::fmt::Write as _;

use descent::experiment::report::{figure, page_end, page_start};
use descent::io::chart::{xml_escape as esc, xy_chart, XAxis, XySeries};

use crate::compare::Comparison;
use crate::space::ParamValue;
use crate::store::StudyInfo;
use crate::trial::{Direction, TrialRecord, TrialState};

/// A parameter's share of the objective's variance over the complete trials: one-way
/// ANOVA's R² (between-group over total sum of squares) with the trials grouped by the
/// parameter's value — by category, or into quartiles of a numeric parameter (fewer
/// groups under 8 trials). Normalized to sum to 1 over the parameters; no values for a
/// parameter absent from every trial.
///
/// A cheap stand-in for fANOVA (Hutter et al. 2014), which Optuna uses: it sees each
/// parameter alone (no interactions), which is what "which knob mattered" asks first.
pub fn parameter_importance(trials: &[TrialRecord]) -> Vec<(String, f64)> {
    let complete: Vec<&TrialRecord> = trials.iter().filter(|t| t.state == TrialState::Complete && t.value.is_some_and(f64::is_finite)).collect();
    let mut names: Vec<String> = complete.iter().flat_map(|t| t.params.keys().cloned()).collect();
    names.sort();
    names.dedup();
    let mut raw: Vec<(String, f64)> = names
        .into_iter()
        .map(|name| {
            let pairs: Vec<(&ParamValue, f64)> = complete.iter().filter_map(|t| t.params.get(&name).map(|v| (v, t.value.unwrap_or(f64::NAN)))).collect();
            let r2 = r_squared(&groups(&pairs));
            (name, r2)
        })
        .collect();
    let total: f64 = raw.iter().map(|(_, r)| r).sum();
    if total > 0.0 {
        for (_, r) in &mut raw {
            *r /= total;
        }
    }
    raw.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    raw
}

/// The objective values grouped by the parameter's value (categories), or by quartile of
/// a numeric parameter's rank.
fn groups(pairs: &[(&ParamValue, f64)]) -> Vec<Vec<f64>> {
    let numeric = pairs.iter().all(|(v, _)| v.as_f64().is_some());
    if !numeric {
        let mut by: Vec<(String, Vec<f64>)> = Vec::new();
        for (v, y) in pairs {
            let key = v.to_string();
            match by.iter_mut().find(|(k, _)| *k == key) {
                Some((_, ys)) => ys.push(*y),
                None => by.push((key, vec![*y])),
            }
        }
        return by.into_iter().map(|(_, ys)| ys).collect();
    }
    let mut sorted: Vec<(f64, f64)> = pairs.iter().map(|(v, y)| (v.as_f64().unwrap_or(f64::NAN), *y)).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let k = if sorted.len() >= 8 { 4 } else { (sorted.len() / 2).max(1) };
    (0..k).map(|g| sorted[g * sorted.len() / k..(g + 1) * sorted.len() / k].iter().map(|p| p.1).collect()).collect()
}

/// Between-group over total sum of squares (0 when the objective does not vary).
fn r_squared(groups: &[Vec<f64>]) -> f64 {
    let all: Vec<f64> = groups.iter().flatten().copied().collect();
    if all.len() < 2 {
        return 0.0;
    }
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    let total: f64 = all.iter().map(|y| (y - mean).powi(2)).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let between: f64 = groups.iter().filter(|g| !g.is_empty()).map(|g| g.len() as f64 * (g.iter().sum::<f64>() / g.len() as f64 - mean).powi(2)).sum();
    (between / total).clamp(0.0, 1.0)
}

/// The report page of a study's `trials`.
pub fn study_report(info: &StudyInfo, trials: &[TrialRecord]) -> String {
    let mut html = page_start(&format!("descent study report: {}", info.name));
    let count = |s: TrialState| trials.iter().filter(|t| t.state == s).count();
    let better = |a: f64, b: f64| if info.direction == Direction::Maximize { a > b } else { a < b };
    let best = trials.iter().filter(|t| t.state == TrialState::Complete).filter_map(|t| t.value.filter(|v| v.is_finite()).map(|v| (t, v))).fold(None, |acc: Option<(&TrialRecord, f64)>, (t, v)| match acc {
        Some((_, b)) if !better(v, b) => acc,
        _ => Some((t, v)),
    });
    html += "<section id=\"summary\"><h2>Summary</h2><table>\n";
    let mut rows = vec![
        ("objective".to_string(), format!("{} {}", info.direction.as_str(), info.metric)),
        (
            "trials".to_string(),
            format!("{} ({} complete, {} pruned, {} failed, {} running)", trials.len(), count(TrialState::Complete), count(TrialState::Pruned), count(TrialState::Failed), count(TrialState::Running)),
        ),
    ];
    if let Some((t, v)) = best {
        let params: Vec<String> = t.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        rows.push(("best trial".into(), format!("#{}: {} = {v:.4} ({})", t.number, info.metric, params.join(", "))));
    }
    for (k, v) in &rows {
        let _ = writeln!(html, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    }
    html += "</table></section>\n";

    // The objective by trial, and the best so far.
    let finished: Vec<(f64, f64)> = trials.iter().filter(|t| t.state == TrialState::Complete).filter_map(|t| t.value.map(|v| (t.number as f64, v))).collect();
    let mut best_so_far = Vec::new();
    for &(n, v) in &finished {
        let b = match best_so_far.last() {
            Some(&(_, b)) if !better(v, b) => b,
            _ => v,
        };
        best_so_far.push((n, b));
    }
    html += "<section id=\"history\"><h2>Optimization history</h2>\n";
    let history = [XySeries { label: "trial", points: finished.clone(), dots: true }, XySeries { label: "best so far", points: best_so_far, dots: false }];
    figure(&mut html, "history", &xy_chart(&format!("{} by trial", info.metric), "trial", &info.metric, XAxis::Index, None, &history, &[]));
    html += "</section>\n";

    // Each parameter: its importance, and its values against the objective.
    let importance = parameter_importance(trials);
    html += "<section id=\"importance\"><h2>Parameter importance</h2>\n<p class=\"note\">The share of the objective's variance over complete trials that each parameter explains alone (one-way ANOVA over its categories or value quartiles), normalized to sum to 1.</p>\n<table><tr><th>parameter</th><th>importance</th></tr>\n";
    for (name, share) in &importance {
        let _ = writeln!(html, "<tr><td>{}</td><td>{share:.3}</td></tr>", esc(name));
    }
    html += "</table>\n";
    for (name, _) in &importance {
        let points: Vec<(f64, f64)> = trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .filter_map(|t| Some((t.params.get(name)?, t.value?)))
            .enumerate()
            .map(|(i, (p, v))| (p.as_f64().unwrap_or(i as f64), v))
            .collect();
        let positive = points.iter().all(|p| p.0 > 0.0);
        let spread = points.iter().map(|p| p.0).fold((f64::INFINITY, 0.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
        let axis = if positive && spread.1 / spread.0 > 100.0 { XAxis::Log } else { XAxis::Linear };
        figure(&mut html, &format!("param_{name}"), &xy_chart(&format!("{} against {name}", info.metric), name, &info.metric, axis, None, &[XySeries { label: "", points, dots: true }], &[]));
    }
    html += "</section>\n";

    // Every trial.
    html += "<section id=\"trials\"><h2>Trials</h2><table>\n<tr><th>trial</th><th>state</th><th>value</th><th>tries</th><th>seconds</th><th>parameters</th></tr>\n";
    for t in trials {
        let params: Vec<String> = t.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.number,
            t.state.as_str(),
            t.value.map_or("—".into(), |v| format!("{v:.4}")),
            t.attempts,
            t.seconds.map_or("—".into(), |s| format!("{s:.1}")),
            esc(&params.join(", "))
        );
    }
    html += "</table></section>\n";
    html += &page_end();
    html
}

/// The report page of a comparison.
pub fn compare_report(result: &Comparison) -> String {
    let labels: Vec<&str> = result.contenders.iter().map(|(l, _)| l.as_str()).collect();
    let mut html = page_start(&format!("descent comparison: {}", labels.join(" vs ")));
    let _ = writeln!(html, "<section id=\"ranking\"><h2>Ranking by {}</h2>\n<pre>{}</pre></section>", esc(&result.metric), esc(&result.table()));
    html += "<section id=\"folds\"><h2>Scores per fold</h2><table>\n";
    for (label, report) in &result.contenders {
        let scores = report.to_json();
        let folds: Vec<String> = scores[&result.metric]["folds"].as_array().map(|a| a.iter().filter_map(|v| v.as_f64()).map(|v| format!("{v:.4}")).collect()).unwrap_or_default();
        let _ = writeln!(html, "<tr><th>{}</th><td>{}</td></tr>", esc(label), esc(&folds.join(", ")));
    }
    html += "</table></section>\n<section id=\"curves\"><h2>Learning curves</h2>\n";
    figure(&mut html, "curves", &result.curves_svg());
    html += "</section>\n";
    html += &page_end();
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(number: u64, params: &[(&str, ParamValue)], value: f64) -> TrialRecord {
        TrialRecord {
            number,
            state: TrialState::Complete,
            params: params.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            value: Some(value),
            scores: serde_json::Value::Null,
            intermediate: Vec::new(),
            attempts: 1,
            seconds: Some(1.0),
            message: None,
        }
    }

    #[test]
    fn the_parameter_the_objective_depends_on_ranks_first() {
        // The objective is a function of the learning rate (plus small noise); the units
        // and the optimizer are drawn independently of it.
        let mut rng = descent::rng::seeded(7);
        use rand::Rng;
        let trials: Vec<TrialRecord> = (0..40)
            .map(|i| {
                let lr: f64 = 10f64.powf(rng.random_range(-4.0..-1.0));
                let units = rng.random_range(8..128);
                let opt = if rng.random_bool(0.5) { "adam" } else { "sgd" };
                let value = 0.9 - 0.1 * (lr.log10() + 2.5).powi(2) + 0.005 * rng.random::<f64>();
                trial(i, &[("lr", ParamValue::Float(lr)), ("units", ParamValue::Int(units)), ("optimizer", ParamValue::Str(opt.into()))], value)
            })
            .collect();
        let imp = parameter_importance(&trials);
        assert_eq!(imp[0].0, "lr", "{imp:?}");
        assert!(imp[0].1 > 0.8 && (imp.iter().map(|p| p.1).sum::<f64>() - 1.0).abs() < 1e-12, "{imp:?}");
        // The page has its sections and one chart per parameter besides the history.
        let info = StudyInfo { name: "s".into(), direction: Direction::Maximize, metric: "accuracy".into(), config: serde_json::Value::Null };
        let html = study_report(&info, &trials);
        for id in ["summary", "history", "importance", "trials"] {
            assert!(html.contains(&format!("<section id=\"{id}\">")), "{id}");
        }
        assert_eq!(html.matches("<figure class=\"chart\"").count(), 4);
        assert!(html.contains("best trial") && html.matches("<tr><td>").count() >= 40 + 3);
    }

    #[test]
    fn a_constant_objective_gives_no_importance() {
        let trials: Vec<TrialRecord> = (0..6).map(|i| trial(i, &[("lr", ParamValue::Float(0.1 * (i + 1) as f64))], 0.5)).collect();
        assert_eq!(parameter_importance(&trials), vec![("lr".to_string(), 0.0)]);
    }
}
