//! LARS (You et al. 2017, "Large Batch Training of Convolutional Networks"): momentum SGD
//! with a per-tensor trust ratio, in the form of its common implementations (timm):
//!
//!   r = τ·‖p‖ / (‖g‖ + λ‖p‖ + ε)   (1 when ‖p‖ or ‖g‖ is 0);   ĝ = r·(g + λp)
//!   m ← μ·m + ĝ;   p ← p − η·(Nesterov ? ĝ + μ·m : m)
//!
//! λ is the common `l2` option (coupled weight decay, part of the trust ratio as in the
//! paper); τ is `trust_coefficient`. Neither Keras nor PyTorch ships LARS: the reference
//! values in the tests come from a NumPy transcription of these formulas.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{ordered_sum, BLOCK, MAX_BLOCKS};
use crate::error::Result;
use crate::optim::rule::{check_positive, check_unit, states, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::{Prep, RuleConfig};
use crate::tensor::kernels::parallel::for_each_split;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lars {
    pub momentum: f32,
    pub nesterov: bool,
    pub trust_coefficient: f32,
    pub epsilon: f32,
}

impl Default for Lars {
    fn default() -> Self {
        Lars { momentum: 0.9, nesterov: false, trust_coefficient: 0.001, epsilon: 1e-8 }
    }
}

optimizer_api!(Lars { momentum: f32, nesterov: bool, trust_coefficient: f32, epsilon: f32 });

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

impl Rule for Lars {
    const NAME: &'static str = "lars";
    const ELEMENTWISE: bool = false;
    const DEFAULT_LR: f32 = 0.1;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("momentum", StateInit::Const(0.0))]
    }
    fn validate(&self) -> Result<()> {
        check_unit("lars", "momentum", self.momentum)?;
        check_positive("lars", "trust_coefficient", self.trust_coefficient)?;
        check_positive("lars", "epsilon", self.epsilon)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
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
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Lars(self.clone())
    }
}
