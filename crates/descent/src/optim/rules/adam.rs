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
use crate::optim::rule::{check_positive, check_unit, states, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::{Configured, Options, Prep, RuleConfig};
use crate::tensor::kernels::parallel::for_each_split;

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

simd_dispatch! {
    fn adam_kernel(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], alpha: f32, b1: f32, b2: f32, eps: f32, prep: Prep) {
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            m[i] += (gi - m[i]) * (1.0 - b1);
            v[i] += (gi * gi - v[i]) * (1.0 - b2);
            p[i] = prep.decay(p[i]) - m[i] * alpha / (v[i].sqrt() + eps);
        }
    }
}

simd_dispatch! {
    fn amsgrad_kernel(p: &mut [f32], m: &mut [f32], v: &mut [f32], vh: &mut [f32], g: &[f32], alpha: f32, b1: f32, b2: f32, eps: f32, prep: Prep) {
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            m[i] += (gi - m[i]) * (1.0 - b1);
            v[i] += (gi * gi - v[i]) * (1.0 - b2);
            vh[i] = vh[i].max(v[i]);
            p[i] = prep.decay(p[i]) - m[i] * alpha / (vh[i].sqrt() + eps);
        }
    }
}

/// Keras's step size with both bias corrections folded in (in f64: β₂ᵗ stays accurate).
pub(crate) fn adam_alpha(lr: f32, b1: f32, b2: f32, t: u64) -> f32 {
    let t = t as f64;
    (lr as f64 * (1.0 - (b2 as f64).powf(t)).sqrt() / (1.0 - (b1 as f64).powf(t))) as f32
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
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let (b1, b2, eps, prep) = (self.beta_1, self.beta_2, self.epsilon, c.prep);
        let alpha = adam_alpha(c.lr, b1, b2, c.t);
        if self.amsgrad {
            let [m, v, vh] = states(s);
            for_each_split([p, m, v, vh], [g], &|[p, m, v, vh], [g]| amsgrad_kernel(p, m, v, vh, g, alpha, b1, b2, eps, prep));
        } else {
            let [m, v] = states(s);
            for_each_split([p, m, v], [g], &|[p, m, v], [g]| adam_kernel(p, m, v, g, alpha, b1, b2, eps, prep));
        }
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Adam(self.clone())
    }
}
