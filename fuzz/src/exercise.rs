//! What each fuzz target feeds its input to, shared with the regression test that
//! replays every input the fuzzers ever found (`crates/descent-tune/tests/fuzz_regressions.rs`
//! includes this file): descent's readers take paths, so an input is written to a file
//! of this process first (in /dev/shm where it exists: no disk I/O per input).

use std::io::Write;
use std::path::PathBuf;

use descent::nn::{Activation, Dense, Loss};
use descent::optim::Adam;
use descent::train::{Model, Sequential};

/// Every target, by name (the file names under `fuzz/fuzz_targets/`).
pub const TARGETS: [&str; 10] = ["csv", "npy", "npz", "idx", "safetensors_weights", "checkpoint", "experiment_toml", "study_toml", "model_json", "text"];

/// Feeds `data` to the readers of `target`. Errors are the expected outcome for most
/// inputs; a panic, a hang or an unbounded allocation is the bug being looked for.
pub fn run(target: &str, data: &[u8]) {
    match target {
        "csv" => {
            use descent::data::{read_csv, CsvOptions, LabelColumn};
            let path = file("in.csv", data);
            let named = CsvOptions { label_column: Some(LabelColumn::Name("label".into())), ..Default::default() };
            let _ = read_csv(&path, &named);
            let indexed = CsvOptions { has_header: false, label_column: Some(LabelColumn::Index(0)), ..Default::default() };
            let _ = read_csv(&path, &indexed);
        }
        "npy" => {
            use descent::data::{read_npy, NpyStream, Shard};
            let path = file("in.npy", data);
            let _ = read_npy(&path);
            let _ = NpyStream::open(&path, file("labels.npy", data), 1, 0, Shard::default());
        }
        "npz" => {
            let _ = descent::data::read_npz(file("in.npz", data), "x");
        }
        "idx" => {
            use descent::data::read_idx;
            let _ = read_idx(file("in.idx", data));
            let _ = read_idx(file("raw.idx.gz", data));
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(data).expect("in memory");
            let _ = read_idx(file("in.idx.gz", &gz.finish().expect("in memory")));
        }
        "safetensors_weights" => {
            let _ = descent::io::load_weights(&mut small_model(), file("in.safetensors", data));
        }
        "checkpoint" => {
            let _ = descent::io::read_checkpoint(&file("in.ckpt", data), small_model().params());
        }
        "experiment_toml" => {
            if let Ok(text) = std::str::from_utf8(data) {
                let _ = descent::experiment::Experiment::from_toml(text);
            }
        }
        "study_toml" => {
            file("classic.toml", include_bytes!("../../examples/classic.toml"));
            let _ = descent_tune::study_file::StudyDef::from_file(&file("study.toml", data));
        }
        "model_json" => {
            let dir = scratch().join("model");
            if !dir.join("model.safetensors").exists() {
                small_model().save(&dir, &Default::default()).expect("save");
            }
            std::fs::write(dir.join("model.json"), data).expect("scratch file");
            let _ = descent::io::load_model(&dir);
        }
        "text" => {
            use descent::data::{TextCorpus, TokenizerKind};
            let _ = TextCorpus::load(&file("in.txt", data), TokenizerKind::Char, 8, 0.1);
        }
        other => panic!("no fuzz target `{other}`"),
    }
}

/// A scratch folder of this process.
pub fn scratch() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let dir = base.join(format!("descent-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// `bytes` written to `name` in the scratch folder.
pub fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let path = scratch().join(name);
    std::fs::write(&path, bytes).expect("scratch file");
    path
}

/// Dense(4, relu, input 3) → Dense(2), compiled with Adam: what the weight, checkpoint
/// and model.json targets load into (the seeds in fuzz/corpus/ are of this model).
pub fn small_model() -> Model {
    let mut m = Sequential::new(vec![Box::new(Dense::new(4, Activation::Relu).input_shape(&[3])), Box::new(Dense::new(2, Activation::Linear))]).expect("model");
    m.compile(Adam::new(0.01), Loss::sparse_categorical_crossentropy(true), &["accuracy"]).expect("compile");
    m
}
