//! Adamax (Kingma & Ba 2015, §7.1), Keras's form: Adam with the infinity norm.
//!
//!   m ← m + (1−β₁)(g − m);   u ← max(β₂·u, |g|);   p ← p − η·m / ((1−β₁ᵗ)(u + ε))

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_positive, check_unit, states, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::{Prep, RuleConfig};
use crate::tensor::kernels::parallel::for_each_split;

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

simd_dispatch! {
    fn adamax_kernel(p: &mut [f32], m: &mut [f32], u: &mut [f32], g: &[f32], lr: f32, b1: f32, b2: f32, bc1: f32, eps: f32, prep: Prep) {
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            m[i] += (gi - m[i]) * (1.0 - b1);
            u[i] = (b2 * u[i]).max(gi.abs());
            p[i] = prep.decay(p[i]) - lr * m[i] / (bc1 * (u[i] + eps));
        }
    }
}

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
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let [m, u] = states(s);
        let (b1, b2, eps, lr, prep) = (self.beta_1, self.beta_2, self.epsilon, c.lr, c.prep);
        let bc1 = 1.0 - b1.powf(c.t as f32);
        for_each_split([p, m, u], [g], &|[p, m, u], [g]| adamax_kernel(p, m, u, g, lr, b1, b2, bc1, eps, prep));
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Adamax(self.clone())
    }
}
