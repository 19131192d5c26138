//! Lars's fused kernel (the rule: `optim/rules/lars.rs`).

use rayon::prelude::*;

use super::{ordered_sum, states, Prep, StepCtx, BLOCK, MAX_BLOCKS};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::parallel::for_each_split;

/// One step of Lars on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LarsStep {
    pub momentum: f32,
    pub nesterov: bool,
    pub trust_coefficient: f32,
    pub epsilon: f32,
    pub c: StepCtx,
}

simd_dispatch! {
    /// [Σp², Σg²] of the (clipped, not yet decayed) gradient, in 16 fixed lanes.
    fn lars_norms(p: &[f32], g: &[f32], prep: Prep) -> [f32; 2] {
        let raw = Prep { l2: 0.0, ..prep };
        let mut acc_p = [0.0f32; 16];
        let mut acc_g = [0.0f32; 16];
        let n = p.len() / 16 * 16;
        for (p, g) in p[..n].chunks_exact(16).zip(g[..n].chunks_exact(16)) {
            for l in 0..16 {
                let gi = raw.grad(g[l], p[l]);
                acc_p[l] += p[l] * p[l];
                acc_g[l] += gi * gi;
            }
        }
        for i in n..p.len() {
            let gi = raw.grad(g[i], p[i]);
            acc_p[i - n] += p[i] * p[i];
            acc_g[i - n] += gi * gi;
        }
        [acc_p.iter().sum(), acc_g.iter().sum()]
    }
}

simd_dispatch! {
    fn lars_apply(p: &mut [f32], m: &mut [f32], g: &[f32], lr: f32, trust: f32, mu: f32, nesterov: bool, prep: Prep) {
        for i in 0..p.len() {
            let gs = trust * prep.grad(g[i], p[i]);
            m[i] = mu * m[i] + gs;
            let upd = if nesterov { gs + mu * m[i] } else { m[i] };
            p[i] = prep.decay(p[i]) - lr * upd;
        }
    }
}

impl OptimizerKernel for LarsStep {
    const NAME: &'static str = "lars";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
        let [m] = states(s);
        let prep = c.prep;
        let blocks = p.len().div_ceil(BLOCK);
        let [pp, gg] = if blocks > 1 && blocks <= MAX_BLOCKS && rayon::current_num_threads() > 1 {
            let mut partials = [[0.0f32; 2]; MAX_BLOCKS];
            p.par_chunks(BLOCK)
                .zip(g.par_chunks(BLOCK))
                .zip(partials[..blocks].par_iter_mut())
                .for_each(|((p, g), out)| *out = lars_norms(p, g, prep));
            ordered_sum(&partials[..blocks])
        } else {
            let mut total = [0.0f64; 2];
            for (p, g) in p.chunks(BLOCK).zip(g.chunks(BLOCK)) {
                let part = lars_norms(p, g, prep);
                total[0] += part[0] as f64;
                total[1] += part[1] as f64;
            }
            total
        };
        let (w, gn) = (pp.sqrt(), gg.sqrt());
        let trust = if w > 0.0 && gn > 0.0 {
            (self.trust_coefficient as f64 * w / (gn + prep.l2 as f64 * w + self.epsilon as f64)) as f32
        } else {
            1.0
        };
        let (lr, mu, nesterov) = (c.lr, self.momentum, self.nesterov);
        for_each_split([p, m], [g], &|[p, m], [g]| lars_apply(p, m, g, lr, trust, mu, nesterov, prep));
    }
}
