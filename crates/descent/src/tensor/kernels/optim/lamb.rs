//! Lamb's fused kernel (the rule: `optim/rules/lamb.rs`).

use rayon::prelude::*;

use super::{configured, one_minus, ordered_sum, states, Prep, StepCtx, BLOCK, MAX_BLOCKS};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::parallel::for_each_split;

/// One step of Lamb on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LambStep {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub c: StepCtx,
}

#[derive(Clone, Copy)]
struct Scalars {
    /// 1 − β₁, 1 − β₂ (see [`one_minus`]).
    omb1: f32,
    omb2: f32,
    bc1: f32,
    bc2: f32,
    eps: f32,
    prep: Prep,
}

#[inline(always)]
fn direction(m: f32, v: f32, s: &Scalars) -> f32 {
    (m / s.bc1) / ((v / s.bc2).sqrt() + s.eps)
}

#[inline(always)]
fn moments_one(p: &mut f32, m: &mut f32, v: &mut f32, g: f32, s: &Scalars) -> (f32, f32) {
    let gi = s.prep.grad(g, *p);
    let pi = s.prep.decay(*p);
    *p = pi;
    *m += (gi - *m) * s.omb1;
    *v += (gi * gi - *v) * s.omb2;
    let u = direction(*m, *v, s);
    (pi * pi, u * u)
}

simd_dispatch! {
    /// Decays p, updates m and v; returns [Σp², Σu²] summed in 16 fixed lanes.
    fn lamb_moments(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], s: Scalars) -> [f32; 2] {
        let mut acc_p = [0.0f32; 16];
        let mut acc_u = [0.0f32; 16];
        let n = p.len() / 16 * 16;
        for (((p, m), v), g) in p[..n].chunks_exact_mut(16).zip(m[..n].chunks_exact_mut(16)).zip(v[..n].chunks_exact_mut(16)).zip(g[..n].chunks_exact(16)) {
            for l in 0..16 {
                let (pp, uu) = moments_one(&mut p[l], &mut m[l], &mut v[l], g[l], &s);
                acc_p[l] += pp;
                acc_u[l] += uu;
            }
        }
        for i in n..p.len() {
            let (pp, uu) = moments_one(&mut p[i], &mut m[i], &mut v[i], g[i], &s);
            acc_p[i - n] += pp;
            acc_u[i - n] += uu;
        }
        [acc_p.iter().sum(), acc_u.iter().sum()]
    }
}

simd_dispatch! {
    fn lamb_apply(p: &mut [f32], m: &[f32], v: &[f32], step: f32, s: Scalars) {
        for i in 0..p.len() {
            p[i] -= step * direction(m[i], v[i], &s);
        }
    }
}

impl OptimizerKernel for LambStep {
    const NAME: &'static str = "lamb";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
        let [m, v] = states(s);
        let t = c.t as f32;
        let sc = Scalars {
            omb1: one_minus(self.beta_1),
            omb2: one_minus(self.beta_2),
            bc1: (1.0 - configured(self.beta_1).powf(t as f64)) as f32,
            bc2: (1.0 - configured(self.beta_2).powf(t as f64)) as f32,
            eps: self.epsilon,
            prep: c.prep,
        };
        let blocks = p.len().div_ceil(BLOCK);
        let [pp, uu] = if blocks > 1 && blocks <= MAX_BLOCKS && rayon::current_num_threads() > 1 {
            let mut partials = [[0.0f32; 2]; MAX_BLOCKS];
            p.par_chunks_mut(BLOCK)
                .zip(m.par_chunks_mut(BLOCK))
                .zip(v.par_chunks_mut(BLOCK))
                .zip(g.par_chunks(BLOCK))
                .zip(partials[..blocks].par_iter_mut())
                .for_each(|((((p, m), v), g), out)| *out = lamb_moments(p, m, v, g, sc));
            ordered_sum(&partials[..blocks])
        } else {
            // The same blocks, summed in the same order: identical to the parallel path.
            let mut total = [0.0f64; 2];
            for (((p, m), v), g) in p.chunks_mut(BLOCK).zip(m.chunks_mut(BLOCK)).zip(v.chunks_mut(BLOCK)).zip(g.chunks(BLOCK)) {
                let part = lamb_moments(p, m, v, g, sc);
                total[0] += part[0] as f64;
                total[1] += part[1] as f64;
            }
            total
        };
        let (w_norm, u_norm) = (pp.sqrt(), uu.sqrt());
        let ratio = if w_norm > 0.0 && u_norm > 0.0 { (w_norm / u_norm) as f32 } else { 1.0 };
        let step = ratio * c.lr;
        for_each_split([p], [m, v], &|[p], [m, v]| lamb_apply(p, m, v, step, sc));
    }
}
