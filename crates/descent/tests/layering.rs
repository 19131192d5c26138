//! The layering the architecture promises, checked on the source: lower layers never
//! import higher ones, and autograd, layers and the optimizer pipeline reach kernels
//! only through the backend seam (`tensor::backend`), never a `tensor::kernels` function
//! directly (optimizer rules name their kernel's data type and launch it through it).
//! (docs/architecture.md, "The backend seam".)

use std::fs;
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn src(rel: &str) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(rel);
    let mut files = Vec::new();
    if root.is_dir() {
        sources(&root, &mut files);
    } else {
        files.push(root);
    }
    files.into_iter().map(|p| (p.clone(), fs::read_to_string(&p).unwrap())).collect()
}

/// Lines of `files` containing `needle`, except those containing one of `allowed`.
fn offending(files: &[(PathBuf, String)], needle: &str, allowed: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    for (path, text) in files {
        for (i, line) in text.lines().enumerate() {
            if line.contains(needle) && !allowed.iter().any(|a| line.contains(a)) {
                hits.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
            }
        }
    }
    hits
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let nn = src("nn");
    assert_eq!(offending(&nn, "crate::train", &[]), Vec::<String>::new());
    assert_eq!(offending(&nn, "crate::io", &[]), Vec::<String>::new());
    assert_eq!(offending(&src("io"), "crate::train", &[]), Vec::<String>::new());
    for lower in ["tensor", "autograd"] {
        for higher in ["crate::nn", "crate::optim", "crate::train", "crate::io", "crate::data"] {
            assert_eq!(offending(&src(lower), higher, &[]), Vec::<String>::new(), "{lower} imports {higher}");
        }
    }
}

#[test]
fn autograd_layers_and_the_optimizer_pipeline_reach_kernels_through_the_backend() {
    // The activation and loss *kinds* are plain enums that live beside their kernels.
    let types = ["kernels::activation::Activation", "kernels::loss::LossKind", "kernels::optim::"];
    let mut files = src("autograd");
    files.extend(src("nn").into_iter().filter(|(p, _)| !p.ends_with("metrics.rs")));
    files.extend(src("optim/configured.rs"));
    files.extend(src("optim/rules"));
    files.extend(src("optim/mod.rs"));
    files.extend(src("train/trainer.rs"));
    assert_eq!(offending(&files, "kernels::", &types), Vec::<String>::new());
    // Optimizer rules hand their kernels to the backend; the CPU bodies live in
    // tensor/kernels/optim/.
    let rules = src("optim/rules");
    for cpu_code in ["simd_dispatch", "for_each_split", "kernels::parallel", "rayon"] {
        assert_eq!(offending(&rules, cpu_code, &[]), Vec::<String>::new());
    }
    // Ops never read buffers on the host: that is for the edges (inputs, predictions,
    // files; and the targets a loss node holds, which metrics read after the step).
    assert_eq!(offending(&src("autograd/ops"), "B::host", &["Targets::Values(B::host"]), Vec::<String>::new());
}
