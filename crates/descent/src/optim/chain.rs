//! optax-style composable gradient transformations, for building your own optimizer:
//!
//! ```
//! use descent::optim::chain::{self, Chain};
//! // AdamW by hand: Adam's direction, plus decoupled decay, times −η.
//! let adamw = Chain::new(vec![
//!     chain::clip_by_global_norm(1.0),
//!     chain::scale_by_adam(0.9, 0.999, 1e-7),
//!     chain::add_decayed_weights(0.01),
//!     chain::scale_by_learning_rate(1e-3.into()),
//! ]);
//! ```
//!
//! Each transform turns `updates` (the gradients on entry) into new updates; the chain
//! then adds them to the parameters. The named optimizers are the same math fused into
//! one kernel each (the tests check that they agree); a chain costs one pass per
//! transform, so prefer the named ones where they fit.

use std::ops::{Deref, DerefMut};

use super::schedule::LearningRate;
use super::{Optimizer, OptimizerConfig, OptimizerState};
use crate::autograd::{ParamEntry, ParamStore};
use crate::error::{Error, Result};
use crate::tensor::kernels::optim::one_minus;
use crate::tensor::kernels::reduce::sum_squares;

/// One gradient transformation with its own state.
pub trait Transform: Send {
    fn name(&self) -> &'static str;
    /// Transforms `updates` in place for step `t` (1-based). `params` are read-only.
    fn apply(&mut self, updates: &mut [f32], params: &[f32], entries: &[ParamEntry], t: u64);
    /// State buffers, for checkpoints.
    fn state(&self) -> Vec<(&'static str, &[f32])> {
        Vec::new()
    }
    fn load_state(&mut self, _buffers: &[(String, Vec<f32>)]) -> Result<()> {
        Ok(())
    }
}

/// Scales all updates so their global L2 norm is at most `max_norm`.
pub fn clip_by_global_norm(max_norm: f32) -> Box<dyn Transform> {
    struct T(f32);
    impl Transform for T {
        fn name(&self) -> &'static str {
            "clip_by_global_norm"
        }
        fn apply(&mut self, u: &mut [f32], _: &[f32], _: &[ParamEntry], _: u64) {
            let norm = sum_squares(u).sqrt();
            let scale = self.0 * (1.0 / norm).min(1.0 / self.0);
            u.iter_mut().for_each(|v| *v *= scale);
        }
    }
    Box::new(T(max_norm))
}

/// Clips each update element to [−v, v].
pub fn clip(value: f32) -> Box<dyn Transform> {
    struct T(f32);
    impl Transform for T {
        fn name(&self) -> &'static str {
            "clip"
        }
        fn apply(&mut self, u: &mut [f32], _: &[f32], _: &[ParamEntry], _: u64) {
            u.iter_mut().for_each(|v| *v = v.clamp(-self.0, self.0));
        }
    }
    Box::new(T(value))
}

/// Adam's direction in Keras's form: √(1−β₂ᵗ)/(1−β₁ᵗ) · m/(√v + ε).
pub fn scale_by_adam(beta_1: f32, beta_2: f32, epsilon: f32) -> Box<dyn Transform> {
    struct T {
        b1: f32,
        b2: f32,
        eps: f32,
        m: Vec<f32>,
        v: Vec<f32>,
    }
    impl Transform for T {
        fn name(&self) -> &'static str {
            "scale_by_adam"
        }
        fn apply(&mut self, u: &mut [f32], _: &[f32], _: &[ParamEntry], t: u64) {
            if self.m.len() != u.len() {
                self.m = vec![0.0; u.len()];
                self.v = vec![0.0; u.len()];
            }
            let alpha = super::rules::adam_alpha_for_chain(1.0, self.b1, self.b2, t);
            // 1 − β from the configured decimals, rounded once (as the fused rules).
            let (omb1, omb2) = (one_minus(self.b1), one_minus(self.b2));
            for ((u, m), v) in u.iter_mut().zip(&mut self.m).zip(&mut self.v) {
                *m += (*u - *m) * omb1;
                *v += (*u * *u - *v) * omb2;
                *u = *m * alpha / (v.sqrt() + self.eps);
            }
        }
        fn state(&self) -> Vec<(&'static str, &[f32])> {
            vec![("m", &self.m), ("v", &self.v)]
        }
        fn load_state(&mut self, b: &[(String, Vec<f32>)]) -> Result<()> {
            self.m = find(b, "m")?;
            self.v = find(b, "v")?;
            Ok(())
        }
    }
    Box::new(T { b1: beta_1, b2: beta_2, eps: epsilon, m: Vec::new(), v: Vec::new() })
}

/// RMSprop's scaling (Keras form, ε inside the root): g/√(v + ε), v ← ρv + (1−ρ)g².
pub fn scale_by_rms(rho: f32, epsilon: f32) -> Box<dyn Transform> {
    struct T {
        rho: f32,
        eps: f32,
        v: Vec<f32>,
    }
    impl Transform for T {
        fn name(&self) -> &'static str {
            "scale_by_rms"
        }
        fn apply(&mut self, u: &mut [f32], _: &[f32], _: &[ParamEntry], _: u64) {
            if self.v.len() != u.len() {
                self.v = vec![0.0; u.len()];
            }
            let omr = one_minus(self.rho);
            for (u, v) in u.iter_mut().zip(&mut self.v) {
                *v = self.rho * *v + omr * *u * *u;
                *u /= (*v + self.eps).sqrt();
            }
        }
        fn state(&self) -> Vec<(&'static str, &[f32])> {
            vec![("v", &self.v)]
        }
        fn load_state(&mut self, b: &[(String, Vec<f32>)]) -> Result<()> {
            self.v = find(b, "v")?;
            Ok(())
        }
    }
    Box::new(T { rho, eps: epsilon, v: Vec::new() })
}

/// Momentum: t ← μt + u; the update becomes t (or u + μt with Nesterov).
pub fn trace(momentum: f32, nesterov: bool) -> Box<dyn Transform> {
    struct T {
        mu: f32,
        nesterov: bool,
        t: Vec<f32>,
    }
    impl Transform for T {
        fn name(&self) -> &'static str {
            "trace"
        }
        fn apply(&mut self, u: &mut [f32], _: &[f32], _: &[ParamEntry], _: u64) {
            if self.t.len() != u.len() {
                self.t = vec![0.0; u.len()];
            }
            for (u, t) in u.iter_mut().zip(&mut self.t) {
                *t = self.mu * *t + *u;
                *u = if self.nesterov { *u + self.mu * *t } else { *t };
            }
        }
        fn state(&self) -> Vec<(&'static str, &[f32])> {
            vec![("trace", &self.t)]
        }
        fn load_state(&mut self, b: &[(String, Vec<f32>)]) -> Result<()> {
            self.t = find(b, "trace")?;
            Ok(())
        }
    }
    Box::new(T { mu: momentum, nesterov, t: Vec::new() })
}

/// Adds `weight_decay·p` to the updates of tensors of rank ≥ 2 (decoupled decay once
/// scaled by −η).
pub fn add_decayed_weights(weight_decay: f32) -> Box<dyn Transform> {
    struct T(f32);
    impl Transform for T {
        fn name(&self) -> &'static str {
            "add_decayed_weights"
        }
        fn apply(&mut self, u: &mut [f32], p: &[f32], entries: &[ParamEntry], _: u64) {
            for e in entries.iter().filter(|e| e.shape.rank() >= 2) {
                for (u, p) in u[e.range()].iter_mut().zip(&p[e.range()]) {
                    *u += self.0 * *p;
                }
            }
        }
    }
    Box::new(T(weight_decay))
}

/// Multiplies by `factor`.
pub fn scale(factor: f32) -> Box<dyn Transform> {
    struct T(f32);
    impl Transform for T {
        fn name(&self) -> &'static str {
            "scale"
        }
        fn apply(&mut self, u: &mut [f32], _: &[f32], _: &[ParamEntry], _: u64) {
            u.iter_mut().for_each(|v| *v *= self.0);
        }
    }
    Box::new(T(factor))
}

/// Multiplies by −η(step): the last link of most chains.
pub fn scale_by_learning_rate(lr: LearningRate) -> Box<dyn Transform> {
    struct T(LearningRate);
    impl Transform for T {
        fn name(&self) -> &'static str {
            "scale_by_learning_rate"
        }
        fn apply(&mut self, u: &mut [f32], _: &[f32], _: &[ParamEntry], t: u64) {
            let f = -self.0.at(t - 1);
            u.iter_mut().for_each(|v| *v *= f);
        }
    }
    Box::new(T(lr))
}

fn find(b: &[(String, Vec<f32>)], name: &str) -> Result<Vec<f32>> {
    b.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).ok_or_else(|| Error::State(format!("chain state has no `{name}`")))
}

/// Transforms applied in order, then added to the parameters.
pub struct Chain {
    transforms: Vec<Box<dyn Transform>>,
    updates: Vec<f32>,
    iterations: u64,
}

impl Chain {
    pub fn new(transforms: Vec<Box<dyn Transform>>) -> Self {
        Chain { transforms, updates: Vec::new(), iterations: 0 }
    }
}

impl Optimizer for Chain {
    fn name(&self) -> &'static str {
        "chain"
    }
    fn learning_rate(&self) -> f32 {
        f32::NAN
    }
    fn set_learning_rate(&mut self, _lr: f32) {}
    fn iterations(&self) -> u64 {
        self.iterations
    }
    fn step(&mut self, store: &mut ParamStore) {
        // Transforms are host code (any closure a user writes): they see host views,
        // which are plain borrows on the CPU backend.
        let (mut values, grads, entries) = store.host_parts_mut();
        let (values, grads) = (values.deref_mut(), Deref::deref(&grads));
        self.updates.clear();
        self.updates.extend_from_slice(grads);
        for e in entries.iter().filter(|e| !e.trainable) {
            self.updates[e.range()].fill(0.0);
        }
        let t = self.iterations + 1;
        for tr in &mut self.transforms {
            tr.apply(&mut self.updates, values, entries, t);
        }
        values.iter_mut().zip(&self.updates).for_each(|(p, u)| *p += u);
        self.iterations = t;
    }
    fn save_state(&self) -> OptimizerState {
        let mut buffers = Vec::new();
        for (i, tr) in self.transforms.iter().enumerate() {
            for (n, b) in tr.state() {
                buffers.push((format!("{i}.{}.{n}", tr.name()), b.to_vec()));
            }
        }
        OptimizerState { optimizer: "chain".into(), iterations: self.iterations, scalars: Vec::new(), buffers }
    }
    fn load_state(&mut self, state: &OptimizerState, _params: &ParamStore) -> Result<()> {
        for (i, tr) in self.transforms.iter_mut().enumerate() {
            let prefix = format!("{i}.{}.", tr.name());
            let mine: Vec<(String, Vec<f32>)> = state
                .buffers
                .iter()
                .filter_map(|(n, b)| n.strip_prefix(&prefix).map(|k| (k.to_string(), b.clone())))
                .collect();
            tr.load_state(&mine)?;
        }
        self.iterations = state.iterations;
        Ok(())
    }
    fn config(&self) -> OptimizerConfig {
        // A custom chain has no config form; report the closest named one for logs.
        OptimizerConfig::named("sgd").expect("sgd exists")
    }
}
