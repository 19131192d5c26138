//! LARS (You et al. 2017, "Large Batch Training of Convolutional Networks"): momentum SGD
//! with a per-tensor trust ratio, in the form of its common implementations (timm):
//!
//!   r = τ·‖p‖ / (‖g‖ + λ‖p‖ + ε)   (1 when ‖p‖ or ‖g‖ is 0);   ĝ = r·(g + λp)
//!   m ← μ·m + ĝ;   p ← p − η·(Nesterov ? ĝ + μ·m : m)
//!
//! λ is the common `l2` option (coupled weight decay, part of the trust ratio as in the
//! paper); τ is `trust_coefficient`. Neither Keras nor PyTorch ships LARS: the reference
//! values in the tests come from a NumPy transcription of these formulas.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_positive, check_unit, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::tensor::kernels::optim::lars::LarsStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lars {
    pub momentum: f32,
    pub nesterov: bool,
    pub trust_coefficient: f32,
    pub epsilon: f32,
}

impl Default for Lars {
    fn default() -> Self {
        Lars { momentum: 0.9, nesterov: false, trust_coefficient: 0.001, epsilon: 1e-8 }
    }
}

optimizer_api!(Lars { momentum: f32, nesterov: bool, trust_coefficient: f32, epsilon: f32 });

impl Rule for Lars {
    const NAME: &'static str = "lars";
    const ELEMENTWISE: bool = false;
    const DEFAULT_LR: f32 = 0.1;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("momentum", StateInit::Const(0.0))]
    }
    fn validate(&self) -> Result<()> {
        check_unit("lars", "momentum", self.momentum)?;
        check_positive("lars", "trust_coefficient", self.trust_coefficient)?;
        check_positive("lars", "epsilon", self.epsilon)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = LarsStep { momentum: self.momentum, nesterov: self.nesterov, trust_coefficient: self.trust_coefficient, epsilon: self.epsilon, c: *c };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Lars(self.clone())
    }
}
