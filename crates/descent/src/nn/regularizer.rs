//! Weight penalties (Keras's `L1`, `L2`, `L1L2` regularizers): added to the loss and,
//! through their gradient, to the parameter's gradient before the optimizer step.

use crate::tensor::{Backend, DeviceSlice, B};
use serde::{Deserialize, Serialize};

/// penalty(w) = l1 · Σ|w| + l2 · Σ w²   (Keras's definitions; no ½ on the L2 term).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Regularizer {
    pub l1: f32,
    pub l2: f32,
}

impl Regularizer {
    pub fn l1(l1: f32) -> Self {
        Regularizer { l1, l2: 0.0 }
    }
    pub fn l2(l2: f32) -> Self {
        Regularizer { l1: 0.0, l2 }
    }
    pub fn l1_l2(l1: f32, l2: f32) -> Self {
        Regularizer { l1, l2 }
    }

    pub fn penalty(&self, w: &DeviceSlice) -> f64 {
        let (abs, sq) = B::abs_and_square_sums(w);
        self.l1 as f64 * abs + self.l2 as f64 * sq
    }

    /// Adds ∂penalty/∂w = l1 · sign(w) + 2 · l2 · w to `g` and returns the penalty.
    pub fn apply(&self, w: &DeviceSlice, g: &mut DeviceSlice) -> f64 {
        B::penalty_grad(g, w, self.l1, self.l2);
        self.penalty(w)
    }

    pub fn is_zero(&self) -> bool {
        self.l1 == 0.0 && self.l2 == 0.0
    }

    pub fn check(&self, what: &str) -> crate::Result<()> {
        if !(self.l1 >= 0.0 && self.l2 >= 0.0 && self.l1.is_finite() && self.l2.is_finite()) {
            return Err(crate::Error::Config(format!("{what}: l1 = {} and l2 = {} must be finite and ≥ 0", self.l1, self.l2)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalty_and_gradient_match_finite_differences() {
        let r = Regularizer::l1_l2(0.01, 0.05);
        let w = [0.5f32, -1.5, 0.25, 2.0];
        let penalty = |w: &[f32]| r.penalty(&B::from_host(w));
        assert!((penalty(&w) - (0.01 * 4.25 + 0.05 * (0.25 + 2.25 + 0.0625 + 4.0))).abs() < 1e-7);
        let mut gd = B::zeros(4);
        r.apply(&B::from_host(&w), &mut gd);
        let g = B::host(&gd);
        for i in 0..4 {
            let (mut a, mut b) = (w, w);
            a[i] += 1e-3;
            b[i] -= 1e-3;
            let fd = (penalty(&a) - penalty(&b)) / 2e-3;
            assert!((g[i] as f64 - fd).abs() < 1e-4, "{i}: {} vs {fd}", g[i]);
        }
    }
}
