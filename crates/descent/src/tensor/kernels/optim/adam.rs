//! Adam's fused kernel (the rule: `optim/rules/adam.rs`).

use super::{configured, one_minus, states, Prep, StepCtx};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::parallel::for_each_split;

/// One step of Adam on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub amsgrad: bool,
    pub c: StepCtx,
}

simd_dispatch! {
    /// `omb1`, `omb2`: 1 − β₁ and 1 − β₂ (see [`one_minus`]).
    fn adam_kernel(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], alpha: f32, omb1: f32, omb2: f32, eps: f32, prep: Prep) {
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            m[i] += (gi - m[i]) * omb1;
            v[i] += (gi * gi - v[i]) * omb2;
            p[i] = prep.decay(p[i]) - m[i] * alpha / (v[i].sqrt() + eps);
        }
    }
}

simd_dispatch! {
    fn amsgrad_kernel(p: &mut [f32], m: &mut [f32], v: &mut [f32], vh: &mut [f32], g: &[f32], alpha: f32, omb1: f32, omb2: f32, eps: f32, prep: Prep) {
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            m[i] += (gi - m[i]) * omb1;
            v[i] += (gi * gi - v[i]) * omb2;
            vh[i] = vh[i].max(v[i]);
            p[i] = prep.decay(p[i]) - m[i] * alpha / (vh[i].sqrt() + eps);
        }
    }
}

/// Keras's step size with both bias corrections folded in (in f64 from the configured
/// values: β₂ᵗ stays accurate).
pub(crate) fn adam_alpha(lr: f32, b1: f32, b2: f32, t: u64) -> f32 {
    let t = t as f64;
    (configured(lr) * (1.0 - configured(b2).powf(t)).sqrt() / (1.0 - configured(b1).powf(t))) as f32
}

impl OptimizerKernel for AdamStep {
    const NAME: &'static str = "adam";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
        let (b1, b2, eps, prep) = (self.beta_1, self.beta_2, self.epsilon, c.prep);
        let alpha = adam_alpha(c.lr, b1, b2, c.t);
        let (b1, b2) = (one_minus(b1), one_minus(b2));
        if self.amsgrad {
            let [m, v, vh] = states(s);
            for_each_split([p, m, v, vh], [g], &|[p, m, v, vh], [g]| amsgrad_kernel(p, m, v, vh, g, alpha, b1, b2, eps, prep));
        } else {
            let [m, v] = states(s);
            for_each_split([p, m, v], [g], &|[p, m, v], [g]| adam_kernel(p, m, v, g, alpha, b1, b2, eps, prep));
        }
    }
}
