//! Nadam (Dozat 2016): Adam with Nesterov momentum and a momentum schedule, Keras's form:
//!
//!   μ_t = β₁(1 − ½·0.96ᵗ);   Π_t = Π_{i≤t} μ_i
//!   m ← m + (1−β₁)(g − m);   v ← v + (1−β₂)(g² − v)
//!   m̂ = μ_{t+1}·m/(1 − Π_t·μ_{t+1}) + (1 − μ_t)·g/(1 − Π_t);   v̂ = v/(1 − β₂ᵗ)
//!   p ← p − η·m̂/(√v̂ + ε)

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_positive, check_unit, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::tensor::kernels::optim::nadam::{mu, NadamStep};
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Nadam {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// Π_t, the running product of the momentum schedule (state, not a hyperparameter).
    #[serde(skip)]
    u_product: f32,
}

impl Default for Nadam {
    fn default() -> Self {
        Nadam { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, u_product: 1.0 }
    }
}

optimizer_api!(Nadam { beta_1: f32, beta_2: f32, epsilon: f32 });

impl Rule for Nadam {
    const NAME: &'static str = "nadam";
    const DEFAULT_LR: f32 = 0.001;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("m", StateInit::Const(0.0)), ("v", StateInit::Const(0.0))]
    }
    fn validate(&self) -> Result<()> {
        check_unit("nadam", "beta_1", self.beta_1)?;
        check_unit("nadam", "beta_2", self.beta_2)?;
        check_positive("nadam", "epsilon", self.epsilon)
    }
    fn begin_step(&mut self, t: u64) {
        self.u_product *= mu(self.beta_1, t);
    }
    fn scalar_state(&self) -> Vec<(&'static str, f64)> {
        vec![("u_product", self.u_product as f64)]
    }
    fn load_scalar_state(&mut self, values: &[(String, f64)]) {
        if let Some((_, v)) = values.iter().find(|(n, _)| n == "u_product") {
            self.u_product = *v as f32;
        }
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = NadamStep { beta_1: self.beta_1, beta_2: self.beta_2, epsilon: self.epsilon, u_product: self.u_product, c: *c };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Nadam(Nadam { u_product: 1.0, ..self.clone() })
    }
}
