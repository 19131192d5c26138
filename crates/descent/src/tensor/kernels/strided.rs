//! Reads through a [`Layout`] (permute, slice, broadcast) and their adjoints.

use crate::tensor::Layout;

/// `y[o] = x[layout(o)]`.
pub fn copy_strided(y: &mut [f32], x: &[f32], layout: &Layout) {
    layout.for_each_run(|o, s, run| y[o..o + run].copy_from_slice(&x[s..s + run]));
}

/// `gx[layout(o)] += g[o]`.
pub fn add_strided_back(gx: &mut [f32], g: &[f32], layout: &Layout) {
    layout.for_each_run(|o, s, run| gx[s..s + run].iter_mut().zip(&g[o..o + run]).for_each(|(d, v)| *d += v));
}

/// `y[o] = a[la(o)] + b[lb(o)]` (`mul`: ⊙).
pub fn binary_strided(mul: bool, y: &mut [f32], a: &[f32], la: &Layout, b: &[f32], lb: &Layout) {
    if mul {
        la.for_each_pair(lb, |o, i, j| y[o] = a[i] * b[j]);
    } else {
        la.for_each_pair(lb, |o, i, j| y[o] = a[i] + b[j]);
    }
}

/// `ga[la(o)] += g[o] · b[lb(o)]`.
pub fn mul_strided_back(ga: &mut [f32], la: &Layout, g: &[f32], b: &[f32], lb: &Layout) {
    la.for_each_pair(lb, |o, i, j| ga[i] += g[o] * b[j]);
}
