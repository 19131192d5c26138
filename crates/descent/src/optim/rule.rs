//! The part of an optimizer that is its own: hyperparameters, per-parameter state, and
//! the update of one tensor. Everything shared (learning rate and schedules, clipping,
//! weight decay, accumulation, EMA, checkpoints) is in `Configured`.

use std::fmt::Debug;

use super::RuleConfig;
use crate::error::Result;
use crate::tensor::{DeviceSlice, Shape};
pub use crate::tensor::kernels::optim::StepCtx;

/// Most state buffers any rule keeps per parameter.
pub const MAX_STATE: usize = crate::tensor::backend::MAX_VIEWS;

/// How a state buffer starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StateInit {
    Const(f32),
    /// A copy of the parameters (schedule-free's z sequence).
    Params,
}

/// The tensor being updated.
#[derive(Clone, Copy, Debug)]
pub struct TensorInfo<'a> {
    pub name: &'a str,
    pub shape: Shape,
}

pub trait Rule: Clone + Debug + PartialEq + Send + Sync + 'static {
    const NAME: &'static str;
    /// Keras's (or the reference's) default learning rate.
    const DEFAULT_LR: f32;
    /// Whether each element's update depends only on that element (true for all but the
    /// per-tensor rules LAMB, LARS and Adafactor). Elementwise rules get consecutive
    /// tensors with the same preparation in one call: one parallel pass, not one per tensor.
    const ELEMENTWISE: bool = true;
    /// State buffers (each as long as the parameters), by name, with their start values.
    fn state_buffers(&self, lr0: f32) -> Vec<(&'static str, StateInit)>;
    fn validate(&self) -> Result<()>;
    /// Advances scalar state once per update (before the tensors are updated).
    fn begin_step(&mut self, _t: u64) {}
    /// Scalar state to checkpoint, and restoring it.
    fn scalar_state(&self) -> Vec<(&'static str, f64)> {
        Vec::new()
    }
    fn load_scalar_state(&mut self, _values: &[(String, f64)]) {}
    /// Updates one tensor in place. `g` is the raw gradient: apply `ctx.prep.grad(g, p)` and
    /// `ctx.prep.decay(p)` to each element as it is read.
    ///
    /// A rule states its update as an [`OptimizerKernel`](crate::tensor::backend::OptimizerKernel)
    /// (in `tensor/kernels/optim/`) and runs it with `B::optimizer_step`.
    fn update(&self, ctx: &StepCtx, tensor: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, state: &mut [Option<&mut DeviceSlice>]);
    fn to_config(&self) -> RuleConfig;
    /// The evaluation point, for rules whose parameters hold another sequence (from the
    /// flat parameters and this rule's state buffers, in `state_buffers` order).
    fn eval_weights(&self, _params: &[f32], _state: &[&[f32]]) -> Option<Vec<f32>> {
        None
    }
}


pub(crate) fn check_positive(optimizer: &str, key: &str, value: f32) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(crate::Error::Config(format!("{optimizer}: {key} must be a positive number, got {value}")))
    }
}

/// Checks `lo ≤ value < hi` for a named hyperparameter.
pub(crate) fn check_unit(optimizer: &str, key: &str, value: f32) -> Result<()> {
    if value.is_finite() && (0.0..1.0).contains(&value) {
        Ok(())
    } else {
        Err(crate::Error::Config(format!("{optimizer}: {key} = {value} is outside [0, 1)")))
    }
}
