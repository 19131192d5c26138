//! Rprop (Riedmiller & Braun 1993), PyTorch's form: per-weight step sizes adapted from
//! the sign agreement of successive gradients; made for full-batch training.
//!
//!   s = g·g_prev;   step ← clamp(step·(η+ if s > 0, η− if s < 0, else 1), min, max)
//!   g ← 0 where s < 0;   p ← p − sign(g)·step;   g_prev ← g     (step starts at η)

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::Error;
use crate::tensor::kernels::optim::rprop::RpropStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rprop {
    pub eta_minus: f32,
    pub eta_plus: f32,
    pub step_size_min: f32,
    pub step_size_max: f32,
}

impl Default for Rprop {
    fn default() -> Self {
        Rprop { eta_minus: 0.5, eta_plus: 1.2, step_size_min: 1e-6, step_size_max: 50.0 }
    }
}

optimizer_api!(Rprop { eta_minus: f32, eta_plus: f32, step_size_min: f32, step_size_max: f32 });

impl Rule for Rprop {
    const NAME: &'static str = "rprop";
    const DEFAULT_LR: f32 = 0.01;
    fn state_buffers(&self, lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("prev_grad", StateInit::Const(0.0)), ("step_size", StateInit::Const(lr0))]
    }
    fn validate(&self) -> Result<()> {
        if !(0.0 < self.eta_minus && self.eta_minus < 1.0 && self.eta_plus > 1.0) {
            return Err(Error::Config(format!(
                "rprop: need 0 < eta_minus < 1 < eta_plus, got eta_minus = {}, eta_plus = {}",
                self.eta_minus, self.eta_plus
            )));
        }
        if !(0.0 < self.step_size_min && self.step_size_min <= self.step_size_max) {
            return Err(Error::Config("rprop: need 0 < step_size_min ≤ step_size_max".into()));
        }
        Ok(())
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = RpropStep { eta_minus: self.eta_minus, eta_plus: self.eta_plus, step_size_min: self.step_size_min, step_size_max: self.step_size_max, c: *c };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Rprop(self.clone())
    }
}
