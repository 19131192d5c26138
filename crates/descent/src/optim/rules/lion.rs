//! Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"), Keras's form:
//!
//!   p ← p − η·sign(β₁m + (1−β₁)g);   m ← β₂m + (1−β₂)g
//!
//! One state buffer and a sign: half Adam's memory traffic. Use a 3–10× smaller learning
//! rate than Adam's.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_unit, states, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::{Prep, RuleConfig};
use crate::tensor::kernels::parallel::for_each_split;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lion {
    pub beta_1: f32,
    pub beta_2: f32,
}

impl Default for Lion {
    fn default() -> Self {
        Lion { beta_1: 0.9, beta_2: 0.99 }
    }
}

optimizer_api!(Lion { beta_1: f32, beta_2: f32 });

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
    fn lion_kernel(p: &mut [f32], m: &mut [f32], g: &[f32], lr: f32, b1: f32, b2: f32, prep: Prep) {
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            p[i] = prep.decay(p[i]) - lr * sign(m[i] * b1 + gi * (1.0 - b1));
            m[i] = m[i] * b2 + gi * (1.0 - b2);
        }
    }
}

impl Rule for Lion {
    const NAME: &'static str = "lion";
    const DEFAULT_LR: f32 = 0.001;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("m", StateInit::Const(0.0))]
    }
    fn validate(&self) -> Result<()> {
        check_unit("lion", "beta_1", self.beta_1)?;
        check_unit("lion", "beta_2", self.beta_2)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let [m] = states(s);
        let (lr, b1, b2, prep) = (c.lr, self.beta_1, self.beta_2, c.prep);
        for_each_split([p, m], [g], &|[p, m], [g]| lion_kernel(p, m, g, lr, b1, b2, prep));
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Lion(self.clone())
    }
}
