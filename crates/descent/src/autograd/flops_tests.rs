//! `Tape::forward_flops` against the products written out by hand.

use super::{AttentionSpec, ParamStore, Tape};
use crate::tensor::kernels::activation::Activation;
use crate::tensor::{Padding, Shape, WindowArgs};

fn zeros(store: &mut ParamStore, name: &str, dims: &[usize]) -> crate::autograd::ParamId {
    store.add(name, Shape::new(dims).unwrap(), |b| b.fill(0.1))
}

#[test]
fn forward_flops_count_two_per_multiply_add_of_every_product() {
    let mut store = ParamStore::new();
    // Dense 64 → 32 → 10 on a batch of 8.
    let (w1, b1, w2) = (zeros(&mut store, "w1", &[64, 32]), zeros(&mut store, "b1", &[32]), zeros(&mut store, "w2", &[32, 10]));
    // A 3×3 convolution 4 → 6 channels, 'valid', on 2 images of 7×9.
    let k = zeros(&mut store, "k", &[3, 3, 4, 6]);
    let mut t = Tape::new();
    let x = t.input(Shape::matrix(8, 64), &vec![0.5; 8 * 64]).unwrap();
    let (w1v, b1v, w2v) = (t.param(&store, w1), t.param(&store, b1), t.param(&store, w2));
    let h = t.dense(&store, x, w1v, Some(b1v), Activation::Relu).unwrap();
    let _ = t.dense(&store, h, w2v, None, Activation::Linear).unwrap();
    let dense = 2.0 * 8.0 * (64.0 * 32.0 + 32.0 * 10.0);
    assert_eq!(t.forward_flops(), dense);

    let img = t.input(Shape::new(&[2, 7, 9, 4]).unwrap(), &vec![0.5; 2 * 7 * 9 * 4]).unwrap();
    let kv = t.param(&store, k);
    let args = WindowArgs { size: [0, 0], strides: [1, 1], dilation: [1, 1], padding: Padding::Valid };
    let y = t.conv2d(&store, img, kv, None, args, 1, Activation::Linear).unwrap();
    assert_eq!(t.shape(y).dims(), &[2, 5, 7, 6]);
    let conv = 2.0 * (2 * 5 * 7 * 6) as f64 * (3 * 3 * 4) as f64;
    assert_eq!(t.forward_flops(), dense + conv);

    // Two heads of 8 over 5 queries and 6 keys, batch 3: q·kᵀ and weights·v.
    let q = t.input(Shape::new(&[3, 5, 16]).unwrap(), &vec![0.1; 3 * 5 * 16]).unwrap();
    let kk = t.input(Shape::new(&[3, 6, 16]).unwrap(), &vec![0.1; 3 * 6 * 16]).unwrap();
    let v = t.input(Shape::new(&[3, 6, 16]).unwrap(), &vec![0.1; 3 * 6 * 16]).unwrap();
    let spec = AttentionSpec { heads: 2, causal: false, queries_last: false, scale: None, dropout: 0.0, seed: 1 };
    let _ = t.attention(&store, q, kk, v, spec).unwrap();
    let attention = 2.0 * 2.0 * (3 * 2 * 5 * 6 * 8) as f64;
    assert_eq!(t.forward_flops(), dense + conv + attention);
}
