//! Optimizer updates against Keras 3's own optimizers (fixtures/optimizers.json, made by
//! scripts/make_optimizer_fixtures.py): 12 steps on three tensors, every step compared.
//! SGD variants are also compared against PyTorch, whose rules coincide for constant η.

use serde_json::Value;

use super::OptimizerConfig;

const FIXTURE: &str = include_str!("../../../../fixtures/optimizers.json");

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn flat(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().flat_map(floats).collect()
}

/// Keras class + kwargs → our config (same key names by design).
fn config(case: &Value) -> OptimizerConfig {
    let name = match case["optimizer"].as_str().unwrap() {
        "SGD" => "sgd",
        "RMSprop" => "rmsprop",
        "Adam" => "adam",
        other => panic!("fixture optimizer {other}"),
    };
    let mut hyper = case["hyper"].clone();
    hyper["name"] = Value::from(name);
    serde_json::from_value(hyper).unwrap()
}

fn run_case(name: &str, reference: &str) {
    let fx: Value = serde_json::from_str(FIXTURE).unwrap();
    let case = &fx["cases"][name];
    let mut opt = config(case).build().unwrap();
    let mut params = flat(&fx["init"]);
    let mut worst = 0.0f32;
    for (t, (grads, want)) in fx["grads"].as_array().unwrap().iter().zip(case[reference].as_array().unwrap()).enumerate() {
        opt.step(&mut params, &flat(grads));
        for (i, (got, want)) in params.iter().zip(flat(want)).enumerate() {
            // f32 arithmetic in a different operation order than Keras's: a few ulp per step.
            let err = (got - want).abs() / want.abs().max(1.0);
            worst = worst.max(err);
            assert!(err < 2e-6, "{name} vs {reference}, step {}, element {i}: {got} vs {want}", t + 1);
        }
    }
    assert_eq!(opt.iterations(), 12);
    eprintln!("{name} vs {reference}: worst relative error {worst:e}");
}

#[test]
fn sgd_matches_keras_and_torch() {
    for name in ["sgd", "sgd_momentum", "sgd_nesterov"] {
        run_case(name, "keras");
        run_case(name, "torch");
    }
}

#[test]
fn rmsprop_matches_keras() {
    for name in ["rmsprop", "rmsprop_centered", "rmsprop_momentum", "rmsprop_centered_momentum"] {
        run_case(name, "keras");
    }
}

#[test]
fn adam_and_amsgrad_match_keras() {
    for name in ["adam", "adam_betas", "amsgrad"] {
        run_case(name, "keras");
    }
}

#[test]
fn hyperparameter_errors_name_the_key() {
    let bad: Result<OptimizerConfig, _> = serde_json::from_str(r#"{"name":"adam","lerning_rate":0.1}"#);
    let msg = bad.unwrap_err().to_string();
    assert!(msg.contains("unknown field `lerning_rate`") && msg.contains("learning_rate"), "{msg}");
    let cfg: OptimizerConfig = serde_json::from_str(r#"{"name":"sgd","momentum":1.5}"#).unwrap();
    let msg = cfg.build().err().unwrap().to_string();
    assert!(msg.contains("momentum = 1.5") && msg.contains("[0, 1)"), "{msg}");
    let msg = serde_json::from_str::<OptimizerConfig>(r#"{"name":"adamw"}"#).unwrap_err().to_string();
    assert!(msg.contains("unknown variant `adamw`") && msg.contains("rmsprop"), "{msg}");
}
