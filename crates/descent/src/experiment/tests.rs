use super::*;
use crate::config_file::ConfigFile;

const CLASSIC: &str = include_str!("../../../../examples/classic.toml");
const RESIDUAL: &str = include_str!("../../../../examples/residual.toml");

#[test]
fn bundled_residual_experiment_is_a_functional_graph() {
    let exp = Experiment::from_toml(RESIDUAL).unwrap();
    assert_eq!(Experiment::from_toml(&exp.to_toml()).unwrap(), exp);
    let model = exp.build_model(&[64]).unwrap();
    assert_eq!(model.kind(), crate::nn::ModelKind::Functional);
    assert_eq!(model.input_names().collect::<Vec<_>>(), ["pixels"]);
    let s = model.summary();
    assert!(s.contains("skip (Add)") && s.contains("hidden,") && s.contains("block (Dense)") && s.contains("Total params: 8,970"), "{s}");
    // Same split, optimizer and budget as the classic experiment: only the model differs.
    let classic = Experiment::from_toml(CLASSIC).unwrap();
    assert_eq!((&exp.data, &exp.compile, &exp.fit, exp.seed), (&classic.data, &classic.compile, &classic.fit, classic.seed));

    let bad = |from: &str, to: &str| {
        assert!(RESIDUAL.contains(from), "{from}");
        Experiment::from_toml(&RESIDUAL.replacen(from, to, 1)).unwrap_err().to_string()
    };
    let e = bad("inputs = [\"hidden\", \"block\"]", "inputs = [\"hiden\", \"block\"]");
    assert!(e.contains("`model.layers[2]`") && e.contains("'skip'") && e.contains("'hiden'") && e.contains("pixels, hidden, block"), "{e}");
    let e = bad("inputs = [\"pixels\"]", "input = [\"pixels\"]");
    assert!(e.contains("unknown field `input`") && e.contains("inputs"), "{e}");
    let e = bad("name = \"pixels\"", "name = \"pixels\"\n[[model.inputs]]\nname = \"second\"");
    assert!(e.contains("`model.inputs`") && e.contains("2 inputs"), "{e}");
}

#[test]
fn bundled_classic_experiment_parses() {
    let exp = Experiment::from_toml(CLASSIC).unwrap();
    assert_eq!(exp.fit.epochs, 10);
    assert_eq!(exp.model.layers.len(), 2);
    assert_eq!(exp.compile.loss, Loss::sparse_categorical_crossentropy(true));
    // Round trip through the resolved form written into run folders.
    assert_eq!(Experiment::from_toml(&exp.to_toml()).unwrap(), exp);
}

fn err(text: &str) -> String {
    Experiment::from_toml(text).unwrap_err().to_string()
}

fn with(from: &str, to: &str) -> String {
    assert!(CLASSIC.contains(from), "{from}");
    CLASSIC.replacen(from, to, 1)
}

#[test]
fn an_experiment_name_is_one_plain_path_component() {
    // A received experiment must not be able to put its run folder outside `runs/`.
    for bad in ["../escape", "a/b", "..", ".", "", "c:\\x"] {
        let e = err(&with("seed = 42", &format!("name = {bad:?}\nseed = 42")));
        assert!(e.contains("`name`") && e.contains("single plain name"), "{bad}: {e}");
    }
    Experiment::from_toml(&with("seed = 42", "name = \"classic-v2\"\nseed = 42")).unwrap();
}

#[test]
fn typos_and_bad_values_name_the_key_and_the_choices() {
    let e = err(&with("learning_rate = 0.001", "lerning_rate = 0.001"));
    assert!(e.contains("unknown field `lerning_rate`") && e.contains("learning_rate"), "{e}");
    let e = err(&with("epochs = 10", "epoch = 10"));
    assert!(e.contains("unknown field `epoch`") && e.contains("epochs"), "{e}");
    let e = err(&with("activation = \"relu\"", "activation = \"rleu\""));
    assert!(e.contains("unknown activation `rleu`") && e.contains("leaky_relu"), "{e}");
    let e = err(&with("name = \"adam\"", "name = \"adamm\""));
    assert!(e.contains("unknown variant `adamm`") && e.contains("rmsprop"), "{e}");
    let e = err(&with("format = \"csv\"", "format = \"parquet\""));
    assert!(e.contains("unknown variant `parquet`") && e.contains("npz"), "{e}");
    let e = err(&with("type = \"dense\", units = 64", "type = \"conv\", units = 64"));
    assert!(e.contains("unknown variant `conv`") && e.contains("dense"), "{e}");
    let e = err(&with("test_split = 0.2", "test_split = 1.5"));
    assert!(e.contains("`data.test_split`") && e.contains("[0, 1)"), "{e}");
    let e = err(&with("batch_size = 32", "batch_size = 0"));
    assert!(e.contains("`fit.batch_size`"), "{e}");
    let e = err(&with("metrics = [\"accuracy\"]", "metrics = [\"acuracy\"]"));
    assert!(e.contains("`compile.metrics[0]` = \"acuracy\"") && e.contains("unknown metric `acuracy`") && e.contains("precision"), "{e}");
    let e = err(&with("learning_rate = 0.001", "learning_rate = -1.0"));
    assert!(e.contains("line 23: `compile.optimizer.learning_rate` = -1.0") && e.contains("positive"), "{e}");
    let e = err(&with("epochs = 10", "epochs = \"ten\""));
    assert!(e.contains("epochs") && e.contains("line"), "{e}");
}

#[test]
fn names_accept_short_forms() {
    let exp = Experiment::from_toml(&with(
        "optimizer = { name = \"adam\", learning_rate = 0.001 }",
        "optimizer = \"rmsprop\"",
    ))
    .unwrap();
    assert_eq!(exp.compile.optimizer.name(), "rmsprop");
    let exp = Experiment::from_toml(&with(
        "loss = { name = \"sparse_categorical_crossentropy\", from_logits = true }",
        "loss = \"mse\"",
    ))
    .unwrap();
    assert_eq!(exp.compile.loss, Loss::MeanSquaredError);
}

#[test]
fn runs_end_to_end_into_a_run_folder() {
    let root = std::env::temp_dir().join(format!("descent-exp-{}", std::process::id()));
    let file = root.join("tiny.toml");
    std::fs::create_dir_all(&root).unwrap();
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");
    let text = with("path = \"../data/digits.csv\"", &format!("path = \"{data}\""))
        .replace("epochs = 10", "epochs = 3\nverbose = 0");
    std::fs::write(&file, text).unwrap();
    let exp = Experiment::from_file(&file).unwrap();
    assert_eq!(exp.name(), "tiny");
    let run = exp.run(Some(&root.join("runs"))).unwrap();
    assert!(run.dir.ends_with("tiny-001"));
    for f in ["config.toml", "history.csv", "metrics.json", "model.json", "model.safetensors", "optimizer.safetensors"] {
        assert!(run.dir.join(f).is_file(), "{f} missing");
    }
    let history = std::fs::read_to_string(run.dir.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 4);
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.dir.join("metrics.json")).unwrap()).unwrap();
    assert!(metrics["test"]["accuracy"].as_f64().unwrap() > 0.85);
    assert_eq!(metrics["test_samples"], 359);
    let again = exp.run(Some(&root.join("runs"))).unwrap();
    assert!(again.dir.ends_with("tiny-002"));
    // Same seed, same data: the same result.
    assert_eq!(again.test.get("accuracy"), run.test.get("accuracy"));
}

/// The classic experiment on the bundled digits for `epochs` quiet epochs, with a
/// `backup_and_restore` callback.
fn backed_up_classic(epochs: usize) -> Experiment {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");
    let text = with("path = \"../data/digits.csv\"", &format!("path = \"{data}\"")).replace("epochs = 10", &format!("epochs = {epochs}\nverbose = 0"))
        + "\n[[callbacks]]\ntype = \"backup_and_restore\"\n";
    Experiment::from_toml(&text).unwrap()
}

#[test]
fn an_incomplete_run_folder_says_what_it_lacks_and_a_backed_up_run_keeps_its_folder() {
    let root = std::env::temp_dir().join(format!("descent-incomplete-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let exp = backed_up_classic(2);
    let runs = root.join("runs");
    let run = exp.run(Some(&runs)).unwrap();
    assert!(missing_run_files(&run.dir).is_empty());
    // Complete: the backup and the record of its folder are gone.
    let name = exp.name();
    assert!(!runs.join(format!("{name}-backup")).exists());
    let complete = std::fs::read(run.dir.join("model.safetensors")).unwrap();

    // A run killed after its weights but before model.json and metrics.json were written.
    std::fs::remove_file(run.dir.join("model.json")).unwrap();
    std::fs::remove_file(run.dir.join("metrics.json")).unwrap();
    assert_eq!(missing_run_files(&run.dir), ["model.json", "metrics.json"]);
    let e = crate::train::Model::load(&run.dir).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("not a complete model folder: model.json is missing (it holds config.toml, history.csv, loss.svg, model.safetensors, optimizer.safetensors"), "{e}");
    let html = super::report::run_report(&run.dir).unwrap();
    assert!(html.contains("incomplete: no model.json, metrics.json"), "{}", &html[..html.len().min(3000)]);
    std::fs::remove_file(run.dir.join("telemetry.json")).unwrap();
    let e = super::doctor::RunRecord::load(&run.dir).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("an incomplete run folder: no model.json, metrics.json (the run was killed"), "{e}");

    // A backup that records its folder: the rerun writes that folder again (no second
    // folder), and ends with the same model.
    let backup_dir = runs.join(format!("{name}-backup"));
    std::fs::create_dir_all(&backup_dir).unwrap();
    std::fs::write(backup_dir.join("run_folder"), format!("{name}-001")).unwrap();
    std::fs::write(run.dir.join(".model.safetensors.tmp-12345"), b"partial").unwrap();
    let again = exp.run(Some(&runs)).unwrap();
    assert_eq!(again.dir, run.dir);
    assert!(missing_run_files(&run.dir).is_empty() && !run.dir.join(".model.safetensors.tmp-12345").exists());
    assert_eq!(std::fs::read(run.dir.join("model.safetensors")).unwrap(), complete);
    // A record from someone else naming another folder is not followed.
    for hostile in ["../../elsewhere".to_string(), format!("{name}-001/../../x"), "other-001".into(), format!("{name}-1")] {
        std::fs::create_dir_all(&backup_dir).unwrap();
        std::fs::write(backup_dir.join("run_folder"), &hostile).unwrap();
        let run = exp.run(Some(&runs)).unwrap();
        assert!(run.dir.parent() == Some(runs.as_path()) && run.dir.file_name().unwrap().to_string_lossy().starts_with(&format!("{name}-0")), "{hostile}: {}", run.dir.display());
    }
    assert!(!root.join("elsewhere").exists());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_run_that_fails_while_writing_its_model_leaves_no_metrics_and_says_why() {
    let root = std::env::temp_dir().join(format!("descent-write-fails-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let exp = backed_up_classic(1);
    let runs = root.join("runs");
    // The run's folder is known in advance (recorded beside the backup), and its weight
    // file cannot be written: a directory stands at that path (an I/O error, as a full
    // disk would give).
    let name = exp.name();
    let dir = runs.join(format!("{name}-001"));
    std::fs::create_dir_all(dir.join("model.safetensors")).unwrap();
    std::fs::create_dir_all(runs.join(format!("{name}-backup"))).unwrap();
    std::fs::write(runs.join(format!("{name}-backup/run_folder")), format!("{name}-001")).unwrap();
    let e = exp.run(Some(&runs)).unwrap_err().to_string();
    assert!(e.contains("model.safetensors"), "{e}");
    // No metrics.json without a model: the folder is visibly incomplete, and says so.
    assert!(!dir.join("metrics.json").exists() && !dir.join("model.json").exists());
    assert_eq!(missing_run_files(&dir), ["model.safetensors", "model.json", "metrics.json"]);
    let e = crate::train::Model::load(&dir).map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("not a complete model folder: model.json is missing"), "{e}");
    // The backup survives (the training is not lost): with the path free, the rerun
    // completes that same folder from it.
    assert!(runs.join(format!("{name}-backup/backup.safetensors")).exists());
    std::fs::remove_dir(dir.join("model.safetensors")).unwrap();
    let run = exp.run(Some(&runs)).unwrap();
    assert_eq!(run.dir, dir);
    assert!(missing_run_files(&dir).is_empty());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn bad_labels_are_reported_with_the_file_before_training() {
    let root = std::env::temp_dir().join(format!("descent-exp-labels-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("d.csv"), "a,b,label\n0,1,0\n1,0,1\n1,1,7\n0,0,1\n").unwrap();
    let text = with("path = \"../data/digits.csv\"", "path = \"d.csv\"")
        .replace("units = 10", "units = 2")
        .replace("test_split = 0.2", "test_split = 0.0");
    std::fs::write(root.join("e.toml"), text).unwrap();
    let e = Experiment::from_file(root.join("e.toml")).unwrap().run(Some(&root)).unwrap_err().to_string();
    assert!(e.contains("d.csv") && e.contains("label 7") && e.contains("[0, 2)"), "{e}");
}

#[test]
fn callbacks_and_regularization_from_toml() {
    let root = std::env::temp_dir().join(format!("descent-exp-cb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");
    let text = with("path = \"../data/digits.csv\"", &format!("path = \"{data}\""))
        .replace("epochs = 10", "epochs = 40\nverbose = 0")
        .replace(
            "{ type = \"dense\", units = 64, activation = \"relu\" },",
            "{ type = \"dense\", units = 64, activation = \"relu\", kernel_regularizer = { l2 = 1e-4 } },\n  { type = \"dropout\", rate = 0.2 },\n  { type = \"gaussian_noise\", stddev = 0.05 },",
        )
        + r#"
[[callbacks]]
type = "early_stopping"
monitor = "val_loss"
patience = 2
min_delta = 0.005
restore_best_weights = true

[[callbacks]]
type = "csv_logger"

[[callbacks]]
type = "model_checkpoint"
save_best_only = true
dir = "best"

[[callbacks]]
type = "learning_rate_scheduler"
schedule = { name = "exponential_decay", initial_learning_rate = 0.002, decay_steps = 1, decay_rate = 0.9 }
"#;
    let file = root.join("cb.toml");
    std::fs::write(&file, &text).unwrap();
    let exp = Experiment::from_file(&file).unwrap();
    assert_eq!(exp.callbacks.len(), 4);
    // Round trip through the resolved form written into run folders.
    assert_eq!(Experiment::from_toml(&exp.to_toml()).unwrap(), exp);
    let run = exp.run(Some(&root.join("runs"))).unwrap();
    let epochs = run.history.epochs.len();
    assert!(epochs < 40, "early stopping ended the run ({epochs} epochs)");
    let log = std::fs::read_to_string(run.dir.join("log.csv")).unwrap();
    assert_eq!(log.lines().count(), epochs + 1);
    assert!(run.dir.join("best").join("model.safetensors").is_file());
    assert!(run.test.get("accuracy").unwrap() > 0.9);
    // Errors name the callback.
    let e = err(&(CLASSIC.to_string() + "\n[[callbacks]]\ntype = \"early_stoping\"\n"));
    assert!(e.contains("early_stoping") && e.contains("early_stopping"), "{e}");
    let e = err(&(CLASSIC.to_string() + "\n[[callbacks]]\ntype = \"early_stopping\"\npatiense = 3\n"));
    assert!(e.contains("patiense") && e.contains("patience"), "{e}");
    let e = err(&(CLASSIC.to_string() + "\n[[callbacks]]\ntype = \"reduce_lr_on_plateau\"\nfactor = 2.0\n"));
    assert!(e.contains("callbacks[0]") && e.contains("factor"), "{e}");
    let e = err(&with("activation = \"relu\" }", "activation = \"relu\", kernel_regularizer = { l3 = 0.1 } }"));
    assert!(e.contains("l3"), "{e}");
}

#[test]
fn telemetry_goes_to_the_run_folder_and_to_tensorboard() {
    use crate::train::tensorboard::read::events;
    let root = std::env::temp_dir().join(format!("descent-exp-tb-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");
    let text = with("path = \"../data/digits.csv\"", &format!("path = \"{data}\"")).replace("epochs = 10", "epochs = 2\nverbose = 0");
    let text = format!("callbacks = [{{ type = \"tensorboard\", log_dir = \"tb\" }}]\n{text}");
    let run = Experiment::from_toml(&text).unwrap().run(Some(&root)).unwrap();
    let t = crate::train::Telemetry::from_json(&std::fs::read_to_string(run.dir.join("telemetry.json")).unwrap()).unwrap();
    let steps = run.steps as usize;
    assert_eq!(t.steps.loss.len(), steps);
    assert_eq!(t.epochs.len(), 2);
    assert_eq!(t.layers.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(), ["dense", "dense_1"]);
    let file = std::fs::read_dir(run.dir.join("tb/telemetry")).unwrap().next().unwrap().unwrap().path();
    let evs = events(&file).unwrap();
    let tagged = |tag: &str| evs.iter().filter(|e| e.scalars.iter().any(|(t, _)| t == tag)).count();
    assert_eq!(tagged("learning_rate"), steps);
    assert_eq!(tagged("grad_norm/dense"), t.sample_steps.len());
    assert_eq!(tagged("update_ratio/dense_1"), t.sample_steps.len());
    assert_eq!(tagged("dead_fraction/dense"), t.sample_steps.len());
    assert_eq!(tagged("data_wait_share"), 2);
}

/// An experiment with a number at every kind of numeric key: data scaling and splits,
/// layer sizes, rates, initializers and regularizers, the optimizer's options, a
/// schedule, class weights and callbacks.
const EVERY_NUMBER: &str = r#"
seed = 7
[data]
format = "csv"
path = "digits.csv"
label_column = "label"
test_split = 0.2
x_scale = 0.0625
[model]
layers = [
  { type = "gaussian_noise", stddev = 0.1, input_shape = [64] },
  { type = "dense", units = 32, activation = "relu", kernel_initializer = { random_normal = { mean = 0.0, stddev = 0.05 } },
    bias_initializer = { constant = 0.01 }, kernel_regularizer = { l1 = 1e-5, l2 = 1e-4 } },
  { type = "batch_normalization", momentum = 0.99, epsilon = 1e-3 },
  { type = "dropout", rate = 0.25 },
  { type = "dense", units = 10 },
]
[compile]
loss = { name = "sparse_categorical_crossentropy", from_logits = true, label_smoothing = 0.1 }
metrics = ["accuracy"]
[compile.optimizer]
name = "adam"
beta_1 = 0.9
beta_2 = 0.999
epsilon = 1e-7
weight_decay = 0.004
l2 = 1e-4
global_clipnorm = 1.0
gradient_accumulation_steps = 2
use_ema = true
ema_momentum = 0.99
learning_rate = { name = "cosine_decay", initial_learning_rate = 0.001, decay_steps = 100, alpha = 0.1, warmup_target = 0.01, warmup_steps = 10 }
[fit]
epochs = 2
batch_size = 16
validation_split = 0.1
class_weight = { "0" = 1.0, "1" = 2.5 }
[[callbacks]]
type = "early_stopping"
monitor = "val_loss"
patience = 3
min_delta = 0.001
[[callbacks]]
type = "reduce_lr_on_plateau"
factor = 0.5
patience = 2
min_lr = 1e-6
"#;

#[test]
fn a_number_that_is_not_finite_is_refused_at_every_key() {
    // Every number of every bundled experiment and of EVERY_NUMBER, replaced in turn by
    // nan, inf, -inf and a float beyond f32: each is refused naming its key and line,
    // none falls back to a default (on the way through serde_json a NaN became "absent").
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut files: Vec<(String, String)> = vec![("EVERY_NUMBER".into(), EVERY_NUMBER.into())];
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if path.extension().is_some_and(|e| e == "toml") && !text.contains("[study]") {
            files.push((path.display().to_string(), text));
        }
    }
    let mut checked = 0;
    for (name, text) in &files {
        Experiment::from_toml(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let numbers = ConfigFile::parse(text).unwrap().numbers();
        assert!(!numbers.is_empty(), "{name}");
        for (key, span) in numbers {
            let line = text[..span.start].matches('\n').count() + 1;
            for bad in ["nan", "inf", "-inf", "1e39"] {
                let edited = format!("{}{bad}{}", &text[..span.start], &text[span.end..]);
                let e = Experiment::from_toml(&edited).map(|_| ()).unwrap_err().to_string();
                assert!(e.contains(&format!("line {line}: `{key}` = {bad}:")), "{name}, {key} = {bad}: {e}");
                checked += 1;
            }
        }
    }
    eprintln!("{checked} edits (nan, inf, -inf, 1e39 at every number) refused at their key and line across {} files", files.len());
    assert!(checked > 200, "{checked}");
}

#[test]
fn an_invalid_value_is_reported_at_its_own_key_and_line() {
    // (the replacement, the key the error must name, its line in the classic file)
    for (from, to, key, line) in [
        ("units = 64", "units = -64", "model.layers[0].units", 18),
        ("units = 64,", "units = 64, activaton = \"relu\",", "model.layers[0].activaton", 18),
        ("learning_rate = 0.001", "learning_rate = 0.001, beta_1 = 1.5", "compile.optimizer.beta_1", 23),
        ("learning_rate = 0.001", "lerning_rate = 0.001", "compile.optimizer.lerning_rate", 23),
        ("name = \"adam\"", "name = \"adamm\"", "compile.optimizer.name", 23),
        ("label_column = \"label\"", "label_colum = \"label\"", "data.label_colum", 12),
        ("format = \"csv\"", "format = \"cvs\"", "data.format", 10),
        ("test_split = 0.2", "test_split = 1.5", "data.test_split", 13),
        ("epochs = 10", "epochs = 0", "fit.epochs", 28),
        ("epochs = 10", "epochs = 10\nvebose = 1", "fit.vebose", 29),
        ("seed = 42", "seed = 4.2", "seed", 7),
        ("[fit]", "[fti]", "fti", 27),
    ] {
        let e = err(&with(from, to));
        assert!(e.contains(&format!("line {line}: `{key}`")), "{to}: {e}");
    }
}

#[test]
fn a_layer_value_found_when_the_model_is_built_is_located_in_the_file() {
    // `units = 0` is found when the Dense layer is built (after the data is read); the
    // run's error still names the key and the line of the experiment file.
    let dir = std::env::temp_dir().join(format!("descent-locate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/digits.csv");
    for (from, to, want) in [
        ("units = 64", "units = 0", "line 18: `model.layers[0].units` = 0: layer 'dense': units must be at least 1"),
        ("units = 10 }", "units = 10, kernel_regularizer = { l2 = -1.0 } }", "line 19: `model.layers[1].kernel_regularizer.l2` = -1.0: layer 'dense_1' kernel_regularizer"),
    ] {
        let text = with(from, to).replace("../data/digits.csv", &data.display().to_string().replace('\\', "/"));
        let path = dir.join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let exp = Experiment::from_file(&path).unwrap();
        let e = exp.run(Some(&dir.join("runs"))).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains(&format!("bad.toml: {want}")), "{e}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn written_paths_stay_inside_their_folder() {
    // A received experiment cannot aim a checkpoint, log or backup (which is deleted at
    // the end) outside the run or output folder, nor the output folder up with `..`.
    for (table, key) in [
        ("type = \"model_checkpoint\"\ndir = \"../../elsewhere\"", "callbacks[0].dir"),
        ("type = \"csv_logger\"\nfilename = \"/etc/cron.d/x\"", "callbacks[0].filename"),
        ("type = \"tensorboard\"\nlog_dir = \"logs/../../../x\"", "callbacks[0].log_dir"),
        ("type = \"backup_and_restore\"\nbackup_dir = \"../../home\"", "callbacks[0].backup_dir"),
    ] {
        let e = err(&format!("{CLASSIC}\n[[callbacks]]\n{table}\n"));
        assert!(e.contains(&format!("`{key}`")) && (e.contains("may not climb out") || e.contains("must be a relative path")), "{e}");
    }
    let e = err(&format!("{CLASSIC}\n[output]\ndir = \"../../x\"\n"));
    assert!(e.contains("`output.dir` = \"../../x\"") && e.contains("may not climb out"), "{e}");
    // Inside is fine, and an absolute output folder is the user's explicit choice.
    Experiment::from_toml(&format!("{CLASSIC}\n[output]\ndir = \"/tmp/runs\"\n[[callbacks]]\ntype = \"model_checkpoint\"\ndir = \"ckpt/epoch-{{epoch}}\"\n")).unwrap();
}

#[test]
fn label_classes_missing_from_training_warn_and_a_single_class_is_an_error() {
    let exp = Experiment::from_toml(CLASSIC).unwrap();
    let data = |labels: &[u32], name: &str| {
        let x = crate::tensor::Tensor::new(vec![0.5; labels.len()], &[labels.len(), 1]).unwrap();
        crate::data::Dataset::new(x, crate::tensor::Tensor::from_classes(labels.to_vec(), &[labels.len(), 1]).unwrap(), name).unwrap()
    };
    let warnings = exp.check_classes(&data(&[0, 1, 0, 1], "d.csv (training split)"), Some(&data(&[0, 2, 3], "d.csv (test split)"))).unwrap();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("classes 2, 3 of the held-out split (d.csv (test split)) never occur in the training split"), "{warnings:?}");
    assert!(exp.check_classes(&data(&[0, 1, 2], "a"), Some(&data(&[2, 1], "b"))).unwrap().is_empty());
    let e = exp.check_classes(&data(&[4, 4, 4], "d.csv"), Some(&data(&[4], "t"))).unwrap_err().to_string();
    assert!(e.contains("d.csv") && e.contains("a single class (4) in all 4 rows"), "{e}");
}

#[test]
fn a_bad_label_is_named_by_its_line_in_the_file_in_whichever_split_it_lands() {
    // 40 rows; line 23 (the 22nd data row) holds label 7 of a 2-class model. Over seeds
    // and split fractions it lands in the training, validation-source or test split:
    // the error always names line 23, never a shuffled index.
    let root = std::env::temp_dir().join(format!("descent-exp-label-line-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let mut csv = String::from("a,b,label\n");
    for i in 0..40 {
        csv += &format!("{},{},{}\n", i % 3, i % 5, if i == 21 { 7 } else { i % 2 });
    }
    std::fs::write(root.join("d.csv"), csv).unwrap();
    let mut splits = std::collections::BTreeSet::new();
    for seed in 0..6 {
        for (test_split, stratify) in [(0.0, false), (0.5, false), (0.9, false)] {
            let text = with("path = \"../data/digits.csv\"", "path = \"d.csv\"")
                .replace("units = 10", "units = 2")
                .replace("seed = 42", &format!("seed = {seed}"))
                .replace("test_split = 0.2", &format!("test_split = {test_split}\nstratify = {stratify}"));
            std::fs::write(root.join("e.toml"), text).unwrap();
            let e = Experiment::from_file(root.join("e.toml")).unwrap().run(Some(&root)).unwrap_err().to_string();
            assert!(e.contains("label 7 at line 23 is outside [0, 2)"), "seed {seed}, test_split {test_split}: {e}");
            splits.insert(if e.contains("(test)") { "test" } else { "train" });
        }
    }
    assert_eq!(splits.len(), 2, "the label landed in both splits over the seeds: {splits:?}");
    std::fs::remove_dir_all(&root).unwrap();
}
