//! `descent compare`: several configurations on the same folds with the same seeds,
//! a table of mean ± std, a ranking, a paired significance test against the leader,
//! and all learning curves in one chart.

use descent::experiment::Experiment;
use descent::optim::OptimizerConfig;
use descent::{Error, Result};

use crate::cv::{cross_validate_many, CvReport};
use crate::folds::FoldSpec;
use crate::stats::{corrected_paired_t_test, PairedTest};
use crate::study_file::default_direction;
use crate::trial::Direction;

/// One configuration in a comparison.
#[derive(Clone, Debug)]
pub struct Contender {
    pub label: String,
    pub experiment: Experiment,
}

/// `base` with another optimizer: a name from `OptimizerConfig::NAMES` with its default
/// hyperparameters, `momentum` (SGD, momentum 0.9) or `nesterov`; `@LR` sets the
/// learning rate, e.g. `sgd@0.1`.
pub fn with_optimizer(base: &Experiment, spec: &str) -> Result<Contender> {
    let (name, lr) = match spec.split_once('@') {
        Some((n, lr)) => {
            let lr: f64 = lr.parse().map_err(|_| Error::Config(format!("`{spec}`: `{lr}` after @ is not a learning rate")))?;
            (n, Some(lr))
        }
        None => (spec, None),
    };
    let mut table = toml::Table::new();
    let real = match name {
        "momentum" | "nesterov" => {
            table.insert("momentum".into(), toml::Value::Float(0.9));
            if name == "nesterov" {
                table.insert("nesterov".into(), toml::Value::Boolean(true));
            }
            "sgd"
        }
        n if OptimizerConfig::NAMES.contains(&n) => n,
        other => {
            return Err(Error::Config(format!(
                "unknown optimizer `{other}` (one of momentum, nesterov, {})",
                OptimizerConfig::NAMES.join(", ")
            )))
        }
    };
    table.insert("name".into(), toml::Value::String(real.into()));
    if let Some(lr) = lr {
        table.insert("learning_rate".into(), toml::Value::Float(lr));
    }
    let mut root = toml::Value::try_from(base).map_err(|e| Error::State(e.to_string()))?;
    root["compile"].as_table_mut().expect("compile table").insert("optimizer".into(), toml::Value::Table(table));
    let text = toml::to_string(&root).map_err(|e| Error::State(e.to_string()))?;
    let mut experiment = Experiment::from_toml(&text).map_err(|e| Error::Config(format!("optimizer `{spec}`: {e}")))?;
    experiment.name = Some(spec.to_string());
    Ok(Contender { label: spec.to_string(), experiment })
}

/// The outcome of a comparison.
pub struct Comparison {
    pub metric: String,
    pub direction: Direction,
    pub contenders: Vec<(String, CvReport)>,
    /// Validation / training samples per fold (for the corrected t-test).
    pub test_train_ratio: f64,
}

/// Cross-validates every contender on the same folds (the folds depend only on the
/// training split's size, labels and `spec`, which must agree). Fold runs go to `jobs`
/// workers with `threads` threads each.
pub fn compare(contenders: &[Contender], spec: &FoldSpec, metric: &str, jobs: usize, threads: usize) -> Result<Comparison> {
    if contenders.len() < 2 {
        return Err(Error::Config("compare needs at least two contenders".into()));
    }
    for c in contenders {
        let metrics = &c.experiment.compile.metrics;
        if metric != "loss" && !metrics.iter().any(|m| m == metric) {
            return Err(Error::Config(format!("`{}` does not compile metric `{metric}` (it has: loss, {})", c.label, metrics.join(", "))));
        }
    }
    let labelled: Vec<(&str, &Experiment)> = contenders.iter().map(|c| (c.label.as_str(), &c.experiment)).collect();
    let (reports, (valid, train)) = cross_validate_many(&labelled, spec, jobs, threads)?;
    let contenders = contenders.iter().map(|c| c.label.clone()).zip(reports).collect();
    Ok(Comparison { metric: metric.to_string(), direction: default_direction(metric), contenders, test_train_ratio: valid as f64 / train as f64 })
}

/// One row of the ranking.
pub struct Ranked<'a> {
    pub label: &'a str,
    pub mean: f64,
    pub std: f64,
    /// Against the leader (None for the leader itself).
    pub test: Option<PairedTest>,
}

impl Comparison {
    /// Contenders best first, each tested against the leader.
    pub fn ranking(&self) -> Vec<Ranked<'_>> {
        let mut rows: Vec<(usize, f64, f64)> =
            self.contenders.iter().enumerate().map(|(i, (_, r))| { let (m, s) = r.mean_std(&self.metric); (i, m, s) }).collect();
        let d = self.direction;
        rows.sort_by(|a, b| d.as_loss(a.1).total_cmp(&d.as_loss(b.1)));
        let leader = self.contenders[rows[0].0].1.values(&self.metric);
        rows.iter()
            .enumerate()
            .map(|(rank, &(i, mean, std))| Ranked {
                label: &self.contenders[i].0,
                mean,
                std,
                test: (rank > 0).then(|| corrected_paired_t_test(&self.contenders[i].1.values(&self.metric), &leader, self.test_train_ratio)).flatten(),
            })
            .collect()
    }

    /// The printed report: ranking with mean ± std of every metric and the test.
    pub fn table(&self) -> String {
        let names = self.contenders[0].1.metric_names();
        let mut out = format!("{:<4} {:<22}", "rank", "contender");
        names.iter().for_each(|n| out += &format!(" {:>18}", n));
        out += &format!(" {:>10} {:>8}\n", format!("Δ {}", self.metric), "p");
        for (rank, r) in self.ranking().iter().enumerate() {
            let report = &self.contenders.iter().find(|(l, _)| l == r.label).expect("label").1;
            out += &format!("{:<4} {:<22}", rank + 1, r.label);
            for n in &names {
                let (m, s) = report.mean_std(n);
                out += &format!(" {:>18}", format!("{m:.4} ± {s:.4}"));
            }
            match &r.test {
                None => out += &format!(" {:>10} {:>8}\n", "leader", "—"),
                Some(t) => out += &format!(" {:>+10.4} {:>8.3}{}\n", t.mean_difference, t.p_value, if t.p_value < 0.05 { " *" } else { "" }),
            }
        }
        let folds = self.contenders[0].1.folds.len();
        out + &format!(
            "\n{folds} folds, the same splits and seeds for every contender. p: two-sided paired t-test against the leader over the folds, \
             with Nadeau & Bengio's correction for overlapping training sets (* = p < 0.05).\n"
        )
    }

    /// Mean validation curve of every contender, in one SVG chart.
    pub fn curves_svg(&self) -> String {
        let column = format!("val_{}", self.metric);
        let curves: Vec<(String, Vec<f64>)> = self.contenders.iter().map(|(l, r)| (l.clone(), r.curve(&column))).collect();
        let series: Vec<descent::io::chart::Series> =
            curves.iter().map(|(l, v)| descent::io::chart::Series { label: l, values: v }).collect();
        descent::io::chart::line_chart(&format!("{column}, mean over folds"), "epoch", &column, 1, &series)
    }
}
