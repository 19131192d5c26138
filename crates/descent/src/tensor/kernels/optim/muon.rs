//! Muon's kernel (the rule: `optim/rules/muon.rs`): momentum, the Newton–Schulz
//! orthogonalization of the (Nesterov) update by descent's GEMM, decay and the step, for
//! one 2-D tensor.

use std::cell::RefCell;

use super::{states, Prep, StepCtx};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::matmul::matmul;

/// One Muon step on one matrix `[rows, cols]`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MuonStep {
    pub momentum: f32,
    pub nesterov: bool,
    pub ns_steps: u32,
    /// The quintic's coefficients (a, b, c): X ← a·X + (b·A + c·A²)·X, A = X·Xᵀ.
    pub coefficients: [f32; 3],
    /// The update is scaled by rms_rate·√max(rows, cols) (Moonlight's rule; 0: none).
    pub rms_rate: f32,
    pub rows: usize,
    pub cols: usize,
    pub c: StepCtx,
}

thread_local! {
    /// A = X·Xᵀ, its polynomial, and the next X (grown once, then reused).
    static SCRATCH: RefCell<[Vec<f32>; 3]> = const { RefCell::new([Vec::new(), Vec::new(), Vec::new()]) };
}

/// Newton–Schulz on `z` (`[rows, cols]`), in place: X = z/(‖z‖_F + 1e-7), then `steps`
/// times X ← a·X + (b·A + c·A·A)·X with A = X·Xᵀ over the shorter side (for a tall z the
/// same iteration transposed: A = zᵀz, z ← a·z + z·(b·A + c·A·A)).
pub fn newton_schulz(z: &mut [f32], rows: usize, cols: usize, steps: u32, [a, b, c]: [f32; 3]) {
    let norm = (z.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>().sqrt() + 1e-7) as f32;
    z.iter_mut().for_each(|v| *v /= norm);
    let tall = rows > cols;
    let s = rows.min(cols);
    SCRATCH.with(|scratch| {
        let mut scratch = scratch.borrow_mut();
        let [gram, poly, next] = &mut *scratch;
        gram.resize(s * s, 0.0);
        poly.resize(s * s, 0.0);
        next.resize(rows * cols, 0.0);
        for _ in 0..steps {
            if tall {
                matmul(gram, z, z, s, rows, s, true, false, false);
            } else {
                matmul(gram, z, z, s, cols, s, false, true, false);
            }
            matmul(poly, gram, gram, s, s, s, false, false, false);
            for (p, g) in poly.iter_mut().zip(gram.iter()) {
                *p = b * g + c * *p;
            }
            if tall {
                matmul(next, z, poly, rows, s, s, false, false, false);
            } else {
                matmul(next, poly, z, s, s, cols, false, false, false);
            }
            for (zv, n) in z.iter_mut().zip(next.iter()) {
                *zv = a * *zv + n;
            }
        }
    });
}

impl OptimizerKernel for MuonStep {
    const NAME: &'static str = "muon";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let [m, u] = states(s);
        let (mu, prep): (f32, Prep) = (self.momentum, self.c.prep);
        // m ← μ·m + g ; u = g + μ·m (Nesterov) or m
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            m[i] = mu * m[i] + gi;
            u[i] = if self.nesterov { gi + mu * m[i] } else { m[i] };
        }
        newton_schulz(u, self.rows, self.cols, self.ns_steps, self.coefficients);
        let scale = if self.rms_rate > 0.0 { self.rms_rate * (self.rows.max(self.cols) as f32).sqrt() } else { 1.0 };
        let step = self.c.lr * scale;
        for i in 0..p.len() {
            p[i] = prep.decay(p[i]) - step * u[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tall_and_wide_matrices_orthogonalize_alike_and_nearly_orthogonally() {
        let (r, c) = (9, 4);
        let u: Vec<f32> = (0..r * c).map(|i| ((i * 37 % 17) as f32 - 8.0) / 5.0).collect();
        let mut tall = u.clone();
        newton_schulz(&mut tall, r, c, 5, [3.4445, -4.7750, 2.0315]);
        let mut wide: Vec<f32> = (0..r * c).map(|k| u[(k % r) * c + k / r]).collect(); // uᵀ
        newton_schulz(&mut wide, c, r, 5, [3.4445, -4.7750, 2.0315]);
        for i in 0..r {
            for j in 0..c {
                assert!((tall[i * c + j] - wide[j * r + i]).abs() < 1e-5);
            }
        }
        // XᵀX ≈ I up to the quintic's spread (singular values within about 0.5..1.5).
        for a in 0..c {
            for b in 0..c {
                let dot: f32 = (0..r).map(|i| tall[i * c + a] * tall[i * c + b]).sum();
                if a == b {
                    assert!((0.25..2.3).contains(&dot), "diagonal {dot}");
                } else {
                    assert!(dot.abs() < 0.5, "off-diagonal {dot}");
                }
            }
        }
    }
}
