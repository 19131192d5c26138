//! The doctor as a closed loop: for each problem an experiment built to have it (from
//! the classic example on the bundled digits), the doctor names that problem and no
//! other, and the experiment its `--fix` writes measurably improves the number that
//! showed the problem. The classic example itself gets no finding.

use std::path::{Path, PathBuf};

use super::*;
use crate::data::{write_npy_f32, ArrayStream, BatchStream, Prefetch, Shard};
use crate::experiment::{LrFindOptions, RunSummary};
use crate::train::FitOptions;

const DIGITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");

/// The classic example, quiet, reading the bundled digits by absolute path.
fn classic() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/classic.toml"))
        .unwrap()
        .replace("path = \"../data/digits.csv\"", &format!("path = \"{DIGITS}\""))
        .replace("epochs = 10", "epochs = 10\nverbose = 0")
}

/// `text` with `from` (which must be there) replaced by `to`.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "`{from}` is not in the experiment");
    text.replace(from, to)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("descent-doctor-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The doctor as `descent doctor` runs it: with the range test and the class prior.
fn consult(record: &RunRecord) -> Vec<Finding> {
    let exp = &record.experiment;
    let mut range_test = || exp.lr_find(&LrFindOptions::default()).ok().map(|f| f.valley);
    let mut ceiling = || machine_ceiling(record);
    diagnose(record, Consult { lr_find: Some(&mut range_test), baseline: experiment_baseline(exp), ceiling: Some(&mut ceiling) })
}

fn codes(findings: &[Finding]) -> Vec<&'static str> {
    findings.iter().map(|f| f.code).collect()
}

/// Writes `text` as `<name>.toml` in `dir` and runs it into `dir/runs`.
fn run(dir: &Path, name: &str, text: &str) -> Result<RunSummary> {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, text).unwrap();
    Experiment::from_file(&file)?.run(Some(&dir.join("runs")))
}

/// Runs `text`, diagnoses the run and runs the fixed experiment: (findings, the run,
/// the fixed run).
fn closed_loop(name: &str, text: &str) -> (Vec<Finding>, RunSummary, RunSummary) {
    let dir = scratch(name);
    let first = run(&dir, name, text).unwrap();
    let record = RunRecord::load(&first.dir).unwrap();
    let findings = consult(&record);
    let fixed = fixed_experiment(&record, &findings).unwrap();
    let second = run(&dir, &format!("{name}-fixed"), &fixed).unwrap();
    (findings, first, second)
}

fn final_loss(run: &RunSummary) -> f64 {
    *run.history.get("loss").unwrap().last().unwrap()
}

#[test]
fn the_classic_example_gets_no_finding() {
    let dir = scratch("classic");
    let summary = run(&dir, "classic", &classic()).unwrap();
    let findings = consult(&RunRecord::load(&summary.dir).unwrap());
    assert!(findings.is_empty(), "{}", findings.iter().map(|f| f.to_string()).collect::<String>());
}

#[test]
fn a_learning_rate_far_too_high_is_unstable_and_the_fix_trains() {
    // Adam at 10: the loss ends thousands of times above the class prior's 2.30.
    let (findings, bad, fixed) = closed_loop("high", &edit(&classic(), "learning_rate = 0.001", "learning_rate = 10.0"));
    assert_eq!(codes(&findings), ["loss_above_baseline"], "{}", findings[0]);
    assert_eq!(findings[0].problem, Problem::Unstable);
    let lr = fixed_lr(&findings[0]);
    assert!(lr < 0.1, "the fix lowers the rate (to the range test's valley): {lr}");
    let (before, after) = (final_loss(&bad), final_loss(&fixed));
    eprintln!("lr far too high: final training loss {before:.4} → {after:.4}");
    assert!(before > 100.0 && after < 0.1, "final training loss {before} → {after}");
    assert!(fixed.test.get("accuracy").unwrap() > 0.95);
}

#[test]
fn a_diverged_run_names_where_the_nan_appeared_and_the_fix_trains() {
    // Plain SGD at 1e6 overflows within a few steps: fit stops, the folder keeps the
    // telemetry and says why, and there is no model in it.
    let dir = scratch("nan");
    let text = edit(&classic(), "{ name = \"adam\", learning_rate = 0.001 }", "{ name = \"sgd\", learning_rate = 1e6 }");
    let err = run(&dir, "nan", &text).unwrap_err();
    assert!(matches!(err, Error::Diverged(_)), "{err}");
    let folder = dir.join("runs/nan-001");
    assert!(!folder.join("model.safetensors").exists(), "a diverged run saves no model");
    let record = RunRecord::load(&folder).unwrap();
    assert_eq!(record.status.as_deref(), Some("diverged"));
    let findings = consult(&record);
    assert_eq!(codes(&findings), ["diverged"]);
    let evidence = findings[0].evidence.join("\n");
    assert!(evidence.contains("non-finite") && evidence.contains("'dense"), "names the layer: {evidence}");
    let fixed = run(&dir, "nan-fixed", &fixed_experiment(&record, &findings).unwrap()).unwrap();
    eprintln!("diverged: {}; fixed run's final training loss {:.4}", findings[0].evidence[0], final_loss(&fixed));
    assert!(final_loss(&fixed).is_finite() && final_loss(&fixed) < 0.5, "{}", final_loss(&fixed));
}

#[test]
fn a_learning_rate_far_too_low_is_named_and_raised() {
    let (findings, bad, fixed) = closed_loop("low", &edit(&classic(), "learning_rate = 0.001", "learning_rate = 1e-6"));
    assert_eq!(codes(&findings), ["lr_too_low"], "{}", findings[0]);
    assert!(fixed_lr(&findings[0]) > 1e-4);
    let (before, after) = (final_loss(&bad), final_loss(&fixed));
    eprintln!("lr far too low: final training loss {before:.4} → {after:.4}");
    assert!(before > 2.0 && after < 0.2, "final training loss {before} → {after}");
}

#[test]
fn an_initialization_that_kills_relus_is_named_and_replaced() {
    let text = edit(&classic(), "{ type = \"dense\", units = 64, activation = \"relu\" }", "{ type = \"dense\", units = 64, activation = \"relu\", bias_initializer = { constant = -10.0 } }");
    let (findings, bad, fixed) = closed_loop("dead", &text);
    assert_eq!(codes(&findings), ["dead_relu"], "{}", findings[0]);
    assert!(findings[0].evidence[0].contains("'dense' 100%"), "{}", findings[0]);
    let (before, after) = (fixed_accuracy(&bad), fixed_accuracy(&fixed));
    eprintln!("dead ReLUs: held-out accuracy {before:.4} → {after:.4}");
    assert!(before < 0.2 && after > 0.9, "held-out accuracy {before} → {after}");
}

#[test]
fn a_large_model_on_a_tiny_training_set_overfits_and_early_stopping_helps() {
    // 10% of the digits (162 samples, 30% of them for validation), two 256-unit layers,
    // no regularization, 300 epochs.
    let mut text = edit(&classic(), "test_split = 0.2 ", "test_split = 0.9 ");
    text = edit(&text, "  { type = \"dense\", units = 64, activation = \"relu\" },", "  { type = \"dense\", units = 256, activation = \"relu\" },\n  { type = \"dense\", units = 256, activation = \"relu\" },");
    text = edit(&text, "learning_rate = 0.001", "learning_rate = 0.002");
    text = edit(&text, "epochs = 10", "epochs = 300");
    text = edit(&text, "validation_split = 0.1", "validation_split = 0.3");
    let (findings, bad, fixed) = closed_loop("overfit", &text);
    assert_eq!(codes(&findings), ["overfit"], "{}", findings[0]);
    assert_eq!(findings[0].edits[1], Edit::set("compile.optimizer.weight_decay", 0.004), "early stopping, then weight decay");
    // The number that showed it is the held-out loss: it falls with the best epoch kept.
    let (before, after) = (bad.test.get("loss").unwrap(), fixed.test.get("loss").unwrap());
    eprintln!("overfit: held-out loss {before:.4} → {after:.4} ({} epochs)", fixed.history.epochs.len());
    assert!(after < 0.95 * before, "held-out loss {before} → {after}");
    assert!(fixed.history.epochs.len() < 100, "stopped early");
}

/// A stream made slow on purpose: each batch takes `delay` longer to arrive.
struct SlowStream {
    inner: ArrayStream,
    delay: std::time::Duration,
}

impl BatchStream for SlowStream {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn features(&self) -> usize {
        self.inner.features()
    }
    fn target_cols(&self) -> usize {
        self.inner.target_cols()
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn begin_epoch(&mut self, epoch: u64) -> Result<()> {
        self.inner.begin_epoch(epoch)
    }
    fn next_batch(&mut self, batch: usize, x: &mut Vec<f32>, y: &mut Vec<f32>) -> Result<usize> {
        std::thread::sleep(self.delay);
        self.inner.next_batch(batch, x, y)
    }
}

fn data_share(t: &Telemetry) -> f64 {
    let (s, w) = t.epochs.iter().fold((0.0, 0.0), |(s, w), e| (s + e.seconds, w + e.data_seconds));
    w / s
}

#[test]
fn a_slow_data_pipeline_is_named_and_loading_into_memory_removes_the_wait() {
    let dir = scratch("slow");
    // The digits as `.npy` files, streamed by the experiment.
    let memory = Experiment::from_toml(&classic()).unwrap();
    let (mut train, _) = memory.load_splits().unwrap();
    let (n, f) = (train.len(), train.x.row_len());
    let (x, y) = (train.x.data().to_vec(), train.y.data().to_vec());
    write_npy_f32(dir.join("x.npy"), &[n, f], |r, c| x[r * f + c]).unwrap();
    write_npy_f32(dir.join("y.npy"), &[n], |r, _| y[r]).unwrap();
    let streamed_text = format!(
        "name = \"slow\"\nseed = 42\n[data]\nformat = \"npy\"\nx = \"{}\"\ny = \"{}\"\nstream = true\ntest_split = 0.0\n\n{}",
        dir.join("x.npy").display(),
        dir.join("y.npy").display(),
        &classic()[classic().find("[model]").unwrap()..].replace("validation_split = 0.1", "validation_split = 0.0")
    );
    let streamed = Experiment::from_toml(&streamed_text).unwrap();
    // The stream sleeps 3 ms before each batch: a pipeline far slower than the ~50 µs step.
    let (mut model, _, _) = memory.compiled_for(&mut train).unwrap();
    let slow = SlowStream { inner: ArrayStream::new(train, 42, Shard { rank: 0, world: 1 }).unwrap(), delay: std::time::Duration::from_millis(3) };
    let mut source = Prefetch::new(Box::new(slow), 2);
    let mut telemetry = Telemetry::new(10);
    model.fit_stream(&mut source, FitOptions { epochs: 10, batch_size: 32, verbose: 0, telemetry: Some(&mut telemetry), ..Default::default() }).unwrap();
    let config: toml::Table = streamed_text.parse().unwrap();
    let record = RunRecord { dir: dir.clone(), experiment: streamed, config, telemetry, status: None };
    let findings = diagnose(&record, Consult { lr_find: None, baseline: None, ceiling: None });
    assert_eq!(codes(&findings), ["data_bound"], "{}", findings.iter().map(|f| f.to_string()).collect::<String>());
    assert_eq!(findings[0].edits, [Edit::set("data.stream", false)]);
    let before = data_share(&record.telemetry);
    let fixed = run(&dir, "slow-fixed", &fixed_experiment(&record, &findings).unwrap()).unwrap();
    let after = data_share(&RunRecord::load(&fixed.dir).unwrap().telemetry);
    eprintln!("slow data: share of time waiting for data {before:.3} → {after:.3}");
    assert!(before > 0.5 && after < 0.2, "share of the time waiting for data {before:.3} → {after:.3}");
}

fn fixed_lr(f: &Finding) -> f64 {
    let e = f.edits.iter().find(|e| e.path.last() == Some(&Key::Name("learning_rate".into()))).expect("a learning-rate edit");
    e.value.as_float().unwrap()
}

fn fixed_accuracy(run: &RunSummary) -> f64 {
    run.test.get("accuracy").unwrap()
}

#[test]
fn a_deep_sigmoid_stack_has_vanishing_gradients_and_relu_fixes_it() {
    // Eight 32-unit sigmoid layers under plain SGD: the first layer's gradient is
    // ~1e-5 of the last's, and the loss stays at the class prior's.
    let hidden = "  { type = \"dense\", units = 32, activation = \"sigmoid\" },\n".repeat(8);
    let mut text = edit(&classic(), "  { type = \"dense\", units = 64, activation = \"relu\" },\n", &hidden);
    text = edit(&text, "{ name = \"adam\", learning_rate = 0.001 }", "{ name = \"sgd\", learning_rate = 0.01 }");
    let (findings, bad, fixed) = closed_loop("vanishing", &text);
    assert_eq!(codes(&findings), ["vanishing_gradients"], "{}", findings[0]);
    // Every hidden layer becomes relu with He initialization; the output keeps none.
    assert_eq!(findings[0].edits.len(), 16, "{}", findings[0]);
    assert_eq!(findings[0].edits[0], Edit::set("model.layers[0].activation", "relu"));
    let (before, after) = (bad.test.get("loss").unwrap(), fixed.test.get("loss").unwrap());
    eprintln!("vanishing gradients: held-out loss {before:.4} → {after:.4}");
    assert!(before > 2.2 && after < 0.6 * before, "held-out loss {before} → {after}");
}

#[test]
fn a_one_unit_bottleneck_lacks_capacity_and_widening_it_helps() {
    // One hidden ReLU unit for ten classes: healthy updates, a loss that levels off
    // near the prior's.
    let text = edit(&classic(), "units = 64, activation = \"relu\"", "units = 1, activation = \"relu\"");
    let (findings, bad, fixed) = closed_loop("capacity", &text);
    assert_eq!(codes(&findings), ["too_little_capacity"], "{}", findings[0]);
    assert_eq!(findings[0].edits, [Edit::set("model.layers[0].units", 4)]);
    let (before, after) = (final_loss(&bad), final_loss(&fixed));
    eprintln!("too little capacity: final training loss {before:.4} → {after:.4}");
    assert!(after < 0.85 * before, "final training loss {before} → {after}");
}

#[test]
fn a_run_stopped_while_still_improving_is_told_to_train_longer() {
    // Plain SGD for 3 epochs: the validation loss still falls by a fifth each epoch.
    let mut text = edit(&classic(), "{ name = \"adam\", learning_rate = 0.001 }", "{ name = \"sgd\", learning_rate = 0.01 }");
    text = edit(&text, "epochs = 10\n", "epochs = 3\n");
    let (findings, bad, fixed) = closed_loop("improving", &text);
    assert_eq!(codes(&findings), ["still_improving"], "{}", findings[0]);
    assert_eq!(findings[0].edits, [Edit::set("fit.epochs", 6)]);
    let (before, after) = (bad.test.get("loss").unwrap(), fixed.test.get("loss").unwrap());
    eprintln!("still improving: held-out loss {before:.4} → {after:.4}");
    assert!(after < 0.8 * before, "held-out loss {before} → {after}");
}

/// A real run of the classic example whose steps are made to look slow: its epoch
/// times scaled by `slowdown` and `sampling` of the training time spent on telemetry,
/// diagnosed against a ceiling of `ceiling` GFLOP/s: the findings, and how many times
/// the ceiling was measured.
fn slowed_classic(name: &str, slowdown: f64, sampling: f64, ceiling: f64) -> (Vec<Finding>, usize) {
    let dir = scratch(name);
    let summary = run(&dir, name, &classic()).unwrap();
    let mut record = RunRecord::load(&summary.dir).unwrap();
    let t = &mut record.telemetry;
    assert!(t.forward_flops_per_sample > 0.0, "the run recorded its FLOPs");
    for e in &mut t.epochs {
        e.seconds *= slowdown;
        e.data_seconds *= slowdown;
    }
    let computing: f64 = t.epochs.iter().map(|e| e.seconds - e.data_seconds).sum();
    t.sampling_seconds = sampling * computing;
    let mut measured = 0;
    let mut measure = || {
        measured += 1;
        Some(ceiling)
    };
    let findings = diagnose(&record, Consult { lr_find: None, baseline: None, ceiling: Some(&mut measure) });
    (findings, measured)
}

#[test]
fn a_run_far_below_the_machine_ceiling_is_told_to_use_larger_batches() {
    // The classic example's forward pass is 2·(64·64 + 64·10) = 9.5 kFLOP a sample;
    // ×3 for the backward pass, 1,293 samples × 10 epochs in ~2 s when slowed 200×,
    // against a 1000 GFLOP/s ceiling: ~0.02%, far below 5%.
    let (findings, _) = slowed_classic("ceiling", 200.0, 0.01, 1000.0);
    assert_eq!(codes(&findings), ["below_ceiling"], "{}", findings.iter().map(|f| f.to_string()).collect::<String>());
    assert_eq!(findings[0].problem, Problem::Slow);
    assert_eq!(findings[0].edits, [Edit::set("fit.batch_size", 128)], "four times the batch of 32");
    assert!(findings[0].evidence[0].contains("of this machine's 1000 GFLOP/s"), "{}", findings[0]);
}

#[test]
fn a_run_slowed_by_its_own_telemetry_is_told_to_sample_less_often() {
    let (findings, _) = slowed_classic("sampling", 200.0, 0.6, 1000.0);
    assert_eq!(codes(&findings), ["below_ceiling"], "{}", findings.iter().map(|f| f.to_string()).collect::<String>());
    assert!(findings[0].cause.contains("60%"), "{}", findings[0]);
    assert_eq!(findings[0].edits, [Edit::set("fit.telemetry_every", 500)], "ten times the 50 steps between samples");
}

#[test]
fn a_run_near_the_ceiling_or_too_short_to_time_is_not_called_slow() {
    // Unscaled, the classic trains in ~10 ms: too briefly to judge, so nothing is measured.
    assert_eq!(slowed_classic("brief", 1.0, 0.0, 1000.0), (Vec::new(), 0));
    // Slowed, but against a ceiling it reaches more than 5% of.
    assert_eq!(slowed_classic("near", 200.0, 0.0, 0.01), (Vec::new(), 1));
}
