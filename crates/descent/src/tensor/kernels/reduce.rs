//! Reductions with a fixed summation order, so results never depend on thread count
//! or on which SIMD version runs.

simd_dispatch! {
    /// `out[j] (+)= Σ_i x[i, j]` over the rows of a row-major `[rows, cols]` matrix
    /// (the bias gradient of a dense layer). Rows are added in order.
    pub fn col_sums(out: &mut [f32], x: &[f32], cols: usize, accumulate: bool) {
        if !accumulate {
            out.fill(0.0);
        }
        for row in x.chunks_exact(cols) {
            for (o, v) in out.iter_mut().zip(row) {
                *o += *v;
            }
        }
    }
}

/// Lanes of independent partial sums: wide enough for AVX-512, fixed so the order of
/// additions is the same on every machine.
const LANES: usize = 16;

simd_dispatch! {
    /// Σ x² in a fixed order (16 interleaved partial sums, then combined pairwise).
    pub fn sum_squares(x: &[f32]) -> f32 {
        let mut acc = [0.0f32; LANES];
        let chunks = x.chunks_exact(LANES);
        let tail = chunks.remainder();
        for c in chunks {
            for l in 0..LANES {
                acc[l] += c[l] * c[l];
            }
        }
        for (l, v) in tail.iter().enumerate() {
            acc[l] += v * v;
        }
        let mut width = LANES;
        while width > 1 {
            width /= 2;
            for l in 0..width {
                acc[l] += acc[l + width];
            }
        }
        acc[0]
    }
}

/// Index of the largest value (first one on ties); NaN never wins.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate().skip(1) {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn col_sums_adds_rows() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = [10.0, 10.0, 10.0];
        col_sums(&mut out, &x, 3, false);
        assert_eq!(out, [5.0, 7.0, 9.0]);
        col_sums(&mut out, &x, 3, true);
        assert_eq!(out, [10.0, 14.0, 18.0]);
    }

    #[test]
    fn sum_squares_matches_f64() {
        let x: Vec<f32> = (0..1003).map(|i| (i as f32 * 0.37).sin()).collect();
        let want: f64 = x.iter().map(|v| (*v as f64).powi(2)).sum();
        assert!((sum_squares(&x) as f64 - want).abs() < 1e-4 * want);
    }

    #[test]
    fn argmax_first_max() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7, -1.0]), 1);
    }
}
