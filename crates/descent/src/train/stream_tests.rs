//! Training from streams (data larger than memory): through memory-mapped `.npy` windows
//! and the prefetch thread, from Rust and from an experiment file.

use crate::data::{read_csv, BatchStream, CsvOptions, Dataset, LabelColumn, NpyStream, Prefetch, Preprocessing, Shard};
use crate::experiment::Experiment;
use crate::nn::{Activation, Dense, Loss};
use crate::train::Sequential;
use crate::optim::Adam;
use crate::train::FitOptions;

fn digits_npy(dir: &std::path::Path) -> (Dataset, Dataset) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");
    let options = CsvOptions { label_column: Some(LabelColumn::Name("label".into())), ..Default::default() };
    let (x, y) = read_csv(path, &options).unwrap();
    let (train, test) = Dataset::new(x, y.unwrap(), "digits").unwrap().train_test_split(0.2, 42).unwrap();
    crate::data::stream::tests::write_npy(&dir.join("x.npy"), &[train.len(), 64], train.x.data());
    crate::data::stream::tests::write_npy(&dir.join("y.npy"), &[train.len()], train.y.data());
    (train, test)
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("descent-fitstream-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn fit_stream_learns_digits_from_mapped_npy() {
    let dir = tmp("lib");
    let (_, mut test) = digits_npy(&dir);
    let mut stream = NpyStream::open(dir.join("x.npy"), dir.join("y.npy"), 1, 7, Shard::default()).unwrap();
    let prep = Preprocessing::fit_stream(&crate::data::PreprocessSpec { standardize: true, ..Default::default() }, &mut stream).unwrap();
    let mut source = Prefetch::new(Box::new(crate::data::stream::Transformed { inner: stream, prep: prep.clone() }), 3);
    let mut model = Sequential::new(vec![Box::new(Dense::new(64, Activation::Relu).input_shape(&[64])), Box::new(Dense::new(10, Activation::Linear))]).unwrap();
    model.compile(Adam::new(0.001), Loss::sparse_categorical_crossentropy(true), &["accuracy"]).unwrap();
    prep.apply(&mut test.x).unwrap();
    let history = model
        .fit_stream(&mut source, FitOptions { epochs: 10, verbose: 0, validation_data: Some((&test.x, &test.y)), ..Default::default() })
        .unwrap();
    assert_eq!(history.get("val_accuracy").unwrap().len(), 10);
    let acc = model.evaluate(&test.x, &test.y, 64).unwrap().get("accuracy").unwrap();
    assert!(acc > 0.95, "held-out accuracy {acc}");
    // Stopping early and streaming again starts a clean epoch (the rest is drained).
    let h = model
        .fit_stream(&mut source, FitOptions { epochs: 2, verbose: 0, callbacks: vec![Box::new(crate::train::LambdaCallback(|_, _| true))], ..Default::default() })
        .unwrap();
    assert_eq!(h.epochs.len(), 1);
    model.fit_stream(&mut source, FitOptions { epochs: 1, verbose: 0, ..Default::default() }).unwrap();
    assert!(model.fit_stream(&mut source, FitOptions { validation_split: 0.1, ..Default::default() }).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn streamed_experiment_runs_end_to_end() {
    let dir = tmp("exp");
    digits_npy(&dir);
    let text = format!(
        r#"
seed = 3
[data]
format = "npy"
x = "{0}/x.npy"
y = "{0}/y.npy"
stream = true
window_mb = 1
test_split = 0.0
standardize = true
[model]
layers = [{{ type = "dense", units = 32, activation = "relu" }}, {{ type = "dense", units = 10 }}]
[compile]
optimizer = "adam"
loss = {{ name = "sparse_categorical_crossentropy", from_logits = true }}
metrics = ["accuracy"]
[fit]
epochs = 5
verbose = 0
"#,
        dir.display()
    );
    let exp = Experiment::from_toml(&text).unwrap();
    let run = exp.run(Some(&dir.join("runs"))).unwrap();
    assert!(run.history.last("accuracy").unwrap() > 0.9, "{:?}", run.history);
    assert!(run.dir.join("model.safetensors").is_file());
    // The preprocessing fitted on the stream is saved with the model.
    let (_, saved) = crate::train::Model::load(&run.dir).unwrap();
    assert_eq!(saved.preprocessing.standardize.unwrap().mean.len(), 64);
    // Streamed data cannot be split.
    let e = Experiment::from_toml(&text.replace("test_split = 0.0", "test_split = 0.2")).unwrap_err().to_string();
    assert!(e.contains("data.stream") && e.contains("test_split = 0"), "{e}");
    let mut s = NpyStream::open(dir.join("x.npy"), dir.join("y.npy"), 1, 3, Shard::default()).unwrap();
    assert_eq!(s.len(), 1438);
    s.begin_epoch(0).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
