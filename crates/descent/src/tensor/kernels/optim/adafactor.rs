//! Adafactor's fused kernel (the rule: `optim/rules/adafactor.rs`).

use rayon::prelude::*;

use super::{ordered_sum, states, Prep, StepCtx, BLOCK, MAX_BLOCKS};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::Shape;

/// One step of Adafactor on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct AdafactorStep {
    pub beta_2_decay: f32,
    pub epsilon_1: f32,
    pub epsilon_2: f32,
    pub clip_threshold: f32,
    pub relative_step: bool,
    pub c: StepCtx,
    pub shape: Shape,
}

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

impl OptimizerKernel for AdafactorStep {
    const NAME: &'static str = "adafactor";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
        let t = self;
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
        let alpha = self.epsilon_2.max(h.prep.decay(rms_p)) * h.rho;

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
}
