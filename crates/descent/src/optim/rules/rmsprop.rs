//! RMSprop in Keras's form (ε inside the square root, as Keras and TensorFlow define it):
//!
//!   v ← ρ·v + (1−ρ)·g²
//!   centered:  ḡ ← ρ·ḡ + (1−ρ)·g;  d = v − ḡ² + ε      else d = v + ε
//!   Δ = η·g / √d
//!   momentum:  b ← μ·b + Δ;  p ← p − b                   else p ← p − Δ
//!
//! PyTorch adds ε outside the root (√v + ε); the two differ only when v is tiny.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_positive, check_unit, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::{Prep, RuleConfig};
use crate::tensor::kernels::parallel::for_each_split;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RmsProp {
    pub rho: f32,
    pub momentum: f32,
    pub epsilon: f32,
    pub centered: bool,
}

impl Default for RmsProp {
    fn default() -> Self {
        RmsProp { rho: 0.9, momentum: 0.0, epsilon: 1e-7, centered: false }
    }
}

optimizer_api!(RmsProp { rho: f32, momentum: f32, epsilon: f32, centered: bool });

#[derive(Clone, Copy)]
struct Hyper {
    lr: f32,
    rho: f32,
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
            v[i] = h.rho * v[i] + (1.0 - h.rho) * gi * gi;
            let d = if h.centered {
                a[i] = h.rho * a[i] + (1.0 - h.rho) * gi;
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

impl Rule for RmsProp {
    const NAME: &'static str = "rmsprop";
    const DEFAULT_LR: f32 = 0.001;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        let mut s = vec![("velocity", StateInit::Const(0.0))];
        if self.centered {
            s.push(("average_grad", StateInit::Const(0.0)));
        }
        if self.momentum > 0.0 {
            s.push(("momentum", StateInit::Const(0.0)));
        }
        s
    }
    fn validate(&self) -> Result<()> {
        check_unit("rmsprop", "rho", self.rho)?;
        check_unit("rmsprop", "momentum", self.momentum)?;
        check_positive("rmsprop", "epsilon", self.epsilon)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let h = Hyper {
            lr: c.lr,
            rho: self.rho,
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
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Rmsprop(self.clone())
    }
}
