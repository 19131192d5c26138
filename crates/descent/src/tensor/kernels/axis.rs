//! Kernels along one axis of a value seen as `[outer, len, inner]` (reductions, softmax),
//! column blocks (concatenation) and row gathers (embedding lookups).

/// `y[o, i] = scale · Σ_j x[o, j, i]`, summed over j in order.
pub fn sum_axis(y: &mut [f32], x: &[f32], outer: usize, len: usize, inner: usize, scale: f32) {
    y.fill(0.0);
    for o in 0..outer {
        let dst = &mut y[o * inner..(o + 1) * inner];
        for j in 0..len {
            let row = &x[(o * len + j) * inner..(o * len + j + 1) * inner];
            dst.iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
    }
    if scale != 1.0 {
        y.iter_mut().for_each(|v| *v *= scale);
    }
}

/// `gx[o, j, i] += scale · g[o, i]`.
pub fn spread_axis(gx: &mut [f32], g: &[f32], outer: usize, len: usize, inner: usize, scale: f32) {
    for o in 0..outer {
        let src = &g[o * inner..(o + 1) * inner];
        for j in 0..len {
            let dst = &mut gx[(o * len + j) * inner..(o * len + j + 1) * inner];
            dst.iter_mut().zip(src).for_each(|(d, s)| *d += s * scale);
        }
    }
}

/// Calls `f(start, len, stride)` for every lane along the middle axis.
fn lanes(outer: usize, len: usize, inner: usize, mut f: impl FnMut(usize, usize, usize)) {
    for o in 0..outer {
        for i in 0..inner {
            f(o * len * inner + i, len, inner);
        }
    }
}

/// Softmax along the middle axis: `y = exp(x − max) / Σ exp(x − max)` per lane.
pub fn softmax_axis(y: &mut [f32], x: &[f32], outer: usize, len: usize, inner: usize) {
    lanes(outer, len, inner, |start, len, stride| {
        let at = |j: usize| start + j * stride;
        let max = (0..len).map(|j| x[at(j)]).fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for j in 0..len {
            let e = (x[at(j)] - max).exp();
            y[at(j)] = e;
            sum += e;
        }
        let inv = 1.0 / sum;
        (0..len).for_each(|j| y[at(j)] *= inv);
    });
}

/// `gx += y ⊙ (g − Σ_lane g ⊙ y)`.
pub fn softmax_axis_backward(gx: &mut [f32], g: &[f32], y: &[f32], outer: usize, len: usize, inner: usize) {
    lanes(outer, len, inner, |start, len, stride| {
        let at = |j: usize| start + j * stride;
        let dot: f32 = (0..len).map(|j| g[at(j)] * y[at(j)]).sum();
        (0..len).for_each(|j| gx[at(j)] += y[at(j)] * (g[at(j)] - dot));
    });
}

/// `y = [a | b]` row by row.
pub fn concat_cols(y: &mut [f32], a: &[f32], b: &[f32], p: usize, q: usize) {
    for (r, row) in y.chunks_exact_mut(p + q).enumerate() {
        row[..p].copy_from_slice(&a[r * p..(r + 1) * p]);
        row[p..].copy_from_slice(&b[r * q..(r + 1) * q]);
    }
}

/// `dst += g[:, offset..offset + width]`.
pub fn add_col_block(dst: &mut [f32], g: &[f32], offset: usize, width: usize, total: usize) {
    for (d, row) in dst.chunks_exact_mut(width).zip(g.chunks_exact(total)) {
        d.iter_mut().zip(&row[offset..offset + width]).for_each(|(d, s)| *d += s);
    }
}

/// `y[r] = table[ids[r]]`.
pub fn gather_rows(y: &mut [f32], table: &[f32], ids: &[u32], width: usize) {
    for (dst, &id) in y.chunks_exact_mut(width).zip(ids) {
        dst.copy_from_slice(&table[id as usize * width..(id as usize + 1) * width]);
    }
}

/// `gtable[ids[r]] += g[r]`, in order of r.
pub fn scatter_add_rows(gtable: &mut [f32], g: &[f32], ids: &[u32], width: usize) {
    for (src, &id) in g.chunks_exact(width).zip(ids) {
        gtable[id as usize * width..(id as usize + 1) * width].iter_mut().zip(src).for_each(|(d, s)| *d += s);
    }
}
