//! Loss configuration with Keras's names and defaults; the math is the backend's `loss` kernel.

use serde::{Deserialize, Serialize};

use crate::tensor::kernels::loss::LossKind;

/// Keras's losses. Reduction is always Keras's default: mean over the batch of the
/// per-sample loss (which itself averages over outputs for binary CE, MSE, MAE, Huber).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Loss {
    /// Integer class labels; predictions are logits (`from_logits`) or probabilities.
    SparseCategoricalCrossentropy {
        #[serde(default)]
        from_logits: bool,
        /// Keras's label smoothing: targets move toward uniform by this fraction.
        #[serde(default, skip_serializing_if = "is_zero")]
        label_smoothing: f32,
    },
    /// One-hot (or soft) targets.
    CategoricalCrossentropy {
        #[serde(default)]
        from_logits: bool,
        /// Keras's label smoothing: targets move toward uniform by this fraction.
        #[serde(default, skip_serializing_if = "is_zero")]
        label_smoothing: f32,
    },
    /// Targets in {0, 1} (or [0, 1]) per output.
    BinaryCrossentropy {
        #[serde(default)]
        from_logits: bool,
        /// Keras's label smoothing: targets move toward uniform by this fraction.
        #[serde(default, skip_serializing_if = "is_zero")]
        label_smoothing: f32,
    },
    #[serde(alias = "mse")]
    MeanSquaredError,
    #[serde(alias = "mae")]
    MeanAbsoluteError,
    Huber {
        #[serde(default = "one")]
        delta: f32,
    },
}

fn one() -> f32 {
    1.0
}
fn is_zero(v: &f32) -> bool {
    *v == 0.0
}

impl Loss {
    pub fn sparse_categorical_crossentropy(from_logits: bool) -> Self {
        Loss::SparseCategoricalCrossentropy { from_logits, label_smoothing: 0.0 }
    }
    pub fn categorical_crossentropy(from_logits: bool) -> Self {
        Loss::CategoricalCrossentropy { from_logits, label_smoothing: 0.0 }
    }
    pub fn binary_crossentropy(from_logits: bool) -> Self {
        Loss::BinaryCrossentropy { from_logits, label_smoothing: 0.0 }
    }

    /// The same cross-entropy with label smoothing `ls` (Keras's `label_smoothing`):
    /// categorical targets become t·(1 − ls) + ls/K, binary ones t·(1 − ls) + ls/2.
    pub fn with_label_smoothing(self, ls: f32) -> Self {
        match self {
            Loss::SparseCategoricalCrossentropy { from_logits, .. } => Loss::SparseCategoricalCrossentropy { from_logits, label_smoothing: ls },
            Loss::CategoricalCrossentropy { from_logits, .. } => Loss::CategoricalCrossentropy { from_logits, label_smoothing: ls },
            Loss::BinaryCrossentropy { from_logits, .. } => Loss::BinaryCrossentropy { from_logits, label_smoothing: ls },
            other => other,
        }
    }

    pub fn label_smoothing(&self) -> f32 {
        match *self {
            Loss::SparseCategoricalCrossentropy { label_smoothing, .. }
            | Loss::CategoricalCrossentropy { label_smoothing, .. }
            | Loss::BinaryCrossentropy { label_smoothing, .. } => label_smoothing,
            _ => 0.0,
        }
    }

    /// Applies label smoothing to dense targets (`[rows, cols]`) in place; sparse targets
    /// are smoothed inside the loss kernel instead.
    pub fn smooth_targets(&self, targets: &mut [f32], cols: usize) {
        let ls = self.label_smoothing();
        match self {
            _ if ls == 0.0 => {}
            Loss::CategoricalCrossentropy { .. } => targets.iter_mut().for_each(|t| *t = *t * (1.0 - ls) + ls / cols.max(1) as f32),
            Loss::BinaryCrossentropy { .. } => targets.iter_mut().for_each(|t| *t = *t * (1.0 - ls) + 0.5 * ls),
            _ => {}
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Loss::SparseCategoricalCrossentropy { .. } => "sparse_categorical_crossentropy",
            Loss::CategoricalCrossentropy { .. } => "categorical_crossentropy",
            Loss::BinaryCrossentropy { .. } => "binary_crossentropy",
            Loss::MeanSquaredError => "mean_squared_error",
            Loss::MeanAbsoluteError => "mean_absolute_error",
            Loss::Huber { .. } => "huber",
        }
    }

    pub fn from_logits(&self) -> bool {
        matches!(
            self,
            Loss::SparseCategoricalCrossentropy { from_logits: true, .. }
                | Loss::CategoricalCrossentropy { from_logits: true, .. }
                | Loss::BinaryCrossentropy { from_logits: true, .. }
        )
    }

    /// Whether targets are integer class indices, one per sample.
    pub fn sparse_targets(&self) -> bool {
        matches!(self, Loss::SparseCategoricalCrossentropy { .. })
    }

    pub fn kind(&self) -> LossKind {
        match *self {
            Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing } => LossKind::SparseCeLogits { smoothing: label_smoothing },
            Loss::SparseCategoricalCrossentropy { from_logits: false, label_smoothing } => LossKind::SparseCeProbs { smoothing: label_smoothing },
            Loss::CategoricalCrossentropy { from_logits: true, .. } => LossKind::CeLogits,
            Loss::CategoricalCrossentropy { from_logits: false, .. } => LossKind::CeProbs,
            Loss::BinaryCrossentropy { from_logits: true, .. } => LossKind::BceLogits,
            Loss::BinaryCrossentropy { from_logits: false, .. } => LossKind::BceProbs,
            Loss::MeanSquaredError => LossKind::Mse,
            Loss::MeanAbsoluteError => LossKind::Mae,
            Loss::Huber { delta } => LossKind::Huber { delta },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_tables() {
        #[derive(Deserialize)]
        struct C {
            #[serde(deserialize_with = "de")]
            loss: Loss,
        }
        fn de<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Loss, D::Error> {
            crate::config_util::name_or_table(d, "loss")
        }
        let c: C = toml::from_str(r#"loss = "mse""#).unwrap();
        assert_eq!(c.loss, Loss::MeanSquaredError);
        let c: C = toml::from_str(r#"loss = { name = "sparse_categorical_crossentropy", from_logits = true }"#).unwrap();
        assert_eq!(c.loss, Loss::sparse_categorical_crossentropy(true));
        let c: C = toml::from_str(r#"loss = { name = "categorical_crossentropy", label_smoothing = 0.1 }"#).unwrap();
        assert_eq!(c.loss, Loss::categorical_crossentropy(false).with_label_smoothing(0.1));
        let c: C = toml::from_str(r#"loss = "huber""#).unwrap();
        assert_eq!(c.loss, Loss::Huber { delta: 1.0 });
        let err = toml::from_str::<C>(r#"loss = "cross_entropy""#).err().unwrap().to_string();
        assert!(err.contains("unknown variant `cross_entropy`") && err.contains("sparse_categorical_crossentropy"), "{err}");
        let err = toml::from_str::<C>(r#"loss = { name = "huber", delat = 2.0 }"#).err().unwrap().to_string();
        assert!(err.contains("unknown field `delat`") && err.contains("delta"), "{err}");
    }
}
