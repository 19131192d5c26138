//! ScheduleFreeAdamW's fused kernel (the rule: `optim/rules/schedule_free.rs`).

use super::{one_minus, states, Prep, StepCtx};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::parallel::for_each_split;

/// One step of ScheduleFreeAdamW on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ScheduleFreeAdamWStep {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub warmup_steps: u64,
    pub c: StepCtx,
}

#[derive(Clone, Copy)]
struct Scalars {
    lr: f32,
    b1: f32,
    /// 1 − β₁, 1 − β₂ (see [`one_minus`]).
    omb1: f32,
    omb2: f32,
    bc2: f32,
    eps: f32,
    weight: f32,
    prep: Prep,
}

simd_dispatch! {
    fn schedule_free_kernel(y: &mut [f32], z: &mut [f32], v: &mut [f32], g: &[f32], s: Scalars) {
        for i in 0..y.len() {
            let gi = s.prep.grad(g[i], y[i]);
            let yi = s.prep.decay(y[i]);
            v[i] += (gi * gi - v[i]) * s.omb2;
            let denom = (v[i] / s.bc2).sqrt() + s.eps;
            let z_old = z[i];
            z[i] = z_old - s.lr * gi / denom;
            let x_old = (yi - s.omb1 * z_old) / s.b1;
            let x_new = (1.0 - s.weight) * x_old + s.weight * z[i];
            y[i] = s.omb1 * z[i] + s.b1 * x_new;
        }
    }
}

impl OptimizerKernel for ScheduleFreeAdamWStep {
    const NAME: &'static str = "schedule_free";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
        let [z, v] = states(s);
        let t = c.t as f32;
        let warm = if self.warmup_steps > 0 { (t / self.warmup_steps as f32).min(1.0) } else { 1.0 };
        let sc = Scalars {
            lr: c.lr * warm,
            b1: self.beta_1,
            omb1: one_minus(self.beta_1),
            omb2: one_minus(self.beta_2),
            bc2: 1.0 - self.beta_2.powf(t),
            eps: self.epsilon,
            weight: 1.0 / t,
            prep: c.prep,
        };
        for_each_split([p, z, v], [g], &|[p, z, v], [g]| schedule_free_kernel(p, z, v, g, sc));
    }
}
