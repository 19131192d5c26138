//! The memory-traffic ceiling for optimizer steps: one pass that reads the gradient once
//! and reads and writes the parameters and `K` state buffers once, with no arithmetic
//! beyond an add. An optimizer kernel cannot move the same bytes faster than this.

use super::parallel::for_each_split;

simd_dispatch! {
    fn add1(p: &mut [f32], g: &[f32]) {
        for i in 0..p.len() {
            p[i] += g[i];
        }
    }
}
simd_dispatch! {
    fn add2(p: &mut [f32], a: &mut [f32], g: &[f32]) {
        for i in 0..p.len() {
            p[i] += g[i];
            a[i] += g[i];
        }
    }
}
simd_dispatch! {
    fn add3(p: &mut [f32], a: &mut [f32], b: &mut [f32], g: &[f32]) {
        for i in 0..p.len() {
            p[i] += g[i];
            a[i] += g[i];
            b[i] += g[i];
        }
    }
}
simd_dispatch! {
    fn add4(p: &mut [f32], a: &mut [f32], b: &mut [f32], c: &mut [f32], g: &[f32]) {
        for i in 0..p.len() {
            p[i] += g[i];
            a[i] += g[i];
            b[i] += g[i];
            c[i] += g[i];
        }
    }
}

/// `p += g` and `s += g` for each state buffer (0 to 3 of them), fused and parallel.
pub fn traffic_pass(p: &mut [f32], states: &mut [Vec<f32>], g: &[f32]) {
    match states {
        [] => for_each_split([p], [g], &|[p], [g]| add1(p, g)),
        [a] => for_each_split([p, a], [g], &|[p, a], [g]| add2(p, a, g)),
        [a, b] => for_each_split([p, a, b], [g], &|[p, a, b], [g]| add3(p, a, b, g)),
        [a, b, c, ..] => for_each_split([p, a, b, c], [g], &|[p, a, b, c], [g]| add4(p, a, b, c, g)),
    }
}

simd_dispatch! {
    fn triad_kernel(a: &mut [f32], b: &[f32], c: &[f32], s: f32) {
        for i in 0..a.len() {
            a[i] = b[i] + s * c[i];
        }
    }
}

/// STREAM's triad, `a = b + s·c`, split over threads: the machine's streaming bandwidth
/// (12 bytes per element by STREAM's convention).
pub fn triad(a: &mut [f32], b: &[f32], c: &[f32], s: f32) {
    for_each_split([a], [b, c], &|[a], [b, c]| triad_kernel(a, b, c, s));
}
