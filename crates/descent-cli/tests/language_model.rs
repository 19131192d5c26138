//! A language model through the binary: `fit` of a small GPT preset on tiny Shakespeare
//! (a slice, characters), `summary` of the expanded graph, `evaluate` on its validation
//! windows and on a text file, and `generate` (same seed, same text; a prompt character
//! outside the vocabulary is an error naming it).

mod common;
use common::{descent, text, workdir};

#[test]
fn a_gpt_fits_evaluates_and_generates_from_the_command_line() {
    let dir = workdir("gpt");
    let corpus = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/tinyshakespeare.txt")).unwrap();
    std::fs::write(dir.join("shakespeare.txt"), &corpus[..200_000]).unwrap();
    std::fs::write(dir.join("sonnet.txt"), &corpus[200_000..210_000]).unwrap();
    let toml = r#"
seed = 2
[data]
format = "text"
path = "shakespeare.txt"
block_size = 32
[model.gpt]
n_layer = 1
n_head = 2
n_embd = 32
[compile]
optimizer = { name = "adamw", learning_rate = 0.003 }
loss = { name = "sparse_categorical_crossentropy", from_logits = true }
metrics = ["accuracy"]
[fit]
batch_size = 16
max_steps = 60
eval_interval = 30
eval_iters = 2
"#;
    std::fs::write(dir.join("gpt.toml"), toml).unwrap();
    let summary = descent(&["summary", "gpt.toml"], &dir);
    let out = text(&summary);
    assert!(summary.status.success() && out.contains("h0_attn (MultiHeadAttention)") && out.contains("(None, 32, 32)"), "{out}");
    let fit = descent(&["fit", "gpt.toml", "--verbose", "2"], &dir);
    let out = text(&fit);
    assert!(fit.status.success(), "{out}");
    assert!(out.contains("Epoch 2/2") && out.contains("perplexity") && out.contains("bits_per_char"), "{out}");
    let run = dir.join("runs/gpt-001");
    assert!(run.join("loss.svg").exists());
    let eval = descent(&["evaluate", run.to_str().unwrap()], &dir);
    let out = text(&eval);
    assert!(eval.status.success() && out.contains("validation windows: 32 windows of 32 tokens"), "{out}");
    let eval = descent(&["evaluate", run.to_str().unwrap(), "--data", "sonnet.txt"], &dir);
    let out = text(&eval);
    assert!(eval.status.success() && out.contains("312 windows of 32 tokens") && out.contains("perplexity"), "{out}");
    let gen = |seed: &str| descent(&["generate", run.to_str().unwrap(), "--prompt", "ROMEO:", "--max-tokens", "60", "--seed", seed], &dir);
    let (a, b, c) = (gen("5"), gen("5"), gen("6"));
    assert!(a.status.success(), "{}", text(&a));
    let sample = String::from_utf8_lossy(&a.stdout).to_string();
    assert!(sample.starts_with("ROMEO:") && sample.trim_end().chars().count() >= 40, "{sample}");
    assert_eq!(a.stdout, b.stdout, "same seed, same text");
    assert_ne!(a.stdout, c.stdout);
    let bad = descent(&["generate", run.to_str().unwrap(), "--prompt", "ROMEO€"], &dir);
    assert!(!bad.status.success() && text(&bad).contains("'€'"), "{}", text(&bad));
    let _ = std::fs::remove_dir_all(&dir);
}
