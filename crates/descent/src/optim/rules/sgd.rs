//! Stochastic gradient descent with optional (Nesterov) momentum, in Keras's form:
//!
//!   m ← μ·m − η·(1−d)·g;   p ← p + m              (momentum; d = dampening)
//!   m ← μ·m − η·(1−d)·g;   p ← p + μ·m − η·g      (Nesterov)
//!   p ← p − η·g                                    (μ = 0)
//!
//! With a constant learning rate this equals PyTorch's SGD (its buffer b = −m/η); as in
//! PyTorch, dampening does not apply on the first step. Full-batch gradient descent is
//! this optimizer with batch_size = dataset size.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_unit, states, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::{Prep, RuleConfig};
use crate::tensor::kernels::parallel::for_each_split;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Sgd {
    pub momentum: f32,
    pub nesterov: bool,
    pub dampening: f32,
}

optimizer_api!(Sgd { momentum: f32, nesterov: bool, dampening: f32 });

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

impl Rule for Sgd {
    const NAME: &'static str = "sgd";
    const DEFAULT_LR: f32 = 0.01;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        if self.momentum > 0.0 { vec![("velocity", StateInit::Const(0.0))] } else { vec![] }
    }
    fn validate(&self) -> Result<()> {
        check_unit("sgd", "momentum", self.momentum)?;
        check_unit("sgd", "dampening", self.dampening)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
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
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Sgd(self.clone())
    }
}
