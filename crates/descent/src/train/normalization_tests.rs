//! Batch and layer normalization through a model and a training step, against Keras 3
//! (fixtures/normalization.json, made by scripts/make_normalization_fixtures.py):
//! training and inference outputs, and the moving statistics after one training step.

use crate::autograd::Tape;
use crate::nn::{BatchNormalization, Layer, LayerNormalization, Loss};
use crate::optim::Sgd;
use crate::tensor::Tensor;
use crate::train::{Model, Sequential};

fn fixture() -> serde_json::Value {
    serde_json::from_str(include_str!("../../../../fixtures/normalization.json")).unwrap()
}
fn flat(v: &serde_json::Value) -> Vec<f32> {
    match v {
        serde_json::Value::Array(a) => a.iter().flat_map(flat).collect(),
        n => vec![n.as_f64().unwrap() as f32],
    }
}
fn close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{what}[{i}]: {g} vs Keras {w}");
    }
}
/// A one-layer model with Keras's γ and β, compiled with SGD at rate 0 so a training
/// step changes only the moving statistics.
fn one_layer(layer: Box<dyn Layer>, f: &serde_json::Value) -> Model {
    let mut m = Sequential::new(vec![layer]).unwrap();
    m.build(&[4]).unwrap();
    let (g, b) = (flat(&f["gamma"]), flat(&f["beta"]));
    let store = m.params_mut();
    let ids: Vec<_> = store.ids().collect();
    store.value_mut(ids[0]).copy_from_slice(&g);
    store.value_mut(ids[1]).copy_from_slice(&b);
    m.compile(Sgd::new(0.0), Loss::MeanSquaredError, &[]).unwrap();
    m
}
fn training_forward(m: &Model, x: &Tensor) -> Vec<f32> {
    let mut tape = Tape::new();
    let xin = tape.input(x.shape(), x.data()).unwrap();
    let y = m.forward(&mut tape, xin, true).unwrap();
    tape.value(m.params(), y).to_vec()
}

#[test]
fn batch_normalization_matches_keras() {
    let f = fixture();
    let x = Tensor::new(flat(&f["x"]), &[6, 4]).unwrap();
    let mut m = one_layer(Box::new(BatchNormalization::new()), &f);
    close(&training_forward(&m, &x), &flat(&f["batch_norm"]["train"]), "training output");
    m.train_on_batch(&x, &Tensor::zeros(&[6, 4]).unwrap()).unwrap();
    let p = m.params();
    let ids: Vec<_> = p.ids().collect();
    close(p.value(ids[2]), &flat(&f["batch_norm"]["moving_mean"]), "moving mean");
    close(p.value(ids[3]), &flat(&f["batch_norm"]["moving_variance"]), "moving variance");
    // The moving statistics are saved weights, not trained ones.
    assert!(!p.entry(ids[2]).trainable && !p.entry(ids[3]).trainable && p.entry(ids[0]).trainable);
    assert_eq!(p.entry(ids[3]).name, "batch_normalization.moving_variance");
    close(m.predict(&x, 6).unwrap().data(), &flat(&f["batch_norm"]["inference_after_one_step"]), "inference output");
}

#[test]
fn layer_normalization_matches_keras() {
    let f = fixture();
    let x = Tensor::new(flat(&f["x"]), &[6, 4]).unwrap();
    let mut m = one_layer(Box::new(LayerNormalization::new()), &f);
    close(&training_forward(&m, &x), &flat(&f["layer_norm"]), "training output");
    close(m.predict(&x, 6).unwrap().data(), &flat(&f["layer_norm"]), "inference output");
}

#[test]
fn bad_settings_and_shapes_are_errors() {
    let e = Sequential::new(vec![Box::new(BatchNormalization::new().momentum(1.5))]).unwrap().build(&[3]).unwrap_err().to_string();
    assert!(e.contains("momentum"), "{e}");
    let e = Sequential::new(vec![Box::new(BatchNormalization::new())]).unwrap().build(&[2, 0]).unwrap_err().to_string();
    assert!(e.contains("positive sizes"), "{e}");
}

/// Over an image `[h, w, c]` both normalize the last axis (Keras's default axis = −1):
/// batch normalization per channel over batch and positions, exactly as over the
/// `[batch·h·w, c]` matrix of the same values; layer normalization per position.
#[test]
fn normalization_over_the_channel_axis_of_images() {
    let vals: Vec<f32> = (0..2 * 3 * 2 * 4).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
    let image = Tensor::new(vals.clone(), &[2, 3, 2, 4]).unwrap();
    let matrix = Tensor::new(vals, &[12, 4]).unwrap();
    for layer in [0, 1] {
        let make = || -> Box<dyn Layer> { if layer == 0 { Box::new(BatchNormalization::new()) } else { Box::new(LayerNormalization::new()) } };
        let mut on_image = Sequential::new(vec![make()]).unwrap();
        on_image.build(&[3, 2, 4]).unwrap();
        assert_eq!(on_image.params().count(), if layer == 0 { 16 } else { 8 }, "γ, β (and moving statistics) per channel");
        let mut on_matrix = Sequential::new(vec![make()]).unwrap();
        on_matrix.build(&[4]).unwrap();
        for m in [&mut on_image, &mut on_matrix] {
            m.compile(Sgd::new(0.0), Loss::MeanSquaredError, &[]).unwrap();
        }
        let (a, b) = (training_forward(&on_image, &image), training_forward(&on_matrix, &matrix));
        assert_eq!(a, b, "layer {layer}: the image normalizes as the matrix of its positions");
    }
}
