//! What a trained model relies on: gradient saliency, integrated gradients and
//! permutation feature importance.
//!
//! - **Saliency**: |∂F/∂x|, where F is the model's output for the explained class.
//! - **Integrated gradients** (Sundararajan et al., 2017): (x − x′) ⊙ ∫₀¹ ∂F/∂x at
//!   x′ + α(x − x′) dα, by the midpoint rule over `steps` points of the straight path
//!   from the baseline x′ (zeros by default). Attributions add up to F(x) − F(x′) up to
//!   the integration error, reported as the completeness gap.
//! - **Permutation importance** (scikit-learn's `permutation_importance`): the score
//!   on the data, then for each feature and each of `n_repeats` shuffles of that
//!   feature's column, the score's drop; mean and (population) standard deviation.

use rand::seq::SliceRandom;

use super::Model;
use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// The model's outputs for `x` (rows of one sample each) at `targets` (one output
/// index per row), and the gradient of their sum with respect to `x`: row r of the
/// gradient is ∂F_{targets[r]}(x_r)/∂x_r. Inference mode (no dropout); the model's
/// parameter gradients are left zeroed.
pub fn input_gradients(model: &mut Model, x: &[f32], rows: usize, targets: &[usize]) -> Result<(Vec<f32>, Vec<f32>)> {
    let net = &mut model.network;
    if rows == 0 || x.len() % rows != 0 || targets.len() != rows {
        return Err(Error::shape("input_gradients", format!("{rows} rows and {rows} targets"), format!("{} values, {} targets", x.len(), targets.len())));
    }
    let features = x.len() / rows;
    let mut tape = Tape::new();
    let input = tape.input_requiring_grad(net.input_batch_shape(0, rows, features), x)?;
    let out = net.forward(&mut tape, input, false)?;
    let units = tape.shape(out).numel() / rows;
    if let Some(&bad) = targets.iter().find(|&&t| t >= units) {
        return Err(Error::Config(format!("explained output {bad} is out of range: the model has {units} outputs")));
    }
    let picked = tape.mul_const(&net.store, out, |m| {
        m.fill(0.0);
        targets.iter().enumerate().for_each(|(r, &t)| m[r * units + t] = 1.0);
    });
    let flat = tape.reshape(&net.store, picked, &[rows * units])?;
    let total = tape.sum_axis(&net.store, flat, 0)?;
    tape.backward(total, &mut net.store)?;
    net.store.zero_grads();
    let values = tape.value(&net.store, out);
    let outputs = targets.iter().enumerate().map(|(r, &t)| values[r * units + t]).collect();
    Ok((tape.grad(input).to_vec(), outputs))
}

/// Integrated gradients of one sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribution {
    pub target: usize,
    /// One per input value.
    pub attributions: Vec<f32>,
    /// F(x) and F(baseline) for the target output.
    pub output: f32,
    pub baseline_output: f32,
    /// Σ attributions − (F(x) − F(baseline)): the integration error.
    pub completeness_gap: f32,
}

/// Integrated gradients of `sample` for output `target`, from `baseline` (zeros when
/// None), by the midpoint rule over `steps` points (one batch).
pub fn integrated_gradients(model: &mut Model, sample: &[f32], baseline: Option<&[f32]>, target: usize, steps: usize) -> Result<Attribution> {
    let n = sample.len();
    let zeros = vec![0.0f32; n];
    let base = baseline.unwrap_or(&zeros);
    if base.len() != n || steps == 0 {
        return Err(Error::shape("integrated_gradients", format!("a baseline of {n} values and steps ≥ 1"), format!("{} values, {steps} steps", base.len())));
    }
    // Rows 0..steps: the path's midpoints; then the sample itself and the baseline.
    let mut path = Vec::with_capacity((steps + 2) * n);
    for i in 0..steps {
        let alpha = ((i as f64 + 0.5) / steps as f64) as f32;
        path.extend(sample.iter().zip(base).map(|(&x, &b)| b + alpha * (x - b)));
    }
    path.extend_from_slice(sample);
    path.extend_from_slice(base);
    let (grads, outputs) = input_gradients(model, &path, steps + 2, &vec![target; steps + 2])?;
    let mut mean = vec![0.0f64; n];
    for row in grads[..steps * n].chunks_exact(n) {
        mean.iter_mut().zip(row).for_each(|(m, &g)| *m += g as f64 / steps as f64);
    }
    let attributions: Vec<f32> = mean.iter().zip(sample.iter().zip(base)).map(|(&g, (&x, &b))| (g * (x - b) as f64) as f32).collect();
    let (output, baseline_output) = (outputs[steps], outputs[steps + 1]);
    let sum: f64 = attributions.iter().map(|&a| a as f64).sum();
    Ok(Attribution { target, attributions, output, baseline_output, completeness_gap: (sum - (output - baseline_output) as f64) as f32 })
}

/// |∂F_target/∂x| for each sample (row) of `x`.
pub fn saliency(model: &mut Model, x: &Tensor, targets: &[usize]) -> Result<Vec<f32>> {
    let (g, _) = input_gradients(model, x.data(), x.rows(), targets)?;
    Ok(g.into_iter().map(f32::abs).collect())
}

/// One feature's permutation importance.
#[derive(Clone, Debug, PartialEq)]
pub struct Importance {
    pub feature: usize,
    pub mean: f64,
    pub std: f64,
    /// The score drop of each repeat.
    pub drops: Vec<f64>,
}

/// Permutation importance on (`x`, `y`): `score` is the model's first metric (higher is
/// better, e.g. accuracy) when it has one, else the negated loss. Features are columns
/// of the flattened samples; each repeat shuffles one column with a seeded generator.
/// Returns (the unpermuted score, the metric's name, importances in feature order).
pub fn permutation_importance(model: &mut Model, x: &Tensor, y: &Tensor, n_repeats: usize, seed: u64) -> Result<(f64, String, Vec<Importance>)> {
    let mut rng = crate::rng::derive(seed, 0x9E12_u64);
    permutation_importance_with(model, x, y, n_repeats, &mut |_, _, order| order.shuffle(&mut rng))
}

/// [`permutation_importance`] with the shuffles given: `permute(feature, repeat, order)`
/// leaves in `order[r]` the original row whose value row `r` gets (it holds the previous
/// repeat's order, the identity at first) — how a test replays scikit-learn's shuffles.
pub fn permutation_importance_with(
    model: &mut Model,
    x: &Tensor,
    y: &Tensor,
    n_repeats: usize,
    permute: &mut dyn FnMut(usize, usize, &mut [usize]),
) -> Result<(f64, String, Vec<Importance>)> {
    let batch = 1024;
    let score_of = |model: &mut Model, x: &Tensor| -> Result<(f64, String)> {
        let logs = model.evaluate(x, y, batch)?;
        let metric = logs.iter().find(|(k, _)| *k != "loss" && !k.ends_with("_loss")).map(|(k, v)| (v, k.to_string()));
        Ok(match metric {
            Some((v, k)) => (v, k),
            None => (-logs.get("loss").unwrap_or(f64::NAN), "-loss".to_string()),
        })
    };
    let (base, name) = score_of(model, x)?;
    let (rows, features) = (x.rows(), x.row_len());
    let mut permuted = x.clone();
    let mut order: Vec<usize> = (0..rows).collect();
    let mut out = Vec::with_capacity(features);
    for j in 0..features {
        let column: Vec<f32> = (0..rows).map(|r| x.data()[r * features + j]).collect();
        let mut drops = Vec::with_capacity(n_repeats);
        order.iter_mut().enumerate().for_each(|(r, o)| *o = r);
        for repeat in 0..n_repeats {
            permute(j, repeat, &mut order);
            let data = permuted.data_mut();
            order.iter().enumerate().for_each(|(r, &from)| data[r * features + j] = column[from]);
            drops.push(base - score_of(model, &permuted)?.0);
        }
        let data = permuted.data_mut();
        column.iter().enumerate().for_each(|(r, &v)| data[r * features + j] = v);
        let mean = drops.iter().sum::<f64>() / drops.len().max(1) as f64;
        let std = (drops.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / drops.len().max(1) as f64).sqrt();
        out.push(Importance { feature: j, mean, std, drops });
    }
    Ok((base, name, out))
}

#[cfg(test)]
#[path = "explain_tests.rs"]
mod tests;
