//! Adagrad's fused kernel (the rule: `optim/rules/adagrad.rs`).

use super::{states, Prep, StepCtx};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::parallel::for_each_split;

/// One step of Adagrad on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AdagradStep {
    pub initial_accumulator_value: f32,
    pub epsilon: f32,
    pub c: StepCtx,
}

simd_dispatch! {
    fn adagrad_kernel(p: &mut [f32], a: &mut [f32], g: &[f32], lr: f32, eps: f32, prep: Prep) {
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            a[i] += gi * gi;
            p[i] = prep.decay(p[i]) - lr * gi / (a[i] + eps).sqrt();
        }
    }
}

impl OptimizerKernel for AdagradStep {
    const NAME: &'static str = "adagrad";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
        let [a] = states(s);
        let (lr, eps, prep) = (c.lr, self.epsilon, c.prep);
        for_each_split([p, a], [g], &|[p, a], [g]| adagrad_kernel(p, a, g, lr, eps, prep));
    }
}
