//! Loss configuration with Keras's names and defaults; the math is in `tensor::kernels::loss`.

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
    },
    /// One-hot (or soft) targets.
    CategoricalCrossentropy {
        #[serde(default)]
        from_logits: bool,
    },
    /// Targets in {0, 1} (or [0, 1]) per output.
    BinaryCrossentropy {
        #[serde(default)]
        from_logits: bool,
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

impl Loss {
    pub fn sparse_categorical_crossentropy(from_logits: bool) -> Self {
        Loss::SparseCategoricalCrossentropy { from_logits }
    }
    pub fn categorical_crossentropy(from_logits: bool) -> Self {
        Loss::CategoricalCrossentropy { from_logits }
    }
    pub fn binary_crossentropy(from_logits: bool) -> Self {
        Loss::BinaryCrossentropy { from_logits }
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
            Loss::SparseCategoricalCrossentropy { from_logits: true }
                | Loss::CategoricalCrossentropy { from_logits: true }
                | Loss::BinaryCrossentropy { from_logits: true }
        )
    }

    /// Whether targets are integer class indices, one per sample.
    pub fn sparse_targets(&self) -> bool {
        matches!(self, Loss::SparseCategoricalCrossentropy { .. })
    }

    pub fn kind(&self) -> LossKind {
        match *self {
            Loss::SparseCategoricalCrossentropy { from_logits: true } => LossKind::SparseCeLogits,
            Loss::SparseCategoricalCrossentropy { from_logits: false } => LossKind::SparseCeProbs,
            Loss::CategoricalCrossentropy { from_logits: true } => LossKind::CeLogits,
            Loss::CategoricalCrossentropy { from_logits: false } => LossKind::CeProbs,
            Loss::BinaryCrossentropy { from_logits: true } => LossKind::BceLogits,
            Loss::BinaryCrossentropy { from_logits: false } => LossKind::BceProbs,
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
        assert_eq!(c.loss, Loss::SparseCategoricalCrossentropy { from_logits: true });
        let c: C = toml::from_str(r#"loss = "huber""#).unwrap();
        assert_eq!(c.loss, Loss::Huber { delta: 1.0 });
        let err = toml::from_str::<C>(r#"loss = "cross_entropy""#).err().unwrap().to_string();
        assert!(err.contains("unknown variant `cross_entropy`") && err.contains("sparse_categorical_crossentropy"), "{err}");
        let err = toml::from_str::<C>(r#"loss = { name = "huber", delat = 2.0 }"#).err().unwrap().to_string();
        assert!(err.contains("unknown field `delat`") && err.contains("delta"), "{err}");
    }
}
