//! Lion's fused kernel (the rule: `optim/rules/lion.rs`).

use super::{one_minus, states, Prep, StepCtx};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::parallel::for_each_split;

/// One step of Lion on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LionStep {
    pub beta_1: f32,
    pub beta_2: f32,
    pub c: StepCtx,
}

/// sign(x) with sign(0) = 0 (`f32::signum(0.0)` is 1).
#[inline(always)]
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

simd_dispatch! {
    fn lion_kernel(p: &mut [f32], m: &mut [f32], g: &[f32], lr: f32, b1: f32, omb1: f32, b2: f32, omb2: f32, prep: Prep) {
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            p[i] = prep.decay(p[i]) - lr * sign(m[i] * b1 + gi * omb1);
            m[i] = m[i] * b2 + gi * omb2;
        }
    }
}

impl OptimizerKernel for LionStep {
    const NAME: &'static str = "lion";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
        let [m] = states(s);
        let (lr, b1, b2, prep) = (c.lr, self.beta_1, self.beta_2, c.prep);
        let (omb1, omb2) = (one_minus(b1), one_minus(b2));
        for_each_split([p, m], [g], &|[p, m], [g]| lion_kernel(p, m, g, lr, b1, omb1, b2, omb2, prep));
    }
}
