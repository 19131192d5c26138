//! Adafactor (Shazeer & Stern 2018), Keras's form: second moments of a matrix kept as
//! row and column averages (memory O(rows + cols) instead of O(rows·cols)).
//!
//!   ρ_t = min(η, 1/√t);   α_t = max(ε₂, RMS(p))·ρ_t;   β̂₂ = 1 − t^decay;   G = g² + ε₁
//!   matrix:  r ← β̂₂r + (1−β̂₂)·mean_cols(G);   c ← β̂₂c + (1−β̂₂)·mean_rows(G);
//!            v_ij = r_i / mean(r) · c_j
//!   vector:  v ← β̂₂v + (1−β̂₂)·G
//!   u = g/√v;   û = u / max(1, RMS(u)/d);   p ← p − α_t·û
//!
//! Tensors of rank > 2 are factored as [product of leading axes, last axis].

use serde::{Deserialize, Serialize};


use crate::error::Result;
use crate::optim::rule::{check_positive, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::Error;
use crate::tensor::kernels::optim::adafactor::AdafactorStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Adafactor {
    pub beta_2_decay: f32,
    pub epsilon_1: f32,
    pub epsilon_2: f32,
    pub clip_threshold: f32,
    /// Kept for Keras compatibility; ρ_t = min(η, 1/√t) applies either way.
    pub relative_step: bool,
}

impl Default for Adafactor {
    fn default() -> Self {
        Adafactor { beta_2_decay: -0.8, epsilon_1: 1e-30, epsilon_2: 1e-3, clip_threshold: 1.0, relative_step: true }
    }
}

optimizer_api!(Adafactor { beta_2_decay: f32, epsilon_1: f32, epsilon_2: f32, clip_threshold: f32, relative_step: bool });

impl Rule for Adafactor {
    const NAME: &'static str = "adafactor";
    const ELEMENTWISE: bool = false;
    const DEFAULT_LR: f32 = 0.001;
    /// `rv` holds r (first `rows` values) for matrices or v for vectors; `c` holds c.
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("rv", StateInit::Const(0.0)), ("c", StateInit::Const(0.0))]
    }
    fn validate(&self) -> Result<()> {
        if self.beta_2_decay >= 0.0 {
            return Err(Error::Config(format!("adafactor: beta_2_decay must be < 0, got {}", self.beta_2_decay)));
        }
        check_positive("adafactor", "epsilon_1", self.epsilon_1)?;
        check_positive("adafactor", "epsilon_2", self.epsilon_2)?;
        check_positive("adafactor", "clip_threshold", self.clip_threshold)
    }
    fn update(&self, c: &StepCtx, t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = AdafactorStep { beta_2_decay: self.beta_2_decay, epsilon_1: self.epsilon_1, epsilon_2: self.epsilon_2, clip_threshold: self.clip_threshold, relative_step: self.relative_step, c: *c, shape: t.shape };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Adafactor(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autograd::ParamStore;
    use crate::optim::Optimizer;
    use crate::tensor::Shape;

    /// One Adafactor step in f64, straight from the formulas.
    fn naive(p: &[f32], g: &[f32], rows: usize, cols: usize, lr: f64) -> Vec<f32> {
        let (t, eps1, eps2, d) = (1.0f64, 1e-30, 1e-3, 1.0);
        let rho = lr.min(1.0 / t.sqrt());
        let b2 = 1.0 - t.powf(-0.8);
        let n = p.len() as f64;
        let rms_p = (p.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n).sqrt();
        let alpha = f64::max(eps2, rms_p) * rho;
        let sq = |k: usize| (g[k] as f64).powi(2) + eps1;
        let r: Vec<f64> = (0..rows).map(|i| (1.0 - b2) * (0..cols).map(|j| sq(i * cols + j)).sum::<f64>() / cols as f64).collect();
        let c: Vec<f64> = (0..cols).map(|j| (1.0 - b2) * (0..rows).map(|i| sq(i * cols + j)).sum::<f64>() / rows as f64).collect();
        let mean_r = r.iter().sum::<f64>() / rows as f64;
        let u: Vec<f64> = (0..p.len()).map(|k| g[k] as f64 / (r[k / cols] / mean_r * c[k % cols]).sqrt()).collect();
        let rms_u = (u.iter().map(|v| v * v).sum::<f64>() / n).sqrt();
        let scale = alpha / f64::max(1.0, rms_u / d);
        p.iter().zip(&u).map(|(p, u)| (*p as f64 - scale * u) as f32).collect()
    }

    #[test]
    fn every_blocking_path_matches_the_formulas() {
        // [300, 400]: scratch room, parallel blocks. [2, 40000]: no room, in-place columns.
        // [1, 50]: a single row.
        for (rows, cols) in [(300usize, 400usize), (2, 40_000), (1, 50)] {
            let n = rows * cols;
            let p0: Vec<f32> = (0..n).map(|k| ((k * 7919 % 1013) as f32 / 506.0) - 1.0).collect();
            let g: Vec<f32> = (0..n).map(|k| ((k * 104729 % 997) as f32 / 498.0) - 1.0).collect();
            let mut s = ParamStore::new();
            let id = s.add("w.kernel", Shape::matrix(rows, cols), |b| b.copy_from_slice(&p0));
            let range = s.entry(id).range();
            s.grads_mut()[range].copy_from_slice(&g);
            Adafactor::new(0.01).step(&mut s);
            let want = naive(&p0, &g, rows, cols, 0.01);
            for (k, (got, want)) in s.value(id).iter().zip(&want).enumerate() {
                assert!((got - want).abs() <= 2e-6 * want.abs().max(1.0), "[{rows}, {cols}] element {k}: {got} vs {want}");
            }
        }
    }
}
