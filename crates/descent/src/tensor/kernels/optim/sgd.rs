//! Sgd's fused kernel (the rule: `optim/rules/sgd.rs`).

use super::{states, Prep, StepCtx};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::parallel::for_each_split;

/// One step of Sgd on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SgdStep {
    pub momentum: f32,
    pub nesterov: bool,
    pub dampening: f32,
    pub c: StepCtx,
}

simd_dispatch! {
    fn sgd_plain(p: &mut [f32], g: &[f32], lr: f32, prep: Prep) {
        for (p, g) in p.iter_mut().zip(g) {
            let gi = prep.grad(*g, *p);
            *p = prep.decay(*p) - lr * gi;
        }
    }
}

simd_dispatch! {
    fn sgd_momentum(p: &mut [f32], m: &mut [f32], g: &[f32], lr: f32, mu: f32, damp: f32, nesterov: bool, prep: Prep) {
        for ((p, m), g) in p.iter_mut().zip(m.iter_mut()).zip(g) {
            let gi = prep.grad(*g, *p);
            *m = mu * *m - lr * damp * gi;
            let pi = prep.decay(*p);
            *p = if nesterov { pi + mu * *m - lr * gi } else { pi + *m };
        }
    }
}

impl OptimizerKernel for SgdStep {
    const NAME: &'static str = "sgd";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
        let (lr, prep) = (c.lr, c.prep);
        if self.momentum == 0.0 {
            for_each_split([p], [g], &|[p], [g]| sgd_plain(p, g, lr, prep));
        } else {
            let [m] = states(s);
            let damp = if c.t == 1 { 1.0 } else { 1.0 - self.dampening };
            let (mu, nesterov) = (self.momentum, self.nesterov);
            for_each_split([p, m], [g], &|[p, m], [g]| sgd_momentum(p, m, g, lr, mu, damp, nesterov, prep));
        }
    }
}
