//! RMSprop in Keras's form (ε inside the square root, as Keras and TensorFlow define it):
//!
//!   v ← ρ·v + (1−ρ)·g²
//!   centered:  ḡ ← ρ·ḡ + (1−ρ)·g;  d = v − ḡ² + ε      else d = v + ε
//!   Δ = η·g / √d
//!   momentum:  b ← μ·b + Δ;  p ← p − b                   else p ← p − Δ
//!
//! (PyTorch adds ε outside the root: √v + ε. The two differ only when v is tiny.)

use serde::{Deserialize, Serialize};

use super::{check_positive, check_range, ensure_len, restore_buffers, Optimizer, OptimizerConfig};
use crate::error::Result;
use crate::tensor::kernels::parallel::for_each_split;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RmsProp {
    pub learning_rate: f32,
    pub rho: f32,
    pub momentum: f32,
    pub epsilon: f32,
    pub centered: bool,
    #[serde(skip)]
    velocity: Vec<f32>,
    #[serde(skip)]
    average_grad: Vec<f32>,
    #[serde(skip)]
    momentum_buf: Vec<f32>,
    #[serde(skip)]
    iterations: u64,
}

impl Default for RmsProp {
    fn default() -> Self {
        RmsProp {
            learning_rate: 0.001,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
            velocity: Vec::new(),
            average_grad: Vec::new(),
            momentum_buf: Vec::new(),
            iterations: 0,
        }
    }
}

impl RmsProp {
    pub fn new(learning_rate: f32) -> Self {
        RmsProp { learning_rate, ..Default::default() }
    }
    pub fn rho(mut self, rho: f32) -> Self {
        self.rho = rho;
        self
    }
    pub fn momentum(mut self, momentum: f32) -> Self {
        self.momentum = momentum;
        self
    }
    pub fn epsilon(mut self, epsilon: f32) -> Self {
        self.epsilon = epsilon;
        self
    }
    pub fn centered(mut self, centered: bool) -> Self {
        self.centered = centered;
        self
    }
    pub(crate) fn validate(&self) -> Result<()> {
        check_positive("rmsprop", "learning_rate", self.learning_rate)?;
        check_range("rmsprop", "rho", self.rho, 0.0, 1.0, false)?;
        check_range("rmsprop", "momentum", self.momentum, 0.0, 1.0, false)?;
        check_positive("rmsprop", "epsilon", self.epsilon)
    }
}

#[derive(Clone, Copy)]
struct Hyper {
    lr: f32,
    rho: f32,
    mu: f32,
    eps: f32,
}

simd_dispatch! {
    /// Every variant in one loop; `centered` and momentum are loop-invariant branches the
    /// compiler hoists. Unused buffers are passed empty-length views of the right size.
    fn rmsprop_kernel(p: &mut [f32], v: &mut [f32], a: &mut [f32], b: &mut [f32], g: &[f32], h: Hyper, centered: bool, use_momentum: bool) {
        for i in 0..p.len() {
            let gi = g[i];
            v[i] = h.rho * v[i] + (1.0 - h.rho) * gi * gi;
            let d = if centered {
                a[i] = h.rho * a[i] + (1.0 - h.rho) * gi;
                v[i] - a[i] * a[i] + h.eps
            } else {
                v[i] + h.eps
            };
            let inc = h.lr * gi / d.sqrt();
            if use_momentum {
                b[i] = h.mu * b[i] + inc;
                p[i] -= b[i];
            } else {
                p[i] -= inc;
            }
        }
    }
}

impl Optimizer for RmsProp {
    fn name(&self) -> &'static str {
        "rmsprop"
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
        // Buffers a variant does not use are allocated anyway (same length) so one kernel
        // serves all four variants; the memory cost is only paid by centered/momentum users
        // … and by the others, once, which keeps state layout uniform for checkpoints.
        ensure_len(&mut [&mut self.velocity, &mut self.average_grad, &mut self.momentum_buf], params.len());
        let h = Hyper { lr: self.learning_rate, rho: self.rho, mu: self.momentum, eps: self.epsilon };
        let (centered, use_momentum) = (self.centered, self.momentum > 0.0);
        for_each_split(
            [params, &mut self.velocity, &mut self.average_grad, &mut self.momentum_buf],
            [grads],
            &|[p, v, a, b], [g]| rmsprop_kernel(p, v, a, b, g, h, centered, use_momentum),
        );
        self.iterations += 1;
    }
    fn state(&self) -> Vec<(&'static str, &[f32])> {
        vec![("velocity", &self.velocity), ("average_grad", &self.average_grad), ("momentum", &self.momentum_buf)]
    }
    fn load_state(&mut self, iterations: u64, buffers: &[(&str, Vec<f32>)]) -> Result<()> {
        restore_buffers(
            "rmsprop",
            &mut [
                ("velocity", &mut self.velocity),
                ("average_grad", &mut self.average_grad),
                ("momentum", &mut self.momentum_buf),
            ],
            buffers,
        )?;
        self.iterations = iterations;
        Ok(())
    }
    fn config(&self) -> OptimizerConfig {
        OptimizerConfig::Rmsprop(RmsProp::default().with_hyper(self))
    }
}

impl RmsProp {
    fn with_hyper(mut self, o: &RmsProp) -> Self {
        self.learning_rate = o.learning_rate;
        self.rho = o.rho;
        self.momentum = o.momentum;
        self.epsilon = o.epsilon;
        self.centered = o.centered;
        self
    }
}
