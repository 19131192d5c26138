//! Checkpoint and resume: 10 epochs straight equal 5 + resume + 5, bit for bit; wrong,
//! truncated or foreign checkpoints are clear errors that leave the model unchanged.

use crate::data::{read_csv, CsvOptions, Dataset, LabelColumn, Preprocessing};
use crate::nn::{Activation, Dense, Dropout, Layer, Loss};
use crate::train::{Model, Sequential};
use crate::optim::{Adam, Schedule};
use crate::train::{BackupAndRestore, FitOptions, History};

fn digits() -> Dataset {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");
    let options = CsvOptions { label_column: Some(LabelColumn::Name("label".into())), ..Default::default() };
    let (x, y) = read_csv(path, &options).unwrap();
    let mut data = Dataset::new(x, y.unwrap(), "digits").unwrap();
    Preprocessing::fit(None, true, &data.x).apply(&mut data.x).unwrap();
    data
}

fn model(hidden: usize) -> Model {
    let layers: Vec<Box<dyn Layer>> = vec![
        Box::new(Dense::new(hidden, Activation::Relu).input_shape(&[64])),
        Box::new(Dropout::new(0.3)),
        Box::new(Dense::new(10, Activation::Linear)),
    ];
    let mut m = Sequential::new(layers).unwrap().with_seed(17).unwrap();
    // A schedule, so the resumed run must also continue the schedule where it stopped.
    let schedule = Schedule::CosineDecay { initial_learning_rate: 0.01, decay_steps: 400, alpha: 0.0, warmup_target: None, warmup_steps: 0 };
    m.compile(Adam::new(0.01).with_learning_rate(schedule), Loss::sparse_categorical_crossentropy(true), &["accuracy"]).unwrap();
    m
}

fn fit(m: &mut Model, data: &Dataset, epochs: usize, backup: Option<BackupAndRestore>) -> History {
    let options = FitOptions { epochs, batch_size: 64, validation_split: 0.2, verbose: 0, backup, ..Default::default() };
    m.fit(&data.x, &data.y, options).unwrap()
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("descent-resume-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn ten_epochs_equal_five_plus_resume_plus_five() {
    let data = digits();
    let mut straight = model(32);
    let h_straight = fit(&mut straight, &data, 10, None);

    let dir = tmp("split");
    let backup = BackupAndRestore::new(&dir).delete_checkpoint(false);
    let mut first = model(32);
    fit(&mut first, &data, 5, Some(backup.clone()));
    assert!(backup.path().is_file());
    drop(first);
    // A new process would start from a fresh model: the backup restores everything.
    let mut resumed = model(32);
    let h_resumed = fit(&mut resumed, &data, 10, Some(backup.clone().delete_checkpoint(true)));
    assert_eq!(resumed.params().values(), straight.params().values(), "weights differ after resume");
    assert_eq!(h_resumed, h_straight, "the history continues the interrupted one");
    assert_eq!(resumed.optimizer().unwrap().iterations(), straight.optimizer().unwrap().iterations());
    assert!(!backup.path().exists(), "deleted after the fit completed");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_checkpoints_are_named_errors_and_change_nothing() {
    let data = digits();
    let dir = tmp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let mut m = model(32);
    fit(&mut m, &data, 1, None);
    let path = dir.join("ckpt.safetensors");
    m.save_checkpoint(&path, 1, &History::default()).unwrap();
    // Another model (other width).
    let mut other = model(16);
    let before = other.params().values().to_vec();
    let e = other.load_checkpoint(&path).unwrap_err().to_string();
    assert!(e.contains("another model") && e.contains("[64, 32]") && e.contains("[64, 16]"), "{e}");
    assert_eq!(other.params().values(), &before[..]);
    // Truncated.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = model(32).load_checkpoint(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.safetensors: not a valid checkpoint: tensor `") && e.contains("(truncated?)"), "{e}");
    // A weights file is not a checkpoint.
    let weights = dir.join("w.safetensors");
    crate::io::save_weights(&m, &weights).unwrap();
    let e = model(32).load_checkpoint(&weights).unwrap_err().to_string();
    assert!(e.contains("not a descent checkpoint"), "{e}");
    // The right one restores exactly.
    let mut again = model(32);
    let restored = again.load_checkpoint(&path).unwrap();
    assert_eq!(restored.epoch, 1);
    assert_eq!(again.params().values(), m.params().values());
    std::fs::remove_dir_all(&dir).unwrap();
}
