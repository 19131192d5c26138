//! FTRL-Proximal (McMahan et al. 2013), Keras's form (lr_power = −½ by default):
//!
//!   ĝ = g + 2·λ_shrink·p;   n' = n + g²
//!   z ← z + ĝ − (n'^(−c) − n^(−c))/η · p          (c = lr_power)
//!   q = n'^(−c)/η + 2(λ₂ + β/(2η));   p ← (clip(z, ±λ₁) − z)/q;   n ← n'

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{states, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::{Prep, RuleConfig};
use crate::tensor::kernels::parallel::for_each_split;
use crate::Error;

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

#[derive(Clone, Copy)]
struct Hyper {
    lr: f32,
    neg_power: f32,
    l1: f32,
    l2_total: f32,
    shrink: f32,
    /// lr_power = −½ (the default): n^½ is a square root, far cheaper than `powf`.
    sqrt_power: bool,
    prep: Prep,
}

#[inline(always)]
fn pow(x: f32, h: &Hyper) -> f32 {
    if h.sqrt_power { x.sqrt() } else { x.powf(h.neg_power) }
}

simd_dispatch! {
    fn ftrl_kernel(p: &mut [f32], n: &mut [f32], z: &mut [f32], g: &[f32], h: Hyper) {
        for i in 0..p.len() {
            let gi = h.prep.grad(g[i], p[i]);
            let pi = h.prep.decay(p[i]);
            let ghat = gi + 2.0 * h.shrink * pi;
            let n_new = n[i] + gi * gi;
            let n_pow = pow(n_new, &h);
            let sigma = (n_pow - pow(n[i], &h)) / h.lr;
            z[i] += ghat - sigma * pi;
            let q = n_pow / h.lr + 2.0 * h.l2_total;
            p[i] = (z[i].clamp(-h.l1, h.l1) - z[i]) / q;
            n[i] = n_new;
        }
    }
}

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
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let [n, z] = states(s);
        let h = Hyper {
            lr: c.lr,
            neg_power: -self.learning_rate_power,
            l1: self.l1_regularization_strength,
            l2_total: self.l2_regularization_strength + self.beta / (2.0 * c.lr),
            shrink: self.l2_shrinkage_regularization_strength,
            sqrt_power: self.learning_rate_power == -0.5,
            prep: c.prep,
        };
        for_each_split([p, n, z], [g], &|[p, n, z], [g]| ftrl_kernel(p, n, z, g, h));
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Ftrl(self.clone())
    }
}
