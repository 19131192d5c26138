//! Nadam's fused kernel (the rule: `optim/rules/nadam.rs`).

use super::{one_minus, states, Prep, StepCtx};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::parallel::for_each_split;

/// One step of Nadam on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NadamStep {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub u_product: f32,
    pub c: StepCtx,
}

#[derive(Clone, Copy)]
struct Scalars {
    /// 1 − β₁, 1 − β₂ (see [`one_minus`]).
    omb1: f32,
    omb2: f32,
    c_m: f32,
    c_g: f32,
    bc2: f32,
    lr: f32,
    eps: f32,
    prep: Prep,
}

simd_dispatch! {
    fn nadam_kernel(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], s: Scalars) {
        for i in 0..p.len() {
            let gi = s.prep.grad(g[i], p[i]);
            m[i] += (gi - m[i]) * s.omb1;
            v[i] += (gi * gi - v[i]) * s.omb2;
            let m_hat = s.c_m * m[i] + s.c_g * gi;
            let v_hat = v[i] / s.bc2;
            p[i] = s.prep.decay(p[i]) - m_hat * s.lr / (v_hat.sqrt() + s.eps);
        }
    }
}

/// μ_t in f32, as Keras computes it.
pub(crate) fn mu(b1: f32, t: u64) -> f32 {
    b1 * (1.0 - 0.5 * 0.96f32.powf(t as f32))
}

impl OptimizerKernel for NadamStep {
    const NAME: &'static str = "nadam";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
        let [m, v] = states(s);
        let (u_t, u_next) = (mu(self.beta_1, c.t), mu(self.beta_1, c.t + 1));
        let sc = Scalars {
            omb1: one_minus(self.beta_1),
            omb2: one_minus(self.beta_2),
            c_m: u_next / (1.0 - self.u_product * u_next),
            c_g: (1.0 - u_t) / (1.0 - self.u_product),
            bc2: 1.0 - self.beta_2.powf(c.t as f32),
            lr: c.lr,
            eps: self.epsilon,
            prep: c.prep,
        };
        for_each_split([p, m, v], [g], &|[p, m, v], [g]| nadam_kernel(p, m, v, g, sc));
    }
}
