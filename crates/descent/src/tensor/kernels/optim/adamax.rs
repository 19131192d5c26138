//! Adamax's fused kernel (the rule: `optim/rules/adamax.rs`).

use super::{configured, one_minus, states, Prep, StepCtx};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::parallel::for_each_split;

/// One step of Adamax on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AdamaxStep {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub c: StepCtx,
}

simd_dispatch! {
    fn adamax_kernel(p: &mut [f32], m: &mut [f32], u: &mut [f32], g: &[f32], lr: f32, omb1: f32, b2: f32, bc1: f32, eps: f32, prep: Prep) {
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            m[i] += (gi - m[i]) * omb1;
            u[i] = (b2 * u[i]).max(gi.abs());
            p[i] = prep.decay(p[i]) - lr * m[i] / (bc1 * (u[i] + eps));
        }
    }
}

impl OptimizerKernel for AdamaxStep {
    const NAME: &'static str = "adamax";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
        let [m, u] = states(s);
        let (b1, b2, eps, lr, prep) = (self.beta_1, self.beta_2, self.epsilon, c.lr, c.prep);
        let bc1 = (1.0 - configured(b1).powf(c.t as f64)) as f32;
        for_each_split([p, m, u], [g], &|[p, m, u], [g]| adamax_kernel(p, m, u, g, lr, one_minus(b1), b2, bc1, eps, prep));
    }
}
