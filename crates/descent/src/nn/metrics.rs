//! Metrics computed streaming over batches, each exactly equal to its whole-set formula
//! (checked against scikit-learn in `fixtures/metrics.json`).
//!
//! | name | meaning |
//! |---|---|
//! | `accuracy` | resolved by the loss, as Keras does: sparse categorical, categorical or binary |
//! | `top_k_accuracy`, `top_N_accuracy` | true class among the k (5, or N) highest outputs |
//! | `precision`, `recall`, `f1` | binary models: of the positive class; multi-class: macro average |
//! | `…_micro`, `…_macro`, `…_weighted` | scikit-learn's averages over classes |
//! | `auc` (`roc_auc`), `pr_auc` | area under the ROC curve; average precision (multi-class: one-vs-rest, macro) |
//! | `mse`, `mae`, `rmse`, `r2` | regression (R²: per output, averaged uniformly) |

use serde::{Deserialize, Serialize};

use super::confusion::{Average, ConfusionMatrix};
use super::Loss;
use crate::error::{Error, Result};
use crate::tensor::kernels::activation::softmax_row;
use crate::tensor::kernels::reduce::argmax;
use crate::tensor::Targets;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    Accuracy,
    SparseCategoricalAccuracy,
    CategoricalAccuracy,
    BinaryAccuracy,
    TopK(usize),
    Precision(Average),
    Recall(Average),
    F1(Average),
    RocAuc,
    PrAuc,
    Mse,
    Mae,
    Rmse,
    R2,
}

const NAMES: &str = "accuracy, sparse_categorical_accuracy, categorical_accuracy, binary_accuracy, top_k_accuracy, \
top_N_accuracy, precision, recall, f1 (each also _micro, _macro, _weighted), auc, pr_auc, mse, mae, rmse, r2";

impl Metric {
    /// Parses a metric name (Keras's long names are accepted too).
    pub fn parse(name: &str) -> Result<Metric> {
        let average = |suffix: &str| match suffix {
            "" => Some(Average::Default),
            "_micro" => Some(Average::Micro),
            "_macro" => Some(Average::Macro),
            "_weighted" => Some(Average::Weighted),
            "_binary" => Some(Average::Binary),
            _ => None,
        };
        let m = match name {
            "accuracy" | "acc" => Metric::Accuracy,
            "sparse_categorical_accuracy" => Metric::SparseCategoricalAccuracy,
            "categorical_accuracy" => Metric::CategoricalAccuracy,
            "binary_accuracy" => Metric::BinaryAccuracy,
            "top_k_accuracy" | "sparse_top_k_categorical_accuracy" | "top_k_categorical_accuracy" => Metric::TopK(5),
            "auc" | "roc_auc" => Metric::RocAuc,
            "pr_auc" | "average_precision" => Metric::PrAuc,
            "mse" | "mean_squared_error" => Metric::Mse,
            "mae" | "mean_absolute_error" => Metric::Mae,
            "rmse" | "root_mean_squared_error" => Metric::Rmse,
            "r2" | "r2_score" => Metric::R2,
            n => {
                let top_k = n.strip_prefix("top_").and_then(|r| r.strip_suffix("_accuracy")).and_then(|k| k.parse().ok());
                if let Some(k) = top_k.filter(|k: &usize| *k >= 1) {
                    Metric::TopK(k)
                } else if let Some(a) = n.strip_prefix("precision").and_then(average) {
                    Metric::Precision(a)
                } else if let Some(a) = n.strip_prefix("recall").and_then(average) {
                    Metric::Recall(a)
                } else if let Some(a) = n.strip_prefix("f1").and_then(average) {
                    Metric::F1(a)
                } else {
                    return Err(Error::Config(format!("unknown metric `{name}` (expected one of {NAMES})")));
                }
            }
        };
        Ok(m)
    }

    /// Resolves `accuracy` for a loss and the model's number of outputs.
    pub fn resolve(self, loss: &Loss, outputs: usize) -> Metric {
        match self {
            Metric::Accuracy => match loss {
                Loss::SparseCategoricalCrossentropy { .. } => Metric::SparseCategoricalAccuracy,
                Loss::CategoricalCrossentropy { .. } => Metric::CategoricalAccuracy,
                Loss::BinaryCrossentropy { .. } => Metric::BinaryAccuracy,
                _ if outputs == 1 => Metric::BinaryAccuracy,
                _ => Metric::CategoricalAccuracy,
            },
            m => m,
        }
    }

    /// Metrics whose value needs every prediction kept (ranking): computed once per epoch,
    /// not after every batch.
    pub fn is_expensive(&self) -> bool {
        matches!(self, Metric::RocAuc | Metric::PrAuc)
    }
}

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let suffix = |a: &Average| match a {
            Average::Default => "",
            Average::Binary => "_binary",
            Average::Micro => "_micro",
            Average::Macro => "_macro",
            Average::Weighted => "_weighted",
        };
        let name = match self {
            Metric::Accuracy => "accuracy".to_string(),
            Metric::SparseCategoricalAccuracy => "sparse_categorical_accuracy".into(),
            Metric::CategoricalAccuracy => "categorical_accuracy".into(),
            Metric::BinaryAccuracy => "binary_accuracy".into(),
            Metric::TopK(k) => format!("top_{k}_accuracy"),
            Metric::Precision(a) => format!("precision{}", suffix(a)),
            Metric::Recall(a) => format!("recall{}", suffix(a)),
            Metric::F1(a) => format!("f1{}", suffix(a)),
            Metric::RocAuc => "auc".into(),
            Metric::PrAuc => "pr_auc".into(),
            Metric::Mse => "mse".into(),
            Metric::Mae => "mae".into(),
            Metric::Rmse => "rmse".into(),
            Metric::R2 => "r2".into(),
        };
        s.serialize_str(&name)
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Metric::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// How the model's outputs and the targets are to be read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricContext {
    /// Outputs per sample.
    pub outputs: usize,
    /// Targets are one class index per sample (sparse losses), else shaped like the outputs.
    pub sparse_targets: bool,
    /// Outputs are logits (softmax/sigmoid not applied).
    pub from_logits: bool,
    /// Decision threshold of a binary output (0 for logits, 0.5 for probabilities).
    pub threshold: f32,
}

impl MetricContext {
    /// One binary decision per output (one sigmoid output, or a multi-label model).
    fn binary(&self, metric_is_binary_loss: bool) -> bool {
        self.outputs == 1 || metric_is_binary_loss
    }
}

#[derive(Clone, Debug)]
enum Accumulator {
    Count { hits: f64, count: f64 },
    Confusion(ConfusionMatrix),
    /// Every (prediction row, target) seen, for ranking metrics.
    Kept { pred: Vec<f32>, target: Vec<f32> },
    /// Per-output running sums for regression: n, Σe², Σ|e|, Welford mean and M2 of y.
    Regression { n: f64, sse: Vec<f64>, sae: Vec<f64>, mean: Vec<f64>, m2: Vec<f64> },
}

/// Running state of one metric over an epoch or an evaluation.
#[derive(Clone, Debug)]
pub struct MetricState {
    /// Name shown in logs (as the user wrote it, e.g. `accuracy`).
    pub name: String,
    pub metric: Metric,
    pub ctx: MetricContext,
    /// The binary reading (outputs thresholded one by one) applies.
    binary: bool,
    acc: Accumulator,
}

impl MetricState {
    /// `binary_loss`: the model is trained with binary cross-entropy (so several outputs
    /// are independent binary labels, not classes).
    pub fn new(name: &str, metric: Metric, ctx: MetricContext, binary_loss: bool) -> Self {
        let binary = ctx.binary(binary_loss);
        let cols = ctx.outputs.max(1);
        let acc = match metric {
            Metric::Precision(_) | Metric::Recall(_) | Metric::F1(_) => {
                Accumulator::Confusion(ConfusionMatrix::new(if binary { 2 } else { cols }))
            }
            Metric::RocAuc | Metric::PrAuc => Accumulator::Kept { pred: Vec::new(), target: Vec::new() },
            Metric::Mse | Metric::Mae | Metric::Rmse | Metric::R2 => {
                Accumulator::Regression { n: 0.0, sse: vec![0.0; cols], sae: vec![0.0; cols], mean: vec![0.0; cols], m2: vec![0.0; cols] }
            }
            _ => Accumulator::Count { hits: 0.0, count: 0.0 },
        };
        MetricState { name: name.to_string(), metric, ctx, binary, acc }
    }

    pub fn reset(&mut self) {
        match &mut self.acc {
            Accumulator::Count { hits, count } => (*hits, *count) = (0.0, 0.0),
            Accumulator::Confusion(c) => c.reset(),
            Accumulator::Kept { pred, target } => {
                pred.clear();
                target.clear();
            }
            Accumulator::Regression { n, sse, sae, mean, m2 } => {
                *n = 0.0;
                for v in [sse, sae, mean, m2] {
                    v.fill(0.0);
                }
            }
        }
    }

    /// Combines every data-parallel rank's state into the state of everything they saw
    /// together, the same on every rank: counts and sums add (in rank order), regression
    /// means and spreads merge as Chan et al.'s parallel variance, and ranking metrics
    /// gather every rank's rows.
    pub fn merge_over(&mut self, comm: &mut dyn crate::distributed::Communicator) {
        match &mut self.acc {
            Accumulator::Count { hits, count } => {
                let mut v = [*hits, *count];
                comm.sum(&mut v);
                (*hits, *count) = (v[0], v[1]);
            }
            Accumulator::Confusion(c) => {
                let mut v: Vec<f64> = c.counts.iter().map(|&k| k as f64).collect();
                comm.sum(&mut v);
                c.counts.iter_mut().zip(v).for_each(|(k, v)| *k = v as u64);
            }
            Accumulator::Kept { pred, target } => {
                for kept in [pred, target] {
                    let bytes: Vec<u8> = kept.iter().flat_map(|v| v.to_le_bytes()).collect();
                    kept.clear();
                    for part in comm.gather_all(&bytes) {
                        kept.extend(part.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
                    }
                }
            }
            Accumulator::Regression { n, sse, sae, mean, m2 } => {
                let mut local: Vec<f64> = vec![*n];
                local.extend(mean.iter().chain(m2.iter()));
                let bytes: Vec<u8> = local.iter().flat_map(|v| v.to_le_bytes()).collect();
                let parts = comm.gather_all(&bytes);
                let cols = mean.len();
                let (mut tn, mut tmean, mut tm2) = (0.0, vec![0.0; cols], vec![0.0; cols]);
                for part in parts {
                    let v: Vec<f64> = part.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).collect();
                    let rn = v[0];
                    if rn == 0.0 {
                        continue;
                    }
                    let all = tn + rn;
                    for j in 0..cols {
                        let delta = v[1 + j] - tmean[j];
                        tmean[j] += delta * rn / all;
                        tm2[j] += v[1 + cols + j] + delta * delta * tn * rn / all;
                    }
                    tn = all;
                }
                let mut sums: Vec<f64> = sse.iter().chain(sae.iter()).copied().collect();
                comm.sum(&mut sums);
                sse.copy_from_slice(&sums[..cols]);
                sae.copy_from_slice(&sums[cols..]);
                (*n, *mean, *m2) = (tn, tmean, tm2);
            }
        }
    }

    /// Adds a batch: `pred` is `[rows, cols]`, `target` as the loss takes it.
    pub fn update(&mut self, pred: &[f32], target: Targets, cols: usize) {
        let (threshold, metric, ctx) = (self.ctx.threshold, self.metric, self.ctx);
        let class = |r: usize| true_class(&ctx, target, r, cols);
        match &mut self.acc {
            Accumulator::Count { hits, count } => match metric {
                Metric::BinaryAccuracy => {
                    for (i, p) in pred.iter().enumerate().take(target.len()) {
                        *hits += ((*p > threshold) == (target.value(i) > 0.5)) as u32 as f64;
                        *count += 1.0;
                    }
                }
                Metric::TopK(k) => {
                    for (r, row) in pred.chunks_exact(cols).enumerate() {
                        let truth = row[class(r)];
                        // In the top k when fewer than k outputs are strictly larger
                        // (ties at the boundary count as in, as tf.math.in_top_k).
                        let above = row.iter().filter(|v| **v > truth).count();
                        *hits += (above < k) as u32 as f64;
                        *count += 1.0;
                    }
                }
                _ => {
                    for (r, row) in pred.chunks_exact(cols).enumerate() {
                        *hits += (argmax(row) == class(r)) as u32 as f64;
                        *count += 1.0;
                    }
                }
            },
            Accumulator::Confusion(c) => {
                if self.binary {
                    for (i, p) in pred.iter().enumerate().take(target.len()) {
                        c.add((target.value(i) > 0.5) as usize, (*p > threshold) as usize);
                    }
                } else {
                    for (r, row) in pred.chunks_exact(cols).enumerate() {
                        c.add(class(r), argmax(row));
                    }
                }
            }
            Accumulator::Kept { pred: kp, target: kt } => {
                kp.extend_from_slice(pred);
                kt.extend((0..target.len()).map(|i| target.value(i)));
            }
            Accumulator::Regression { n, sse, sae, mean, m2 } => {
                for (r, prow) in pred.chunks_exact(cols).enumerate().take(target.len() / cols) {
                    *n += 1.0;
                    for j in 0..cols {
                        let (p, y) = (prow[j] as f64, target.value(r * cols + j) as f64);
                        sse[j] += (p - y) * (p - y);
                        sae[j] += (p - y).abs();
                        let delta = y - mean[j];
                        mean[j] += delta / *n;
                        m2[j] += delta * (y - mean[j]);
                    }
                }
            }
        }
    }

    pub fn result(&self) -> f64 {
        match &self.acc {
            Accumulator::Count { hits, count } => {
                if *count == 0.0 { 0.0 } else { hits / count }
            }
            Accumulator::Confusion(c) => {
                let avg = |a: Average| match a {
                    Average::Default if self.binary => Average::Binary,
                    Average::Default => Average::Macro,
                    a => a,
                };
                match self.metric {
                    Metric::Precision(a) => c.precision(avg(a)),
                    Metric::Recall(a) => c.recall(avg(a)),
                    Metric::F1(a) => c.f1(avg(a)),
                    _ => unreachable!("confusion metrics"),
                }
            }
            Accumulator::Kept { pred, target } => self.ranking(pred, target),
            Accumulator::Regression { n, sse, sae, m2, .. } => {
                if *n == 0.0 {
                    return 0.0;
                }
                let cols = sse.len() as f64;
                match self.metric {
                    Metric::Mse => sse.iter().sum::<f64>() / (n * cols),
                    Metric::Mae => sae.iter().sum::<f64>() / (n * cols),
                    Metric::Rmse => (sse.iter().sum::<f64>() / (n * cols)).sqrt(),
                    _ => {
                        // scikit-learn's r2_score: per output, 1 − SSE/SST; a constant target
                        // scores 1 if predicted exactly, else 0; then the plain mean.
                        let per: Vec<f64> = sse
                            .iter()
                            .zip(m2)
                            .map(|(e, t)| if *t > 0.0 { 1.0 - e / t } else if *e == 0.0 { 1.0 } else { 0.0 })
                            .collect();
                        per.iter().sum::<f64>() / cols
                    }
                }
            }
        }
    }

    /// ROC AUC or average precision over everything kept: of the single output
    /// (binary), or one-vs-rest per class (per output for multi-label), macro-averaged.
    fn ranking(&self, pred: &[f32], target: &[f32]) -> f64 {
        let cols = self.ctx.outputs.max(1);
        let rows = pred.len() / cols;
        if rows == 0 {
            return 0.0;
        }
        let score_fn: fn(&[f64], &[bool]) -> f64 = if self.metric == Metric::RocAuc { roc_auc } else { average_precision };
        if self.binary {
            let per: Vec<f64> = (0..cols)
                .map(|j| {
                    let s: Vec<f64> = (0..rows).map(|r| pred[r * cols + j] as f64).collect();
                    let l: Vec<bool> = (0..rows).map(|r| target[r * cols + j] > 0.5).collect();
                    score_fn(&s, &l)
                })
                .collect();
            return per.iter().sum::<f64>() / cols as f64;
        }
        // Multi-class: class probabilities (softmax of logits), one-vs-rest per class.
        let mut probs = pred.to_vec();
        if self.ctx.from_logits {
            probs.chunks_exact_mut(cols).for_each(softmax_row);
        }
        // Kept targets are numbers (a sparse class as its index).
        let kept = Targets::Values(target);
        let truth: Vec<usize> = (0..rows).map(|r| true_class(&self.ctx, kept, r, cols)).collect();
        let per: Vec<f64> = (0..cols)
            .map(|c| {
                let s: Vec<f64> = (0..rows).map(|r| probs[r * cols + c] as f64).collect();
                let l: Vec<bool> = truth.iter().map(|t| *t == c).collect();
                score_fn(&s, &l)
            })
            .collect();
        per.iter().sum::<f64>() / cols as f64
    }
}

/// The true class of row `r`: the sparse index, or the arg-max of a one-hot row.
fn true_class(ctx: &MetricContext, target: Targets, r: usize, cols: usize) -> usize {
    match target {
        Targets::Classes(c) => c[r] as usize,
        Targets::Values(v) if ctx.sparse_targets => v[r] as usize,
        Targets::Values(v) => argmax(&v[r * cols..(r + 1) * cols]),
    }
}

/// Indices of `scores` from highest to lowest.
fn descending(scores: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    idx
}

/// Area under the ROC curve: the trapezoid over thresholds at each distinct score
/// (ties move TPR and FPR together, counting half), as scikit-learn's roc_auc_score.
/// 0.5 … undefined with one class only: returns NaN then.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let pos = labels.iter().filter(|l| **l).count() as f64;
    let neg = labels.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    let order = descending(scores);
    let (mut tp, mut fp, mut area) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let (tp0, fp0) = (tp, fp);
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            if labels[order[i]] { tp += 1.0 } else { fp += 1.0 }
            i += 1;
        }
        area += (fp - fp0) * (tp + tp0) / 2.0;
    }
    area / (pos * neg)
}

/// Average precision: Σ (Rₙ − Rₙ₋₁) Pₙ over thresholds at each distinct score, as
/// scikit-learn's average_precision_score (a step function, not the trapezoid).
pub fn average_precision(scores: &[f64], labels: &[bool]) -> f64 {
    let pos = labels.iter().filter(|l| **l).count() as f64;
    if pos == 0.0 {
        return f64::NAN;
    }
    let order = descending(scores);
    let (mut tp, mut seen, mut ap, mut recall_prev) = (0.0, 0.0, 0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let s = scores[order[i]];
        while i < order.len() && scores[order[i]] == s {
            tp += labels[order[i]] as u32 as f64;
            seen += 1.0;
            i += 1;
        }
        let recall = tp / pos;
        ap += (recall - recall_prev) * (tp / seen);
        recall_prev = recall;
    }
    ap
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(outputs: usize, sparse: bool, from_logits: bool) -> MetricContext {
        MetricContext { outputs, sparse_targets: sparse, from_logits, threshold: if from_logits { 0.0 } else { 0.5 } }
    }

    #[test]
    fn accuracy_resolves_like_keras() {
        let sparse = Loss::sparse_categorical_crossentropy(true);
        assert_eq!(Metric::Accuracy.resolve(&sparse, 10), Metric::SparseCategoricalAccuracy);
        assert_eq!(Metric::Accuracy.resolve(&Loss::categorical_crossentropy(false), 10), Metric::CategoricalAccuracy);
        assert_eq!(Metric::Accuracy.resolve(&Loss::binary_crossentropy(false), 1), Metric::BinaryAccuracy);
        assert_eq!(Metric::Accuracy.resolve(&Loss::MeanSquaredError, 1), Metric::BinaryAccuracy);
    }

    #[test]
    fn names_parse_and_print_back() {
        for name in ["accuracy", "top_3_accuracy", "precision", "recall_macro", "f1_weighted", "f1_micro", "auc", "pr_auc", "mse", "r2"] {
            let m = Metric::parse(name).unwrap();
            assert_eq!(serde_json::to_value(m).unwrap(), serde_json::Value::from(name));
        }
        assert_eq!(Metric::parse("sparse_top_k_categorical_accuracy").unwrap(), Metric::TopK(5));
        let e = Metric::parse("f2").unwrap_err().to_string();
        assert!(e.contains("unknown metric `f2`") && e.contains("f1"), "{e}");
    }

    #[test]
    fn streaming_accuracy_counts() {
        let mut m = MetricState::new("accuracy", Metric::SparseCategoricalAccuracy, ctx(2, true, false), false);
        m.update(&[0.1, 0.9, 0.8, 0.2], Targets::Classes(&[1, 1]), 2);
        m.update(&[0.3, 0.7], Targets::Classes(&[1]), 2);
        assert!((m.result() - 2.0 / 3.0).abs() < 1e-12);
        let mut b = MetricState::new("accuracy", Metric::BinaryAccuracy, ctx(1, false, true), true);
        b.update(&[-1.0, 2.0, 0.5, -0.1], Targets::Values(&[0.0, 1.0, 0.0, 0.0]), 1);
        assert_eq!(b.result(), 0.75);
    }

    #[test]
    fn auc_by_hand() {
        // Scores 0.9(+) 0.8(−) 0.7(+) 0.6(−): pairs ranked right 3 of 4 → 0.75.
        assert_eq!(roc_auc(&[0.9, 0.8, 0.7, 0.6], &[true, false, true, false]), 0.75);
        // A tie between a positive and a negative counts half.
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]), 0.5);
        // AP: precision 1 at recall 1/2, 2/3 at recall 1 → (1 + 2/3)/2.
        assert!((average_precision(&[0.9, 0.8, 0.7, 0.6], &[true, false, true, false]) - 5.0 / 6.0).abs() < 1e-12);
        assert!(roc_auc(&[0.1, 0.2], &[true, true]).is_nan());
    }
}

/// The streaming metrics against scikit-learn on the whole set (fixtures/metrics.json,
/// made by scripts/make_metric_fixtures.py), fed in batches of 7 rows.
#[cfg(test)]
mod reference_tests {
    use super::*;
    use crate::nn::ConfusionMatrix;

    #[test]
    fn streaming_metrics_equal_scikit_learn() {
        let fixtures: serde_json::Value = serde_json::from_str(include_str!("../../../../fixtures/metrics.json")).unwrap();
        let mut checked = 0;
        for case in fixtures["cases"].as_array().unwrap() {
            let name = case["name"].as_str().unwrap();
            let outputs = case["outputs"].as_u64().unwrap() as usize;
            let from_logits = case["from_logits"].as_bool().unwrap();
            let loss = match case["loss"].as_str().unwrap() {
                "binary_crossentropy" => Loss::binary_crossentropy(from_logits),
                "sparse_categorical_crossentropy" => Loss::sparse_categorical_crossentropy(from_logits),
                "categorical_crossentropy" => Loss::categorical_crossentropy(from_logits),
                _ => Loss::MeanSquaredError,
            };
            let floats = |k: &str| -> Vec<f32> { case[k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect() };
            let (pred, target) = (floats("pred"), floats("target"));
            let sparse = loss.kind().sparse_targets();
            let tcols = if sparse { 1 } else { outputs };
            let ctx = MetricContext { outputs, sparse_targets: sparse, from_logits, threshold: if from_logits { 0.0 } else { 0.5 } };
            let binary_loss = matches!(loss, Loss::BinaryCrossentropy { .. });
            let rows = pred.len() / outputs;
            for (metric, want) in case["expected"].as_object().unwrap() {
                if metric == "confusion_matrix" {
                    let mut cm = ConfusionMatrix::new(outputs);
                    for r in 0..rows {
                        let t = if sparse { target[r] as usize } else { argmax(&target[r * outputs..(r + 1) * outputs]) };
                        cm.add(t, argmax(&pred[r * outputs..(r + 1) * outputs]));
                    }
                    let want: Vec<u64> = want.as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_u64().unwrap())).collect();
                    assert_eq!(cm.counts, want, "{name}: confusion matrix");
                    continue;
                }
                let m = Metric::parse(metric).unwrap().resolve(&loss, outputs);
                let mut state = MetricState::new(metric, m, ctx, binary_loss);
                for start in (0..rows).step_by(7) {
                    let end = (start + 7).min(rows);
                    let t = &target[start * tcols..end * tcols];
                    let classes: Vec<u32> = t.iter().map(|v| *v as u32).collect();
                    let t = if sparse { Targets::Classes(&classes) } else { Targets::Values(t) };
                    state.update(&pred[start * outputs..end * outputs], t, outputs);
                }
                let (got, want) = (state.result(), want.as_f64().unwrap());
                assert!((got - want).abs() < 1e-9 * want.abs().max(1.0), "{name} {metric}: {got} vs scikit-learn {want}");
                checked += 1;
            }
        }
        assert!(checked >= 30, "{checked} metric values checked");
    }
}
