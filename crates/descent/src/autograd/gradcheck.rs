//! Gradients of every op, activation and loss against central finite differences.
//!
//! Forward passes run in f32, so the numeric derivative (L(θ+h) − L(θ−h)) / 2h carries
//! a rounding error of about ε_f32·|L| / h (ε_f32 = 2⁻²³: 4e-5 for |L| = 1, h = 3e-3),
//! and a truncation error of about h²·|L'''| / 6 ≈ 1e-6 for these smooth functions. The
//! tolerance is that estimate, computed for each check from its own loss, times 16, plus
//! 1e-3 relative. Over the 80 checks the worst error measured was 3.5× the estimate with
//! SIMD kernels and 8.2× with the scalar ones (whose sequential sums round more), both
//! on conv2d with |L| ≈ 40; most stay below 1×. So the margin is 1.9× at worst, and a
//! wrong formula, a missing term or a transposed product (an O(1) relative error) is far
//! outside it. It used to be 2e-3 absolute + 1e-2 relative: 50× the
//! estimate for an O(1) loss, loose enough to pass a missing term worth 1e-3. Inputs are
//! kept away from kinks (relu at 0, |e| = δ for Huber, clipping bounds).

use super::{ParamId, ParamStore, Tape, Var};
use crate::tensor::kernels::activation::Activation;
use crate::tensor::kernels::loss::LossKind;
use crate::tensor::{Shape, Targets};

const H: f32 = 3e-3;

/// The allowed |analytic − numeric| where the loss is `loss` and the numeric derivative
/// `numeric` (see the module note).
fn tolerance(loss: f64, numeric: f64) -> f64 {
    const EPS_F32: f64 = f32::EPSILON as f64;
    16.0 * EPS_F32 * loss.abs().max(1.0) / H as f64 + 1e-3 * numeric.abs()
}

pub(super) fn pseudo(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = ((s >> 40) as f32) / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        })
        .collect()
}

/// Checks every parameter's analytic gradient against finite differences of `f`.
pub(super) fn check(store: &mut ParamStore, f: &dyn Fn(&mut Tape, &ParamStore) -> Var, what: &str) {
    let mut tape = Tape::new();
    let root = f(&mut tape, store);
    store.zero_grads();
    tape.backward(root, store).unwrap();
    let analytic = store.grads().to_vec();
    let loss = tape.scalar(root) as f64;
    let ids: Vec<ParamId> = store.ids().filter(|id| store.entry(*id).trainable).collect();
    for id in ids {
        for j in store.entry(id).range() {
            let orig = store.values()[j];
            store.values_mut()[j] = orig + H;
            tape.reset();
            let r = f(&mut tape, store);
            let up = tape.scalar(r) as f64;
            store.values_mut()[j] = orig - H;
            tape.reset();
            let r = f(&mut tape, store);
            let down = tape.scalar(r) as f64;
            store.values_mut()[j] = orig;
            let numeric = (up - down) / (2.0 * H as f64);
            let a = analytic[j] as f64;
            let tol = tolerance(loss, numeric);
            assert!(
                (a - numeric).abs() <= tol,
                "{what}: {} [{}]: analytic {a} vs numeric {numeric} (tolerance {tol:.2e} at |L| {:.3})",
                store.entry(id).name,
                j - store.entry(id).offset,
                loss.abs()
            );
        }
    }
}

fn param(store: &mut ParamStore, name: &str, dims: [usize; 2], vals: Vec<f32>) -> ParamId {
    store.add(name, Shape::matrix(dims[0], dims[1]), |b| b.copy_from_slice(&vals))
}

/// Reduces any output to a scalar whose gradient differs for every output element.
pub(super) fn probe(tape: &mut Tape, store: &ParamStore, y: Var) -> Var {
    let s = tape.shape(y);
    let c = pseudo(99, s.cols(), -1.0, 1.0);
    let cvar = tape.input(Shape::matrix(s.cols(), 1), &c).unwrap();
    let col = tape.matmul(store, y, cvar).unwrap();
    // Mean of (y·c − 0.5)² over rows: a smooth scalar touching every element of y.
    let target = vec![0.5; s.rows()];
    tape.loss(store, col, Targets::Values(&target), LossKind::Mse).unwrap()
}

fn all_activations() -> Vec<Activation> {
    vec![
        Activation::Linear,
        Activation::Relu,
        Activation::LeakyRelu { alpha: 0.2 },
        Activation::Elu { alpha: 1.0 },
        Activation::Gelu { approximate: false },
        Activation::Gelu { approximate: true },
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Softmax,
        Activation::Softplus,
    ]
}

/// Values bounded away from 0 so kinked activations are differentiable at every point.
fn away_from_zero(seed: u64, n: usize) -> Vec<f32> {
    pseudo(seed, n, 0.2, 1.5).into_iter().zip(pseudo(seed + 1, n, 0.0, 1.0)).map(|(v, s)| if s < 0.5 { -v } else { v }).collect()
}

#[test]
fn dense_with_every_activation() {
    for act in all_activations() {
        let mut store = ParamStore::new();
        let x = param(&mut store, "x", [3, 4], pseudo(1, 12, -1.0, 1.0));
        let w = param(&mut store, "w", [4, 5], pseudo(2, 20, -0.7, 0.7));
        let b = param(&mut store, "b", [1, 5], pseudo(3, 5, -0.3, 0.3));
        // Perturbing one weight by H moves a pre-activation by at most H·|x| ≤ H, so the
        // fixed inputs must keep every pre-activation more than 2H from the kink at 0.
        let mut tape = Tape::new();
        let (xv, wv, bv) = (tape.param(&store, x), tape.param(&store, w), tape.param(&store, b));
        let z = tape.dense(&store, xv, wv, Some(bv), Activation::Linear).unwrap();
        assert!(tape.value(&store, z).iter().all(|v| v.abs() > 2.0 * H));
        let f = move |t: &mut Tape, s: &ParamStore| {
            let (xv, wv, bv) = (t.param(s, x), t.param(s, w), t.param(s, b));
            let y = t.dense(s, xv, wv, Some(bv), act).unwrap();
            probe(t, s, y)
        };
        check(&mut store, &f, &format!("dense+{act}"));
    }
}

#[test]
fn activation_layers() {
    for act in all_activations() {
        let mut store = ParamStore::new();
        let x = param(&mut store, "x", [3, 5], away_from_zero(7, 15));
        let f = move |t: &mut Tape, s: &ParamStore| {
            let xv = t.param(s, x);
            let y = t.activation(s, xv, act);
            probe(t, s, y)
        };
        check(&mut store, &f, &format!("activation {act}"));
    }
}

#[test]
fn matmul_and_add() {
    let mut store = ParamStore::new();
    let a = param(&mut store, "a", [3, 4], pseudo(11, 12, -1.0, 1.0));
    let b = param(&mut store, "b", [4, 2], pseudo(12, 8, -1.0, 1.0));
    let c = param(&mut store, "c", [3, 2], pseudo(13, 6, -1.0, 1.0));
    let f = move |t: &mut Tape, s: &ParamStore| {
        let (av, bv, cv) = (t.param(s, a), t.param(s, b), t.param(s, c));
        let ab = t.matmul(s, av, bv).unwrap();
        let y = t.add(s, ab, cv).unwrap();
        probe(t, s, y)
    };
    check(&mut store, &f, "matmul+add");
}

#[test]
fn concatenate_and_residual_add() {
    // y = [a | b·W] + skip, the shape of a functional model's merge: each input of the
    // concatenation gets its own column block of the gradient, and a value used twice
    // (a feeds the concatenation and the skip) sums both paths.
    let mut store = ParamStore::new();
    let a = param(&mut store, "a", [3, 2], pseudo(21, 6, -1.0, 1.0));
    let b = param(&mut store, "b", [3, 4], pseudo(22, 12, -1.0, 1.0));
    let w = param(&mut store, "w", [4, 3], pseudo(23, 12, -1.0, 1.0));
    let skip = param(&mut store, "skip", [3, 3], pseudo(24, 9, -1.0, 1.0));
    let f = move |t: &mut Tape, s: &ParamStore| {
        let (av, bv, wv, sv) = (t.param(s, a), t.param(s, b), t.param(s, w), t.param(s, skip));
        let bw = t.matmul(s, bv, wv).unwrap();
        let cat = t.concat(s, av, bw).unwrap();
        let wide = t.concat(s, sv, av).unwrap();
        let y = t.add(s, cat, wide).unwrap();
        probe(t, s, y)
    };
    check(&mut store, &f, "concat+add");
    let mut t = Tape::new();
    let (av, bv) = (t.param(&store, a), t.param(&store, b));
    let y = t.concat(&store, av, bv).unwrap();
    assert_eq!(t.shape(y).dims(), &[3, 6]);
    assert_eq!(&t.value(&store, y)[..6], &[store.value(a)[0], store.value(a)[1], store.value(b)[0], store.value(b)[1], store.value(b)[2], store.value(b)[3]]);
    let c = param(&mut store, "c", [2, 2], pseudo(25, 4, -1.0, 1.0));
    let mut t = Tape::new();
    let (av, cv) = (t.param(&store, a), t.param(&store, c));
    assert!(t.concat(&store, av, cv).unwrap_err().to_string().contains("concatenate"));
}

#[test]
fn every_loss() {
    let rows = 4;
    let cols = 3;
    let labels: Vec<f32> = vec![0.0, 2.0, 1.0, 2.0];
    let onehot_soft: Vec<f32> = pseudo(21, rows * cols, 0.0, 1.0);
    let binary: Vec<f32> = vec![1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0];
    let probs: Vec<f32> = pseudo(22, rows * cols, 0.1, 0.9);
    let logits: Vec<f32> = pseudo(23, rows * cols, -2.0, 2.0);
    // Regression predictions away from |e| = δ (Huber) and e = 0 (MAE).
    let reg_target: Vec<f32> = pseudo(24, rows * cols, -1.0, 1.0);
    let reg_pred: Vec<f32> =
        reg_target.iter().zip(away_from_zero(25, rows * cols)).map(|(t, d)| t + 2.0 * d).collect();
    let cases: Vec<(LossKind, Vec<f32>, Vec<f32>)> = vec![
        (LossKind::SparseCeLogits { smoothing: 0.0 }, logits.clone(), labels.clone()),
        (LossKind::SparseCeProbs { smoothing: 0.0 }, probs.clone(), labels.clone()),
        (LossKind::SparseCeLogits { smoothing: 0.2 }, logits.clone(), labels.clone()),
        (LossKind::SparseCeProbs { smoothing: 0.2 }, probs.clone(), labels.clone()),
        (LossKind::CeLogits, logits.clone(), onehot_soft.clone()),
        (LossKind::CeProbs, probs.clone(), onehot_soft.clone()),
        (LossKind::BceLogits, logits.clone(), binary.clone()),
        (LossKind::BceProbs, probs.clone(), binary.clone()),
        (LossKind::Mse, reg_pred.clone(), reg_target.clone()),
        (LossKind::Mae, reg_pred.clone(), reg_target.clone()),
        (LossKind::Huber { delta: 1.0 }, reg_pred.clone(), reg_target.clone()),
        (LossKind::Huber { delta: 5.0 }, reg_pred.clone(), reg_target.clone()),
    ];
    for (kind, pred, target) in cases {
        let mut store = ParamStore::new();
        let p = param(&mut store, "pred", [rows, cols], pred);
        let f = move |t: &mut Tape, s: &ParamStore| {
            let pv = t.param(s, p);
            let classes: Vec<u32> = target.iter().map(|v| *v as u32).collect();
            let targets = if kind.sparse_targets() { Targets::Classes(&classes) } else { Targets::Values(&target) };
            t.loss(s, pv, targets, kind).unwrap()
        };
        check(&mut store, &f, &format!("{kind:?}"));
    }
}

#[test]
fn intermediate_gradients_flow_through_chains() {
    // Two stacked dense layers: the first layer's parameters only get a gradient through
    // ∂L/∂x of the second, so this checks that path.
    let mut store = ParamStore::new();
    let x = store.add("x", Shape::matrix(5, 3), |b| b.copy_from_slice(&pseudo(31, 15, -1.0, 1.0)));
    store.set_trainable(x, false);
    let w1 = param(&mut store, "w1", [3, 4], pseudo(32, 12, -0.8, 0.8));
    let b1 = param(&mut store, "b1", [1, 4], pseudo(33, 4, -0.2, 0.2));
    let w2 = param(&mut store, "w2", [4, 3], pseudo(34, 12, -0.8, 0.8));
    let labels = vec![0u32, 1, 2, 1, 0];
    let f = move |t: &mut Tape, s: &ParamStore| {
        let xv = t.param(s, x);
        let (w1v, b1v, w2v) = (t.param(s, w1), t.param(s, b1), t.param(s, w2));
        let h = t.dense(s, xv, w1v, Some(b1v), Activation::Tanh).unwrap();
        let z = t.dense(s, h, w2v, None, Activation::Linear).unwrap();
        t.loss(s, z, Targets::Classes(&labels), LossKind::SparseCeLogits { smoothing: 0.0 }).unwrap()
    };
    check(&mut store, &f, "two-layer chain");
}

#[test]
fn constant_mask_and_noise() {
    // Dropout's y = x ⊙ m and GaussianNoise's y = x + c, with fixed m and c.
    let mut store = ParamStore::new();
    let x = param(&mut store, "x", [3, 4], pseudo(21, 12, -1.0, 1.0));
    let mask = [0.0, 1.25, 1.25, 0.0, 1.25, 1.25, 1.25, 0.0, 1.25, 0.0, 1.25, 1.25];
    let noise = pseudo(22, 12, -0.3, 0.3);
    let f = move |t: &mut Tape, s: &ParamStore| {
        let xv = t.param(s, x);
        let m = t.mul_const(s, xv, |buf| buf.copy_from_slice(&mask));
        let y = t.add_const(s, m, |buf| buf.copy_from_slice(&noise));
        probe(t, s, y)
    };
    check(&mut store, &f, "mul_const+add_const");
}

#[test]
fn layer_and_batch_normalization() {
    let mut store = ParamStore::new();
    let x = param(&mut store, "x", [5, 4], pseudo(31, 20, -2.0, 2.0));
    let gamma = param(&mut store, "gamma", [1, 4], pseudo(32, 4, 0.5, 1.5));
    let beta = param(&mut store, "beta", [1, 4], pseudo(33, 4, -0.5, 0.5));
    let mean = param(&mut store, "mean", [1, 4], pseudo(34, 4, -0.3, 0.3));
    let var = param(&mut store, "var", [1, 4], pseudo(35, 4, 0.5, 2.0));
    let layer = move |t: &mut Tape, s: &ParamStore| {
        let (xv, g, b) = (t.param(s, x), t.param(s, gamma), t.param(s, beta));
        let y = t.layer_norm(s, xv, g, b, 1e-3).unwrap();
        probe(t, s, y)
    };
    check(&mut store, &layer, "layer_norm");
    let batch = move |t: &mut Tape, s: &ParamStore| {
        let (xv, g, b) = (t.param(s, x), t.param(s, gamma), t.param(s, beta));
        let y = t.batch_norm(s, xv, g, b, 1e-3, None).unwrap();
        probe(t, s, y)
    };
    check(&mut store, &batch, "batch_norm (batch statistics)");
    store.set_trainable(mean, false);
    store.set_trainable(var, false);
    let fixed = move |t: &mut Tape, s: &ParamStore| {
        let (xv, g, b) = (t.param(s, x), t.param(s, gamma), t.param(s, beta));
        let (m, v) = (t.param(s, mean), t.param(s, var));
        let y = t.batch_norm(s, xv, g, b, 1e-3, Some((m, v))).unwrap();
        probe(t, s, y)
    };
    check(&mut store, &fixed, "batch_norm (fixed statistics)");
}
