//! The functional form: the same network as a chain gives the Sequential model's numbers
//! bit for bit; merges, shared layers and several inputs and outputs compute and
//! differentiate correctly; configs and saved folders give the same graph back; and
//! every malformed graph is an error naming the layer.

use crate::autograd::{Tape, Var};
use crate::data::{Dataset, Preprocessing};
use crate::io::weights_to_bytes;
use crate::nn::{Activation, Add, Call, Concatenate, Dense, Input, Loss, ModelConfig, ModelKind, SharedLayer};
use crate::train::{Model, Sequential};
use crate::optim::Adam;
use crate::tensor::kernels::loss::LossKind;
use crate::tensor::{Shape, Tensor};
use crate::train::FitOptions;

fn digits() -> (Dataset, Dataset) {
    crate::data::digits_for_tests()
}

fn quiet(epochs: usize) -> FitOptions<'static> {
    FitOptions { epochs, verbose: 0, ..Default::default() }
}

fn compiled(mut m: Model) -> Model {
    m.compile(Adam::new(0.001), Loss::sparse_categorical_crossentropy(true), &["accuracy"]).unwrap();
    m
}

/// The residual MLP of examples/residual.toml: two hidden layers with a skip around the second.
fn residual(seed: u64) -> Model {
    let x = Input::named("pixels", &[64]);
    let h = Dense::new(64, Activation::Relu).call(&x).unwrap();
    let r = Dense::new(64, Activation::Relu).call(&h).unwrap();
    let s = Add::new().call_on(&[&h, &r]).unwrap();
    let y = Dense::new(10, Activation::Linear).call(&s).unwrap();
    compiled(Model::new(&[x], &[y]).unwrap().with_seed(seed).unwrap())
}

#[test]
fn a_functional_chain_trains_bit_for_bit_like_sequential() {
    let (train, test) = digits();
    let seq = Sequential::new(vec![
        Box::new(Dense::new(64, Activation::Relu).input_shape(&[64])),
        Box::new(Dense::new(10, Activation::Linear)),
    ])
    .unwrap();
    let x = Input::new(&[64]);
    let h = Dense::new(64, Activation::Relu).call(&x).unwrap();
    let y = Dense::new(10, Activation::Linear).call(&h).unwrap();
    let fun = Model::new(&[x], &[y]).unwrap();
    assert_eq!((seq.kind(), fun.kind()), (ModelKind::Sequential, ModelKind::Functional));
    let (mut seq, mut fun) = (compiled(seq.with_seed(5).unwrap()), compiled(fun.with_seed(5).unwrap()));
    assert_eq!(weights_to_bytes(seq.params()).unwrap(), weights_to_bytes(fun.params()).unwrap(), "same initial weights");
    let hs = seq.fit(&train.x, &train.y, quiet(2)).unwrap();
    let hf = fun.fit(&train.x, &train.y, quiet(2)).unwrap();
    assert_eq!(hs.get("loss"), hf.get("loss"));
    assert_eq!(seq.params().values(), fun.params().values());
    assert_eq!(seq.predict(&test.x, 32).unwrap(), fun.predict(&test.x, 32).unwrap());
}

#[test]
fn residual_model_learns_digits_and_survives_save_and_load() {
    let (train, test) = digits();
    let mut model = residual(3);
    model.fit(&train.x, &train.y, quiet(10)).unwrap();
    let acc = model.evaluate(&test.x, &test.y, 32).unwrap().get("accuracy").unwrap();
    assert!(acc >= 0.95, "held-out accuracy {acc}");
    let dir = std::env::temp_dir().join(format!("descent-functional-{}", std::process::id()));
    model.save(&dir, &Preprocessing::default()).unwrap();
    let (mut loaded, saved) = Model::load(&dir).unwrap();
    assert_eq!(loaded.kind(), ModelKind::Functional);
    assert_eq!(saved.model, model.config().unwrap());
    assert_eq!(saved.model.layers[2].inputs(), Some(&["dense".to_string(), "dense_1".to_string()][..]));
    assert_eq!(model.predict(&test.x, 32).unwrap(), loaded.predict(&test.x, 32).unwrap());
    // Optimizer state came back as well: another epoch continues identically.
    model.fit(&train.x, &train.y, quiet(1)).unwrap();
    loaded.fit(&train.x, &train.y, quiet(1)).unwrap();
    assert_eq!(model.params().values(), loaded.params().values());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn configs_name_what_each_layer_is_applied_to() {
    let json = serde_json::json!({
        "name": "branches",
        "inputs": [{ "name": "x", "shape": [6] }],
        "layers": [
            { "type": "dense", "name": "left", "units": 4, "activation": "relu", "inputs": ["x"] },
            { "type": "dense", "name": "right", "units": 3, "inputs": ["x"] },
            { "type": "concatenate", "name": "both", "inputs": ["left", "right"] },
            { "type": "dense", "name": "head", "units": 2 }
        ]
    });
    let config: ModelConfig = serde_json::from_value(json).unwrap();
    let model = Model::from_config(config.clone()).unwrap();
    assert_eq!(model.output_shape(), Some(&[2usize][..]));
    // A layer without `inputs` follows the one before it; the config round-trips.
    let again = model.config().unwrap();
    assert_eq!(again.layers[3].inputs(), Some(&["both".to_string()][..]));
    assert_eq!(Model::from_config(again.clone()).unwrap().config().unwrap(), again);
    let s = model.summary();
    for want in ["x (InputLayer)", "Connected to", "both (Concatenate)", "(None, 7)", "left,", "right", "head (Dense)", "Total params: 65"] {
        assert!(s.contains(want), "summary lacks {want:?}:\n{s}");
    }
}

/// Mean squared error of `model` on fixed data, through the tape, and its node.
fn mse(model: &Model, tape: &mut Tape, x: &[f32], n: usize, target: &[f32]) -> (f32, Var) {
    tape.reset();
    let xin = tape.input(Shape::matrix(n, x.len() / n), x).unwrap();
    let y = model.forward(tape, xin, true).unwrap();
    let loss = tape.loss(model.params(), y, crate::tensor::Targets::Values(target), LossKind::Mse).unwrap();
    (tape.scalar(loss), loss)
}

#[test]
fn a_shared_layer_sums_the_gradients_of_its_calls() {
    // y = Dense_s(Dense_s(x)) + x with one set of weights: the analytic gradient of
    // each parameter equals central finite differences of the loss.
    let x = Input::new(&[3]);
    let shared = SharedLayer::new(Dense::new(3, Activation::Tanh));
    let a = shared.call(&x).unwrap();
    let b = shared.call(&a).unwrap();
    let y = Add::new().call_on(&[&b, &x]).unwrap();
    let mut model = Model::new(&[x], &[y]).unwrap();
    assert_eq!(model.params().count(), 12, "one kernel and bias for both calls");
    let input = [0.3f32, -0.8, 0.5, 1.1, 0.2, -0.4];
    let target = [0.1f32, 0.4, -0.3, -0.2, 0.6, 0.0];
    let mut tape = Tape::new();
    let (_, root) = mse(&model, &mut tape, &input, 2, &target);
    model.params_mut().zero_grads();
    tape.backward(root, model.params_mut()).unwrap();
    let analytic = model.params().grads().to_vec();
    let h = 1e-3f32;
    for j in model.params().entries().iter().flat_map(|e| e.range()).collect::<Vec<_>>() {
        let orig = model.params().values()[j];
        model.params_mut().values_mut()[j] = orig + h;
        let up = mse(&model, &mut tape, &input, 2, &target).0 as f64;
        model.params_mut().values_mut()[j] = orig - h;
        let down = mse(&model, &mut tape, &input, 2, &target).0 as f64;
        model.params_mut().values_mut()[j] = orig;
        let numeric = (up - down) / (2.0 * h as f64);
        assert!((analytic[j] as f64 - numeric).abs() <= 1e-3 + 1e-2 * numeric.abs(), "param {j}: analytic {} vs numeric {numeric}", analytic[j]);
    }
    // In a config, the second call is a `call` entry: the same graph and weights come back.
    let config = model.config().unwrap();
    assert!(matches!(&config.layers[1], crate::nn::LayerConfig::Call(c) if c.layer == "dense" && c.name.as_deref() == Some("dense_call_1")), "{:?}", config.layers);
    assert_eq!(config.layers[2].inputs(), Some(&["dense_call_1".to_string(), "input_layer".to_string()][..]));
    let again = Model::from_config(config.clone()).unwrap();
    assert_eq!(again.config().unwrap(), config);
    assert_eq!(again.params().count(), 12);
    assert!(model.summary().contains("dense_call_1 (call of dense)"), "{}", model.summary());
    model.compile(Adam::new(0.01), Loss::MeanSquaredError, &[]).unwrap();
    let x = Tensor::new(input.to_vec(), &[2, 3]).unwrap();
    let y = Tensor::new(target.to_vec(), &[2, 3]).unwrap();
    model.train_on_batch(&x, &y).unwrap();
    let dir = std::env::temp_dir().join(format!("descent-shared-{}", std::process::id()));
    model.save(&dir, &Default::default()).unwrap();
    let (mut loaded, _) = Model::load(&dir).unwrap();
    assert_eq!(loaded.predict(&x, 2).unwrap(), model.predict(&x, 2).unwrap());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_call_entry_calls_an_earlier_layer_again() {
    let config: ModelConfig = serde_json::from_value(serde_json::json!({
        "inputs": [{ "name": "a", "shape": [4] }, { "name": "b", "shape": [4] }],
        "layers": [
            { "type": "dense", "name": "encoder", "units": 3, "activation": "tanh", "inputs": ["a"] },
            { "type": "call", "layer": "encoder", "inputs": ["b"] },
            { "type": "add", "name": "both", "inputs": ["encoder", "encoder_call_1"] }
        ]
    }))
    .unwrap();
    let model = Model::from_config(config.clone()).unwrap();
    assert_eq!(model.params().count(), 15, "one encoder: 4·3 + 3");
    assert_eq!(model.config().unwrap().layers[1], crate::nn::LayerConfig::Call(crate::nn::CallConfig {
        layer: "encoder".into(),
        name: Some("encoder_call_1".into()),
        inputs: Some(vec!["b".into()]),
        input_shape: None,
    }));
    // The same input on both sides: the two calls compute the same values.
    let mut tape = Tape::new();
    let v = tape.input(Shape::matrix(1, 4), &[0.5, -1.0, 2.0, 0.1]).unwrap();
    let y = model.forward_inputs(&mut tape, &[v, v], false).unwrap();
    let one = {
        let mut t = Tape::new();
        let single: ModelConfig = serde_json::from_value(serde_json::json!({
            "inputs": [{ "name": "a", "shape": [4] }],
            "layers": [{ "type": "dense", "name": "encoder", "units": 3, "activation": "tanh" }]
        }))
        .unwrap();
        let m = Model::from_config(single).unwrap();
        let v = t.input(Shape::matrix(1, 4), &[0.5, -1.0, 2.0, 0.1]).unwrap();
        let h = m.forward(&mut t, v, false).unwrap();
        t.value(m.params(), h).iter().map(|x| 2.0 * x).collect::<Vec<f32>>()
    };
    assert_eq!(tape.value(model.params(), y), &one[..], "same seed, same encoder weights: 2·encoder(x)");

    let bad = |layers: serde_json::Value| {
        let c: ModelConfig = serde_json::from_value(serde_json::json!({ "inputs": [{ "name": "a", "shape": [4] }], "layers": layers })).unwrap();
        Model::from_config(c).map(|_| ()).unwrap_err().to_string()
    };
    let e = bad(serde_json::json!([{ "type": "call", "layer": "later" }, { "type": "dense", "name": "later", "units": 2 }]));
    assert!(e.contains("model.layers[0]") && e.contains("'later' is not an earlier layer"), "{e}");
    let e = bad(serde_json::json!([{ "type": "dense", "name": "d", "units": 4 }, { "type": "call", "layer": "d", "name": "d" }]));
    assert!(e.contains("two layers are named 'd'"), "{e}");
    let e: Result<ModelConfig, _> = serde_json::from_value(serde_json::json!({ "layers": [{ "type": "call", "layer": "d", "units": 3 }] }));
    assert!(e.unwrap_err().to_string().contains("unknown field `units`"));
}

#[test]
fn several_inputs_and_outputs() {
    let a = Input::named("a", &[2]);
    let b = Input::named("b", &[3]);
    let joined = Concatenate::new().name("joined").call_on(&[&a, &b]).unwrap();
    let head = Dense::new(1, Activation::Linear).call(&joined).unwrap();
    let model = Model::new(&[a, b], &[head, joined]).unwrap();
    assert_eq!((model.num_inputs(), model.num_outputs()), (2, 2));
    assert_eq!(model.input_names().collect::<Vec<_>>(), ["a", "b"]);
    let mut tape = Tape::new();
    let va = tape.input(Shape::matrix(2, 2), &[1.0, 2.0, 3.0, 4.0]).unwrap();
    let vb = tape.input(Shape::matrix(2, 3), &[5.0, 6.0, 7.0, 8.0, 9.0, 10.0]).unwrap();
    let mut outs = Vec::new();
    model.forward_outputs(&mut tape, &[va, vb], false, &mut outs).unwrap();
    assert_eq!(tape.shape(outs[0]).dims(), &[2, 1]);
    assert_eq!(tape.value(model.params(), outs[1]), &[1.0, 2.0, 5.0, 6.0, 7.0, 3.0, 4.0, 8.0, 9.0, 10.0]);
    let w = model.params().value(model.params().find("dense.kernel").unwrap()).to_vec();
    let want: f32 = [1.0, 2.0, 5.0, 6.0, 7.0].iter().zip(&w).map(|(x, w)| x * w).sum();
    assert!((tape.value(model.params(), outs[0])[0] - want).abs() < 1e-5);
    let config = model.config().unwrap();
    assert_eq!(config.outputs, ["dense", "joined"]);
    assert_eq!(Model::from_config(config.clone()).unwrap().config().unwrap(), config);
    assert!(model.forward(&mut tape, va, false).unwrap_err().to_string().contains("2 inputs"));
}

/// Columns `from..to` of every row.
fn columns(t: &Tensor, from: usize, to: usize) -> Tensor {
    let data = (0..t.rows()).flat_map(|r| t.row(r)[from..to].to_vec()).collect();
    Tensor::new(data, &[t.rows(), to - from]).unwrap()
}

#[test]
fn a_model_with_two_inputs_trains_like_one_on_their_concatenation() {
    // The top and bottom halves of each digit as two inputs, joined and classified, is
    // the one-input model on the whole image: same initial weights (the same single
    // kernel), same batches, so the same numbers bit for bit.
    let (train, test) = digits();
    let (top, bottom) = (columns(&train.x, 0, 32), columns(&train.x, 32, 64));
    let (test_top, test_bottom) = (columns(&test.x, 0, 32), columns(&test.x, 32, 64));
    let a = Input::named("top", &[32]);
    let b = Input::named("bottom", &[32]);
    let joined = Concatenate::new().call_on(&[&a, &b]).unwrap();
    let y = Dense::new(10, Activation::Linear).call(&joined).unwrap();
    let mut two = compiled(Model::new(&[a, b], &[y]).unwrap().with_seed(4).unwrap());
    let mut one = compiled(Sequential::new(vec![Box::new(Dense::new(10, Activation::Linear).input_shape(&[64]))]).unwrap().with_seed(4).unwrap());
    let options = || FitOptions { epochs: 3, verbose: 0, validation_split: 0.1, ..Default::default() };
    let h2 = two.fit_inputs(&[&top, &bottom], &train.y, options()).unwrap();
    let h1 = one.fit(&train.x, &train.y, options()).unwrap();
    assert_eq!(h2.get("val_accuracy"), h1.get("val_accuracy"));
    assert_eq!(two.params().values(), one.params().values());
    let e2 = two.evaluate_inputs(&[&test_top, &test_bottom], &test.y, 32).unwrap();
    assert_eq!(e2.get("accuracy"), one.evaluate(&test.x, &test.y, 32).unwrap().get("accuracy"));
    // A linear model after 3 epochs of Adam 0.001: well above chance (0.1), still learning.
    assert!(e2.get("accuracy").unwrap() > 0.5, "{e2:?}");
    assert_eq!(two.predict_inputs(&[&test_top, &test_bottom], 50).unwrap(), one.predict(&test.x, 50).unwrap());

    // One tensor for two inputs, mismatched samples, a wrong width: each names what is wrong.
    let e = two.fit(&train.x, &train.y, options()).unwrap_err().to_string();
    assert!(e.contains("1 input tensor(s)") && e.contains("2 inputs (top, bottom)"), "{e}");
    let e = two.evaluate_inputs(&[&top, &test_bottom], &test.y, 32).unwrap_err().to_string();
    assert!(e.contains("input 'bottom'") && e.contains("samples"), "{e}");
    let e = two.predict_inputs(&[&top, &train.x], 32).unwrap_err().to_string();
    assert!(e.contains("input 'bottom'") && e.contains("32 features"), "{e}");
}

#[test]
fn malformed_graphs_are_errors_that_name_the_layer() {
    let from = |json: serde_json::Value| Model::from_config(serde_json::from_value(json).unwrap()).map(|_| ()).unwrap_err().to_string();
    let e = from(serde_json::json!({ "inputs": [{ "name": "x", "shape": [4] }], "layers": [
        { "type": "dense", "name": "a", "units": 2, "inputs": ["x"] },
        { "type": "dense", "name": "b", "units": 2, "inputs": ["later"] },
        { "type": "dense", "name": "later", "units": 2 } ] }));
    assert!(e.contains("model.layers[1]") && e.contains("'b'") && e.contains("'later'") && e.contains("known: x, a"), "{e}");
    let e = from(serde_json::json!({ "inputs": [{ "name": "x", "shape": [4] }], "layers": [
        { "type": "dense", "name": "a", "units": 2, "inputs": ["x"] },
        { "type": "add", "name": "sum", "inputs": ["x", "a"] } ] }));
    assert!(e.contains("'sum' (Add)") && e.contains("[4]") && e.contains("[2]"), "{e}");
    let e = from(serde_json::json!({ "inputs": [{ "name": "x", "shape": [4] }], "layers": [
        { "type": "add", "name": "sum", "inputs": ["x"] } ] }));
    assert!(e.contains("two or more inputs"), "{e}");
    let e = from(serde_json::json!({ "inputs": [{ "name": "x", "shape": [4] }], "layers": [
        { "type": "dense", "name": "x", "units": 2 } ] }));
    assert!(e.contains("two layers are named 'x'"), "{e}");
    let e = from(serde_json::json!({ "inputs": [{ "name": "x", "shape": [4] }], "outputs": ["nope"], "layers": [
        { "type": "dense", "units": 2 } ] }));
    assert!(e.contains("model.outputs") && e.contains("'nope'"), "{e}");

    let x = Input::new(&[4]);
    let other = Input::new(&[4]);
    let shared = SharedLayer::new(Dense::new(4, Activation::Relu));
    let h = shared.call(&x).unwrap();
    let e = shared.call(&Input::new(&[3])).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("shared layer") && e.contains("[3]"), "{e}");
    let mixed = Add::new().call_on(&[&h, &other]).unwrap();
    let e = Model::new(std::slice::from_ref(&x), &[mixed]).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("not among the model's inputs"), "{e}");
    let e = Model::new(std::slice::from_ref(&h), std::slice::from_ref(&h)).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("not an `Input`"), "{e}");
    Model::new(std::slice::from_ref(&x), std::slice::from_ref(&h)).unwrap();
    let e = Model::new(&[x], &[h]).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("already belongs to another model"), "{e}");
    // Dense acts on the last axis of inputs of up to 3 axes per sample (as Keras); 4 is too many.
    assert_eq!(Dense::new(3, Activation::Relu).call(&Input::new(&[2, 2])).unwrap().shape(), &[2, 3]);
    let e = Dense::new(3, Activation::Relu).call(&Input::new(&[2, 2, 2, 2])).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("Dense") && e.contains("[2, 2, 2, 2]"), "{e}");
}

#[test]
fn functional_training_is_bit_identical_for_any_thread_count() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let (train, _) = crate::data::teacher_classification(&crate::data::TeacherSpec::W1, 512, 1, 5).unwrap();
            let x = Input::new(&[100]);
            let h = Dense::new(384, Activation::Relu).call(&x).unwrap();
            let r = Dense::new(384, Activation::Gelu { approximate: false }).call(&h).unwrap();
            let s = Add::new().call_on(&[&h, &r]).unwrap();
            let c = Concatenate::new().call_on(&[&s, &x]).unwrap();
            let y = Dense::new(10, Activation::Linear).call(&c).unwrap();
            let mut m = compiled(Model::new(&[x], &[y]).unwrap().with_seed(9).unwrap());
            m.fit(&train.x, &train.y, FitOptions { epochs: 2, batch_size: 128, verbose: 0, ..Default::default() }).unwrap();
            weights_to_bytes(m.params()).unwrap()
        })
    };
    assert!(run(1) == run(2), "1 vs 2 threads differ");
}

#[test]
fn predictions_of_a_saved_functional_model_need_its_input_width() {
    let mut model = residual(1);
    let e = model.predict(&Tensor::zeros(&[2, 5]).unwrap(), 8).unwrap_err().to_string();
    assert!(e.contains("64 features"), "{e}");
}

/// A digit classifier with a second head: one trunk, a 10-class head ("digit") and a
/// one-logit head ("big") telling digits 5–9 from 0–4.
fn two_heads(seed: u64) -> Model {
    let x = Input::named("pixels", &[64]);
    let h = Dense::new(64, Activation::Relu).call(&x).unwrap();
    let digit = Dense::new(10, Activation::Linear).name("digit").call(&h).unwrap();
    let big = Dense::new(1, Activation::Linear).name("big").call(&h).unwrap();
    Model::new(&[x], &[digit, big]).unwrap().with_seed(seed).unwrap()
}

/// 1 for digits 5–9, else 0.
fn is_big(y: &Tensor) -> Tensor {
    Tensor::new(y.data().iter().map(|c| (*c >= 5.0) as u8 as f32).collect(), &[y.rows(), 1]).unwrap()
}

#[test]
fn a_model_with_two_outputs_trains_each_on_its_loss() {
    let (train, test) = digits();
    let (big_train, big_test) = (is_big(&train.y), is_big(&test.y));
    let mut model = two_heads(3);
    let (sce, bce) = (Loss::sparse_categorical_crossentropy(true), Loss::binary_crossentropy(true));
    model.compile_outputs(Adam::new(0.003), &[sce, bce], &[1.0, 0.5], &["accuracy"]).unwrap();
    let opts = FitOptions { validation_split: 0.1, ..quiet(10) };
    let history = model.fit_outputs(&[&train.x], &[&train.y, &big_train], opts).unwrap();
    // The total is the weighted sum of the outputs' losses, epoch by epoch.
    let (total, digit, big) = (history.get("loss").unwrap(), history.get("digit_loss").unwrap(), history.get("big_loss").unwrap());
    for e in 0..total.len() {
        let sum = digit[e] + 0.5 * big[e];
        assert!((total[e] - sum).abs() <= 1e-5 * sum, "epoch {e}: loss {} vs {sum}", total[e]);
    }
    assert!(history.get("val_big_loss").is_some() && history.get("val_digit_accuracy").is_some());
    // Each head is scored by its own loss's accuracy: 10-way for one, thresholded for the other.
    let logs = model.evaluate_outputs(&[&test.x], &[&test.y, &big_test], 64).unwrap();
    let (digit_acc, big_acc) = (logs.get("digit_accuracy").unwrap(), logs.get("big_accuracy").unwrap());
    assert!(digit_acc > 0.9 && big_acc > 0.9, "held-out accuracy: digit {digit_acc}, big {big_acc}");
    // Predictions: one tensor per output; a saved model compiles back with both losses.
    let preds = model.predict_outputs(&[&test.x], 64).unwrap();
    assert_eq!((preds[0].dims(), preds[1].dims()), (&[test.len(), 10][..], &[test.len(), 1][..]));
    let dir = std::env::temp_dir().join(format!("descent-two-heads-{}", std::process::id()));
    model.save(&dir, &Preprocessing::default()).unwrap();
    let (mut loaded, _) = Model::load(&dir).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let trainer = loaded.trainer().unwrap();
    assert_eq!((trainer.losses.clone(), trainer.loss_weights.clone()), (vec![sce, bce], vec![1.0, 0.5]));
    assert_eq!(loaded.predict_outputs(&[&test.x], 64).unwrap(), preds);
    let again = loaded.evaluate_outputs(&[&test.x], &[&test.y, &big_test], 64).unwrap();
    assert_eq!(again.get("loss"), logs.get("loss"));
}

#[test]
fn an_output_weighted_zero_gets_no_gradient() {
    // Plain SGD: a head whose loss weighs 0 keeps its initial weights exactly, while
    // the other head and the trunk learn.
    let (train, _) = digits();
    let big = is_big(&train.y);
    let mut model = two_heads(4);
    let big_kernel = model.params().find("big.kernel").unwrap();
    let digit_kernel = model.params().find("digit.kernel").unwrap();
    let before = (model.params().value(big_kernel).to_vec(), model.params().value(digit_kernel).to_vec());
    let losses = [Loss::sparse_categorical_crossentropy(true), Loss::binary_crossentropy(true)];
    model.compile_outputs(crate::optim::Sgd::new(0.05), &losses, &[1.0, 0.0], &[]).unwrap();
    model.fit_outputs(&[&train.x], &[&train.y, &big], quiet(1)).unwrap();
    assert_eq!(model.params().value(big_kernel), &before.0[..]);
    assert_ne!(model.params().value(digit_kernel), &before.1[..]);
}

#[test]
fn several_outputs_need_a_loss_and_targets_each() {
    let (train, _) = digits();
    let big = is_big(&train.y);
    let mut model = two_heads(5);
    let (sce, bce) = (Loss::sparse_categorical_crossentropy(true), Loss::binary_crossentropy(true));
    let e = model.compile_outputs(Adam::new(0.001), &[sce], &[1.0], &[]).unwrap_err().to_string();
    assert!(e.contains("2 outputs (digit, big)") && e.contains("1 losses"), "{e}");
    let e = model.compile_outputs(Adam::new(0.001), &[sce, bce], &[1.0, f32::NAN], &[]).unwrap_err().to_string();
    assert!(e.contains("loss weight NaN of output 1"), "{e}");
    model.compile_outputs(Adam::new(0.001), &[sce, bce], &[1.0, 1.0], &["accuracy"]).unwrap();
    let e = model.fit_outputs(&[&train.x], &[&train.y], quiet(1)).unwrap_err().to_string();
    assert!(e.contains("1 target tensor(s)") && e.contains("2 outputs"), "{e}");
    // Targets are checked per output, against that output's loss and width.
    let e = model.fit_outputs(&[&train.x], &[&train.y, &train.y], quiet(1)).unwrap_err().to_string();
    assert!(e.contains("output 'big'") && e.contains("outside [0, 1]"), "{e}");
    let mut weights = std::collections::BTreeMap::new();
    weights.insert(0, 2.0);
    let opts = FitOptions { class_weight: Some(weights), ..quiet(1) };
    let e = model.fit_outputs(&[&train.x], &[&train.y, &big], opts).unwrap_err().to_string();
    assert!(e.contains("class_weight is for models with one output"), "{e}");
    // A single loss given to a two-output model applies to both, as in Keras.
    model.compile(Adam::new(0.001), bce, &[]).unwrap();
    assert_eq!(model.trainer().unwrap().losses, vec![bce, bce]);
}
