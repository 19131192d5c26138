//! The N-d ops (reshape, permute, broadcasting, batched matmul, softmax along an axis,
//! reductions, slices, gather): gradients against central finite differences (the same
//! check and tolerance as `gradcheck.rs`), and forward values against their definitions.

use super::gradcheck::{check, probe, pseudo};
use super::{ParamId, ParamStore, Tape, Var};
use crate::tensor::Shape;

pub(super) fn param(store: &mut ParamStore, name: &str, dims: &[usize], seed: u64) -> ParamId {
    let n = dims.iter().product();
    let vals = pseudo(seed, n, -1.0, 1.0);
    store.add(name, Shape::new(dims).unwrap(), |b| b.copy_from_slice(&vals))
}

/// A scalar touching every element of a value of any rank (through `reshape`).
pub(super) fn probe_nd(t: &mut Tape, s: &ParamStore, y: Var) -> Var {
    let n = t.shape(y).numel();
    let flat = t.reshape(s, y, &[1, n]).unwrap();
    probe(t, s, flat)
}

#[test]
fn reshape_and_flatten() {
    let mut store = ParamStore::new();
    let x = param(&mut store, "x", &[2, 3, 4], 1);
    check(&mut store, &move |t, s| { let v = t.param(s, x); let r = t.reshape(s, v, &[6, 4]).unwrap(); probe(t, s, r) }, "reshape");
    check(&mut store, &move |t, s| { let v = t.param(s, x); let f = t.flatten(s, v).unwrap(); probe(t, s, f) }, "flatten");
    let mut t = Tape::new();
    let v = t.param(&store, x);
    let f = t.flatten(&store, v).unwrap();
    assert_eq!(t.shape(f).dims(), &[2, 12]);
    assert!(t.reshape(&store, v, &[5, 5]).unwrap_err().to_string().contains("24 elements"));
}

#[test]
fn permute_and_transpose() {
    let mut store = ParamStore::new();
    let x = param(&mut store, "x", &[2, 3, 4], 2);
    check(&mut store, &move |t, s| { let v = t.param(s, x); let p = t.permute(s, v, &[2, 0, 1]).unwrap(); probe_nd(t, s, p) }, "permute");
    check(&mut store, &move |t, s| { let v = t.param(s, x); let p = t.transpose(s, v).unwrap(); probe_nd(t, s, p) }, "transpose");
    let mut t = Tape::new();
    let v = t.param(&store, x);
    let p = t.permute(&store, v, &[2, 0, 1]).unwrap();
    assert_eq!(t.shape(p).dims(), &[4, 2, 3]);
    let (xv, pv) = (store.value(x).to_vec(), t.value(&store, p).to_vec());
    for (i, j, k) in (0..2).flat_map(|i| (0..3).flat_map(move |j| (0..4).map(move |k| (i, j, k)))) {
        assert_eq!(pv[k * 6 + i * 3 + j], xv[i * 12 + j * 4 + k], "y[{k},{i},{j}] = x[{i},{j},{k}]");
    }
    assert!(t.permute(&store, v, &[0, 0, 1]).unwrap_err().to_string().contains("permutation"));
}

#[test]
fn broadcasting_add_and_multiply() {
    let mut store = ParamStore::new();
    let a = param(&mut store, "a", &[2, 3, 4], 3);
    let b = param(&mut store, "b", &[3, 1], 4);
    let c = param(&mut store, "c", &[4], 5);
    check(&mut store, &move |t, s| { let (av, bv) = (t.param(s, a), t.param(s, b)); let y = t.add_broadcast(s, av, bv).unwrap(); probe_nd(t, s, y) }, "add [2,3,4]+[3,1]");
    check(&mut store, &move |t, s| { let (av, bv) = (t.param(s, a), t.param(s, b)); let y = t.mul_broadcast(s, av, bv).unwrap(); probe_nd(t, s, y) }, "mul [2,3,4]*[3,1]");
    check(&mut store, &move |t, s| { let (bv, cv) = (t.param(s, b), t.param(s, c)); let y = t.mul_broadcast(s, bv, cv).unwrap(); probe_nd(t, s, y) }, "mul [3,1]*[4] (both broadcast)");
    let mut t = Tape::new();
    let (av, bv) = (t.param(&store, a), t.param(&store, b));
    let y = t.add_broadcast(&store, av, bv).unwrap();
    assert_eq!(t.shape(y).dims(), &[2, 3, 4]);
    let (x, bb, yv) = (store.value(a), store.value(b), t.value(&store, y));
    assert_eq!(yv[23], x[23] + bb[2]);
    assert_eq!(yv[13], x[13] + bb[0]);
    let d = param(&mut store, "d", &[3, 2], 6);
    let mut t = Tape::new();
    let (av, dv) = (t.param(&store, a), t.param(&store, d));
    assert!(t.add_broadcast(&store, av, dv).unwrap_err().to_string().contains("broadcast"));
}

#[test]
fn batched_matmul_per_batch_and_with_a_shared_right_side() {
    let mut store = ParamStore::new();
    let a = param(&mut store, "a", &[2, 3, 4], 7);
    let b = param(&mut store, "b", &[2, 4, 5], 8);
    let w = param(&mut store, "w", &[4, 5], 9);
    check(&mut store, &move |t, s| { let (av, bv) = (t.param(s, a), t.param(s, b)); let y = t.batched_matmul(s, av, bv).unwrap(); probe_nd(t, s, y) }, "bmm");
    check(&mut store, &move |t, s| { let (av, wv) = (t.param(s, a), t.param(s, w)); let y = t.batched_matmul(s, av, wv).unwrap(); probe_nd(t, s, y) }, "bmm shared");
    let mut t = Tape::new();
    let (av, bv) = (t.param(&store, a), t.param(&store, b));
    let y = t.batched_matmul(&store, av, bv).unwrap();
    assert_eq!(t.shape(y).dims(), &[2, 3, 5]);
    // y[1, 2, 3] = Σ_k a[1, 2, k] · b[1, k, 3]
    let want: f32 = (0..4).map(|k| store.value(a)[12 + 2 * 4 + k] * store.value(b)[20 + k * 5 + 3]).sum();
    assert!((t.value(&store, y)[15 + 2 * 5 + 3] - want).abs() < 1e-6);
    assert!(t.batched_matmul(&store, bv, av).unwrap_err().to_string().contains("batched matmul"));
}

#[test]
fn softmax_along_any_axis() {
    let mut store = ParamStore::new();
    let x = param(&mut store, "x", &[2, 3, 4], 10);
    for axis in [0isize, 1, -1] {
        check(&mut store, &move |t, s| { let v = t.param(s, x); let y = t.softmax(s, v, axis).unwrap(); probe_nd(t, s, y) }, &format!("softmax axis {axis}"));
    }
    let mut t = Tape::new();
    let v = t.param(&store, x);
    let y = t.softmax(&store, v, 1).unwrap();
    let yv = t.value(&store, y);
    for (o, i) in (0..2).flat_map(|o| (0..4).map(move |i| (o, i))) {
        let sum: f32 = (0..3).map(|j| yv[o * 12 + j * 4 + i]).sum();
        assert!((sum - 1.0).abs() < 1e-6, "lane ({o}, ·, {i}) sums to {sum}");
    }
    assert!(t.softmax(&store, v, 3).unwrap_err().to_string().contains("axis"));
}

#[test]
fn sums_and_means_along_an_axis() {
    let mut store = ParamStore::new();
    let x = param(&mut store, "x", &[2, 3, 4], 11);
    check(&mut store, &move |t, s| { let v = t.param(s, x); let y = t.sum_axis(s, v, 1).unwrap(); probe_nd(t, s, y) }, "sum axis 1");
    check(&mut store, &move |t, s| { let v = t.param(s, x); let y = t.mean_axis(s, v, -1).unwrap(); probe_nd(t, s, y) }, "mean axis -1");
    let mut t = Tape::new();
    let v = t.param(&store, x);
    let y = t.sum_axis(&store, v, 1).unwrap();
    assert_eq!(t.shape(y).dims(), &[2, 4]);
    let want: f32 = (0..3).map(|j| store.value(x)[12 + j * 4 + 2]).sum();
    assert!((t.value(&store, y)[4 + 2] - want).abs() < 1e-6);
}

#[test]
fn slices_and_splits() {
    let mut store = ParamStore::new();
    let x = param(&mut store, "x", &[2, 6, 2], 12);
    check(
        &mut store,
        &move |t, s| {
            let v = t.param(s, x);
            let parts = t.split(s, v, 1, &[2, 4]).unwrap();
            let (a, b) = (t.reshape(s, parts[0], &[2, 4]).unwrap(), t.reshape(s, parts[1], &[2, 8]).unwrap());
            let y = t.concat(s, b, a).unwrap();
            probe(t, s, y)
        },
        "split + concat",
    );
    let mut t = Tape::new();
    let v = t.param(&store, x);
    let part = t.slice(&store, v, 1, 2, 4).unwrap();
    assert_eq!(t.shape(part).dims(), &[2, 4, 2]);
    assert_eq!(t.value(&store, part)[8..10], store.value(x)[12 + 4..12 + 6]);
    assert!(t.slice(&store, v, 1, 4, 3).unwrap_err().to_string().contains("4..7"));
    // The leading rows of the first axis (contiguous, shorter than x: a position table
    // cut to a shorter window).
    let lead = t.slice(&store, v, 0, 0, 1).unwrap();
    assert_eq!(t.value(&store, lead)[..], store.value(x)[..12]);
    check(&mut store, &move |t, s| { let v = t.param(s, x); let y = t.slice(s, v, 0, 0, 1).unwrap(); probe_nd(t, s, y) }, "leading slice");
}

#[test]
fn gather_rows_by_integer_ids() {
    let mut store = ParamStore::new();
    let table = param(&mut store, "table", &[5, 3], 13);
    // Id 4 twice: its row's gradient sums both uses.
    let ids = [0u32, 4, 4, 1];
    check(&mut store, &move |t, s| { let tv = t.param(s, table); let y = t.gather(s, tv, &ids, &[2, 2]).unwrap(); probe_nd(t, s, y) }, "gather");
    let mut t = Tape::new();
    let tv = t.param(&store, table);
    let y = t.gather(&store, tv, &ids, &[2, 2]).unwrap();
    assert_eq!(t.shape(y).dims(), &[2, 2, 3]);
    assert_eq!(&t.value(&store, y)[3..6], &store.value(table)[12..15]);
    let e = t.gather(&store, tv, &[1, 5], &[2]).unwrap_err().to_string();
    assert!(e.contains("id 5 at position 1") && e.contains("below 5"), "{e}");
}

#[test]
fn dense_with_a_transposed_kernel() {
    // y = gelu(x·Wᵀ + b) for x [2, 3, 4] and W [5, 4] (a head tied to a [5, 4] table).
    let mut store = ParamStore::new();
    let x = param(&mut store, "x", &[2, 3, 4], 21);
    let w = param(&mut store, "w", &[5, 4], 22);
    let b = param(&mut store, "b", &[5], 23);
    let act = crate::tensor::kernels::activation::Activation::Gelu { approximate: false };
    check(&mut store, &move |t, s| { let (x, w, b) = (t.param(s, x), t.param(s, w), t.param(s, b)); let y = t.dense_transposed(s, x, w, Some(b), act).unwrap(); probe_nd(t, s, y) }, "dense, kernel transposed");
    let mut t = Tape::new();
    let (xv, wv) = (t.param(&store, x), t.param(&store, w));
    let y = t.dense_transposed(&store, xv, wv, None, act).unwrap();
    assert_eq!(t.shape(y).dims(), &[2, 3, 5]);
    assert!(t.dense(&store, xv, wv, None, act).unwrap_err().to_string().contains("x [batch, …, 5]"));
}
