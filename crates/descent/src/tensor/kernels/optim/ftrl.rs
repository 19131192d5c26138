//! Ftrl's fused kernel (the rule: `optim/rules/ftrl.rs`).

use super::{states, Prep, StepCtx};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::parallel::for_each_split;

/// One step of Ftrl on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FtrlStep {
    pub learning_rate_power: f32,
    pub initial_accumulator_value: f32,
    pub l1_regularization_strength: f32,
    pub l2_regularization_strength: f32,
    pub l2_shrinkage_regularization_strength: f32,
    pub beta: f32,
    pub c: StepCtx,
}

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

impl OptimizerKernel for FtrlStep {
    const NAME: &'static str = "ftrl";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
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
}
