//! Adamax (Kingma & Ba 2015, §7.1), Keras's form: Adam with the infinity norm.
//!
//!   m ← m + (1−β₁)(g − m);   u ← max(β₂·u, |g|);   p ← p − η·m / ((1−β₁ᵗ)(u + ε))

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_positive, check_unit, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::tensor::kernels::optim::adamax::AdamaxStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Adamax {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
}

impl Default for Adamax {
    fn default() -> Self {
        Adamax { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }
    }
}

optimizer_api!(Adamax { beta_1: f32, beta_2: f32, epsilon: f32 });

impl Rule for Adamax {
    const NAME: &'static str = "adamax";
    const DEFAULT_LR: f32 = 0.001;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("m", StateInit::Const(0.0)), ("u", StateInit::Const(0.0))]
    }
    fn validate(&self) -> Result<()> {
        check_unit("adamax", "beta_1", self.beta_1)?;
        check_unit("adamax", "beta_2", self.beta_2)?;
        check_positive("adamax", "epsilon", self.epsilon)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = AdamaxStep { beta_1: self.beta_1, beta_2: self.beta_2, epsilon: self.epsilon, c: *c };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Adamax(self.clone())
    }
}
