//! `descent fit` with `backup_and_restore`, killed with SIGKILL (twice, at moments that
//! include checkpoint writes) and rerun: the backup is always a valid checkpoint, and the
//! final model is byte-identical to an uninterrupted run's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use descent::experiment::Experiment;

fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("descent-resume-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn experiment(backup: bool, out: &str) -> String {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");
    let mut text = format!(
        r#"
name = "exp"
seed = 5
[data]
format = "csv"
path = "{data}"
standardize = true
[model]
layers = [
  {{ type = "dense", units = 256, activation = "relu" }},
  {{ type = "dropout", rate = 0.2 }},
  {{ type = "dense", units = 10 }},
]
[compile]
optimizer = {{ name = "adam", learning_rate = {{ name = "cosine_decay", initial_learning_rate = 0.003, decay_steps = 2000 }} }}
loss = {{ name = "sparse_categorical_crossentropy", from_logits = true }}
metrics = ["accuracy"]
[fit]
epochs = 40
validation_split = 0.1
verbose = 0
[output]
dir = "{out}"
"#
    );
    if backup {
        text += "\n[[callbacks]]\ntype = \"backup_and_restore\"\n";
    }
    text
}

/// Epochs recorded in the backup, checking on the way that it is a valid checkpoint.
fn backup_epoch(exp: &Experiment, path: &Path) -> Option<usize> {
    if !path.exists() {
        return None;
    }
    let mut model = exp.build_model(&[64]).unwrap();
    model.compile(exp.compile.optimizer.build().unwrap(), exp.compile.loss, &["accuracy"]).unwrap();
    Some(model.load_checkpoint(path).expect("the backup is always a complete checkpoint").epoch)
}

fn model_bytes(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("model.safetensors")).unwrap()
}

#[test]
fn killed_fits_resume_to_the_uninterrupted_result() {
    let dir = workdir();
    std::fs::write(dir.join("straight.toml"), experiment(false, "straight")).unwrap();
    std::fs::write(dir.join("exp.toml"), experiment(true, "runs")).unwrap();
    let bin = env!("CARGO_BIN_EXE_descent");
    let out = Command::new(bin).args(["fit", "straight.toml"]).current_dir(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let exp = Experiment::from_file(dir.join("exp.toml")).unwrap();
    let backup = dir.join("runs/exp-backup/backup.safetensors");
    let mut last = 0;
    for kill in 0..2 {
        let mut child = Command::new(bin).args(["fit", "exp.toml"]).current_dir(&dir).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        // Let it get a few epochs past where it resumed, then kill it mid-stride.
        loop {
            assert!(Instant::now() < deadline, "no progress");
            std::thread::sleep(Duration::from_millis(3));
            if backup_epoch(&exp, &backup).unwrap_or(0) >= last + 3 + kill {
                break;
            }
            assert!(child.try_wait().unwrap().is_none(), "finished before it could be killed");
        }
        std::thread::sleep(Duration::from_millis(7 * kill as u64));
        child.kill().unwrap();
        child.wait().unwrap();
        let epoch = backup_epoch(&exp, &backup).expect("a backup survives the kill");
        assert!(epoch > last && epoch < 40, "epoch {epoch} after kill {kill}");
        last = epoch;
    }
    // The same command finishes the fit from the backup.
    let out = Command::new(bin).args(["fit", "exp.toml"]).current_dir(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!backup.exists(), "the backup is removed once the fit completes");
    assert_eq!(model_bytes(&dir.join("runs/exp-003")), model_bytes(&dir.join("straight/exp-001")), "resumed ≠ uninterrupted");
    let history = std::fs::read_to_string(dir.join("runs/exp-003/history.csv")).unwrap();
    assert_eq!(history, std::fs::read_to_string(dir.join("straight/exp-001/history.csv")).unwrap());
}
