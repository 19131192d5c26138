//! Adam (Kingma & Ba 2015) in Keras's form, with optional AMSGrad:
//!
//!   m ← m + (1−β₁)(g − m);   v ← v + (1−β₂)(g² − v)
//!   AMSGrad: v̂ ← max(v̂, v), used in place of v
//!   α_t = η·√(1−β₂ᵗ)/(1−β₁ᵗ);   p ← p − α_t·m / (√v + ε)
//!
//! Keras folds the bias corrections into the step size, so ε is not bias-corrected;
//! PyTorch divides by √v/√(1−β₂ᵗ) + ε instead — identical for ε → 0. AdamW is this rule
//! with decoupled `weight_decay` (default 0.004 under the name `adamw`).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_positive, check_unit, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::{Configured, Options, RuleConfig};
use crate::tensor::kernels::optim::adam::AdamStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Adam {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub amsgrad: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Adam { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: false }
    }
}

optimizer_api!(Adam { beta_1: f32, beta_2: f32, epsilon: f32, amsgrad: bool });

impl Adam {
    /// AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019).
    pub fn adamw(learning_rate: f32, weight_decay: f32) -> Configured<Adam> {
        Configured::with_options(
            Adam::default(),
            Options { learning_rate: Some(learning_rate.into()), weight_decay: Some(weight_decay), ..Default::default() },
        )
    }
}

impl Configured<Adam> {
    pub fn betas(self, beta_1: f32, beta_2: f32) -> Self {
        self.beta_1(beta_1).beta_2(beta_2)
    }
}

impl Rule for Adam {
    const NAME: &'static str = "adam";
    const DEFAULT_LR: f32 = 0.001;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        let mut s = vec![("m", StateInit::Const(0.0)), ("v", StateInit::Const(0.0))];
        if self.amsgrad {
            s.push(("v_hat", StateInit::Const(0.0)));
        }
        s
    }
    fn validate(&self) -> Result<()> {
        check_unit("adam", "beta_1", self.beta_1)?;
        check_unit("adam", "beta_2", self.beta_2)?;
        check_positive("adam", "epsilon", self.epsilon)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = AdamStep { beta_1: self.beta_1, beta_2: self.beta_2, epsilon: self.epsilon, amsgrad: self.amsgrad, c: *c };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Adam(self.clone())
    }
}
