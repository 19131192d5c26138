//! Adadelta (Zeiler 2012), Keras's form:
//!
//!   a ← ρa + (1−ρ)g²;   Δ = −√(d + ε)/√(a + ε)·g;   d ← ρd + (1−ρ)Δ²;   p ← p + η·Δ

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_positive, check_unit, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::tensor::kernels::optim::adadelta::AdadeltaStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Adadelta {
    pub rho: f32,
    pub epsilon: f32,
}

impl Default for Adadelta {
    fn default() -> Self {
        Adadelta { rho: 0.95, epsilon: 1e-7 }
    }
}

optimizer_api!(Adadelta { rho: f32, epsilon: f32 });

impl Rule for Adadelta {
    const NAME: &'static str = "adadelta";
    const DEFAULT_LR: f32 = 0.001;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("accumulated_grad", StateInit::Const(0.0)), ("accumulated_delta", StateInit::Const(0.0))]
    }
    fn validate(&self) -> Result<()> {
        check_unit("adadelta", "rho", self.rho)?;
        check_positive("adadelta", "epsilon", self.epsilon)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = AdadeltaStep { rho: self.rho, epsilon: self.epsilon, c: *c };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Adadelta(self.clone())
    }
}
