//! LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning"), Keras's form:
//! Adam's direction, rescaled per tensor by a trust ratio.
//!
//!   m ← m + (1−β₁)(g − m);   v ← v + (1−β₂)(g² − v)
//!   u = (m/(1−β₁ᵗ)) / (√(v/(1−β₂ᵗ)) + ε)
//!   r = ‖p‖/‖u‖ (1 when either is 0);   p ← p − η·r·u
//!
//! Two passes per tensor: moments and both norms, then the scaled update.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_positive, check_unit, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::tensor::kernels::optim::lamb::LambStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lamb {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
}

impl Default for Lamb {
    fn default() -> Self {
        Lamb { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7 }
    }
}

optimizer_api!(Lamb { beta_1: f32, beta_2: f32, epsilon: f32 });

impl Rule for Lamb {
    const NAME: &'static str = "lamb";
    const ELEMENTWISE: bool = false;
    const DEFAULT_LR: f32 = 0.001;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("m", StateInit::Const(0.0)), ("v", StateInit::Const(0.0))]
    }
    fn validate(&self) -> Result<()> {
        check_unit("lamb", "beta_1", self.beta_1)?;
        check_unit("lamb", "beta_2", self.beta_2)?;
        check_positive("lamb", "epsilon", self.epsilon)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = LambStep { beta_1: self.beta_1, beta_2: self.beta_2, epsilon: self.epsilon, c: *c };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Lamb(self.clone())
    }
}
