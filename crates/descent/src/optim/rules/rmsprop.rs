//! RMSprop in Keras's form (ε inside the square root, as Keras and TensorFlow define it):
//!
//!   v ← ρ·v + (1−ρ)·g²
//!   centered:  ḡ ← ρ·ḡ + (1−ρ)·g;  d = v − ḡ² + ε      else d = v + ε
//!   Δ = η·g / √d
//!   momentum:  b ← μ·b + Δ;  p ← p − b                   else p ← p − Δ
//!
//! PyTorch adds ε outside the root (√v + ε); the two differ only when v is tiny.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_positive, check_unit, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::tensor::kernels::optim::rmsprop::RmsPropStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RmsProp {
    pub rho: f32,
    pub momentum: f32,
    pub epsilon: f32,
    pub centered: bool,
}

impl Default for RmsProp {
    fn default() -> Self {
        RmsProp { rho: 0.9, momentum: 0.0, epsilon: 1e-7, centered: false }
    }
}

optimizer_api!(RmsProp { rho: f32, momentum: f32, epsilon: f32, centered: bool });

impl Rule for RmsProp {
    const NAME: &'static str = "rmsprop";
    const DEFAULT_LR: f32 = 0.001;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        let mut s = vec![("velocity", StateInit::Const(0.0))];
        if self.centered {
            s.push(("average_grad", StateInit::Const(0.0)));
        }
        if self.momentum > 0.0 {
            s.push(("momentum", StateInit::Const(0.0)));
        }
        s
    }
    fn validate(&self) -> Result<()> {
        check_unit("rmsprop", "rho", self.rho)?;
        check_unit("rmsprop", "momentum", self.momentum)?;
        check_positive("rmsprop", "epsilon", self.epsilon)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = RmsPropStep { rho: self.rho, momentum: self.momentum, epsilon: self.epsilon, centered: self.centered, c: *c };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Rmsprop(self.clone())
    }
}
