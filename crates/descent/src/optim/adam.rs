//! Adam (Kingma & Ba 2015) in Keras's form, with optional AMSGrad:
//!
//!   m ← m + (1−β₁)(g − m);   v ← v + (1−β₂)(g² − v)
//!   AMSGrad: v̂ ← max(v̂, v), used in place of v
//!   α_t = η·√(1−β₂ᵗ)/(1−β₁ᵗ);   p ← p − α_t·m / (√v + ε)
//!
//! Keras folds the bias corrections into the step size, so ε is not bias-corrected;
//! PyTorch divides by √v/√(1−β₂ᵗ) + ε instead. Identical for ε → 0.

use serde::{Deserialize, Serialize};

use super::{check_positive, check_range, ensure_len, restore_buffers, Optimizer, OptimizerConfig};
use crate::error::Result;
use crate::tensor::kernels::parallel::for_each_split;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Adam {
    pub learning_rate: f32,
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub amsgrad: bool,
    #[serde(skip)]
    m: Vec<f32>,
    #[serde(skip)]
    v: Vec<f32>,
    #[serde(skip)]
    v_hat: Vec<f32>,
    #[serde(skip)]
    iterations: u64,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            learning_rate: 0.001,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
            m: Vec::new(),
            v: Vec::new(),
            v_hat: Vec::new(),
            iterations: 0,
        }
    }
}

impl Adam {
    pub fn new(learning_rate: f32) -> Self {
        Adam { learning_rate, ..Default::default() }
    }
    pub fn betas(mut self, beta_1: f32, beta_2: f32) -> Self {
        self.beta_1 = beta_1;
        self.beta_2 = beta_2;
        self
    }
    pub fn epsilon(mut self, epsilon: f32) -> Self {
        self.epsilon = epsilon;
        self
    }
    pub fn amsgrad(mut self, amsgrad: bool) -> Self {
        self.amsgrad = amsgrad;
        self
    }
    pub(crate) fn validate(&self) -> Result<()> {
        check_positive("adam", "learning_rate", self.learning_rate)?;
        check_range("adam", "beta_1", self.beta_1, 0.0, 1.0, false)?;
        check_range("adam", "beta_2", self.beta_2, 0.0, 1.0, false)?;
        check_positive("adam", "epsilon", self.epsilon)
    }
}

simd_dispatch! {
    fn adam_kernel(p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], alpha: f32, b1: f32, b2: f32, eps: f32) {
        for i in 0..p.len() {
            let gi = g[i];
            m[i] += (gi - m[i]) * (1.0 - b1);
            v[i] += (gi * gi - v[i]) * (1.0 - b2);
            p[i] -= m[i] * alpha / (v[i].sqrt() + eps);
        }
    }
}

simd_dispatch! {
    fn amsgrad_kernel(p: &mut [f32], m: &mut [f32], v: &mut [f32], vh: &mut [f32], g: &[f32], alpha: f32, b1: f32, b2: f32, eps: f32) {
        for i in 0..p.len() {
            let gi = g[i];
            m[i] += (gi - m[i]) * (1.0 - b1);
            v[i] += (gi * gi - v[i]) * (1.0 - b2);
            vh[i] = vh[i].max(v[i]);
            p[i] -= m[i] * alpha / (vh[i].sqrt() + eps);
        }
    }
}

impl Optimizer for Adam {
    fn name(&self) -> &'static str {
        "adam"
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
        self.iterations += 1;
        let t = self.iterations as f64;
        let (b1, b2, eps) = (self.beta_1, self.beta_2, self.epsilon);
        // Bias corrections in f64: β₂ᵗ stays accurate over millions of steps.
        let alpha = (self.learning_rate as f64 * (1.0 - (b2 as f64).powf(t)).sqrt() / (1.0 - (b1 as f64).powf(t))) as f32;
        if self.amsgrad {
            ensure_len(&mut [&mut self.m, &mut self.v, &mut self.v_hat], params.len());
            for_each_split([params, &mut self.m, &mut self.v, &mut self.v_hat], [grads], &|[p, m, v, vh], [g]| {
                amsgrad_kernel(p, m, v, vh, g, alpha, b1, b2, eps)
            });
        } else {
            ensure_len(&mut [&mut self.m, &mut self.v], params.len());
            for_each_split([params, &mut self.m, &mut self.v], [grads], &|[p, m, v], [g]| {
                adam_kernel(p, m, v, g, alpha, b1, b2, eps)
            });
        }
    }
    fn state(&self) -> Vec<(&'static str, &[f32])> {
        let mut s = vec![("m", &self.m[..]), ("v", &self.v[..])];
        if self.amsgrad {
            s.push(("v_hat", &self.v_hat));
        }
        s
    }
    fn load_state(&mut self, iterations: u64, buffers: &[(&str, Vec<f32>)]) -> Result<()> {
        restore_buffers("adam", &mut [("m", &mut self.m), ("v", &mut self.v)], buffers)?;
        if self.amsgrad {
            restore_buffers("adam", &mut [("v_hat", &mut self.v_hat)], buffers)?;
        }
        self.iterations = iterations;
        Ok(())
    }
    fn config(&self) -> OptimizerConfig {
        OptimizerConfig::Adam(Adam {
            m: Vec::new(),
            v: Vec::new(),
            v_hat: Vec::new(),
            iterations: 0,
            ..self.clone()
        })
    }
}
