//! RAdam's fused kernel (the rule: `optim/rules/radam.rs`).

use super::{configured, one_minus, states, Prep, StepCtx};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::parallel::for_each_split;

/// One step of RAdam on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RAdamStep {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub c: StepCtx,
}

/// β₁, 1 − β₁, β₂, 1 − β₂ (see [`one_minus`]).
#[derive(Clone, Copy)]
struct Betas {
    b1: f32,
    omb1: f32,
    b2: f32,
    omb2: f32,
}

simd_dispatch! {
    /// `rect` = η·r·√(1−β₂ᵗ)/(1−β₁ᵗ) when rectified, else `plain` = η/(1−β₁ᵗ) is used.
    fn radam_kernel(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: Betas, eps: f32, rect: f32, plain: f32, rectified: bool, prep: Prep) {
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            m[i] = k.b1 * m[i] + k.omb1 * gi;
            v[i] = k.b2 * v[i] + k.omb2 * gi * gi;
            let pi = prep.decay(p[i]);
            p[i] = if rectified { pi - rect * m[i] / (v[i].sqrt() + eps) } else { pi - plain * m[i] };
        }
    }
}

impl OptimizerKernel for RAdamStep {
    const NAME: &'static str = "radam";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
        let [m, v] = states(s);
        let (b1, b2, t) = (configured(self.beta_1), configured(self.beta_2), c.t as f64);
        let (bc1, bc2) = (1.0 - b1.powf(t), 1.0 - b2.powf(t));
        let rho_inf = 2.0 / (1.0 - b2) - 1.0;
        let rho_t = rho_inf - 2.0 * t * b2.powf(t) / bc2;
        let rectified = rho_t > 5.0;
        let r = if rectified { ((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)).sqrt() } else { 0.0 };
        let lr = configured(c.lr);
        let rect = (lr * r * bc2.sqrt() / bc1) as f32;
        let plain = (lr / bc1) as f32;
        let (b1, b2, eps, prep) = (self.beta_1, self.beta_2, self.epsilon, c.prep);
        let k = Betas { b1, omb1: one_minus(b1), b2, omb2: one_minus(b2) };
        for_each_split([p, m, v], [g], &|[p, m, v], [g]| radam_kernel(p, m, v, g, k, eps, rect, plain, rectified, prep));
    }
}
