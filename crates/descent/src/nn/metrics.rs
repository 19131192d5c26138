//! Metrics computed streaming over batches.

use serde::{Deserialize, Serialize};

use super::Loss;
use crate::tensor::kernels::reduce::argmax;

/// Metric names as Keras spells them. `accuracy` resolves by the loss at compile time
/// (sparse categorical, categorical or binary accuracy), as Keras does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    #[serde(alias = "acc")]
    Accuracy,
    SparseCategoricalAccuracy,
    CategoricalAccuracy,
    BinaryAccuracy,
}

impl Metric {
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::SparseCategoricalAccuracy => "sparse_categorical_accuracy",
            Metric::CategoricalAccuracy => "categorical_accuracy",
            Metric::BinaryAccuracy => "binary_accuracy",
        }
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
}

/// Running state of one metric over an epoch or an evaluation.
#[derive(Clone, Debug)]
pub struct MetricState {
    /// Name shown in logs (as the user wrote it, e.g. `accuracy`).
    pub name: String,
    pub metric: Metric,
    /// Decision threshold for binary accuracy (0.5 on probabilities, 0 on logits).
    pub threshold: f32,
    correct: f64,
    count: f64,
}

impl MetricState {
    pub fn new(name: &str, metric: Metric, threshold: f32) -> Self {
        MetricState { name: name.to_string(), metric, threshold, correct: 0.0, count: 0.0 }
    }

    pub fn reset(&mut self) {
        self.correct = 0.0;
        self.count = 0.0;
    }

    /// Adds a batch: `pred` is `[rows, cols]`, `target` as the loss takes it.
    pub fn update(&mut self, pred: &[f32], target: &[f32], cols: usize) {
        match self.metric {
            Metric::SparseCategoricalAccuracy | Metric::Accuracy => {
                for (row, t) in pred.chunks_exact(cols).zip(target) {
                    self.correct += (argmax(row) == *t as usize) as u32 as f64;
                    self.count += 1.0;
                }
            }
            Metric::CategoricalAccuracy => {
                for (row, t) in pred.chunks_exact(cols).zip(target.chunks_exact(cols)) {
                    self.correct += (argmax(row) == argmax(t)) as u32 as f64;
                    self.count += 1.0;
                }
            }
            Metric::BinaryAccuracy => {
                for (p, t) in pred.iter().zip(target) {
                    self.correct += ((*p > self.threshold) == (*t > 0.5)) as u32 as f64;
                    self.count += 1.0;
                }
            }
        }
    }

    pub fn result(&self) -> f64 {
        if self.count == 0.0 { 0.0 } else { self.correct / self.count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_resolves_like_keras() {
        let sparse = Loss::sparse_categorical_crossentropy(true);
        assert_eq!(Metric::Accuracy.resolve(&sparse, 10), Metric::SparseCategoricalAccuracy);
        assert_eq!(Metric::Accuracy.resolve(&Loss::categorical_crossentropy(false), 10), Metric::CategoricalAccuracy);
        assert_eq!(Metric::Accuracy.resolve(&Loss::binary_crossentropy(false), 1), Metric::BinaryAccuracy);
        assert_eq!(Metric::Accuracy.resolve(&Loss::MeanSquaredError, 1), Metric::BinaryAccuracy);
    }

    #[test]
    fn streaming_accuracy_counts() {
        let mut m = MetricState::new("accuracy", Metric::SparseCategoricalAccuracy, 0.5);
        m.update(&[0.1, 0.9, 0.8, 0.2], &[1.0, 1.0], 2);
        m.update(&[0.3, 0.7], &[1.0], 2);
        assert!((m.result() - 2.0 / 3.0).abs() < 1e-12);
        let mut b = MetricState::new("accuracy", Metric::BinaryAccuracy, 0.0);
        b.update(&[-1.0, 2.0, 0.5, -0.1], &[0.0, 1.0, 0.0, 0.0], 1);
        assert_eq!(b.result(), 0.75);
    }
}
