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

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{ordered_sum, BLOCK, MAX_BLOCKS};

use crate::error::Result;
use crate::optim::rule::{check_positive, states, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::{Prep, RuleConfig};
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

#[derive(Clone, Copy)]
struct Hyper {
    prep: Prep,
    eps1: f32,
    b2: f32,
    rho: f32,
}

simd_dispatch! {
    /// One row: adds G = g² + ε₁ into the column sums; returns (Σ_row G, Σ_row p²).
    fn row_moments(p: &[f32], g: &[f32], csum: &mut [f32], h: &Hyper) -> (f64, f32) {
        let mut acc = [0.0f32; 16];
        let mut pp = [0.0f32; 16];
        let n = p.len() / 16 * 16;
        for ((p, g), cs) in p[..n].chunks_exact(16).zip(g[..n].chunks_exact(16)).zip(csum[..n].chunks_exact_mut(16)) {
            for l in 0..16 {
                let gi = h.prep.grad(g[l], p[l]);
                let sq = gi * gi + h.eps1;
                cs[l] += sq;
                acc[l] += sq;
                pp[l] += p[l] * p[l];
            }
        }
        for k in n..p.len() {
            let gi = h.prep.grad(g[k], p[k]);
            let sq = gi * gi + h.eps1;
            csum[k] += sq;
            acc[k - n] += sq;
            pp[k - n] += p[k] * p[k];
        }
        (acc.iter().map(|v| *v as f64).sum(), pp.iter().sum())
    }
}

simd_dispatch! {
    /// Σ u² over one row, u = g/√(r·v).
    fn row_sum_u2(p: &[f32], g: &[f32], v: &[f32], r: f32, prep: Prep) -> f32 {
        let mut acc = [0.0f32; 16];
        let n = p.len() / 16 * 16;
        for ((p, g), v) in p[..n].chunks_exact(16).zip(g[..n].chunks_exact(16)).zip(v[..n].chunks_exact(16)) {
            for l in 0..16 {
                let u = prep.grad(g[l], p[l]) / (r * v[l]).sqrt();
                acc[l] += u * u;
            }
        }
        for k in n..p.len() {
            let u = prep.grad(g[k], p[k]) / (r * v[k]).sqrt();
            acc[k - n] += u * u;
        }
        acc.iter().sum()
    }
}

simd_dispatch! {
    /// p ← decay(p) − step·g/√(r·v) over one row.
    fn row_apply(p: &mut [f32], g: &[f32], v: &[f32], r: f32, step: f32, prep: Prep) {
        for k in 0..p.len() {
            let u = prep.grad(g[k], p[k]) / (r * v[k]).sqrt();
            p[k] = prep.decay(p[k]) - step * u;
        }
    }
}

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
    fn update(&self, c: &StepCtx, t: TensorInfo, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let [rv, col] = states(s);
        let n = p.len();
        let dims = t.shape.dims();
        // Matrices are [rows, cols] (leading axes folded into rows); vectors are one row.
        let matrix = dims.len() >= 2;
        let cols = if matrix { *dims.last().expect("rank ≥ 2") } else { n };
        let rows = n / cols.max(1);
        let step = c.t as f32;
        let h = Hyper {
            prep: c.prep,
            eps1: self.epsilon_1,
            b2: 1.0 - step.powf(self.beta_2_decay),
            rho: c.lr.min(1.0 / step.sqrt()),
        };
        // Fixed row blocks: the same sums in the same order for any thread count.
        let rows_per_block = (BLOCK / cols.max(1)).max(1);
        let block_len = rows_per_block * cols;
        let blocks = rows.div_ceil(rows_per_block);
        let parallel = rayon::current_num_threads() > 1 && blocks > 1 && blocks <= MAX_BLOCKS;

        // Pass 1: Σp², row means of G = g² + ε₁ (→ r), column sums of G per block.
        let mut sum_p2 = 0.0f64;
        if matrix {
            // Column partial sums go to the unused tail of `col` (it has n ≥ cols·(blocks+1)
            // slots when blocks < rows), or are added in place when there is no room.
            let room = (blocks + 1) * cols <= n;
            let (c_vec, scratch) = col.split_at_mut(cols);
            let mut partials = [[0.0f32; 1]; MAX_BLOCKS];
            let run = |p: &[f32], g: &[f32], r: &mut [f32], csum: &mut [f32]| -> f32 {
                csum.fill(0.0);
                let mut pp = 0.0f32;
                for (i, (p, g)) in p.chunks(cols).zip(g.chunks(cols)).enumerate() {
                    let (row_sum, p2) = row_moments(p, g, csum, &h);
                    r[i] = h.b2 * r[i] + (1.0 - h.b2) * (row_sum / cols as f64) as f32;
                    pp += p2;
                }
                pp
            };
            if parallel && room {
                p.par_chunks(block_len)
                    .zip(g.par_chunks(block_len))
                    .zip(rv[..rows].par_chunks_mut(rows_per_block))
                    .zip(scratch[..blocks * cols].par_chunks_mut(cols))
                    .zip(partials[..blocks].par_iter_mut())
                    .for_each(|((((p, g), r), cs), out)| out[0] = run(p, g, r, cs));
                sum_p2 = ordered_sum(&partials[..blocks])[0];
                c_vec.iter_mut().for_each(|c| *c *= h.b2);
                let w = (1.0 - h.b2) / rows as f32;
                for b in 0..blocks {
                    for (c, s) in c_vec.iter_mut().zip(&scratch[b * cols..(b + 1) * cols]) {
                        *c += w * s;
                    }
                }
            } else if room {
                for (b, ((p, g), r)) in p.chunks(block_len).zip(g.chunks(block_len)).zip(rv[..rows].chunks_mut(rows_per_block)).enumerate() {
                    sum_p2 += run(p, g, r, &mut scratch[b * cols..(b + 1) * cols]) as f64;
                }
                c_vec.iter_mut().for_each(|c| *c *= h.b2);
                let w = (1.0 - h.b2) / rows as f32;
                for b in 0..blocks {
                    for (c, s) in c_vec.iter_mut().zip(&scratch[b * cols..(b + 1) * cols]) {
                        *c += w * s;
                    }
                }
            } else {
                // No scratch room (few, very long rows): accumulate column means in place.
                c_vec.iter_mut().for_each(|c| *c *= h.b2);
                let w = (1.0 - h.b2) / rows as f32;
                for (i, (p, g)) in p.chunks(cols).zip(g.chunks(cols)).enumerate() {
                    let mut row_sum = 0.0f64;
                    for (j, (p, g)) in p.iter().zip(g).enumerate() {
                        let gi = h.prep.grad(*g, *p);
                        let sq = gi * gi + h.eps1;
                        row_sum += sq as f64;
                        c_vec[j] += w * sq;
                        sum_p2 += (*p as f64).powi(2);
                    }
                    rv[i] = h.b2 * rv[i] + (1.0 - h.b2) * (row_sum / cols as f64) as f32;
                }
            }
        } else {
            for k in 0..n {
                let gi = h.prep.grad(g[k], p[k]);
                rv[k] = h.b2 * rv[k] + (1.0 - h.b2) * (gi * gi + h.eps1);
                sum_p2 += (p[k] as f64).powi(2);
            }
        }
        let mean_r = if matrix { (rv[..rows].iter().map(|v| *v as f64).sum::<f64>() / rows as f64) as f32 } else { 1.0 };
        // Decoupled decay scales p, and RMS(p) with it.
        let rms_p = (sum_p2 / n as f64).sqrt() as f32;
        let alpha = self.epsilon_2.max(h.prep.keep * rms_p) * h.rho;

        // Pass 2: RMS of u = g/√v, v_ij = (r_i/mean r)·c_j (vectors: v_k).
        let (rv, col) = (&*rv, &*col);
        let row_v = |i: usize| -> (f32, &[f32]) {
            if matrix { (rv[i] / mean_r, &col[..cols]) } else { (1.0, rv) }
        };
        let sum_u = |b: usize, p: &[f32], g: &[f32]| -> f32 {
            let mut total = 0.0f32;
            for (r, (p, g)) in p.chunks(cols).zip(g.chunks(cols)).enumerate() {
                let (ri, v) = row_v(b * rows_per_block + r);
                total += row_sum_u2(p, g, v, ri, h.prep);
            }
            total
        };
        let uu: f64 = if parallel {
            let mut partials = [[0.0f32; 1]; MAX_BLOCKS];
            p.par_chunks(block_len)
                .zip(g.par_chunks(block_len))
                .zip(partials[..blocks].par_iter_mut())
                .enumerate()
                .for_each(|(b, ((p, g), out))| out[0] = sum_u(b, p, g));
            ordered_sum(&partials[..blocks])[0]
        } else {
            p.chunks(block_len).zip(g.chunks(block_len)).enumerate().map(|(b, (p, g))| sum_u(b, p, g) as f64).sum()
        };
        let rms_u = (uu / n as f64).sqrt() as f32;
        let step_size = alpha / (rms_u / self.clip_threshold).max(1.0);

        // Pass 3: p ← decay(p) − step·u.
        let apply = |b: usize, p: &mut [f32], g: &[f32]| {
            for (r, (p, g)) in p.chunks_mut(cols).zip(g.chunks(cols)).enumerate() {
                let (ri, v) = row_v(b * rows_per_block + r);
                row_apply(p, g, v, ri, step_size, h.prep);
            }
        };
        if parallel {
            p.par_chunks_mut(block_len).zip(g.par_chunks(block_len)).enumerate().for_each(|(b, (p, g))| apply(b, p, g));
        } else {
            p.chunks_mut(block_len).zip(g.chunks(block_len)).enumerate().for_each(|(b, (p, g))| apply(b, p, g));
        }
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
