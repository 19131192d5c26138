//! The confusion matrix and the precision / recall / F1 derived from it, with
//! scikit-learn's averaging rules.

use serde::{Deserialize, Serialize};

/// How per-class scores are combined (scikit-learn's `average`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Average {
    /// Binary for one output, macro otherwise.
    Default,
    /// The positive class (1) only.
    Binary,
    /// Counts pooled over classes (for single-label data: precision = recall = accuracy).
    Micro,
    /// Unweighted mean over the classes present in the targets or the predictions.
    Macro,
    /// Mean weighted by each class's number of true samples.
    Weighted,
}

/// Counts of (true class, predicted class) pairs.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfusionMatrix {
    pub classes: usize,
    /// Row-major: `counts[true * classes + predicted]`.
    pub counts: Vec<u64>,
}

impl ConfusionMatrix {
    pub fn new(classes: usize) -> Self {
        ConfusionMatrix { classes, counts: vec![0; classes * classes] }
    }
    pub fn reset(&mut self) {
        self.counts.fill(0);
    }
    pub fn add(&mut self, truth: usize, predicted: usize) {
        if truth < self.classes && predicted < self.classes {
            self.counts[truth * self.classes + predicted] += 1;
        }
    }
    pub fn get(&self, truth: usize, predicted: usize) -> u64 {
        self.counts[truth * self.classes + predicted]
    }
    fn tp(&self, c: usize) -> f64 {
        self.get(c, c) as f64
    }
    /// Samples predicted as `c`.
    fn predicted(&self, c: usize) -> f64 {
        (0..self.classes).map(|t| self.get(t, c)).sum::<u64>() as f64
    }
    /// Samples truly `c` (its support).
    fn support(&self, c: usize) -> f64 {
        (0..self.classes).map(|p| self.get(c, p)).sum::<u64>() as f64
    }

    /// Combines a per-class score `(tp, predicted, support) → score` by `average`;
    /// a score with a zero denominator is 0, as scikit-learn's `zero_division` default.
    fn combine(&self, average: Average, per_class: impl Fn(f64, f64, f64) -> f64) -> f64 {
        let present: Vec<usize> = (0..self.classes).filter(|&c| self.predicted(c) + self.support(c) > 0.0).collect();
        match average {
            Average::Binary => per_class(self.tp(1), self.predicted(1), self.support(1)),
            Average::Micro => {
                let (tp, pred, sup) = present.iter().fold((0.0, 0.0, 0.0), |(a, b, c), &k| (a + self.tp(k), b + self.predicted(k), c + self.support(k)));
                per_class(tp, pred, sup)
            }
            Average::Macro | Average::Default => {
                if present.is_empty() {
                    return 0.0;
                }
                present.iter().map(|&c| per_class(self.tp(c), self.predicted(c), self.support(c))).sum::<f64>() / present.len() as f64
            }
            Average::Weighted => {
                let total: f64 = present.iter().map(|&c| self.support(c)).sum();
                if total == 0.0 {
                    return 0.0;
                }
                present.iter().map(|&c| self.support(c) * per_class(self.tp(c), self.predicted(c), self.support(c))).sum::<f64>() / total
            }
        }
    }

    /// tp / (tp + fp)
    pub fn precision(&self, average: Average) -> f64 {
        self.combine(average, |tp, pred, _| if pred > 0.0 { tp / pred } else { 0.0 })
    }
    /// tp / (tp + fn)
    pub fn recall(&self, average: Average) -> f64 {
        self.combine(average, |tp, _, sup| if sup > 0.0 { tp / sup } else { 0.0 })
    }
    /// 2·tp / (2·tp + fp + fn), the harmonic mean of precision and recall.
    pub fn f1(&self, average: Average) -> f64 {
        self.combine(average, |tp, pred, sup| if pred + sup > 0.0 { 2.0 * tp / (pred + sup) } else { 0.0 })
    }

    /// The matrix as text: one row per true class.
    pub fn table(&self) -> String {
        let w = self.counts.iter().max().map_or(1, |m| m.to_string().len()).max(3);
        let mut out = format!("{:>9}", "true\\pred");
        (0..self.classes).for_each(|c| out += &format!(" {c:>w$}"));
        out += "\n";
        for t in 0..self.classes {
            out += &format!("{t:>9}");
            (0..self.classes).for_each(|p| out += &format!(" {:>w$}", self.get(t, p)));
            out += "\n";
        }
        out
    }
}
