//! The GPT preset end to end: against PyTorch (fixtures/gpt.json, made by
//! scripts/make_gpt_fixture.py: logits and every gradient within 1e-4 of float64
//! PyTorch relative to the tensor's largest value, and 10 AdamW steps' losses within
//! 1e-5 relative), training on a slice of tiny Shakespeare from a TOML experiment,
//! bit-identical across thread counts, sampling, and the errors of bad text input.

use serde_json::Value;

use crate::autograd::Tape;
use crate::experiment::{Experiment, GptPreset};
use crate::nn::{Loss, ModelConfig};
use crate::optim::OptimizerConfig;
use crate::tensor::{Shape, Targets, Tensor};
use crate::train::{Model, SampleOptions};

fn fixture() -> Value {
    serde_json::from_str(include_str!("../../../../fixtures/gpt.json")).unwrap()
}

fn flat(v: &Value, out: &mut Vec<f64>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| flat(x, out)),
        x => out.push(x.as_f64().unwrap()),
    }
}
fn floats(v: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    flat(v, &mut out);
    out
}

/// max |got − want| / max |want| (the error relative to the tensor's scale).
fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-30);
    got.iter().zip(want).map(|(g, w)| (*g as f64 - w).abs()).fold(0.0, f64::max) / scale
}

fn gpt_model(vocab: usize, block: usize, preset: &GptPreset, seed: u64) -> Model {
    let (inputs, layers, outputs) = preset.expand(vocab, block);
    let config = ModelConfig { name: "gpt".into(), input_shape: None, inputs, layers, outputs };
    let mut model = Model::from_config(config).unwrap().with_seed(seed).unwrap();
    if !model.is_built() {
        model.build_inputs(&[vec![block]]).unwrap();
    }
    model
}

fn fixture_model(f: &Value) -> (Model, Tensor, Tensor) {
    let c = &f["config"];
    let u = |k: &str| c[k].as_u64().unwrap() as usize;
    let preset = GptPreset { n_layer: u("n_layer"), n_head: u("n_head"), n_embd: u("n_embd"), block_size: None, dropout: 0.0, bias: true, tie_weights: false };
    let mut model = gpt_model(u("vocab"), u("block"), &preset, 1);
    let store = &mut model.network.store;
    let ids: Vec<_> = store.ids().collect();
    for id in ids {
        let name = store.entry(id).name.clone();
        let range = store.entry(id).range();
        if let Some(v) = f["params"].get(&name) {
            let vals = floats(v);
            assert_eq!(vals.len(), range.len(), "{name}");
            for (dst, src) in store.values_mut()[range].iter_mut().zip(vals) {
                *dst = src as f32;
            }
        } else {
            // Only the fixed β of a LayerNormalization without bias may be absent.
            assert!(name.ends_with(".beta") && !store.entry(id).trainable, "fixture lacks {name}");
        }
    }
    let (b, t) = (u("batch"), u("block"));
    let x = Tensor::new(floats(&f["x"]).iter().map(|v| *v as f32).collect(), &[b, t]).unwrap();
    let y = Tensor::from_classes(floats(&f["y"]).iter().map(|v| *v as u32).collect(), &[b, t]).unwrap();
    (model, x, y)
}

#[test]
fn gpt_logits_gradients_and_adamw_steps_match_pytorch() {
    let f = fixture();
    let (mut model, x, y) = fixture_model(&f);
    let logits = model.predict(&x, 16).unwrap();
    let e = rel_err(logits.data(), &floats(&f["logits"]));
    assert!(e < 1e-4, "logits: relative error {e}");

    // Gradients of the mean token cross-entropy, parameter by parameter.
    let net = &mut model.network;
    let mut tape = Tape::new();
    let xin = tape.input(Shape::new(x.dims()).unwrap(), x.data()).unwrap();
    let mut outs = Vec::new();
    net.forward_outputs(&mut tape, &[xin], true, &mut outs).unwrap();
    let kind = Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.0 }.kind();
    let loss = tape.loss(&net.store, outs[0], Targets::Classes(y.classes().unwrap()), kind).unwrap();
    let want_loss = f["loss"].as_f64().unwrap();
    assert!((tape.scalar(loss) as f64 - want_loss).abs() / want_loss < 1e-5, "loss {} vs {want_loss}", tape.scalar(loss));
    net.store.zero_grads();
    tape.backward(loss, &mut net.store).unwrap();
    let mut checked = 0;
    for id in net.store.ids().collect::<Vec<_>>() {
        let entry = net.store.entry(id);
        let Some(want) = f["grads"].get(&entry.name) else { continue };
        let got = &net.store.grads()[entry.range()];
        let want = floats(want);
        if want.iter().all(|w| w.abs() < 1e-12) {
            // The key bias adds one constant to all of a query's scores: softmax ignores
            // it, so its gradient is zero (PyTorch: ~1e-17; f32: rounding noise).
            let worst = got.iter().fold(0.0f32, |m, g| m.max(g.abs()));
            assert!(entry.name.contains("key.bias") && worst < 1e-6, "gradient of {}: {worst} where PyTorch has 0", entry.name);
        } else {
            let e = rel_err(got, &want);
            assert!(e < 1e-4, "gradient of {}: relative error {e}", entry.name);
        }
        checked += 1;
    }
    assert_eq!(checked, f["grads"].as_object().unwrap().len());

    // Ten AdamW steps on the batch.
    let opt: OptimizerConfig = serde_json::from_str(r#"{"name":"adamw","learning_rate":1e-3,"beta_1":0.9,"beta_2":0.99,"epsilon":1e-8,"weight_decay":0.1}"#).unwrap();
    model.compile(opt.build().unwrap(), Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.0 }, &[]).unwrap();
    for (step, want) in floats(&f["adamw_losses"]).iter().enumerate() {
        let got = model.train_on_batch(&x, &y).unwrap() as f64;
        assert!((got - want).abs() / want < 1e-5, "AdamW step {step}: loss {got} vs PyTorch {want}");
    }
}

fn shakespeare() -> String {
    format!("{}/../../data/tinyshakespeare.txt", env!("CARGO_MANIFEST_DIR"))
}

/// A small character GPT on tiny Shakespeare (as examples/shakespeare_char.toml, smaller).
fn small_experiment(steps: usize, path: &str) -> Experiment {
    Experiment::from_toml(&format!(
        r#"
        seed = 3
        [data]
        format = "text"
        path = "{path}"
        block_size = 32
        [model.gpt]
        n_layer = 2
        n_head = 2
        n_embd = 48
        [compile]
        loss = {{ name = "sparse_categorical_crossentropy", from_logits = true }}
        metrics = ["accuracy"]
        optimizer = {{ name = "adamw", learning_rate = 3e-3, beta_2 = 0.99, weight_decay = 0.1, global_clipnorm = 1.0 }}
        [fit]
        batch_size = 16
        max_steps = {steps}
        eval_interval = {steps}
        eval_iters = 4
        verbose = 0
        "#
    ))
    .unwrap()
}

#[test]
fn a_small_gpt_learns_shakespeare_from_toml_and_samples_reproducibly() {
    let exp = small_experiment(400, &shakespeare());
    let dir = std::env::temp_dir().join(format!("descent-gpt-test-{}", std::process::id()));
    let summary = exp.run(Some(&dir)).unwrap();
    // Predicting each character from its frequency alone scores 3.31 nats here; a
    // 2-layer GPT after 400 steps of 16 × 32 characters reaches 2.32 (3 s).
    let val = summary.test.get("loss").unwrap();
    assert!(val < 2.45, "validation loss {val}");
    assert!((summary.test.get("perplexity").unwrap() - val.exp()).abs() < 1e-6);
    let (mut model, saved) = Model::load(&summary.dir).unwrap();
    let tok = saved.preprocessing.tokenizer.clone().expect("tokenizer saved with the model");
    let prompt = tok.encode("ROMEO:").unwrap();
    let opts = SampleOptions { max_tokens: 40, temperature: 0.8, top_k: Some(20), top_p: None, seed: 9 };
    let mut streamed = Vec::new();
    let a = model.generate(&prompt, &opts, |t| {
        streamed.push(t);
        Ok(())
    })
    .unwrap();
    assert_eq!(a, streamed);
    let b = model.generate(&prompt, &opts, |_| Ok(())).unwrap();
    assert_eq!(a, b, "same seed, same text");
    let c = model.generate(&prompt, &SampleOptions { seed: 10, ..opts }, |_| Ok(())).unwrap();
    assert_ne!(a, c);
    assert_eq!(tok.decode(&a).unwrap().chars().count(), 40);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn gpt_training_is_bit_identical_for_any_thread_count() {
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let f = fixture();
            let (mut model, x, y) = fixture_model(&f);
            model.compile(OptimizerConfig::named("adamw").unwrap().build().unwrap(), Loss::SparseCategoricalCrossentropy { from_logits: true, label_smoothing: 0.0 }, &[]).unwrap();
            for _ in 0..3 {
                model.train_on_batch(&x, &y).unwrap();
            }
            model.network.store.values().to_vec()
        })
    };
    let one = run(1);
    assert!(one == run(2) && one == run(3), "weights differ between thread counts");
}

#[test]
fn bad_text_input_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("descent-gpt-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let latin1 = dir.join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 au lait, encore du caf\xe9").unwrap();
    let e = small_experiment(5, latin1.to_str().unwrap()).run(Some(&dir)).unwrap_err().to_string();
    assert!(e.contains("latin1.txt") && e.contains("not UTF-8") && e.contains("byte 3"), "{e}");
    let short = dir.join("short.txt");
    std::fs::write(&short, "too short").unwrap();
    let e = small_experiment(5, short.to_str().unwrap()).run(Some(&dir)).unwrap_err().to_string();
    assert!(e.contains("short.txt") && e.contains("block_size + 1 = 33"), "{e}");
    // A preset needs a vocabulary from text; a head count must divide the width.
    let e = Experiment::from_toml(
        r#"
        [data]
        format = "csv"
        path = "x.csv"
        [model.gpt]
        n_layer = 1
        n_head = 2
        n_embd = 8
        [compile]
        optimizer = "adam"
        loss = "mse"
        "#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("model.gpt") && e.contains("text"), "{e}");
    let toml = small_experiment(5, "x.txt").to_toml().replace("n_head = 2", "n_head = 5");
    let e = Experiment::from_toml(&toml).unwrap_err().to_string();
    assert!(e.contains("n_embd 48 is not a multiple of n_head 5"), "{e}");
    // Ids beyond the vocabulary, named with their position.
    let f = fixture();
    let (mut model, mut x, _) = fixture_model(&f);
    x.data_mut()[9] = 11.0;
    let e = model.predict(&x, 8).unwrap_err().to_string();
    assert!(e.contains("ids in [0, 11)") && e.contains("11 at position [1, 1]"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn decoding_with_the_key_value_cache_equals_the_whole_window() {
    let f = fixture();
    let (mut model, x, _) = fixture_model(&f);
    let (t, v) = (8, 11);
    let full = model.predict(&x, 4).unwrap();
    let want = &full.data()[..t * v]; // the first sequence's logits, every position
    let net = &model.network;
    assert!(net.decodes_incrementally());
    let ids: Vec<f32> = x.data()[..t].to_vec();
    let mut caches = Vec::new();
    let mut tape = Tape::new();
    let mut got = Vec::new();
    // A prompt of 3 positions, then one position at a time.
    for (start, end) in [(0, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8)] {
        tape.reset();
        let xin = tape.input(Shape::new(&[1, end - start]).unwrap(), &ids[start..end]).unwrap();
        let y = tape.no_grad(|tape| net.forward_decode(tape, xin, start, &mut caches)).unwrap();
        got.extend_from_slice(&tape.value(&net.store, y));
    }
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "cached decoding differs from the whole window by {worst}");
}

#[test]
fn a_tied_head_shares_the_token_table_and_trains() {
    let toml = small_experiment(400, &shakespeare()).to_toml().replace("tie_weights = false", "tie_weights = true");
    let exp = Experiment::from_toml(&toml).unwrap();
    let (_, tied) = exp.text_model().unwrap();
    let (_, untied) = small_experiment(400, &shakespeare()).text_model().unwrap();
    let count = |m: &Model| m.store.count();
    assert_eq!(count(&untied) - count(&tied), 65 * 48, "the head's kernel is the token table");
    assert!(tied.store.find("head.kernel").is_none());
    let dir = std::env::temp_dir().join(format!("descent-gpt-tied-{}", std::process::id()));
    let summary = exp.run(Some(&dir)).unwrap();
    let val = summary.test.get("loss").unwrap();
    assert!(val < 2.45, "validation loss {val}");
    // Saved and loaded, the head still reads the table: the same validation loss.
    let (mut loaded, _) = Model::load(&summary.dir).unwrap();
    let (corpus, _) = exp.text_model().unwrap();
    let (vx, vy) = exp.validation_windows(&corpus).unwrap().unwrap();
    let again = loaded.evaluate(&vx, &vy, 16).unwrap().get("loss").unwrap();
    assert!((again - val).abs() < 1e-9, "{again} after loading vs {val}");
    let _ = std::fs::remove_dir_all(&dir);
}
