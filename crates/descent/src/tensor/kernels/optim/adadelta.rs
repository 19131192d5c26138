//! Adadelta's fused kernel (the rule: `optim/rules/adadelta.rs`).

use super::{one_minus, states, Prep, StepCtx};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::parallel::for_each_split;

/// One step of Adadelta on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AdadeltaStep {
    pub rho: f32,
    pub epsilon: f32,
    pub c: StepCtx,
}

simd_dispatch! {
    fn adadelta_kernel(p: &mut [f32], a: &mut [f32], d: &mut [f32], g: &[f32], lr: f32, rho: f32, omr: f32, eps: f32, prep: Prep) {
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            a[i] = rho * a[i] + omr * gi * gi;
            let delta = -((d[i] + eps).sqrt() * gi) / (a[i] + eps).sqrt();
            d[i] = rho * d[i] + omr * delta * delta;
            p[i] = prep.decay(p[i]) + lr * delta;
        }
    }
}

impl OptimizerKernel for AdadeltaStep {
    const NAME: &'static str = "adadelta";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
        let [a, d] = states(s);
        let (lr, rho, eps, prep) = (c.lr, self.rho, self.epsilon, c.prep);
        for_each_split([p, a, d], [g], &|[p, a, d], [g]| adadelta_kernel(p, a, d, g, lr, rho, one_minus(rho), eps, prep));
    }
}
