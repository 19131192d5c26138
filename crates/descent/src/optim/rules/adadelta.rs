//! Adadelta (Zeiler 2012), Keras's form:
//!
//!   a ← ρa + (1−ρ)g²;   Δ = −√(d + ε)/√(a + ε)·g;   d ← ρd + (1−ρ)Δ²;   p ← p + η·Δ

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_positive, check_unit, states, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::{Prep, RuleConfig};
use crate::tensor::kernels::parallel::for_each_split;

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

simd_dispatch! {
    fn adadelta_kernel(p: &mut [f32], a: &mut [f32], d: &mut [f32], g: &[f32], lr: f32, rho: f32, eps: f32, prep: Prep) {
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            a[i] = rho * a[i] + (1.0 - rho) * gi * gi;
            let delta = -((d[i] + eps).sqrt() * gi) / (a[i] + eps).sqrt();
            d[i] = rho * d[i] + (1.0 - rho) * delta * delta;
            p[i] = prep.decay(p[i]) + lr * delta;
        }
    }
}

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
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let [a, d] = states(s);
        let (lr, rho, eps, prep) = (c.lr, self.rho, self.epsilon, c.prep);
        for_each_split([p, a, d], [g], &|[p, a, d], [g]| adadelta_kernel(p, a, d, g, lr, rho, eps, prep));
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Adadelta(self.clone())
    }
}
