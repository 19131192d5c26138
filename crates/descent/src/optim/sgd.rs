//! Stochastic gradient descent with optional (Nesterov) momentum, in Keras's form:
//!
//!   m ← μ·m − η·g;   p ← p + m            (momentum)
//!   m ← μ·m − η·g;   p ← p + μ·m − η·g    (Nesterov)
//!   p ← p − η·g                           (μ = 0)
//!
//! With a constant learning rate this equals PyTorch's SGD (its buffer b = −m/η).
//! Full-batch gradient descent is this optimizer with batch_size = dataset size.

use serde::{Deserialize, Serialize};

use super::{check_positive, check_range, ensure_len, restore_buffers, Optimizer, OptimizerConfig};
use crate::error::Result;
use crate::tensor::kernels::parallel::for_each_split;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sgd {
    pub learning_rate: f32,
    pub momentum: f32,
    pub nesterov: bool,
    #[serde(skip)]
    velocity: Vec<f32>,
    #[serde(skip)]
    iterations: u64,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd { learning_rate: 0.01, momentum: 0.0, nesterov: false, velocity: Vec::new(), iterations: 0 }
    }
}

impl Sgd {
    pub fn new(learning_rate: f32) -> Self {
        Sgd { learning_rate, ..Default::default() }
    }
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }
    pub fn nesterov(mut self, nesterov: bool) -> Self {
        self.nesterov = nesterov;
        self
    }
    pub(crate) fn validate(&self) -> Result<()> {
        check_positive("sgd", "learning_rate", self.learning_rate)?;
        check_range("sgd", "momentum", self.momentum, 0.0, 1.0, false)
    }
}

simd_dispatch! {
    fn sgd_plain(p: &mut [f32], g: &[f32], lr: f32) {
        for (p, g) in p.iter_mut().zip(g) {
            *p -= lr * *g;
        }
    }
}

simd_dispatch! {
    fn sgd_momentum(p: &mut [f32], m: &mut [f32], g: &[f32], lr: f32, mu: f32, nesterov: bool) {
        for ((p, m), g) in p.iter_mut().zip(m.iter_mut()).zip(g) {
            *m = mu * *m - lr * *g;
            *p += if nesterov { mu * *m - lr * *g } else { *m };
        }
    }
}

impl Optimizer for Sgd {
    fn name(&self) -> &'static str {
        "sgd"
    }
    fn learning_rate(&self) -> f32 {
        self.learning_rate
    }
    fn set_learning_rate(&mut self, lr: f32) {
        self.learning_rate = lr;
    }
    fn iterations(&self) -> u64 {
        self.iterations
    }
    fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        let (lr, mu, nesterov) = (self.learning_rate, self.momentum, self.nesterov);
        if mu == 0.0 {
            for_each_split([params], [grads], &|[p], [g]| sgd_plain(p, g, lr));
        } else {
            ensure_len(&mut [&mut self.velocity], params.len());
            for_each_split([params, &mut self.velocity], [grads], &|[p, m], [g]| sgd_momentum(p, m, g, lr, mu, nesterov));
        }
        self.iterations += 1;
    }
    fn state(&self) -> Vec<(&'static str, &[f32])> {
        vec![("velocity", &self.velocity)]
    }
    fn load_state(&mut self, iterations: u64, buffers: &[(&str, Vec<f32>)]) -> Result<()> {
        restore_buffers("sgd", &mut [("velocity", &mut self.velocity)], buffers)?;
        self.iterations = iterations;
        Ok(())
    }
    fn config(&self) -> OptimizerConfig {
        OptimizerConfig::Sgd(Sgd { velocity: Vec::new(), iterations: 0, ..self.clone() })
    }
}
