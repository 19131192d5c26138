//! Normalization kernels: layer normalization (over each row's features) and batch
//! normalization (over each feature's batch), forward and backward. Statistics are
//! accumulated in f64 so large rows and batches lose no precision.
//!
//! Both normalize x̂ = (x − μ)·r with r = 1/√(σ² + ε) (biased σ²) and output
//! y = γ ⊙ x̂ + β. With g = ∂L/∂y and ĝ = g ⊙ γ, over the N values one μ covers:
//!   ∂L/∂x = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))
//!   ∂L/∂γ = Σ g ⊙ x̂,   ∂L/∂β = Σ g   (summed over rows)

/// Layer norm of `x` `[rows, n]` into `y`; keeps x̂ in `xhat` and r per row in `inv_std`.
pub fn layer_norm_forward(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, y: &mut [f32], xhat: &mut [f32], inv_std: &mut [f32]) {
    let n = gamma.len();
    for (r, ((xr, yr), hr)) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)).zip(xhat.chunks_exact_mut(n)).enumerate() {
        let mean = xr.iter().map(|v| *v as f64).sum::<f64>() / n as f64;
        let var = xr.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        inv_std[r] = inv as f32;
        for j in 0..n {
            let h = ((xr[j] as f64 - mean) * inv) as f32;
            hr[j] = h;
            yr[j] = gamma[j] * h + beta[j];
        }
    }
}

/// Backward of [`layer_norm_forward`]: adds into `gx` (if given), `ggamma`, `gbeta`.
pub fn layer_norm_backward(g: &[f32], xhat: &[f32], inv_std: &[f32], gamma: &[f32], gx: Option<&mut [f32]>, ggamma: Option<&mut [f32]>, gbeta: Option<&mut [f32]>) {
    let n = gamma.len();
    if let Some(gx) = gx {
        for (r, ((gr, hr), dxr)) in g.chunks_exact(n).zip(xhat.chunks_exact(n)).zip(gx.chunks_exact_mut(n)).enumerate() {
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for j in 0..n {
                let gh = (gr[j] * gamma[j]) as f64;
                s1 += gh;
                s2 += gh * hr[j] as f64;
            }
            let (m1, m2) = (s1 / n as f64, s2 / n as f64);
            let inv = inv_std[r] as f64;
            for j in 0..n {
                let gh = (gr[j] * gamma[j]) as f64;
                dxr[j] += (inv * (gh - m1 - hr[j] as f64 * m2)) as f32;
            }
        }
    }
    affine_param_grads(g, xhat, n, ggamma, gbeta);
}

/// ∂L/∂γ = Σ_rows g ⊙ x̂ and ∂L/∂β = Σ_rows g, added into the given buffers.
fn affine_param_grads(g: &[f32], xhat: &[f32], n: usize, ggamma: Option<&mut [f32]>, gbeta: Option<&mut [f32]>) {
    if let Some(gg) = ggamma {
        for (gr, hr) in g.chunks_exact(n).zip(xhat.chunks_exact(n)) {
            gg.iter_mut().zip(gr.iter().zip(hr)).for_each(|(a, (g, h))| *a += g * h);
        }
    }
    if let Some(gb) = gbeta {
        for gr in g.chunks_exact(n) {
            gb.iter_mut().zip(gr).for_each(|(a, g)| *a += g);
        }
    }
}

/// Batch norm of `x` `[rows, n]` over its rows (training): batch mean and biased
/// variance per feature into `mean`, `var`; x̂ into `xhat`; r into `inv_std`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    y: &mut [f32],
    xhat: &mut [f32],
    mean: &mut [f32],
    var: &mut [f32],
    inv_std: &mut [f32],
) {
    let n = gamma.len();
    // In f64, each column's rows summed in order, a block of columns at a time over
    // contiguous rows (a column-at-a-time walk strided through the whole batch: an image
    // batch norm over [128·26·26, 32] took 30 passes over 11 MB); f64 accumulators on
    // the stack, so nothing allocates per step.
    let count = (x.len() / n.max(1)).max(1) as f64;
    for j0 in (0..n).step_by(COLUMN_BLOCK) {
        let w = COLUMN_BLOCK.min(n - j0);
        let mut sum = [0.0f64; COLUMN_BLOCK];
        block_sums(x, n, j0, &mut sum[..w]);
        let mu: [f64; COLUMN_BLOCK] = std::array::from_fn(|k| sum[k] / count);
        let mut sq = [0.0f64; COLUMN_BLOCK];
        block_centered_squares(x, n, j0, &mu[..w], &mut sq[..w]);
        let var_block: [f64; COLUMN_BLOCK] = std::array::from_fn(|k| sq[k] / count);
        store_stats(&mu[..w], &var_block[..w], eps, &mut mean[j0..j0 + w], &mut var[j0..j0 + w], &mut inv_std[j0..j0 + w]);
    }
    normalize_columns(x, mean, inv_std, gamma, beta, y, xhat);
}

/// Σ over the rows of `x` `[rows, n]` of each column, in row order, into `sums` (n
/// long): the first half of batch statistics taken over several replicas' rows.
pub fn column_sums(x: &[f32], n: usize, sums: &mut [f64]) {
    for j0 in (0..n).step_by(COLUMN_BLOCK) {
        let w = COLUMN_BLOCK.min(n - j0);
        block_sums(x, n, j0, &mut sums[j0..j0 + w]);
    }
}

/// Σ over the rows of `(x − mean)²` per column into `sums` (the second half).
pub fn column_centered_squares(x: &[f32], mean: &[f64], sums: &mut [f64]) {
    let n = mean.len();
    for j0 in (0..n).step_by(COLUMN_BLOCK) {
        let w = COLUMN_BLOCK.min(n - j0);
        block_centered_squares(x, n, j0, &mean[j0..j0 + w], &mut sums[j0..j0 + w]);
    }
}

/// Batch norm of `x` with statistics taken elsewhere (over every replica's rows): the
/// mean and biased variance given in f64, stored with r as [`batch_norm_forward`] does.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_given(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, mu: &[f64], var64: &[f64], y: &mut [f32], xhat: &mut [f32], mean: &mut [f32], var: &mut [f32], inv_std: &mut [f32]) {
    store_stats(mu, var64, eps, mean, var, inv_std);
    normalize_columns(x, mean, inv_std, gamma, beta, y, xhat);
}

/// Columns `j0..j0 + out.len()` of `x` `[rows, n]` summed over the rows, in order.
fn block_sums(x: &[f32], n: usize, j0: usize, out: &mut [f64]) {
    let w = out.len();
    out.iter_mut().for_each(|s| *s = 0.0);
    for xr in x.chunks_exact(n) {
        for (s, v) in out.iter_mut().zip(&xr[j0..j0 + w]) {
            *s += *v as f64;
        }
    }
}

/// Σ over the rows of (x − μ)² for columns `j0..j0 + out.len()`.
fn block_centered_squares(x: &[f32], n: usize, j0: usize, mu: &[f64], out: &mut [f64]) {
    let w = out.len();
    out.iter_mut().for_each(|s| *s = 0.0);
    for xr in x.chunks_exact(n) {
        for ((s, v), m) in out.iter_mut().zip(&xr[j0..j0 + w]).zip(mu) {
            *s += (*v as f64 - m).powi(2);
        }
    }
}

/// The f32 statistics backward and the moving averages read: μ, σ², r = 1/√(σ² + ε).
fn store_stats(mu: &[f64], var64: &[f64], eps: f32, mean: &mut [f32], var: &mut [f32], inv_std: &mut [f32]) {
    for k in 0..mu.len() {
        mean[k] = mu[k] as f32;
        var[k] = var64[k] as f32;
        inv_std[k] = (1.0 / (var64[k] + eps as f64).sqrt()) as f32;
    }
}

/// Columns per block of the batch-norm passes (their f64 accumulators on the stack).
const COLUMN_BLOCK: usize = 64;

/// y = γ ⊙ (x − μ)·r + β per column, keeping x̂.
fn normalize_columns(x: &[f32], mu: &[f32], inv_std: &[f32], gamma: &[f32], beta: &[f32], y: &mut [f32], xhat: &mut [f32]) {
    let n = gamma.len();
    for ((xr, yr), hr) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)).zip(xhat.chunks_exact_mut(n)) {
        for j in 0..n {
            let h = ((xr[j] as f64 - mu[j] as f64) * inv_std[j] as f64) as f32;
            hr[j] = h;
            yr[j] = gamma[j] * h + beta[j];
        }
    }
}

/// Batch norm with fixed statistics (inference): y = γ ⊙ (x − μ)/√(σ² + ε) + β.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_inference(x: &[f32], gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], eps: f32, y: &mut [f32], xhat: &mut [f32], inv_std: &mut [f32]) {
    for (i, v) in var.iter().enumerate() {
        inv_std[i] = (1.0 / (*v as f64 + eps as f64).sqrt()) as f32;
    }
    normalize_columns(x, mean, inv_std, gamma, beta, y, xhat);
}

/// Backward of [`batch_norm_forward`] (statistics from the batch) or, with `fixed`, of
/// [`batch_norm_inference`] (statistics constant: ∂L/∂x = g ⊙ γ · r).
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    g: &[f32],
    xhat: &[f32],
    inv_std: &[f32],
    gamma: &[f32],
    fixed: bool,
    gx: Option<&mut [f32]>,
    ggamma: Option<&mut [f32]>,
    gbeta: Option<&mut [f32]>,
) {
    let n = gamma.len();
    if let Some(gx) = gx {
        if fixed {
            for (gr, dxr) in g.chunks_exact(n).zip(gx.chunks_exact_mut(n)) {
                for j in 0..n {
                    dxr[j] += gr[j] * gamma[j] * inv_std[j];
                }
            }
        } else {
            // Blocks of columns over contiguous rows, as in the forward pass.
            let count = (g.len() / n.max(1)).max(1) as f64;
            for j0 in (0..n).step_by(COLUMN_BLOCK) {
                let w = COLUMN_BLOCK.min(n - j0);
                let (mut s1, mut s2) = ([0.0f64; COLUMN_BLOCK], [0.0f64; COLUMN_BLOCK]);
                block_backward_sums(g, xhat, gamma, j0, &mut s1[..w], &mut s2[..w]);
                let (m1, m2): ([f64; COLUMN_BLOCK], [f64; COLUMN_BLOCK]) = (std::array::from_fn(|k| s1[k] / count), std::array::from_fn(|k| s2[k] / count));
                block_backward_apply(g, xhat, inv_std, gamma, j0, &m1[..w], &m2[..w], gx);
            }
        }
    }
    affine_param_grads(g, xhat, n, ggamma, gbeta);
}

/// Per column, Σ ĝ and Σ ĝ ⊙ x̂ over the rows (ĝ = g ⊙ γ) into `sums` `[2n]`: what
/// backward of a batch norm over several replicas' rows sums over the replicas.
pub fn batch_norm_backward_sums(g: &[f32], xhat: &[f32], gamma: &[f32], sums: &mut [f64]) {
    let n = gamma.len();
    let (s1, s2) = sums.split_at_mut(n);
    for j0 in (0..n).step_by(COLUMN_BLOCK) {
        let w = COLUMN_BLOCK.min(n - j0);
        block_backward_sums(g, xhat, gamma, j0, &mut s1[j0..j0 + w], &mut s2[j0..j0 + w]);
    }
}

/// Backward of a batch norm whose statistics covered other rows too: `means` `[2n]`
/// holds, per column, the mean(ĝ) and mean(ĝ ⊙ x̂) to subtract (taken over every
/// replica's rows); adds into `gx`, `ggamma`, `gbeta` as [`batch_norm_backward`].
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward_given(g: &[f32], xhat: &[f32], inv_std: &[f32], gamma: &[f32], means: &[f64], gx: Option<&mut [f32]>, ggamma: Option<&mut [f32]>, gbeta: Option<&mut [f32]>) {
    let n = gamma.len();
    if let Some(gx) = gx {
        let (m1, m2) = means.split_at(n);
        for j0 in (0..n).step_by(COLUMN_BLOCK) {
            let w = COLUMN_BLOCK.min(n - j0);
            block_backward_apply(g, xhat, inv_std, gamma, j0, &m1[j0..j0 + w], &m2[j0..j0 + w], gx);
        }
    }
    affine_param_grads(g, xhat, n, ggamma, gbeta);
}

/// Σ ĝ into `s1` and Σ ĝ ⊙ x̂ into `s2` for columns `j0..j0 + s1.len()`.
fn block_backward_sums(g: &[f32], xhat: &[f32], gamma: &[f32], j0: usize, s1: &mut [f64], s2: &mut [f64]) {
    let n = gamma.len();
    s1.iter_mut().chain(s2.iter_mut()).for_each(|s| *s = 0.0);
    for (gr, hr) in g.chunks_exact(n).zip(xhat.chunks_exact(n)) {
        for k in 0..s1.len() {
            let gh = (gr[j0 + k] * gamma[j0 + k]) as f64;
            s1[k] += gh;
            s2[k] += gh * hr[j0 + k] as f64;
        }
    }
}

/// ∂L/∂x += r · (ĝ − m1 − x̂ · m2) for columns `j0..j0 + m1.len()`.
#[allow(clippy::too_many_arguments)]
fn block_backward_apply(g: &[f32], xhat: &[f32], inv_std: &[f32], gamma: &[f32], j0: usize, m1: &[f64], m2: &[f64], gx: &mut [f32]) {
    let n = gamma.len();
    for ((gr, hr), dxr) in g.chunks_exact(n).zip(xhat.chunks_exact(n)).zip(gx.chunks_exact_mut(n)) {
        for k in 0..m1.len() {
            let j = j0 + k;
            let gh = (gr[j] * gamma[j]) as f64;
            dxr[j] += (inv_std[j] as f64 * (gh - m1[k] - hr[j] as f64 * m2[k])) as f32;
        }
    }
}
