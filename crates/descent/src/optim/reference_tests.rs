//! Every optimizer and every common option against reference values from Keras 3,
//! PyTorch, or (LARS) a NumPy transcription — fixtures/optimizers.json, made by
//! scripts/make_optimizer_fixtures.py: 12 steps on three tensors, every step compared.
//! Every schedule against Keras's and PyTorch's own values at 40 steps.

use serde_json::Value;

use super::{Optimizer, OptimizerConfig, Schedule};
use crate::autograd::ParamStore;
use crate::tensor::Shape;

const FIXTURE: &str = include_str!("../../../../fixtures/optimizers.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

/// Keras/PyTorch class + kwargs (+ descent-only keys) → our config (same key names by design).
fn config(case: &Value) -> OptimizerConfig {
    let name = match case["optimizer"].as_str().unwrap() {
        "SGD" => "sgd",
        "RMSprop" => "rmsprop",
        "Adam" => "adam",
        "AdamW" => "adamw",
        "Adamax" => "adamax",
        "Nadam" => "nadam",
        "Adagrad" => "adagrad",
        "Adadelta" => "adadelta",
        "Adafactor" => "adafactor",
        "Ftrl" => "ftrl",
        "Lion" => "lion",
        "Lamb" => "lamb",
        "Muon" => "muon",
        "ScheduleFreeAdamW" => "schedule_free_adamw",
        "RAdam" => "radam",
        "Rprop" => "rprop",
        "Lars" => "lars",
        other => panic!("fixture optimizer {other}"),
    };
    let mut table = case["hyper"].as_object().unwrap().clone();
    for (k, v) in case["descent"].as_object().unwrap() {
        table.insert(k.clone(), v.clone());
    }
    table.insert("name".into(), Value::from(name));
    serde_json::from_value(Value::Object(table)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn store(fx: &Value) -> ParamStore {
    let mut s = ParamStore::new();
    for ((name, shape), init) in fx["names"].as_array().unwrap().iter().zip(fx["shapes"].as_array().unwrap()).zip(fx["init"].as_array().unwrap()) {
        let dims: Vec<usize> = shape.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let vals = floats(init);
        s.add(name.as_str().unwrap(), Shape::new(&dims).unwrap(), |b| b.copy_from_slice(&vals));
    }
    s
}

fn set_grads(s: &mut ParamStore, step: &Value) {
    let ids: Vec<_> = s.ids().collect();
    for (id, g) in ids.into_iter().zip(step.as_array().unwrap()) {
        let r = s.entry(id).range();
        s.grads_mut()[r].copy_from_slice(&floats(g));
    }
}

fn compare(what: &str, s: &ParamStore, flat: &[f32], want: &Value, tol: f32) -> f32 {
    let mut worst = 0.0f32;
    for (id, w) in s.ids().zip(want.as_array().unwrap()) {
        let e = s.entry(id);
        for (j, (got, want)) in flat[e.range()].iter().zip(floats(w)).enumerate() {
            let err = (got - want).abs() / want.abs().max(1.0);
            worst = worst.max(err);
            assert!(err < tol, "{what}: {}[{j}]: {got} vs {want}", e.name);
        }
    }
    worst
}

/// f32 arithmetic in a different operation order than the reference: a few ulp per
/// step, compounding over 12 steps, stays well under 1e-6 relative (observed ≤ 8e-7).
fn tolerance(_name: &str) -> f32 {
    1e-6
}

fn run_case(name: &str) -> f32 {
    let fx = fixture();
    let case = &fx["cases"][name];
    let mut opt: Box<dyn Optimizer> = config(case).build().unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut s = store(&fx);
    let mut worst = 0.0f32;
    for (t, step) in fx["grads"].as_array().unwrap().iter().enumerate() {
        set_grads(&mut s, step);
        opt.step(&mut s);
        let what = format!("{name} step {}", t + 1);
        worst = worst.max(compare(&what, &s, s.values(), &case["params"][t], tolerance(name)));
        if let Some(ema) = case.get("ema") {
            worst = worst.max(compare(&format!("{what} (EMA)"), &s, opt.ema_weights().unwrap(), &ema[t], tolerance(name)));
        }
    }
    assert_eq!(opt.iterations(), 12);
    worst
}

#[test]
fn every_optimizer_and_option_matches_its_reference() {
    let fx = fixture();
    let mut report = Vec::new();
    for name in fx["cases"].as_object().unwrap().keys() {
        let worst = run_case(name);
        report.push(format!("{name}: worst relative error {worst:.1e} ({})", fx["cases"][name]["framework"]));
    }
    eprintln!("{}", report.join("\n"));
    assert!(report.len() >= 35);
}

#[test]
fn every_schedule_matches_keras_and_pytorch() {
    let fx = fixture();
    for (name, case) in fx["schedules"].as_object().unwrap() {
        let s: Schedule = serde_json::from_value(case["schedule"].clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        s.validate().unwrap();
        let values: Vec<f32> = floats(&case["values"]);
        // Keras evaluates schedules in f32: errors are relative to the schedule's scale.
        let scale = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (step, want) in values.iter().enumerate() {
            let got = s.at(step as u64);
            assert!((got - want).abs() <= 2e-6 * scale, "{name} at step {step}: {got} vs {want}");
        }
    }
}

#[test]
fn hyperparameter_errors_name_the_key() {
    let msg = serde_json::from_str::<OptimizerConfig>(r#"{"name":"adam","lerning_rate":0.1}"#).unwrap_err().to_string();
    assert!(msg.contains("unknown field `lerning_rate`") && msg.contains("learning_rate"), "{msg}");
    let cfg: OptimizerConfig = serde_json::from_str(r#"{"name":"sgd","momentum":1.5}"#).unwrap();
    let msg = cfg.build().err().unwrap().to_string();
    assert!(msg.contains("momentum = 1.5") && msg.contains("[0, 1)"), "{msg}");
    let msg = serde_json::from_str::<OptimizerConfig>(r#"{"name":"adamm"}"#).unwrap_err().to_string();
    assert!(msg.contains("unknown variant `adamm`") && msg.contains("schedule_free_adamw"), "{msg}");
    let cfg: OptimizerConfig = serde_json::from_str(r#"{"name":"adam","clipnorm":1.0,"clipvalue":0.5}"#).unwrap();
    let msg = cfg.build().err().unwrap().to_string();
    assert!(msg.contains("at most one of clipnorm"), "{msg}");
    let msg = serde_json::from_str::<OptimizerConfig>(r#"{"name":"adam","learning_rate":{"name":"cosine_decay","decay_steps":10}}"#)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("learning_rate"), "{msg}");
}

#[test]
fn every_named_optimizer_has_a_default_config() {
    for name in OptimizerConfig::NAMES {
        let cfg = OptimizerConfig::named(name).unwrap();
        assert_eq!(cfg.name(), name);
        cfg.build().unwrap();
        // Round trip through JSON (what model.json stores).
        let back: OptimizerConfig = serde_json::from_str(&serde_json::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
    }
}
