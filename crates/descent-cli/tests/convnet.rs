//! A convnet through the binary: `fit` on IDX images (a slice of Fashion-MNIST written
//! as gzip-free IDX files here, from Debian's `dataset-fashion-mnist`), `evaluate` on the
//! IDX test files with the confusion matrix, and `predict` from IDX and from `.npy`.

mod common;
use common::{descent, text, workdir};

const FASHION: &str = "/usr/share/datasets/fashion-mnist";

/// The IDX file `name` of Fashion-MNIST, decompressed (by the `gzip` tool: this test
/// crate links no decompressor), keeping its first `n` items.
fn idx_slice(name: &str, n: u32) -> Vec<u8> {
    let path = format!("{FASHION}/{name}.gz");
    let out = std::process::Command::new("gzip").args(["-dc", &path]).output().expect("gzip");
    assert!(out.status.success(), "{path}: apt install dataset-fashion-mnist");
    let raw = out.stdout;
    let rank = raw[3] as usize;
    let per_item: usize = (1..rank).map(|i| u32::from_be_bytes(raw[4 + 4 * i..8 + 4 * i].try_into().unwrap()) as usize).product();
    let header = 4 + 4 * rank;
    let mut out = raw[..header].to_vec();
    out[4..8].copy_from_slice(&n.to_be_bytes());
    out.extend_from_slice(&raw[header..header + n as usize * per_item]);
    out
}

/// A `.npy` of f32 images `[n, 28, 28]` from IDX bytes.
fn npy_images(idx: &[u8], n: usize) -> Vec<u8> {
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n}, 28, 28), }}");
    let mut h = header.into_bytes();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(b' ');
    }
    h.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(h.len() as u16).to_le_bytes());
    out.extend_from_slice(&h);
    for &v in &idx[16..16 + n * 784] {
        out.extend_from_slice(&(v as f32).to_le_bytes());
    }
    out
}

#[test]
fn a_convnet_fits_evaluates_and_predicts_on_images() {
    let dir = workdir("convnet");
    for (name, n) in [("train-images-idx3-ubyte", 2000), ("train-labels-idx1-ubyte", 2000), ("t10k-images-idx3-ubyte", 300), ("t10k-labels-idx1-ubyte", 300)] {
        std::fs::write(dir.join(name), idx_slice(name, n)).unwrap();
    }
    let toml = r#"
seed = 1
[data]
format = "idx"
images = "train-images-idx3-ubyte"
labels = "train-labels-idx1-ubyte"
test_images = "t10k-images-idx3-ubyte"
test_labels = "t10k-labels-idx1-ubyte"
x_scale = 0.00392156862745098
[model]
layers = [
  { type = "conv2d", filters = 8, kernel_size = 3, activation = "relu" },
  { type = "max_pooling2d" },
  { type = "flatten" },
  { type = "dense", units = 10 },
]
[compile]
optimizer = { name = "adam", learning_rate = 0.003 }
loss = { name = "sparse_categorical_crossentropy", from_logits = true }
metrics = ["accuracy"]
[fit]
epochs = 3
batch_size = 64
"#;
    std::fs::write(dir.join("cnn.toml"), toml).unwrap();
    let fit = descent(&["fit", "cnn.toml"], &dir);
    let out = text(&fit);
    assert!(fit.status.success(), "{out}");
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("runs/cnn-001/metrics.json")).unwrap()).unwrap();
    let acc = metrics["test"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.7, "held-out accuracy on the 300 test images: {acc}");

    let eval = descent(&["evaluate", "runs/cnn-001"], &dir);
    let out = text(&eval);
    assert!(eval.status.success(), "{out}");
    assert!(out.contains("300 samples") && out.contains(&format!("accuracy: {acc:.4}")) && out.contains("confusion matrix"), "{out}");

    let pred = descent(&["predict", "runs/cnn-001", "--input", "t10k-images-idx3-ubyte", "--output", "p.csv"], &dir);
    assert!(pred.status.success(), "{}", text(&pred));
    let from_idx = std::fs::read_to_string(dir.join("p.csv")).unwrap();
    assert_eq!(from_idx.lines().count(), 301, "a header and one row per image");
    std::fs::write(dir.join("images.npy"), npy_images(&std::fs::read(dir.join("t10k-images-idx3-ubyte")).unwrap(), 300)).unwrap();
    let pred = descent(&["predict", "runs/cnn-001", "--input", "images.npy", "--output", "q.csv"], &dir);
    assert!(pred.status.success(), "{}", text(&pred));
    assert_eq!(std::fs::read_to_string(dir.join("q.csv")).unwrap(), from_idx, "the same images as .npy predict the same");

    let bad = descent(&["predict", "runs/cnn-001", "--input", "train-labels-idx1-ubyte"], &dir);
    assert!(!bad.status.success());
    assert!(text(&bad).contains("784 features per sample"), "{}", text(&bad));
}
