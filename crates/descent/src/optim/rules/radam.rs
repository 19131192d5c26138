//! Rectified Adam (Liu et al. 2020), PyTorch's form:
//!
//!   m ← β₁m + (1−β₁)g;   v ← β₂v + (1−β₂)g²;   m̂ = m/(1−β₁ᵗ)
//!   ρ∞ = 2/(1−β₂) − 1;   ρ_t = ρ∞ − 2t·β₂ᵗ/(1−β₂ᵗ)
//!   ρ_t > 5:  r = √((ρ_t−4)(ρ_t−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρ_t));  p ← p − η·r·m̂·√(1−β₂ᵗ)/(√v + ε)
//!   else:     p ← p − η·m̂      (the variance is not yet trustworthy: plain momentum)

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_positive, check_unit, states, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::{Prep, RuleConfig};
use crate::tensor::kernels::parallel::for_each_split;

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

simd_dispatch! {
    /// `rect` = η·r·√(1−β₂ᵗ)/(1−β₁ᵗ) when rectified, else `plain` = η/(1−β₁ᵗ) is used.
    fn radam_kernel(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], b1: f32, b2: f32, eps: f32, rect: f32, plain: f32, rectified: bool, prep: Prep) {
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            m[i] = b1 * m[i] + (1.0 - b1) * gi;
            v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
            let pi = prep.decay(p[i]);
            p[i] = if rectified { pi - rect * m[i] / (v[i].sqrt() + eps) } else { pi - plain * m[i] };
        }
    }
}

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
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let [m, v] = states(s);
        let (b1, b2, t) = (self.beta_1 as f64, self.beta_2 as f64, c.t as f64);
        let (bc1, bc2) = (1.0 - b1.powf(t), 1.0 - b2.powf(t));
        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
        let rho_t = rho_inf - 2.0 * t * b2.powf(t) / bc2;
        let rectified = rho_t > 5.0;
        let r = if rectified { ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)).sqrt() } else { 0.0 };
        let lr = c.lr as f64;
        let rect = (lr * r * bc2.sqrt() / bc1) as f32;
        let plain = (lr / bc1) as f32;
        let (b1, b2, eps, prep) = (self.beta_1, self.beta_2, self.epsilon, c.prep);
        for_each_split([p, m, v], [g], &|[p, m, v], [g]| radam_kernel(p, m, v, g, b1, b2, eps, rect, plain, rectified, prep));
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Radam(self.clone())
    }
}
