//! FTRL-Proximal (McMahan et al. 2013), Keras's form (lr_power = −½ by default):
//!
//!   ĝ = g + 2·λ_shrink·p;   n' = n + g²
//!   z ← z + ĝ − (n'^(−c) − n^(−c))/η · p          (c = lr_power)
//!   q = n'^(−c)/η + 2(λ₂ + β/(2η));   p ← (clip(z, ±λ₁) − z)/q;   n ← n'

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::Error;
use crate::tensor::kernels::optim::ftrl::FtrlStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ftrl {
    pub learning_rate_power: f32,
    pub initial_accumulator_value: f32,
    pub l1_regularization_strength: f32,
    pub l2_regularization_strength: f32,
    pub l2_shrinkage_regularization_strength: f32,
    pub beta: f32,
}

impl Default for Ftrl {
    fn default() -> Self {
        Ftrl {
            learning_rate_power: -0.5,
            initial_accumulator_value: 0.1,
            l1_regularization_strength: 0.0,
            l2_regularization_strength: 0.0,
            l2_shrinkage_regularization_strength: 0.0,
            beta: 0.0,
        }
    }
}

optimizer_api!(Ftrl {
    learning_rate_power: f32,
    initial_accumulator_value: f32,
    l1_regularization_strength: f32,
    l2_regularization_strength: f32,
    l2_shrinkage_regularization_strength: f32,
    beta: f32,
});

impl Rule for Ftrl {
    const NAME: &'static str = "ftrl";
    const DEFAULT_LR: f32 = 0.001;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("accumulator", StateInit::Const(self.initial_accumulator_value)), ("linear", StateInit::Const(0.0))]
    }
    fn validate(&self) -> Result<()> {
        let bad = |k: &str, v: f32| Err(Error::Config(format!("ftrl: {k} must be ≥ 0, got {v}")));
        if self.learning_rate_power > 0.0 {
            return Err(Error::Config(format!("ftrl: learning_rate_power must be ≤ 0, got {}", self.learning_rate_power)));
        }
        for (k, v) in [
            ("initial_accumulator_value", self.initial_accumulator_value),
            ("l1_regularization_strength", self.l1_regularization_strength),
            ("l2_regularization_strength", self.l2_regularization_strength),
            ("l2_shrinkage_regularization_strength", self.l2_shrinkage_regularization_strength),
            ("beta", self.beta),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(k, v);
            }
        }
        Ok(())
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = FtrlStep { learning_rate_power: self.learning_rate_power, initial_accumulator_value: self.initial_accumulator_value, l1_regularization_strength: self.l1_regularization_strength, l2_regularization_strength: self.l2_regularization_strength, l2_shrinkage_regularization_strength: self.l2_shrinkage_regularization_strength, beta: self.beta, c: *c };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Ftrl(self.clone())
    }
}
