//! Explanations checked against what they must satisfy: Captum's anchor example, finite
//! differences, completeness, and scikit-learn's test of permutation importance (a
//! feature that leaks the label ranks first; a constant feature scores exactly 0), and
//! scikit-learn's own numbers on a fixture (scripts/make_explain_fixture.py).

use super::*;
use crate::data::digits_for_tests;
use crate::nn::{Activation, Dense, Layer, Loss};
use crate::optim::Adam;
use crate::train::{FitOptions, Sequential};

fn trained_on_digits(x: &Tensor, y: &Tensor) -> Model {
    let features = x.row_len();
    let layers: Vec<Box<dyn Layer>> = vec![Box::new(Dense::new(32, Activation::Relu).input_shape(&[features])), Box::new(Dense::new(10, Activation::Linear))];
    let mut model = Sequential::new(layers).unwrap();
    model.compile(Adam::new(3e-3), Loss::sparse_categorical_crossentropy(true), &["accuracy"]).unwrap();
    model.fit(x, y, FitOptions { epochs: 8, verbose: 0, ..Default::default() }).unwrap();
    model
}

/// f(x) = ReLU(ReLU(x₁) − 1 − ReLU(x₂)) as two Dense layers with fixed weights.
fn anchor_model() -> Model {
    let layers: Vec<Box<dyn Layer>> = vec![Box::new(Dense::new(2, Activation::Relu).input_shape(&[2])), Box::new(Dense::new(1, Activation::Relu))];
    let mut model = Sequential::new(layers).unwrap();
    let values: [(&[f32], &[f32]); 2] = [(&[1.0, 0.0, 0.0, 1.0], &[0.0, 0.0]), (&[1.0, -1.0], &[-1.0])];
    for (layer, (kernel, bias)) in values.iter().enumerate() {
        let ids = model.network.layers[layer].params();
        model.network.store.value_mut(ids[0]).copy_from_slice(kernel);
        model.network.store.value_mut(ids[1]).copy_from_slice(bias);
    }
    model
}

#[test]
fn integrated_gradients_pass_captums_anchor_test() {
    let mut model = anchor_model();
    let a = integrated_gradients(&mut model, &[3.0, 1.0], None, 0, 50).unwrap();
    assert!((a.attributions[0] - 1.5).abs() < 0.05 && (a.attributions[1] + 0.5).abs() < 0.05, "{:?}", a.attributions);
    assert_eq!((a.output, a.baseline_output), (1.0, 0.0));
    assert!(a.completeness_gap.abs() < 1e-5, "{}", a.completeness_gap);
}

#[test]
fn input_gradients_match_finite_differences() {
    let (train, test) = digits_for_tests();
    let mut model = trained_on_digits(&train.x, &train.y);
    let rows = 3;
    let x = test.x.select_rows(&[0, 1, 2]);
    let targets = [1usize, 4, 9];
    let (grads, outputs) = input_gradients(&mut model, x.data(), rows, &targets).unwrap();
    let f = x.row_len();
    let predicted = model.predict(&x, 8).unwrap();
    for r in 0..rows {
        assert!((outputs[r] - predicted.data()[r * 10 + targets[r]]).abs() < 1e-5);
    }
    let h = 1e-2f32;
    for (r, j) in [(0usize, 20usize), (1, 36), (2, 43), (0, 50)] {
        let mut plus = x.clone();
        plus.data_mut()[r * f + j] += h;
        let mut minus = x.clone();
        minus.data_mut()[r * f + j] -= h;
        let (p, m) = (model.predict(&plus, 8).unwrap(), model.predict(&minus, 8).unwrap());
        let fd = (p.data()[r * 10 + targets[r]] - m.data()[r * 10 + targets[r]]) / (2.0 * h);
        let g = grads[r * f + j];
        assert!((g - fd).abs() <= 2e-3 + 1e-2 * fd.abs(), "row {r} feature {j}: gradient {g} vs finite difference {fd}");
    }
    let s = saliency(&mut model, &x, &targets).unwrap();
    assert!(s.iter().zip(&grads).all(|(s, g)| *s == g.abs()));
}

#[test]
fn integrated_gradients_are_complete_on_a_trained_model() {
    let (train, test) = digits_for_tests();
    let mut model = trained_on_digits(&train.x, &train.y);
    for r in 0..4 {
        let class = test.y.data()[r] as usize;
        let a = integrated_gradients(&mut model, test.x.row(r), None, class, 200).unwrap();
        let change = a.output - a.baseline_output;
        assert!(a.completeness_gap.abs() < 0.02 * change.abs().max(1.0), "sample {r}: gap {} for F(x) − F(0) = {change}", a.completeness_gap);
    }
}

#[test]
fn a_feature_that_leaks_the_label_ranks_first_and_a_constant_one_scores_zero() {
    let (train, test) = digits_for_tests();
    // Append two columns: the label itself (scaled like a standardized feature), and a
    // constant.
    let widen = |x: &Tensor, y: &Tensor| -> Tensor {
        let f = x.row_len();
        let mut data = Vec::with_capacity(x.rows() * (f + 2));
        for r in 0..x.rows() {
            data.extend_from_slice(x.row(r));
            data.push((y.data()[r] - 4.5) / 3.0);
            data.push(0.5);
        }
        Tensor::new(data, &[x.rows(), f + 2]).unwrap()
    };
    let (xtr, xte) = (widen(&train.x, &train.y), widen(&test.x, &test.y));
    let mut model = trained_on_digits(&xtr, &train.y);
    let (base, metric, importances) = permutation_importance(&mut model, &xte, &test.y, 5, 0).unwrap();
    assert_eq!(metric, "accuracy");
    assert!(base > 0.95, "{base}");
    let leak = importances.len() - 2;
    let mut ranked = importances.clone();
    ranked.sort_by(|a, b| b.mean.total_cmp(&a.mean));
    assert_eq!(ranked[0].feature, leak, "the leaked label ranks first");
    assert!(ranked[0].mean > 0.03 && ranked[0].mean > 3.0 * ranked[1].mean, "{:?} then {:?}", ranked[0], ranked[1]);
    let constant = &importances[leak + 1];
    assert_eq!((constant.mean, constant.std), (0.0, 0.0));
    assert_eq!(ranked[0].drops.len(), 5);
}

#[test]
fn permutation_importance_equals_scikit_learns_on_its_shuffles() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/permutation_importance.json")).unwrap();
    let fx: serde_json::Value = serde_json::from_str(&text).unwrap();
    let floats = |k: &str| -> Vec<f32> { fx[k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect() };
    let (rows, features, classes) = (fx["rows"].as_u64().unwrap() as usize, fx["features"].as_u64().unwrap() as usize, fx["classes"].as_u64().unwrap() as usize);
    let x = Tensor::new(floats("x"), &[rows, features]).unwrap();
    let y = Tensor::new(floats("y"), &[rows, 1]).unwrap();
    // The fixture's linear classifier: scores = x W + b, compiled for accuracy.
    let mut model = Sequential::new(vec![Box::new(Dense::new(classes, Activation::Linear).input_shape(&[features]))]).unwrap();
    let ids = model.network.layers[0].params();
    model.network.store.value_mut(ids[0]).copy_from_slice(&floats("kernel"));
    model.network.store.value_mut(ids[1]).copy_from_slice(&floats("bias"));
    model.compile(Adam::new(1e-3), Loss::sparse_categorical_crossentropy(true), &["accuracy"]).unwrap();
    let perms = &fx["permutations"];
    let repeats = fx["n_repeats"].as_u64().unwrap() as usize;
    let mut replay = |j: usize, r: usize, order: &mut [usize]| {
        for (o, v) in order.iter_mut().zip(perms[j][r].as_array().unwrap()) {
            *o = v.as_u64().unwrap() as usize;
        }
    };
    let (score, metric, importances) = permutation_importance_with(&mut model, &x, &y, repeats, &mut replay).unwrap();
    assert_eq!(metric, "accuracy");
    assert!((score - fx["score"].as_f64().unwrap()).abs() < 1e-12);
    for (j, imp) in importances.iter().enumerate() {
        let want: Vec<f64> = fx["importances"][j].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        for (got, want) in imp.drops.iter().zip(&want) {
            assert!((got - want).abs() < 1e-12, "feature {j}: {:?} vs scikit-learn's {want:?}", imp.drops);
        }
        assert!((imp.mean - fx["importances_mean"][j].as_f64().unwrap()).abs() < 1e-12);
        assert!((imp.std - fx["importances_std"][j].as_f64().unwrap()).abs() < 1e-12);
    }
    assert_eq!((importances[4].mean, importances[4].std), (0.0, 0.0), "the ignored feature");
}
