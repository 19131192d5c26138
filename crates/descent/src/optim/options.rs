//! Keras's common optimizer arguments, accepted by every optimizer.

use serde::{Deserialize, Serialize};

use super::schedule::LearningRate;
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// A number or a schedule (`{ name = "cosine_decay", … }`); each optimizer has its
    /// own default (Keras's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning_rate: Option<LearningRate>,
    /// Decoupled weight decay (AdamW style, Keras's `weight_decay`): p ← p − η·wd·p
    /// before each update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f32>,
    /// Coupled L2 (PyTorch's `weight_decay` for Adam/SGD): g ← g + l2·p before the update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l2: Option<f32>,
    /// Parameters whose name contains any of these are not decayed (Keras's
    /// `exclude_from_weight_decay(var_names=…)`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_from_weight_decay: Vec<String>,
    /// Decay 1-D tensors too (biases, normalization scales/offsets). Off by default:
    /// decaying them rarely helps and can hurt; Keras decays everything.
    #[serde(default, skip_serializing_if = "is_false")]
    pub decay_vectors: bool,
    /// Clip each tensor's gradient to this L2 norm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clipnorm: Option<f32>,
    /// Clip all gradients together to this global L2 norm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_clipnorm: Option<f32>,
    /// Clip each gradient element to [−clipvalue, clipvalue].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clipvalue: Option<f32>,
    /// Skip the update (and count it) when any gradient is NaN or infinite.
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_nonfinite: bool,
    /// Average gradients over this many batches before each update (Keras semantics:
    /// bias corrections count updates, learning-rate schedules count batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradient_accumulation_steps: Option<u32>,
    /// Keep an exponential moving average of the weights.
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_ema: bool,
    #[serde(default = "default_ema_momentum")]
    pub ema_momentum: f32,
    /// Every this many steps, overwrite the weights with their moving average.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_overwrite_frequency: Option<u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}
fn default_ema_momentum() -> f32 {
    0.99
}

impl Default for Options {
    fn default() -> Self {
        Options {
            learning_rate: None,
            weight_decay: None,
            l2: None,
            exclude_from_weight_decay: Vec::new(),
            decay_vectors: false,
            clipnorm: None,
            global_clipnorm: None,
            clipvalue: None,
            skip_nonfinite: false,
            gradient_accumulation_steps: None,
            use_ema: false,
            ema_momentum: 0.99,
            ema_overwrite_frequency: None,
        }
    }
}

/// The keys `Options` owns, so a config table can be split between options and the rule.
pub const OPTION_KEYS: [&str; 13] = [
    "learning_rate",
    "weight_decay",
    "l2",
    "exclude_from_weight_decay",
    "decay_vectors",
    "clipnorm",
    "global_clipnorm",
    "clipvalue",
    "skip_nonfinite",
    "gradient_accumulation_steps",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
];

impl Options {
    pub fn validate(&self, optimizer: &str) -> Result<()> {
        let bad = |m: String| Err(Error::Config(format!("{optimizer}: {m}")));
        if let Some(lr) = &self.learning_rate {
            lr.validate().map_err(|e| Error::Config(format!("{optimizer}: learning_rate: {e}")))?;
        }
        for (key, v) in [("weight_decay", self.weight_decay), ("l2", self.l2)] {
            if let Some(v) = v {
                if !(v.is_finite() && v >= 0.0) {
                    return bad(format!("{key} must be ≥ 0, got {v}"));
                }
            }
        }
        let clips = [("clipnorm", self.clipnorm), ("global_clipnorm", self.global_clipnorm), ("clipvalue", self.clipvalue)];
        let set: Vec<&str> = clips.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| *k).collect();
        if set.len() > 1 {
            return bad(format!("set at most one of clipnorm, global_clipnorm, clipvalue (got {})", set.join(", ")));
        }
        for (key, v) in clips {
            if let Some(v) = v {
                if !(v.is_finite() && v > 0.0) {
                    return bad(format!("{key} must be > 0, got {v}"));
                }
            }
        }
        if self.gradient_accumulation_steps == Some(0) {
            return bad("gradient_accumulation_steps must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.ema_momentum) {
            return bad(format!("ema_momentum = {} is outside [0, 1)", self.ema_momentum));
        }
        if self.ema_overwrite_frequency.is_some() && !self.use_ema {
            return bad("ema_overwrite_frequency needs use_ema = true".into());
        }
        if self.ema_overwrite_frequency == Some(0) {
            return bad("ema_overwrite_frequency must be at least 1".into());
        }
        Ok(())
    }

    /// Whether a parameter (by name and rank) gets weight decay / L2.
    pub fn decays(&self, name: &str, rank: usize) -> bool {
        (self.decay_vectors || rank >= 2) && !self.exclude_from_weight_decay.iter().any(|p| name.contains(p.as_str()))
    }
}

pub use crate::tensor::kernels::optim::Prep;
