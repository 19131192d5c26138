//! Optimizers as fused kernels over the flat parameter, gradient and state buffers.
//!
//! Each optimizer is one small file: a serde struct of its hyperparameters (Keras's
//! names and defaults) with its state buffers, and one SIMD kernel that reads and
//! writes each buffer once per step, split over threads for large models. Adding an
//! optimizer is one file plus one line in [`OptimizerConfig`].

mod adam;
mod rmsprop;
mod sgd;

pub use adam::Adam;
pub use rmsprop::RmsProp;
pub use sgd::Sgd;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An optimizer updating parameters in place from their gradients.
pub trait Optimizer: Send {
    fn name(&self) -> &'static str;
    fn learning_rate(&self) -> f32;
    fn set_learning_rate(&mut self, lr: f32);
    /// Number of steps taken so far.
    fn iterations(&self) -> u64;
    /// One update of `params` (the whole flat buffer) from `grads` (same layout).
    /// State buffers are allocated on the first step, never afterwards.
    fn step(&mut self, params: &mut [f32], grads: &[f32]);
    /// Named state buffers (for checkpoints), in a fixed order.
    fn state(&self) -> Vec<(&'static str, &[f32])>;
    /// Restores state saved by [`Optimizer::state`] along with the step count.
    fn load_state(&mut self, iterations: u64, buffers: &[(&str, Vec<f32>)]) -> Result<()>;
    /// The hyperparameters, serializable.
    fn config(&self) -> OptimizerConfig;
}

/// An optimizer as written in configs: `"adam"` or `{ name = "sgd", momentum = 0.9 }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum OptimizerConfig {
    Sgd(Sgd),
    Rmsprop(RmsProp),
    Adam(Adam),
}

impl OptimizerConfig {
    /// Checks the hyperparameters and creates the optimizer.
    pub fn build(&self) -> Result<Box<dyn Optimizer>> {
        Ok(match self {
            OptimizerConfig::Sgd(o) => {
                o.validate()?;
                Box::new(o.clone())
            }
            OptimizerConfig::Rmsprop(o) => {
                o.validate()?;
                Box::new(o.clone())
            }
            OptimizerConfig::Adam(o) => {
                o.validate()?;
                Box::new(o.clone())
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd(_) => "sgd",
            OptimizerConfig::Rmsprop(_) => "rmsprop",
            OptimizerConfig::Adam(_) => "adam",
        }
    }
}

impl<T: Optimizer + 'static> From<T> for Box<dyn Optimizer> {
    fn from(o: T) -> Self {
        Box::new(o)
    }
}

/// Checks `lo ≤ value < hi` (or `≤ hi` when `inclusive`) for a named hyperparameter.
pub(crate) fn check_range(optimizer: &str, key: &str, value: f32, lo: f32, hi: f32, inclusive: bool) -> Result<()> {
    let ok = value.is_finite() && value >= lo && if inclusive { value <= hi } else { value < hi };
    if ok {
        Ok(())
    } else {
        let bracket = if inclusive { "]" } else { ")" };
        Err(Error::Config(format!("{optimizer}: {key} = {value} is outside [{lo}, {hi}{bracket}")))
    }
}

pub(crate) fn check_positive(optimizer: &str, key: &str, value: f32) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::Config(format!("{optimizer}: {key} must be a positive number, got {value}")))
    }
}

/// Resizes state buffers to the parameter count on the first step (no-op afterwards).
pub(crate) fn ensure_len(buffers: &mut [&mut Vec<f32>], len: usize) {
    for b in buffers {
        if b.len() != len {
            b.clear();
            b.resize(len, 0.0);
        }
    }
}

/// Copies saved buffers back into the named state, checking names and lengths.
pub(crate) fn restore_buffers(optimizer: &str, targets: &mut [(&str, &mut Vec<f32>)], saved: &[(&str, Vec<f32>)]) -> Result<()> {
    for (name, target) in targets.iter_mut() {
        match saved.iter().find(|(n, _)| n == name) {
            Some((_, data)) => {
                target.clear();
                target.extend_from_slice(data);
            }
            None => return Err(Error::State(format!("{optimizer} state is missing buffer `{name}`"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod reference_tests;
