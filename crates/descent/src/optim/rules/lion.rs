//! Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), Keras's form:
//!
//!   p ← p − η·sign(β₁m + (1−β₁)g);   m ← β₂m + (1−β₂)g
//!
//! One state buffer and a sign: half Adam's memory traffic. Use a 3–10× smaller learning
//! rate than Adam's.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_unit, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::tensor::kernels::optim::lion::LionStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lion {
    pub beta_1: f32,
    pub beta_2: f32,
}

impl Default for Lion {
    fn default() -> Self {
        Lion { beta_1: 0.9, beta_2: 0.99 }
    }
}

optimizer_api!(Lion { beta_1: f32, beta_2: f32 });

impl Rule for Lion {
    const NAME: &'static str = "lion";
    const DEFAULT_LR: f32 = 0.001;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("m", StateInit::Const(0.0))]
    }
    fn validate(&self) -> Result<()> {
        check_unit("lion", "beta_1", self.beta_1)?;
        check_unit("lion", "beta_2", self.beta_2)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = LionStep { beta_1: self.beta_1, beta_2: self.beta_2, c: *c };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Lion(self.clone())
    }
}
