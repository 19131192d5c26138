//! Convolution, pooling and padding: gradients against central finite differences (the
//! check of `gradcheck.rs`), and forward values against the definitions, written out
//! directly (no im2col) in f64.

use super::gradcheck::{check, probe, pseudo};
use super::{ParamId, ParamStore, Tape, Var};
use crate::tensor::kernels::activation::Activation;
use crate::tensor::{Padding, PoolKind, Shape, WindowArgs};

fn param(store: &mut ParamStore, name: &str, dims: &[usize], seed: u64) -> ParamId {
    let n = dims.iter().product();
    let vals = pseudo(seed, n, -1.0, 1.0);
    store.add(name, Shape::new(dims).unwrap(), |b| b.copy_from_slice(&vals))
}

/// Distinct values at least 0.02 apart, shuffled: no max-pooling window holds two
/// values closer than the finite-difference step could swap.
fn ladder(store: &mut ParamStore, name: &str, dims: &[usize], seed: u64) -> ParamId {
    let n: usize = dims.iter().product();
    let keys = pseudo(seed, n, 0.0, 1.0);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    let mut vals = vec![0.0; n];
    for (rank, &i) in order.iter().enumerate() {
        vals[i] = -1.0 + 0.02 * rank as f32;
    }
    store.add(name, Shape::new(dims).unwrap(), |b| b.copy_from_slice(&vals))
}

fn probe_nd(t: &mut Tape, s: &ParamStore, y: Var) -> Var {
    let n = t.shape(y).numel();
    let flat = t.reshape(s, y, &[1, n]).unwrap();
    probe(t, s, flat)
}

fn args(strides: [usize; 2], dilation: [usize; 2], padding: Padding) -> WindowArgs {
    WindowArgs { size: [0, 0], strides, dilation, padding }
}

/// The definition: y[n, oy, ox, f] = b[f] + Σ_{ky, kx, ci} x[n, iy, ix, g·cg + ci] · w[ky, kx, ci, f]
/// over taps inside the input, g = f / (filters / groups).
#[allow(clippy::too_many_arguments)]
fn direct_conv(x: &[f32], xd: [usize; 4], w: &[f32], wd: [usize; 4], b: &[f32], a: WindowArgs, groups: usize, out: [usize; 2], pad: [usize; 2]) -> Vec<f64> {
    let [n, h, wi, c] = xd;
    let [kh, kw, cg, f] = wd;
    let fg = f / groups;
    let mut y = vec![0.0f64; n * out[0] * out[1] * f];
    for s in 0..n {
        for oy in 0..out[0] {
            for ox in 0..out[1] {
                for fo in 0..f {
                    let g = fo / fg;
                    let mut acc = b.get(fo).copied().unwrap_or(0.0) as f64;
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * a.strides[0] + ky * a.dilation[0]) as isize - pad[0] as isize;
                            let ix = (ox * a.strides[1] + kx * a.dilation[1]) as isize - pad[1] as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= wi as isize {
                                continue;
                            }
                            for ci in 0..cg {
                                let xv = x[((s * h + iy as usize) * wi + ix as usize) * c + g * cg + ci] as f64;
                                acc += xv * w[((ky * kw + kx) * cg + ci) * f + fo] as f64;
                            }
                        }
                    }
                    y[((s * out[0] + oy) * out[1] + ox) * f + fo] = acc;
                }
            }
        }
    }
    y
}

/// (x dims, kernel dims, args, groups, activation) of the cases below.
type Case = ([usize; 4], [usize; 4], WindowArgs, usize, Activation);

fn conv_cases() -> Vec<Case> {
    vec![
        ([2, 5, 6, 3], [3, 3, 3, 4], args([1, 1], [1, 1], Padding::Valid), 1, Activation::Tanh),
        ([2, 6, 5, 4], [3, 2, 2, 6], args([2, 1], [1, 2], Padding::Same), 2, Activation::Linear),
        ([1, 7, 7, 2], [3, 3, 2, 3], args([2, 2], [2, 2], Padding::Same), 1, Activation::Gelu { approximate: false }),
        ([2, 4, 4, 3], [1, 1, 3, 5], args([1, 1], [1, 1], Padding::Valid), 1, Activation::Linear),
        ([2, 5, 5, 4], [3, 3, 1, 8], args([1, 1], [1, 1], Padding::Same), 4, Activation::Linear),
    ]
}

#[test]
fn conv2d_gradients_match_finite_differences() {
    for (k, (xd, wd, a, groups, act)) in conv_cases().into_iter().enumerate() {
        let mut store = ParamStore::new();
        let x = param(&mut store, "x", &xd, 10 + k as u64);
        let w = param(&mut store, "w", &wd, 20 + k as u64);
        let b = param(&mut store, "b", &[wd[3]], 30 + k as u64);
        let f = move |t: &mut Tape, s: &ParamStore| {
            let (xv, wv, bv) = (t.param(s, x), t.param(s, w), t.param(s, b));
            let y = t.conv2d(s, xv, wv, Some(bv), a, groups, act).unwrap();
            probe_nd(t, s, y)
        };
        check(&mut store, &f, &format!("conv2d case {k} ({a:?}, groups {groups}, {act:?})"));
    }
}

#[test]
fn conv2d_forward_matches_the_definition() {
    for (k, (xd, wd, a, groups, _)) in conv_cases().into_iter().enumerate() {
        let mut store = ParamStore::new();
        let x = param(&mut store, "x", &xd, 10 + k as u64);
        let w = param(&mut store, "w", &wd, 20 + k as u64);
        let b = param(&mut store, "b", &[wd[3]], 30 + k as u64);
        let mut t = Tape::new();
        let (xv, wv, bv) = (t.param(&store, x), t.param(&store, w), t.param(&store, b));
        let y = t.conv2d(&store, xv, wv, Some(bv), a, groups, Activation::Linear).unwrap();
        let dims = t.shape(y).dims().to_vec();
        let win = WindowArgs { size: [wd[0], wd[1]], ..a }.window("test", xd[0], xd[3], (xd[1], xd[2])).unwrap();
        let want = direct_conv(store.value(x), xd, store.value(w), wd, store.value(b), a, groups, [dims[1], dims[2]], [win.rows.pad_before, win.cols.pad_before]);
        let got = t.value(&store, y);
        assert_eq!(got.len(), want.len(), "case {k}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((*g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()), "case {k} [{i}]: {g} vs {w}");
        }
    }
}

#[test]
fn same_padding_keeps_the_size_over_the_stride_and_pads_after_when_odd() {
    let mut store = ParamStore::new();
    let x = param(&mut store, "x", &[1, 7, 8, 1], 1);
    let w = param(&mut store, "w", &[2, 3, 1, 1], 2);
    let mut t = Tape::new();
    let (xv, wv) = (t.param(&store, x), t.param(&store, w));
    let y = t.conv2d(&store, xv, wv, None, args([2, 3], [1, 1], Padding::Same), 1, Activation::Linear).unwrap();
    assert_eq!(t.shape(y).dims(), &[1, 4, 3, 1]);
    // Rows: out 4, total pad (4−1)·2 + 2 − 7 = 1 → 0 before (TensorFlow's rule).
    let win = WindowArgs { size: [2, 3], ..args([2, 3], [1, 1], Padding::Same) }.window("t", 1, 1, (7, 8)).unwrap();
    assert_eq!((win.rows.pad_before, win.cols.pad_before), (0, 0));
    let win = WindowArgs { size: [3, 3], ..args([1, 1], [1, 1], Padding::Same) }.window("t", 1, 1, (7, 8)).unwrap();
    assert_eq!((win.rows.pad_before, win.rows.out), (1, 7));
}

#[test]
fn conv1d_on_sequences_with_causal_padding() {
    let mut store = ParamStore::new();
    let x = param(&mut store, "x", &[2, 7, 3], 5);
    let w = param(&mut store, "w", &[3, 3, 4], 6);
    let b = param(&mut store, "b", &[4], 7);
    let a = args([1, 1], [1, 2], Padding::Causal);
    let f = move |t: &mut Tape, s: &ParamStore| {
        let (xv, wv, bv) = (t.param(s, x), t.param(s, w), t.param(s, b));
        let y = t.conv2d(s, xv, wv, Some(bv), a, 1, Activation::Tanh).unwrap();
        probe_nd(t, s, y)
    };
    check(&mut store, &f, "conv1d causal");
    let mut t = Tape::new();
    let (xv, wv) = (t.param(&store, x), t.param(&store, w));
    let y = t.conv2d(&store, xv, wv, None, a, 1, Activation::Linear).unwrap();
    assert_eq!(t.shape(y).dims(), &[2, 7, 4]);
    // Position 0 sees only x[0] (the kernel's last tap): causal.
    let (xs, ws, ys) = (store.value(x), store.value(w), t.value(&store, y));
    let want: f32 = (0..3).map(|ci| xs[ci] * ws[(2 * 3 + ci) * 4]).sum();
    assert!((ys[0] - want).abs() < 1e-6, "{} vs {want}", ys[0]);
}

#[test]
fn pooling_gradients_match_finite_differences() {
    let cases = [
        (PoolKind::Max, [2, 2], args([2, 2], [1, 1], Padding::Valid)),
        (PoolKind::Max, [3, 3], args([2, 2], [1, 1], Padding::Same)),
        (PoolKind::Average, [3, 3], args([2, 2], [1, 1], Padding::Same)),
        (PoolKind::Average, [2, 3], args([1, 2], [1, 1], Padding::Valid)),
    ];
    for (k, (kind, size, a)) in cases.into_iter().enumerate() {
        let mut store = ParamStore::new();
        let x = ladder(&mut store, "x", &[2, 5, 6, 3], 40 + k as u64);
        let a = WindowArgs { size, ..a };
        let f = move |t: &mut Tape, s: &ParamStore| {
            let xv = t.param(s, x);
            let y = t.pool2d(s, xv, kind, a).unwrap();
            probe_nd(t, s, y)
        };
        check(&mut store, &f, &format!("pool case {k} ({kind:?} {a:?})"));
    }
}

#[test]
fn pooling_forward_is_the_window_max_or_mean_inside_the_input() {
    let mut store = ParamStore::new();
    let vals: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let x = store.add("x", Shape::new(&[1, 4, 4, 1]).unwrap(), |b| b.copy_from_slice(&vals));
    let mut t = Tape::new();
    let xv = t.param(&store, x);
    let m = t.pool2d(&store, xv, PoolKind::Max, WindowArgs { size: [2, 2], strides: [2, 2], ..WindowArgs::new([2, 2]) }).unwrap();
    assert_eq!(t.value(&store, m), &[5.0, 7.0, 13.0, 15.0]);
    // 3×3 same, stride 2 over 4×4: out 2×2, pad total 1 → 0 before; the last row and
    // column of windows hang over, and the mean counts only the cells inside.
    let a = t.pool2d(&store, xv, PoolKind::Average, WindowArgs { size: [3, 3], strides: [2, 2], dilation: [1, 1], padding: Padding::Same }).unwrap();
    let want = [(0. + 1. + 2. + 4. + 5. + 6. + 8. + 9. + 10.) / 9.0, (2. + 3. + 6. + 7. + 10. + 11.) / 6.0, (8. + 9. + 10. + 12. + 13. + 14.) / 6.0, (10. + 11. + 14. + 15.) / 4.0];
    for (g, w) in t.value(&store, a).iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{g} vs {w}");
    }
}

#[test]
fn zero_padding_gradients_and_values() {
    let mut store = ParamStore::new();
    let x = param(&mut store, "x", &[2, 3, 2, 2], 50);
    let f = move |t: &mut Tape, s: &ParamStore| {
        let xv = t.param(s, x);
        let y = t.pad2d(s, xv, ((1, 2), (0, 1))).unwrap();
        probe_nd(t, s, y)
    };
    check(&mut store, &f, "pad2d");
    let mut t = Tape::new();
    let xv = t.param(&store, x);
    let y = t.pad2d(&store, xv, ((1, 2), (0, 1))).unwrap();
    assert_eq!(t.shape(y).dims(), &[2, 6, 3, 2]);
    let (xs, ys) = (store.value(x), t.value(&store, y));
    assert_eq!(ys[..6], [0.0; 6]);
    assert_eq!(ys[6..8], xs[0..2]);
    assert_eq!(ys[10..12], [0.0; 2]);
}

#[test]
fn bad_convolution_shapes_are_named_errors() {
    let mut store = ParamStore::new();
    let x = param(&mut store, "x", &[1, 4, 4, 3], 1);
    let w = param(&mut store, "w", &[3, 3, 2, 4], 2);
    let big = param(&mut store, "big", &[5, 5, 3, 1], 3);
    let mut t = Tape::new();
    let (xv, wv, bigv) = (t.param(&store, x), t.param(&store, w), t.param(&store, big));
    let e = t.conv2d(&store, xv, wv, None, args([1, 1], [1, 1], Padding::Valid), 1, Activation::Linear).unwrap_err().to_string();
    assert!(e.contains("divisible by groups"), "{e}");
    let e = t.conv2d(&store, xv, bigv, None, args([1, 1], [1, 1], Padding::Valid), 1, Activation::Linear).unwrap_err().to_string();
    assert!(e.contains("at least 5"), "{e}");
    let flat = t.reshape(&store, xv, &[4, 12]).unwrap();
    let e = t.pool2d(&store, flat, PoolKind::Max, WindowArgs::new([2, 2])).unwrap_err().to_string();
    assert!(e.contains("[batch, height, width, channels]"), "{e}");
}

#[test]
fn normalizations_over_the_channels_of_images() {
    let mut store = ParamStore::new();
    let x = param(&mut store, "x", &[2, 3, 2, 4], 60);
    let g = param(&mut store, "gamma", &[4], 61);
    let b = param(&mut store, "beta", &[4], 62);
    check(&mut store, &move |t, s| { let (xv, gv, bv) = (t.param(s, x), t.param(s, g), t.param(s, b)); let y = t.batch_norm(s, xv, gv, bv, 1e-3, None).unwrap(); probe_nd(t, s, y) }, "batch norm [2,3,2,4]");
    check(&mut store, &move |t, s| { let (xv, gv, bv) = (t.param(s, x), t.param(s, g), t.param(s, b)); let y = t.layer_norm(s, xv, gv, bv, 1e-3).unwrap(); probe_nd(t, s, y) }, "layer norm [2,3,2,4]");
}

#[test]
fn shifts_and_flips_gradients_and_values() {
    use crate::tensor::FillMode;
    // Sample 0: flipped left-right and shifted one row down; sample 1: flipped upside
    // down and shifted two columns left.
    let transforms = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, -2.0];
    for fill in [FillMode::Constant(0.5), FillMode::Reflect, FillMode::Wrap, FillMode::Nearest] {
        let mut store = ParamStore::new();
        let x = param(&mut store, "x", &[2, 3, 4, 2], 70);
        let f = move |t: &mut Tape, s: &ParamStore| {
            let xv = t.param(s, x);
            let y = t.remap2d(s, xv, fill, |m| m.copy_from_slice(&transforms)).unwrap();
            probe_nd(t, s, y)
        };
        check(&mut store, &f, &format!("remap {fill:?}"));
    }
    let mut store = ParamStore::new();
    let vals: Vec<f32> = (0..12).map(|v| v as f32).collect();
    let x = store.add("x", Shape::new(&[1, 3, 4, 1]).unwrap(), |b| b.copy_from_slice(&vals));
    let mut t = Tape::new();
    let xv = t.param(&store, x);
    let y = t.remap2d(&store, xv, FillMode::Constant(-1.0), |m| m.copy_from_slice(&[0.0, 1.0, 1.0, 0.0])).unwrap();
    // Row 0 came from outside (the constant); rows 1–2 are rows 0–1 mirrored.
    assert_eq!(t.value(&store, y), &[-1.0, -1.0, -1.0, -1.0, 3.0, 2.0, 1.0, 0.0, 7.0, 6.0, 5.0, 4.0]);
    let y = t.remap2d(&store, xv, FillMode::Reflect, |m| m.copy_from_slice(&[0.0, 0.0, 0.0, 2.0])).unwrap();
    // Shifted right by two, the first two columns reflect the edge: d c b a | a b c d.
    assert_eq!(&t.value(&store, y)[..4], &[1.0, 0.0, 0.0, 1.0]);
}
