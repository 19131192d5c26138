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
use crate::optim::rule::{check_positive, states, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::Error;

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
    fn update(&self, c: &StepCtx, t: TensorInfo, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let [rv, col] = states(s);
        let prep = c.prep;
        let n = p.len();
        let step = c.t as f32;
        let rho = c.lr.min(1.0 / step.sqrt());
        let b2 = 1.0 - step.powf(self.beta_2_decay);
        let eps1 = self.epsilon_1;
        let rms_p = (p.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / n as f64).sqrt() as f32;
        // Decoupled decay scales p, and RMS(p) with it.
        let alpha = self.epsilon_2.max(prep.keep * rms_p) * rho;
        let dims = t.shape.dims();
        let matrix = dims.len() >= 2;
        let cols = if matrix { *dims.last().expect("rank ≥ 2") } else { n };
        let rows = n / cols.max(1);
        // Second moments.
        if matrix {
            // c ← β̂₂c + (1−β̂₂)·mean_rows(G), accumulated row by row in place (no scratch).
            let w = (1.0 - b2) / rows as f32;
            col[..cols].iter_mut().for_each(|c| *c *= b2);
            for i in 0..rows {
                let mut row_sum = 0.0f64;
                for j in 0..cols {
                    let k = i * cols + j;
                    let gi = prep.grad(g[k], p[k]);
                    let sq = gi * gi + eps1;
                    row_sum += sq as f64;
                    col[j] += w * sq;
                }
                rv[i] = b2 * rv[i] + (1.0 - b2) * (row_sum / cols as f64) as f32;
            }
        } else {
            for k in 0..n {
                let gi = prep.grad(g[k], p[k]);
                rv[k] = b2 * rv[k] + (1.0 - b2) * (gi * gi + eps1);
            }
        }
        let mean_r = if matrix { (rv[..rows].iter().map(|v| *v as f64).sum::<f64>() / rows as f64) as f32 } else { 1.0 };
        let v_at = |k: usize, rv: &[f32], col: &[f32]| -> f32 {
            if matrix { rv[k / cols] / mean_r * col[k % cols] } else { rv[k] }
        };
        let mut uu = 0.0f64;
        for k in 0..n {
            let u = prep.grad(g[k], p[k]) / v_at(k, rv, col).sqrt();
            uu += (u as f64).powi(2);
        }
        let rms_u = (uu / n as f64).sqrt() as f32;
        let denom = (rms_u / self.clip_threshold).max(1.0);
        for k in 0..n {
            let u = prep.grad(g[k], p[k]) / v_at(k, rv, col).sqrt();
            p[k] = prep.decay(p[k]) - alpha * u / denom;
        }
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Adafactor(self.clone())
    }
}
