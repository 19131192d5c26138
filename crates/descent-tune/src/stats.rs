//! Statistics for comparing configurations across folds.

/// Mean and sample standard deviation (n − 1; 0 for a single value).
pub fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 { v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    (mean, var.sqrt())
}

/// A paired comparison of two contenders over the same folds.
#[derive(Clone, Debug, PartialEq)]
pub struct PairedTest {
    /// Mean of a − b over the folds.
    pub mean_difference: f64,
    pub t: f64,
    pub dof: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// Paired t-test of `a` against `b` (same folds, same order) with the variance
/// correction of Nadeau & Bengio ("Inference for the Generalization Error", Machine
/// Learning 2003): folds share training samples, so the fold differences are
/// correlated and the plain paired t-test is overconfident. The variance is scaled by
/// (1/J + n_test/n_train) instead of 1/J, with J the number of folds. Pass
/// `test_train_ratio` = 0 for the plain paired t-test.
pub fn corrected_paired_t_test(a: &[f64], b: &[f64], test_train_ratio: f64) -> Option<PairedTest> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let j = d.len() as f64;
    let (mean, sd) = mean_std(&d);
    let dof = j - 1.0;
    if sd == 0.0 {
        let p = if mean == 0.0 { 1.0 } else { 0.0 };
        return Some(PairedTest { mean_difference: mean, t: if mean == 0.0 { 0.0 } else { f64::INFINITY.copysign(mean) }, dof, p_value: p });
    }
    let t = mean / (sd * sd * (1.0 / j + test_train_ratio)).sqrt();
    Some(PairedTest { mean_difference: mean, t, dof, p_value: student_t_two_sided_p(t, dof) })
}

/// P(|T| ≥ |t|) for Student's t with `dof` degrees of freedom:
/// I_x(dof/2, 1/2) with x = dof / (dof + t²).
pub fn student_t_two_sided_p(t: f64, dof: f64) -> f64 {
    regularized_incomplete_beta(dof / (dof + t * t), 0.5 * dof, 0.5)
}

/// I_x(a, b) by its continued fraction (modified Lentz), using the symmetry
/// I_x(a, b) = 1 − I_{1−x}(b, a) where the fraction converges slowly.
pub fn regularized_incomplete_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = libm::lgamma(a + b) - libm::lgamma(a) - libm::lgamma(b) + a * x.ln() + b * (1.0 - x).ln();
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * beta_fraction(x, a, b) / a
    } else {
        1.0 - ln_front.exp() * beta_fraction(1.0 - x, b, a) / b
    }
}

/// The continued fraction of the incomplete beta function, evaluated bottom-up by
/// Lentz's method: d_{2m+1} = −(a+m)(a+b+m)x / ((a+2m)(a+2m+1)),
/// d_{2m} = m(b−m)x / ((a+2m−1)(a+2m)).
fn beta_fraction(x: f64, a: f64, b: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut c = 1.0;
    let mut d = 1.0 - (a + b) * x / (a + 1.0);
    d = 1.0 / if d.abs() < TINY { TINY } else { d };
    let mut h = d;
    for m in 1..300 {
        let m = m as f64;
        for coef in [m * (b - m) * x / ((a + 2.0 * m - 1.0) * (a + 2.0 * m)), -(a + m) * (a + b + m) * x / ((a + 2.0 * m) * (a + 2.0 * m + 1.0))] {
            d = 1.0 + coef * d;
            d = 1.0 / if d.abs() < TINY { TINY } else { d };
            c = 1.0 + coef / c;
            if c.abs() < TINY {
                c = TINY;
            }
            h *= d * c;
        }
        if (d * c - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_distribution_matches_tables() {
        // Two-sided 5% critical values from standard t tables.
        for (t, dof) in [(12.706, 1.0), (2.776, 4.0), (2.228, 10.0), (1.960, 1e6)] {
            let p = student_t_two_sided_p(t, dof);
            assert!((p - 0.05).abs() < 2e-4, "t={t} dof={dof}: p={p}");
        }
        assert!((student_t_two_sided_p(0.0, 5.0) - 1.0).abs() < 1e-12);
        // 1% critical value for 4 dof.
        assert!((student_t_two_sided_p(4.604, 4.0) - 0.01).abs() < 1e-4);
        // I_x(1, 1) = x; I_x(2, 3) = 1 − (1−x)^4 − 4x(1−x)^3 (binomial identity).
        assert!((regularized_incomplete_beta(0.3, 1.0, 1.0) - 0.3).abs() < 1e-12);
        let x: f64 = 0.4;
        let want = 1.0 - (1.0 - x).powi(4) - 4.0 * x * (1.0 - x).powi(3);
        assert!((regularized_incomplete_beta(x, 2.0, 3.0) - want).abs() < 1e-12);
    }

    #[test]
    fn paired_test_matches_a_hand_computation() {
        // d = [0.02, 0.03, 0.01, 0.04, 0.00]: mean 0.02, sd 0.015811; plain t = 2.8284 (4 dof).
        let a = [0.92, 0.93, 0.91, 0.94, 0.90];
        let b = [0.90, 0.90, 0.90, 0.90, 0.90];
        let plain = corrected_paired_t_test(&a, &b, 0.0).unwrap();
        assert!((plain.t - 2.828427).abs() < 1e-5, "{plain:?}");
        assert!((plain.p_value - 0.04742).abs() < 1e-4, "{plain:?}");
        // 5-fold: n_test/n_train = 1/4 → variance × (1/5 + 1/4) / (1/5): t shrinks by √(0.45/0.2) = 1.5.
        let corrected = corrected_paired_t_test(&a, &b, 0.25).unwrap();
        assert!((corrected.t - plain.t / 1.5).abs() < 1e-9);
        assert!(corrected.p_value > plain.p_value);
        assert_eq!(corrected_paired_t_test(&a, &a, 0.25).unwrap().p_value, 1.0);
        assert!(corrected_paired_t_test(&a[..1], &b[..1], 0.0).is_none());
    }
}
