//! Loss kernels. Each returns the sum over the batch of the per-sample losses and, when
//! `grad` is given, writes `scale · ∂(Σ loss)/∂pred` into it in the same pass (the trainer
//! passes `scale = 1/batch` for Keras's "sum over batch size" reduction). Per-sample
//! losses that cover several outputs (binary CE, MSE, MAE, Huber) average over the last
//! axis as Keras does.

use super::simd::fast_exp;

/// Keras's fuzz factor for clipping probabilities away from 0 and 1.
pub const EPSILON: f32 = 1e-7;

/// log Σ exp(row), stably; also leaves `exp(row − max)` in `scratch` if given.
#[inline(always)]
fn log_sum_exp(row: &[f32], mut scratch: Option<&mut [f32]>) -> (f32, f32) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    let mut sum = 0.0f32;
    for (j, v) in row.iter().enumerate() {
        let e = fast_exp(*v - max);
        if let Some(s) = scratch.as_deref_mut() {
            s[j] = e;
        }
        sum += e;
    }
    (max + sum.ln(), sum)
}

/// −log softmax(z)[y] per row; ∂/∂z = softmax(z) − onehot(y).
pub fn sparse_ce_logits(pred: &[f32], labels: &[u32], cols: usize, mut grad: Option<&mut [f32]>, scale: f32) -> f64 {
    let mut total = 0.0f64;
    for (i, (row, label)) in pred.chunks_exact(cols).zip(labels).enumerate() {
        let y = *label as usize;
        let g = grad.as_deref_mut().map(|g| &mut g[i * cols..(i + 1) * cols]);
        let has_grad = g.is_some();
        let (lse, sum) = log_sum_exp(row, g);
        total += (lse - row[y]) as f64;
        if has_grad {
            let g = &mut grad.as_deref_mut().unwrap()[i * cols..(i + 1) * cols];
            let inv = scale / sum;
            g.iter_mut().for_each(|v| *v *= inv);
            g[y] -= scale;
        }
    }
    total
}

/// −Σ t·log softmax(z) per row; ∂/∂z = (Σt)·softmax(z) − t.
pub fn categorical_ce_logits(pred: &[f32], target: &[f32], cols: usize, mut grad: Option<&mut [f32]>, scale: f32) -> f64 {
    let mut total = 0.0f64;
    for (i, (row, t)) in pred.chunks_exact(cols).zip(target.chunks_exact(cols)).enumerate() {
        let g = grad.as_deref_mut().map(|g| &mut g[i * cols..(i + 1) * cols]);
        let has_grad = g.is_some();
        let (lse, sum) = log_sum_exp(row, g);
        let t_sum: f32 = t.iter().sum();
        let tz: f32 = t.iter().zip(row).map(|(t, z)| t * z).sum();
        total += (t_sum * lse - tz) as f64;
        if has_grad {
            let g = &mut grad.as_deref_mut().unwrap()[i * cols..(i + 1) * cols];
            let inv = t_sum / sum;
            g.iter_mut().zip(t).for_each(|(v, t)| *v = scale * (*v * inv - t));
        }
    }
    total
}

/// Keras's cross-entropy on probabilities for one row: q = p / Σp, clipped to
/// [ε, 1−ε], loss −Σ t·log q. ∂/∂p_k = −t_k·[q_k unclipped]/p_k + (Σ_j t_j·[q_j unclipped]) / Σp.
/// The target is given per class (`t(k)`), so one-hot and smoothed targets need no buffer.
#[inline(always)]
fn ce_probs_row(p: &[f32], t: impl Fn(usize) -> f32, grad: Option<&mut [f32]>, scale: f32) -> f32 {
    let s: f32 = p.iter().sum();
    let inside = |k: usize| {
        let q = p[k] / s;
        q > EPSILON && q < 1.0 - EPSILON
    };
    let mut loss = 0.0f32;
    let mut t_in = 0.0f32;
    for (k, pk) in p.iter().enumerate() {
        loss -= t(k) * (pk / s).clamp(EPSILON, 1.0 - EPSILON).ln();
        if inside(k) {
            t_in += t(k);
        }
    }
    if let Some(g) = grad {
        for k in 0..p.len() {
            let own = if inside(k) { -t(k) / p[k] } else { 0.0 };
            g[k] = scale * (own + t_in / s);
        }
    }
    loss
}

/// Cross-entropy of probability rows against target rows (see [`ce_probs_row`]).
pub fn categorical_ce_probs(pred: &[f32], target: &[f32], cols: usize, mut grad: Option<&mut [f32]>, scale: f32) -> f64 {
    let mut total = 0.0f64;
    for (i, (p, t)) in pred.chunks_exact(cols).zip(target.chunks_exact(cols)).enumerate() {
        let g = grad.as_deref_mut().map(|g| &mut g[i * cols..(i + 1) * cols]);
        total += ce_probs_row(p, |k| t[k], g, scale) as f64;
    }
    total
}

/// Sparse version of [`categorical_ce_probs`]: the target is one-hot at `labels[i]`.
pub fn sparse_ce_probs(pred: &[f32], labels: &[u32], cols: usize, mut grad: Option<&mut [f32]>, scale: f32) -> f64 {
    let mut total = 0.0f64;
    for (i, (p, label)) in pred.chunks_exact(cols).zip(labels).enumerate() {
        let y = *label as usize;
        let s: f32 = p.iter().sum();
        let q = p[y] / s;
        let inside = q > EPSILON && q < 1.0 - EPSILON;
        total -= q.clamp(EPSILON, 1.0 - EPSILON).ln() as f64;
        if let Some(g) = grad.as_deref_mut() {
            let g = &mut g[i * cols..(i + 1) * cols];
            let common = if inside { scale / s } else { 0.0 };
            g.fill(common);
            if inside {
                g[y] -= scale / p[y];
            }
        }
    }
    total
}

/// Sparse cross-entropy on logits with label smoothing s over K classes: target
/// q = (1 − s)·onehot(y) + s/K; loss = lse(z) − Σ q·z; ∂/∂z = softmax(z) − q.
pub fn sparse_ce_logits_smoothed(pred: &[f32], labels: &[u32], cols: usize, mut grad: Option<&mut [f32]>, scale: f32, s: f32) -> f64 {
    let mut total = 0.0f64;
    let off = s / cols as f32;
    for (i, (row, label)) in pred.chunks_exact(cols).zip(labels).enumerate() {
        let y = *label as usize;
        let g = grad.as_deref_mut().map(|g| &mut g[i * cols..(i + 1) * cols]);
        let has_grad = g.is_some();
        let (lse, sum) = log_sum_exp(row, g);
        let qz = (1.0 - s) * row[y] + off * row.iter().sum::<f32>();
        total += (lse - qz) as f64;
        if has_grad {
            let g = &mut grad.as_deref_mut().unwrap()[i * cols..(i + 1) * cols];
            let inv = scale / sum;
            g.iter_mut().for_each(|v| *v = *v * inv - scale * off);
            g[y] -= scale * (1.0 - s);
        }
    }
    total
}

/// Sparse cross-entropy on probabilities with label smoothing: [`ce_probs_row`] with
/// the target q = (1 − s)·onehot(y) + s/K.
pub fn sparse_ce_probs_smoothed(pred: &[f32], labels: &[u32], cols: usize, mut grad: Option<&mut [f32]>, scale: f32, s: f32) -> f64 {
    let mut total = 0.0f64;
    let off = s / cols as f32;
    for (i, (p, label)) in pred.chunks_exact(cols).zip(labels).enumerate() {
        let y = *label as usize;
        let g = grad.as_deref_mut().map(|g| &mut g[i * cols..(i + 1) * cols]);
        total += ce_probs_row(p, |k| if k == y { 1.0 - s + off } else { off }, g, scale) as f64;
    }
    total
}

/// Applies a per-element loss `f(pred, target) -> (loss, ∂loss/∂pred)`, averaging over
/// the last axis per sample; shared by the binary CE, MSE, MAE and Huber kernels.
#[inline(always)]
fn elementwise_mean_loss(
    pred: &[f32],
    target: &[f32],
    cols: usize,
    mut grad: Option<&mut [f32]>,
    scale: f32,
    f: impl Fn(f32, f32) -> (f32, f32),
) -> f64 {
    let inv_cols = 1.0 / cols as f32;
    let mut total = 0.0f64;
    for (i, (p, t)) in pred.chunks_exact(cols).zip(target.chunks_exact(cols)).enumerate() {
        let mut row = 0.0f32;
        match grad.as_deref_mut() {
            Some(g) => {
                for ((gk, pk), tk) in g[i * cols..(i + 1) * cols].iter_mut().zip(p).zip(t) {
                    let (l, d) = f(*pk, *tk);
                    row += l;
                    *gk = scale * inv_cols * d;
                }
            }
            None => p.iter().zip(t).for_each(|(pk, tk)| row += f(*pk, *tk).0),
        }
        total += (row * inv_cols) as f64;
    }
    total
}

/// max(z,0) − z·t + log(1 + e^(−|z|)); ∂/∂z = σ(z) − t.
pub fn binary_ce_logits(pred: &[f32], target: &[f32], cols: usize, grad: Option<&mut [f32]>, scale: f32) -> f64 {
    elementwise_mean_loss(pred, target, cols, grad, scale, |z, t| {
        let loss = z.max(0.0) - z * t + (-z.abs()).exp().ln_1p();
        let sig = 1.0 / (1.0 + fast_exp(-z));
        (loss, sig - t)
    })
}

/// −(t·log p + (1−t)·log(1−p)) with p clipped to [ε, 1−ε] (Keras); zero gradient where clipped.
pub fn binary_ce_probs(pred: &[f32], target: &[f32], cols: usize, grad: Option<&mut [f32]>, scale: f32) -> f64 {
    elementwise_mean_loss(pred, target, cols, grad, scale, |p, t| {
        let pc = p.clamp(EPSILON, 1.0 - EPSILON);
        let loss = -(t * pc.ln() + (1.0 - t) * (1.0 - pc).ln());
        let d = if p > EPSILON && p < 1.0 - EPSILON { -t / pc + (1.0 - t) / (1.0 - pc) } else { 0.0 };
        (loss, d)
    })
}

/// (p − t)²; ∂/∂p = 2(p − t).
pub fn mean_squared_error(pred: &[f32], target: &[f32], cols: usize, grad: Option<&mut [f32]>, scale: f32) -> f64 {
    elementwise_mean_loss(pred, target, cols, grad, scale, |p, t| {
        let e = p - t;
        (e * e, 2.0 * e)
    })
}

/// |p − t|; ∂/∂p = sign(p − t) (0 at 0).
pub fn mean_absolute_error(pred: &[f32], target: &[f32], cols: usize, grad: Option<&mut [f32]>, scale: f32) -> f64 {
    elementwise_mean_loss(pred, target, cols, grad, scale, |p, t| {
        let e = p - t;
        let d = if e > 0.0 { 1.0 } else if e < 0.0 { -1.0 } else { 0.0 };
        (e.abs(), d)
    })
}

/// ½e² for |e| ≤ δ, else δ(|e| − ½δ); ∂/∂p = clamp(e, −δ, δ).
pub fn huber(pred: &[f32], target: &[f32], cols: usize, grad: Option<&mut [f32]>, scale: f32, delta: f32) -> f64 {
    elementwise_mean_loss(pred, target, cols, grad, scale, |p, t| {
        let e = p - t;
        let a = e.abs();
        let loss = if a <= delta { 0.5 * e * e } else { delta * (a - 0.5 * delta) };
        (loss, e.clamp(-delta, delta))
    })
}

/// The loss math a tape node computes; `nn::Loss` is the user-facing configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossKind {
    /// With label smoothing: the target is (1 − s)·onehot + s/K.
    SparseCeLogits { smoothing: f32 },
    SparseCeProbs { smoothing: f32 },
    CeLogits,
    CeProbs,
    BceLogits,
    BceProbs,
    Mse,
    Mae,
    Huber { delta: f32 },
}

impl LossKind {
    /// Whether targets are class indices (one per row) rather than a tensor like `pred`.
    pub fn sparse_targets(&self) -> bool {
        matches!(self, LossKind::SparseCeLogits { .. } | LossKind::SparseCeProbs { .. })
    }

    /// How a prediction of `dims` splits into rows (each one term of the mean) of `cols`
    /// values: the cross-entropies over classes compare along the last axis, so a
    /// sequence's `[batch, T, classes]` is `batch·T` rows (Keras's reduction: the mean
    /// over every token); the other kinds take one row per sample.
    pub fn rows_and_cols(&self, dims: &[usize]) -> (usize, usize) {
        let numel: usize = dims.iter().product();
        let per_class = matches!(self, LossKind::SparseCeLogits { .. } | LossKind::SparseCeProbs { .. } | LossKind::CeLogits | LossKind::CeProbs);
        match dims {
            [] => (1, 1),
            [rows] => (*rows, 1),
            [.., last] if per_class && dims.len() > 2 => (numel / (*last).max(1), *last),
            [rows, ..] => (*rows, numel / (*rows).max(1)),
        }
    }

    /// Σ per-sample loss over the batch against `target` (shaped like `pred`) or, for
    /// the sparse kinds, `labels` (one class per row); fills `grad` with
    /// `scale · ∂/∂pred` when given.
    pub fn compute(&self, pred: &[f32], target: &[f32], labels: &[u32], cols: usize, grad: Option<&mut [f32]>, scale: f32) -> f64 {
        match *self {
            LossKind::SparseCeLogits { smoothing: 0.0 } => sparse_ce_logits(pred, labels, cols, grad, scale),
            LossKind::SparseCeLogits { smoothing } => sparse_ce_logits_smoothed(pred, labels, cols, grad, scale, smoothing),
            LossKind::SparseCeProbs { smoothing: 0.0 } => sparse_ce_probs(pred, labels, cols, grad, scale),
            LossKind::SparseCeProbs { smoothing } => sparse_ce_probs_smoothed(pred, labels, cols, grad, scale, smoothing),
            LossKind::CeLogits => categorical_ce_logits(pred, target, cols, grad, scale),
            LossKind::CeProbs => categorical_ce_probs(pred, target, cols, grad, scale),
            LossKind::BceLogits => binary_ce_logits(pred, target, cols, grad, scale),
            LossKind::BceProbs => binary_ce_probs(pred, target, cols, grad, scale),
            LossKind::Mse => mean_squared_error(pred, target, cols, grad, scale),
            LossKind::Mae => mean_absolute_error(pred, target, cols, grad, scale),
            LossKind::Huber { delta } => huber(pred, target, cols, grad, scale, delta),
        }
    }

    /// [`LossKind::compute`] with per-row weights (empty: unweighted): Σ wᵢ·lossᵢ, each
    /// row's gradient scaled by its weight.
    #[allow(clippy::too_many_arguments)]
    pub fn compute_weighted(&self, pred: &[f32], target: &[f32], labels: &[u32], weights: &[f32], cols: usize, mut grad: Option<&mut [f32]>, scale: f32) -> f64 {
        if weights.is_empty() {
            return self.compute(pred, target, labels, cols, grad, scale);
        }
        let sparse = self.sparse_targets();
        let mut total = 0.0;
        for (r, w) in weights.iter().enumerate() {
            let g = grad.as_deref_mut().map(|g| &mut g[r * cols..(r + 1) * cols]);
            let (t, l) = if sparse { (&[][..], &labels[r..r + 1]) } else { (&target[r * cols..(r + 1) * cols], &[][..]) };
            total += *w as f64 * self.compute(&pred[r * cols..(r + 1) * cols], t, l, cols, g, scale * w);
        }
        total
    }
}
