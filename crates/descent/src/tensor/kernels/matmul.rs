//! Matrix products with optional transposes, expressed as strides (never materialized),
//! on descent's own GEMM (see `gemm.rs` for why not the `gemm` crate).

use super::gemm::{gemm, MatRef};

/// Products with fewer multiply-adds than this run on one thread: below it, forking
/// costs more than it saves, and small models should not wake threads they cannot use.
pub const PARALLEL_MIN_MACS: usize = 1 << 21;

/// `c[m×n] = op(a)·op(b)`, or `c += op(a)·op(b)` when `accumulate`.
///
/// All matrices are row-major. `op(a)` is `a` (stored `[m, k]`) or, with `trans_a`,
/// `aᵀ` of `a` stored `[k, m]`; likewise `op(b)` is `b` (`[k, n]`) or `bᵀ` of `[n, k]`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
) {
    assert_eq!(c.len(), m * n, "matmul: output buffer");
    assert_eq!(a.len(), m * k, "matmul: left operand");
    assert_eq!(b.len(), k * n, "matmul: right operand");
    let (a_rs, a_cs) = if trans_a { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if trans_b { (1, k) } else { (n, 1) };
    let parallel = rayon::current_num_threads() > 1 && m * n * k >= PARALLEL_MIN_MACS;
    gemm(c, MatRef { data: a, rs: a_rs, cs: a_cs }, MatRef { data: b, rs: b_rs, cs: b_cs }, m, k, n, accumulate, parallel);
}

/// This machine's matrix-multiply ceiling in GFLOP/s: the median of `repeats` products
/// of two `n`×`n` matrices with this kernel, on the current thread pool. 2048 is the
/// bench's size (`descent bench w0`); 1024 reads within a few percent of it in an
/// eighth of the time, which is what the doctor measures.
pub fn sgemm_ceiling_gflops(n: usize, repeats: usize) -> f64 {
    let a: Vec<f32> = (0..n * n).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let mut c = vec![0.0f32; n * n];
    let mut rates: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let t = std::time::Instant::now();
            matmul(&mut c, &a, &b, n, n, n, false, false, false);
            2.0 * (n * n * n) as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] };
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] };
                    s += av as f64 * bv as f64;
                }
                c[i * n + j] = s as f32;
            }
        }
        c
    }

    #[test]
    fn all_transpose_combinations_match_naive() {
        // Includes shapes with several row blocks for every tile height (300 > 19 × 14),
        // several K slices (2100 = 3 × 700) and both on the parallel path (300·1100·70),
        // and small ones whose B is read in place (whole 32-column panels).
        for (m, k, n) in [(7, 13, 5), (1, 1, 1), (33, 300, 47), (64, 257, 100), (200, 30, 600), (300, 70, 130), (20, 2100, 40), (300, 1100, 70), (33, 100, 64), (40, 50, 96), (5, 7, 160)] {
            check_shape(m, k, n);
        }
    }

    fn check_shape(m: usize, k: usize, n: usize) {
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 17) as f32 - 8.0) / 7.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 11 % 13) as f32 - 6.0) / 5.0).collect();
        for ta in [false, true] {
            for tb in [false, true] {
                let want = naive(&a, &b, m, k, n, ta, tb);
                let mut c = vec![1.0; m * n];
                matmul(&mut c, &a, &b, m, k, n, ta, tb, false);
                // f32 sums of k products of O(1) values: error grows like √k·ε.
                let tol = 1e-5 * (k as f32).sqrt() * 4.0;
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - y).abs() < tol, "{m}x{k}x{n} ta={ta} tb={tb}: {x} vs {y}");
                }
                matmul(&mut c, &a, &b, m, k, n, ta, tb, true);
                for (x, y) in c.iter().zip(&want) {
                    assert!((x - 2.0 * y).abs() < 2.0 * tol, "accumulate {m}x{k}x{n} ta={ta} tb={tb}");
                }
            }
        }
    }
}
