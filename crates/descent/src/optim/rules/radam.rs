//! Rectified Adam (Liu et al. 2020), PyTorch's form:
//!
//!   m ← β₁m + (1−β₁)g;   v ← β₂v + (1−β₂)g²;   m̂ = m/(1−β₁ᵗ)
//!   ρ∞ = 2/(1−β₂) − 1;   ρ_t = ρ∞ − 2t·β₂ᵗ/(1−β₂ᵗ)
//!   ρ_t > 5:  r = √((ρ_t−4)(ρ_t−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρ_t));  p ← p − η·r·m̂·√(1−β₂ᵗ)/(√v + ε)
//!   else:     p ← p − η·m̂      (the variance is not yet trustworthy: plain momentum)

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_positive, check_unit, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::tensor::kernels::optim::radam::RAdamStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RAdam {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
}

impl Default for RAdam {
    fn default() -> Self {
        RAdam { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8 }
    }
}

optimizer_api!(RAdam { beta_1: f32, beta_2: f32, epsilon: f32 });

impl Rule for RAdam {
    const NAME: &'static str = "radam";
    const DEFAULT_LR: f32 = 0.001;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("m", StateInit::Const(0.0)), ("v", StateInit::Const(0.0))]
    }
    fn validate(&self) -> Result<()> {
        check_unit("radam", "beta_1", self.beta_1)?;
        check_unit("radam", "beta_2", self.beta_2)?;
        check_positive("radam", "epsilon", self.epsilon)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = RAdamStep { beta_1: self.beta_1, beta_2: self.beta_2, epsilon: self.epsilon, c: *c };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Radam(self.clone())
    }
}
