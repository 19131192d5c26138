//! RmsProp's fused kernel (the rule: `optim/rules/rmsprop.rs`).

use super::{one_minus, Prep, StepCtx};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::parallel::for_each_split;

/// One step of RmsProp on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RmsPropStep {
    pub rho: f32,
    pub momentum: f32,
    pub epsilon: f32,
    pub centered: bool,
    pub c: StepCtx,
}

#[derive(Clone, Copy)]
struct Hyper {
    lr: f32,
    rho: f32,
    /// 1 − ρ (see [`one_minus`]).
    omr: f32,
    mu: f32,
    eps: f32,
    centered: bool,
    use_momentum: bool,
    prep: Prep,
}

simd_dispatch! {
    /// All variants in one loop; unused buffers are zero-length and never indexed
    /// (the variant flags are loop-invariant, so the compiler hoists the branches).
    fn rmsprop_kernel(p: &mut [f32], v: &mut [f32], a: &mut [f32], b: &mut [f32], g: &[f32], h: Hyper) {
        for i in 0..p.len() {
            let gi = h.prep.grad(g[i], p[i]);
            v[i] = h.rho * v[i] + h.omr * gi * gi;
            let d = if h.centered {
                a[i] = h.rho * a[i] + h.omr * gi;
                v[i] - a[i] * a[i] + h.eps
            } else {
                v[i] + h.eps
            };
            let inc = h.lr * gi / d.sqrt();
            let pi = h.prep.decay(p[i]);
            p[i] = if h.use_momentum {
                b[i] = h.mu * b[i] + inc;
                pi - b[i]
            } else {
                pi - inc
            };
        }
    }
}

impl OptimizerKernel for RmsPropStep {
    const NAME: &'static str = "rmsprop";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
        let h = Hyper {
            lr: c.lr,
            rho: self.rho,
            omr: one_minus(self.rho),
            mu: self.momentum,
            eps: self.epsilon,
            centered: self.centered,
            use_momentum: self.momentum > 0.0,
            prep: c.prep,
        };
        let mut it = s.iter_mut();
        let v = &mut **it.next().expect("velocity");
        let a: &mut [f32] = if self.centered { it.next().expect("average_grad") } else { &mut [] };
        let b: &mut [f32] = if h.use_momentum { it.next().expect("momentum") } else { &mut [] };
        // Split only the buffers this variant keeps.
        match (a.is_empty(), b.is_empty()) {
            (true, true) => for_each_split([p, v], [g], &|[p, v], [g]| rmsprop_kernel(p, v, &mut [], &mut [], g, h)),
            (false, true) => for_each_split([p, v, a], [g], &|[p, v, a], [g]| rmsprop_kernel(p, v, a, &mut [], g, h)),
            (true, false) => for_each_split([p, v, b], [g], &|[p, v, b], [g]| rmsprop_kernel(p, v, &mut [], b, g, h)),
            (false, false) => for_each_split([p, v, a, b], [g], &|[p, v, a, b], [g]| rmsprop_kernel(p, v, a, b, g, h)),
        }
    }
}
