//! The `descent` binary end to end: fit, evaluate, predict and summary on a small
//! experiment, and the documented error cases (exit code 1, message naming the problem).


mod common;
use common::{descent, digits, text, workdir};

fn experiment(data: &str, extra_fit: &str) -> String {
    common::experiment_toml(data, "\"adam\"", 4, 2, extra_fit)
}

#[test]
fn fit_evaluate_predict_summary() {
    let dir = workdir("flow");
    std::fs::write(dir.join("tiny.toml"), experiment(&digits(), "")).unwrap();
    let fit = descent(&["fit", "tiny.toml"], &dir);
    let out = text(&fit);
    assert!(fit.status.success(), "{out}");
    assert!(out.contains("Epoch 4/4") && out.contains("held-out: loss:") && out.contains("runs/tiny-001"), "{out}");
    let run = dir.join("runs/tiny-001");
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    let acc = metrics["test"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.85, "{acc}");

    let eval = descent(&["evaluate", "runs/tiny-001"], &dir);
    let out = text(&eval);
    assert!(eval.status.success(), "{out}");
    assert!(out.contains("359 samples") && out.contains(&format!("accuracy: {acc:.4}")), "{out}");

    let pred = descent(&["predict", "runs/tiny-001", "--input", &digits(), "--output", "p.csv"], &dir);
    assert!(pred.status.success(), "{}", text(&pred));
    let p = std::fs::read_to_string(dir.join("p.csv")).unwrap();
    let mut lines = p.lines();
    assert_eq!(lines.next().unwrap(), "class,p_0,p_1,p_2,p_3,p_4,p_5,p_6,p_7,p_8,p_9");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1797);
    let first: Vec<f64> = rows[0].split(',').map(|v| v.parse().unwrap()).collect();
    assert!((first[1..].iter().sum::<f64>() - 1.0).abs() < 1e-4, "probabilities sum to 1");
    assert_eq!(first[0], 0.0, "the first digit in the file is a 0");

    let summary = descent(&["summary", "runs/tiny-001"], &dir);
    assert!(text(&summary).contains("Total params: 2,410"), "{}", text(&summary));
}

#[test]
fn the_bundled_residual_example_fits_and_shows_its_graph() {
    let dir = workdir("residual");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/residual.toml");
    let body = std::fs::read_to_string(example).unwrap().replace("../data/digits.csv", &digits()).replace("epochs = 10", "epochs = 3\nverbose = 0");
    std::fs::write(dir.join("residual.toml"), body).unwrap();
    let summary = descent(&["summary", "residual.toml"], &dir);
    let out = text(&summary);
    assert!(summary.status.success(), "{out}");
    assert!(out.contains("Connected to") && out.contains("pixels (InputLayer)") && out.contains("skip (Add)") && out.contains("hidden,"), "{out}");
    let fit = descent(&["fit", "residual.toml"], &dir);
    assert!(fit.status.success(), "{}", text(&fit));
    let summary = descent(&["summary", "runs/residual-001"], &dir);
    assert!(text(&summary).contains("block (Dense)") && text(&summary).contains("Total params: 8,970"), "{}", text(&summary));
    let eval = descent(&["evaluate", "runs/residual-001"], &dir);
    assert!(eval.status.success() && text(&eval).contains("accuracy"), "{}", text(&eval));
}

#[test]
fn documented_errors() {
    let dir = workdir("errors");
    let cases: Vec<(&str, String, &str)> = vec![
        ("typo.toml", experiment(&digits(), "").replace("epochs = 4", "epoch = 4"), "unknown field `epoch`"),
        ("bad-act.toml", experiment(&digits(), "").replace("\"relu\"", "\"rellu\""), "unknown activation `rellu`"),
        ("missing.toml", experiment("nope.csv", ""), "nope.csv"),
        ("split.toml", experiment(&digits(), "validation_split = 2.0"), "`fit.validation_split`"),
    ];
    for (file, body, want) in cases {
        std::fs::write(dir.join(file), body).unwrap();
        let o = descent(&["fit", file], &dir);
        assert_eq!(o.status.code(), Some(1), "{file}");
        assert!(text(&o).contains(want), "{file}: {}", text(&o));
    }
    // Labels out of range and NaN cells, named with the file and position.
    std::fs::write(dir.join("labels.csv"), "a,b,label\n0,1,0\n1,0,3\n1,1,12\n0,0,1\n1,1,2\n").unwrap();
    std::fs::write(dir.join("labels.toml"), experiment("labels.csv", "").replace("test_split = 0.2", "test_split = 0.0")).unwrap();
    let o = descent(&["fit", "labels.toml"], &dir);
    assert!(text(&o).contains("labels.csv") && text(&o).contains("label 12 at line 4"), "{}", text(&o));
    std::fs::write(dir.join("nan.csv"), "a,b,label\n0,1,0\n1,NaN,3\n").unwrap();
    std::fs::write(dir.join("nan.toml"), experiment("nan.csv", "")).unwrap();
    let o = descent(&["fit", "nan.toml"], &dir);
    assert!(text(&o).contains("NaN at line 3, column `b`"), "{}", text(&o));
    // Predicting with features of the wrong width names the layer and both widths.
    std::fs::write(dir.join("ok.toml"), experiment(&digits(), "epochs = 1").replace("epochs = 4\n", "")).unwrap();
    assert!(descent(&["fit", "ok.toml"], &dir).status.success());
    std::fs::write(dir.join("narrow.csv"), "a,b,c\n1,2,3\n").unwrap();
    let o = descent(&["predict", "runs/ok-001", "--input", "narrow.csv"], &dir);
    assert!(text(&o).contains("layer 'dense'") && text(&o).contains("64 features") && text(&o).contains("3 features"), "{}", text(&o));
    let o = descent(&["evaluate", "runs/none"], &dir);
    assert!(text(&o).contains("runs/none/model.json"), "{}", text(&o));
}

#[test]
fn categorical_csv_columns_train_predict_and_evaluate() {
    let dir = workdir("categorical");
    // label = 1 for red, or for blue when size > 1; the color only enters one-hot encoded.
    let mut train = String::from("size,color,label\n");
    let colors = ["red", "green", "blue"];
    for i in 0..600 {
        let size = (i % 17) as f32 / 8.0;
        let color = colors[i % 3];
        let label = (color == "red" || (color == "blue" && size > 1.0)) as u8;
        train += &format!("{size},{color},{label}\n");
    }
    std::fs::write(dir.join("train.csv"), &train).unwrap();
    std::fs::write(
        dir.join("cat.toml"),
        r#"
seed = 1
[data]
format = "csv"
path = "train.csv"
categorical = ["color"]
stratify = true
minmax = true
[model]
layers = [{ type = "dense", units = 16, activation = "relu" }, { type = "dense", units = 2 }]
[compile]
optimizer = { name = "adam", learning_rate = 0.01 }
loss = { name = "sparse_categorical_crossentropy", from_logits = true }
metrics = ["accuracy", "f1"]
[fit]
epochs = 60
validation_split = 0.2
verbose = 0
"#,
    )
    .unwrap();
    let out = descent(&["fit", "cat.toml"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let model_json = std::fs::read_to_string(dir.join("runs/cat-001/model.json")).unwrap();
    assert!(model_json.contains("\"green\""), "categories are saved with the model");
    // With `stratify`, the validation split is stratified too and reported each epoch.
    let history = std::fs::read_to_string(dir.join("runs/cat-001/history.csv")).unwrap();
    assert!(history.starts_with("epoch,loss,accuracy,f1,val_loss,val_accuracy,val_f1"), "{history}");
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("runs/cat-001/metrics.json")).unwrap()).unwrap();
    assert!(metrics["test"]["accuracy"].as_f64().unwrap() > 0.95, "{metrics}");
    // Prediction encodes the text column with the saved categories.
    std::fs::write(dir.join("new.csv"), "size,color\n0.1,red\n1.9,blue\n0.1,green\n").unwrap();
    let out = descent(&["predict", "runs/cat-001", "--input", "new.csv"], &dir);
    assert!(out.status.success(), "{}", text(&out));
    let classes: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().skip(1).map(|l| l.split(',').next().unwrap().to_string()).collect();
    assert_eq!(classes, vec!["1", "1", "0"]);
    let out = descent(&["evaluate", "runs/cat-001"], &dir);
    assert!(out.status.success() && text(&out).contains("confusion matrix"), "{}", text(&out));
}
