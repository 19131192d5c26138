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

/// Calls `f(o, ia, ib)` for every element of two layouts of one shape.
fn for_each_pair(la: &Layout, lb: &Layout, mut f: impl FnMut(usize, usize, usize)) {
    // One odometer over the shared shape, both source offsets kept in step.
    let shape = la.shape();
    let rank = shape.rank();
    let dims = shape.dims();
    let (sa, sb) = (la.strides(), lb.strides());
    let (mut ia, mut ib) = (la.offset(), lb.offset());
    let mut coord = [0usize; crate::tensor::Shape::MAX_RANK];
    for o in 0..shape.numel() {
        f(o, ia, ib);
        for k in (0..rank).rev() {
            coord[k] += 1;
            ia += sa[k];
            ib += sb[k];
            if coord[k] < dims[k] {
                break;
            }
            ia -= sa[k] * dims[k];
            ib -= sb[k] * dims[k];
            coord[k] = 0;
        }
    }
}

/// `y[o] = a[la(o)] + b[lb(o)]` (`mul`: ⊙).
pub fn binary_strided(mul: bool, y: &mut [f32], a: &[f32], la: &Layout, b: &[f32], lb: &Layout) {
    if mul {
        for_each_pair(la, lb, |o, i, j| y[o] = a[i] * b[j]);
    } else {
        for_each_pair(la, lb, |o, i, j| y[o] = a[i] + b[j]);
    }
}

/// `ga[la(o)] += g[o] · b[lb(o)]`.
pub fn mul_strided_back(ga: &mut [f32], la: &Layout, g: &[f32], b: &[f32], lb: &Layout) {
    for_each_pair(la, lb, |o, i, j| ga[i] += g[o] * b[j]);
}
