//! Small elementwise passes (sums of gradients, products with masks, moving averages).
//! Each element's result depends on that element only: any split is bit-identical.

simd_dispatch! {
    /// `y = a + b`.
    pub fn add(y: &mut [f32], a: &[f32], b: &[f32]) {
        y.iter_mut().zip(a.iter().zip(b)).for_each(|(y, (a, b))| *y = a + b);
    }
}

simd_dispatch! {
    /// `dst += src`.
    pub fn add_assign(dst: &mut [f32], src: &[f32]) {
        dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
    }
}

simd_dispatch! {
    /// `dst += alpha · src`.
    pub fn axpy(dst: &mut [f32], alpha: f32, src: &[f32]) {
        dst.iter_mut().zip(src).for_each(|(d, s)| *d += alpha * s);
    }
}

simd_dispatch! {
    /// `y = a ⊙ b`.
    pub fn mul(y: &mut [f32], a: &[f32], b: &[f32]) {
        y.iter_mut().zip(a.iter().zip(b)).for_each(|(y, (a, b))| *y = a * b);
    }
}

simd_dispatch! {
    /// `dst += a ⊙ b`.
    pub fn mul_add_assign(dst: &mut [f32], a: &[f32], b: &[f32]) {
        dst.iter_mut().zip(a.iter().zip(b)).for_each(|(d, (a, b))| *d += a * b);
    }
}

simd_dispatch! {
    /// `dst = (dst + src) · scale` (the mean of accumulated gradients).
    pub fn add_then_scale(dst: &mut [f32], src: &[f32], scale: f32) {
        dst.iter_mut().zip(src).for_each(|(d, s)| *d = (*d + s) * scale);
    }
}

simd_dispatch! {
    /// `avg = m·avg + (1 − m)·x`.
    pub fn lerp_toward(avg: &mut [f32], x: &[f32], momentum: f32) {
        let keep = 1.0 - momentum;
        avg.iter_mut().zip(x).for_each(|(a, x)| *a = momentum * *a + keep * x);
    }
}

/// (Σ|x|, Σx²) in f64, in order.
pub fn abs_and_square_sums(x: &[f32]) -> (f64, f64) {
    x.iter().fold((0.0f64, 0.0f64), |(a, s), v| (a + v.abs() as f64, s + (*v as f64) * (*v as f64)))
}

/// `gx += g + l1·sign(x) + 2·l2·x`.
pub fn penalty_backward(gx: &mut [f32], g: &[f32], x: &[f32], l1: f32, l2: f32) {
    for ((gx, g), v) in gx.iter_mut().zip(g).zip(x) {
        let sign = if *v > 0.0 { 1.0 } else if *v < 0.0 { -1.0 } else { 0.0 };
        *gx += g + (l1 * sign + 2.0 * l2 * v);
    }
}

/// `g += l1·sign(w) + 2·l2·w`.
pub fn penalty_grad(g: &mut [f32], w: &[f32], l1: f32, l2: f32) {
    let l2x2 = 2.0 * l2;
    for (g, &v) in g.iter_mut().zip(w) {
        let sign = if v > 0.0 { 1.0 } else if v < 0.0 { -1.0 } else { 0.0 };
        *g += l1 * sign + l2x2 * v;
    }
}
