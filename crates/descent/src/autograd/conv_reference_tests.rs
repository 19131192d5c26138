//! Convolution (strides, `valid`/`same`/`causal` padding, dilation, groups, depthwise)
//! and pooling, forward and backward, against PyTorch in float64 (fixtures/conv.json,
//! made by scripts/make_conv_fixtures.py): outputs and the gradients of Σ y ⊙ probe
//! with respect to the input, kernel and bias, each element within 1e-5 of the
//! reference relative to max(|reference|, 1).

use super::{ParamStore, Tape, Var};
use crate::tensor::kernels::activation::Activation;
use crate::tensor::{Padding, PoolKind, Shape, WindowArgs};
use serde_json::Value;

fn fixture() -> Value {
    serde_json::from_str(include_str!("../../../../fixtures/conv.json")).unwrap()
}
fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}
fn dims(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}
fn pair(v: &Value) -> [usize; 2] {
    let d = dims(v);
    [d[0], d[1]]
}
fn padding(v: &Value) -> Padding {
    match v.as_str().unwrap() {
        "valid" => Padding::Valid,
        "same" => Padding::Same,
        "causal" => Padding::Causal,
        p => panic!("padding {p}"),
    }
}
fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{what}[{i}]: {g} vs PyTorch {w}");
    }
}

/// Σ y ⊙ probe, a scalar whose gradient with respect to y is the probe.
fn probed(t: &mut Tape, s: &ParamStore, y: Var, probe: &[f32]) -> Var {
    let p = t.input(t.shape(y), probe).unwrap();
    let yp = t.mul_broadcast(s, y, p).unwrap();
    let n = t.shape(yp).numel();
    let flat = t.reshape(s, yp, &[1, n]).unwrap();
    t.sum_axis(s, flat, 1).unwrap()
}

#[test]
fn convolutions_match_pytorch() {
    let f = fixture();
    let cases: Vec<&Value> = f["cases"].as_array().unwrap().iter().filter(|c| c["op"] == "conv" || c["op"] == "depthwise").collect();
    assert_eq!(cases.len(), 9);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let (mut xd, mut kd) = (dims(&c["x_shape"]), dims(&c["kernel_shape"]));
        let causal = padding(&c["padding"]) == Padding::Causal;
        if causal {
            // A 1-D case: [n, 1, len, c] is fed as [n, len, c], its kernel as [k, c, f].
            xd.remove(1);
            kd.remove(0);
        }
        let mut store = ParamStore::new();
        let x = store.add("x", Shape::new(&xd).unwrap(), |b| b.copy_from_slice(&floats(&c["x"])));
        let k = store.add("kernel", Shape::new(&kd).unwrap(), |b| b.copy_from_slice(&floats(&c["kernel"])));
        let bias = floats(&c["bias"]);
        let b = store.add("bias", Shape::new(&[bias.len()]).unwrap(), |v| v.copy_from_slice(&bias));
        let args = WindowArgs { size: [0, 0], strides: pair(&c["strides"]), dilation: pair(&c["dilation"]), padding: padding(&c["padding"]) };
        let depthwise = c["op"] == "depthwise";
        let mut t = Tape::new();
        let (xv, mut kv, bv) = (t.param(&store, x), t.param(&store, k), t.param(&store, b));
        let groups = if depthwise {
            kv = t.reshape(&store, kv, &[kd[0], kd[1], 1, kd[2] * kd[3]]).unwrap();
            kd[2]
        } else {
            c["groups"].as_u64().unwrap() as usize
        };
        let y = t.conv2d(&store, xv, kv, Some(bv), args, groups, Activation::Linear).unwrap();
        let want_shape = dims(&c["y_shape"]);
        assert_eq!(t.shape(y).numel(), want_shape.iter().product::<usize>(), "{name}: output shape {:?} vs {want_shape:?}", t.shape(y));
        close(t.value(&store, y), &floats(&c["y"]), &format!("{name}: y"));
        let root = probed(&mut t, &store, y, &floats(&c["probe"]));
        store.zero_grads();
        t.backward(root, &mut store).unwrap();
        close(store.grad(x), &floats(&c["grad_x"]), &format!("{name}: ∂x"));
        close(store.grad(k), &floats(&c["grad_kernel"]), &format!("{name}: ∂kernel"));
        close(store.grad(b), &floats(&c["grad_bias"]), &format!("{name}: ∂bias"));
    }
}

#[test]
fn pooling_matches_pytorch() {
    let f = fixture();
    let cases: Vec<&Value> = f["cases"].as_array().unwrap().iter().filter(|c| c["op"] == "max" || c["op"] == "average").collect();
    assert_eq!(cases.len(), 5);
    for c in cases {
        let name = c["name"].as_str().unwrap();
        let mut store = ParamStore::new();
        let x = store.add("x", Shape::new(&dims(&c["x_shape"])).unwrap(), |b| b.copy_from_slice(&floats(&c["x"])));
        let kind = if c["op"] == "max" { PoolKind::Max } else { PoolKind::Average };
        let args = WindowArgs { size: pair(&c["size"]), strides: pair(&c["strides"]), dilation: [1, 1], padding: padding(&c["padding"]) };
        let mut t = Tape::new();
        let xv = t.param(&store, x);
        let y = t.pool2d(&store, xv, kind, args).unwrap();
        assert_eq!(t.shape(y).dims(), dims(&c["y_shape"]).as_slice(), "{name}");
        close(t.value(&store, y), &floats(&c["y"]), &format!("{name}: y"));
        let root = probed(&mut t, &store, y, &floats(&c["probe"]));
        store.zero_grads();
        t.backward(root, &mut store).unwrap();
        close(store.grad(x), &floats(&c["grad_x"]), &format!("{name}: ∂x"));
    }
}
