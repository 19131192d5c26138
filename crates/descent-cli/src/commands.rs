use std::io::Write;
use std::path::Path;

use descent::distributed::Communicator;
use descent::data::{read_csv, read_idx, read_npy, CsvOptions, LabelColumn};
use descent::experiment::{DataSource, Experiment};
use descent::io::{write_atomic, SavedModel};
use descent::nn::Loss;
use descent::train::Model;
use descent::optim::LearningRate;
use descent::tensor::kernels::activation::softmax_row;
use descent::tensor::kernels::reduce::argmax;
use descent::tensor::Tensor;
use descent::train::check_inputs;
use descent::{Error, Result};

pub fn fit(file: &Path, out: Option<&Path>, epochs: Option<usize>, verbose: Option<u8>, group: Option<&mut dyn Communicator>) -> Result<()> {
    let mut exp = Experiment::from_file(file)?;
    if let Some(e) = epochs {
        exp.fit.epochs = e;
    }
    if let Some(v) = verbose {
        exp.fit.verbose = v;
    }
    exp.validate()?;
    let summary = match group {
        None => exp.run(out)?,
        Some(group) => {
            same_experiment_everywhere(file, &exp, group)?;
            let summary = exp.run_data_parallel(out, group)?;
            if group.rank() != 0 {
                return Ok(());
            }
            summary
        }
    };
    let train_logs: Vec<String> = summary
        .history
        .metrics
        .iter()
        .filter_map(|(n, v)| v.last().map(|x| format!("{n}: {x:.4}")))
        .collect();
    println!(
        "trained {} epochs ({} steps) in {:.2}s, {:.0} steps/s — {}",
        summary.history.epochs.len(),
        summary.steps,
        summary.train_seconds,
        summary.steps as f64 / summary.train_seconds.max(1e-9),
        train_logs.join(" - ")
    );
    if summary.test.is_empty() {
        println!("no held-out split (data.test_split = 0)");
    } else {
        println!("held-out: {}", summary.test.format());
    }
    println!("run folder: {}", summary.dir.display());
    Ok(())
}

/// Checks that every rank of a data-parallel group resolved the same experiment (a
/// hostfile's machines may hold different copies of the file); names the first that
/// differs.
fn same_experiment_everywhere(file: &Path, exp: &Experiment, group: &mut dyn Communicator) -> Result<()> {
    let mine = exp.to_toml();
    let all = group.gather_all(mine.as_bytes());
    match all.iter().position(|e| e != &all[0]) {
        None => Ok(()),
        Some(rank) => Err(Error::Config(format!(
            "{}: rank {rank} read a different experiment than rank 0 (crc {:08x} against {:08x}); every rank must run the same file",
            file.display(),
            crc32c_of(&all[rank]),
            crc32c_of(&all[0])
        ))),
    }
}

/// A short checksum for messages (FNV-1a: nothing here needs more).
fn crc32c_of(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ b as u32).wrapping_mul(0x0100_0193))
}

/// The experiment a run was made from (its resolved copy inside the run folder).
fn run_experiment(run: &Path) -> Result<Experiment> {
    Experiment::from_file(run.join("config.toml"))
}

/// `descent evaluate` of a language model: its validation windows, or every window
/// tiling a text file (`--data`), tokenized by the run's tokenizer.
fn evaluate_text(run: &Path, data: Option<&Path>, mut model: Model, tokenizer: &descent::data::Tokenizer) -> Result<()> {
    let exp = run_experiment(run)?;
    let block = model.input_shape().and_then(|s| s.first().copied()).unwrap_or(1);
    let (x, y, source) = match data {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            let ids = tokenizer.encode(&text).map_err(|e| Error::format(path, e.to_string()))?;
            let (x, y) = descent::data::tiling_windows(&ids, block).map_err(|e| Error::format(path, e.to_string()))?;
            (x, y, format!("{} (every window of {block})", path.display()))
        }
        None => {
            let (corpus, _) = exp.text_model()?;
            let (x, y) = exp.validation_windows(&corpus)?.ok_or_else(|| Error::Config("the run's text has no validation part (val_fraction = 0); pass --data FILE".into()))?;
            (x, y, "validation windows".to_string())
        }
    };
    let mut logs = model.evaluate(&x, &y, exp.fit.batch_size)?;
    descent::experiment::add_text_scores(&mut logs, tokenizer);
    println!("{source}: {} windows of {block} tokens — {}", x.rows(), logs.format());
    Ok(())
}

pub fn evaluate(run: &Path, data: Option<&Path>, label_column: Option<String>) -> Result<()> {
    let (mut model, saved) = Model::load(run)?;
    if let Some(tokenizer) = &saved.preprocessing.tokenizer {
        return evaluate_text(run, data, model, tokenizer);
    }
    let batch = 256;
    let (x, y, source) = labelled_data(run, &model, &saved, data, label_column)?;
    let logs = model.evaluate(&x, &y, batch)?;
    println!("{source}: {} samples — {}", x.rows(), logs.format());
    if let Some(cm) = model.confusion_matrix(&x, &y, batch)? {
        println!("confusion matrix (rows: true class, columns: predicted):\n{}", cm.table());
    }
    Ok(())
}

/// Labelled samples for a run's model, preprocessed as in training: a CSV file
/// (`--data`, its label column the run's or `label_column`), or the run's held-out split.
/// Returns (features, targets, where they came from).
pub(crate) fn labelled_data(run: &Path, model: &Model, saved: &SavedModel, data: Option<&Path>, label_column: Option<String>) -> Result<(Tensor, Tensor, String)> {
    let (data, source) = match data {
        Some(path) => {
            let exp = run_experiment(run).ok();
            let label = label_column
                .map(LabelColumn::Name)
                .or_else(|| match exp.map(|e| e.data.source) {
                    Some(DataSource::Csv { label_column, .. }) => Some(label_column),
                    _ => None,
                })
                .unwrap_or(LabelColumn::Name("label".into()));
            let options = CsvOptions { label_column: Some(label), categorical: saved.preprocessing.categories.clone(), ..Default::default() };
            (descent::data::read_csv_dataset(path, &options)?, path.display().to_string())
        }
        None => {
            let exp = run_experiment(run)?;
            let (_, test) = exp.load_splits()?;
            let test = test.ok_or_else(|| {
                Error::Config("the run's experiment has no held-out split (test_split = 0); pass --data FILE".into())
            })?;
            let source = format!("{} (held-out split)", test.name);
            (test, source)
        }
    };
    check_inputs(model, &data.x, &source)?;
    // Labels are checked here, against the data set, so a bad one is named by its line
    // in the file (or row of the array), also in the shuffled held-out split.
    if let Some(compile) = &saved.compile {
        descent::train::check_dataset_targets(&compile.loss, model.output_shape_of(0), &data)?;
    }
    let (mut x, y) = (data.x, data.y);
    saved.preprocessing.apply(&mut x)?;
    Ok((x, y, source))
}

/// Features from a .npy or IDX file (images keep their per-sample shape), or a CSV whose
/// columns are all features except one named like the training label column (so the
/// training file itself can be passed).
fn read_features(input: &Path, run: &Path, categories: &[descent::data::Categories]) -> Result<Tensor> {
    let name = input.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let samples = |t: Tensor| if t.shape().rank() >= 2 { Ok(t) } else { Tensor::new(t.data().to_vec(), &[t.rows(), 1]) };
    if name.ends_with(".npy") {
        return samples(read_npy(input)?);
    }
    if name.ends_with("ubyte") || name.ends_with("ubyte.gz") || name.ends_with(".idx") || name.ends_with(".idx.gz") {
        return samples(read_idx(input)?);
    }
    let label = match run_experiment(run).map(|e| e.data.source) {
        Ok(DataSource::Csv { label_column: LabelColumn::Name(n), .. }) => Some(n),
        _ => None,
    };
    let header_has_label = label.as_ref().is_some_and(|l| {
        csv::Reader::from_path(input)
            .ok()
            .and_then(|mut r| r.headers().ok().map(|h| h.iter().any(|c| c.trim() == l)))
            .unwrap_or(false)
    });
    let options = CsvOptions {
        label_column: label.filter(|_| header_has_label).map(LabelColumn::Name),
        categorical: categories.to_vec(),
        ..Default::default()
    };
    Ok(read_csv(input, &options)?.0)
}

pub fn predict(run: &Path, input: &Path, output: Option<&Path>) -> Result<()> {
    let (mut model, saved) = Model::load(run)?;
    let mut x = read_features(input, run, &saved.preprocessing.categories)?;
    check_inputs(&model, &x, &input.display().to_string())?;
    saved.preprocessing.apply(&mut x)?;
    let out = model.predict(&x, 256)?;
    let text = format_predictions(&out, &saved);
    match output {
        Some(path) => {
            write_atomic(path, text.as_bytes())?;
            eprintln!("wrote {} predictions to {}", out.rows(), path.display());
        }
        None => std::io::stdout().write_all(text.as_bytes()).map_err(|e| Error::Io { path: "<stdout>".into(), source: e })?,
    }
    Ok(())
}

/// Classification: `class,p_0,…` with probabilities (softmax/sigmoid applied to logits).
/// Regression: the outputs `y_0,…`.
fn format_predictions(out: &Tensor, saved: &SavedModel) -> String {
    let loss = saved.compile.as_ref().map(|c| c.loss);
    let cols = out.row_len();
    let mut text = String::new();
    match loss {
        Some(Loss::SparseCategoricalCrossentropy { from_logits, .. } | Loss::CategoricalCrossentropy { from_logits, .. }) => {
            text.push_str("class");
            (0..cols).for_each(|j| text.push_str(&format!(",p_{j}")));
            text.push('\n');
            let mut row = vec![0.0f32; cols];
            for i in 0..out.rows() {
                row.copy_from_slice(out.row(i));
                if from_logits {
                    softmax_row(&mut row);
                }
                text.push_str(&argmax(&row).to_string());
                row.iter().for_each(|p| text.push_str(&format!(",{p:.6}")));
                text.push('\n');
            }
        }
        Some(Loss::BinaryCrossentropy { from_logits, .. }) => {
            text.push_str(if cols == 1 { "class,p\n" } else { "classes,p\n" });
            for i in 0..out.rows() {
                let p: Vec<f32> =
                    out.row(i).iter().map(|z| if from_logits { 1.0 / (1.0 + (-z).exp()) } else { *z }).collect();
                let classes: Vec<String> = p.iter().map(|v| ((*v > 0.5) as u8).to_string()).collect();
                let probs: Vec<String> = p.iter().map(|v| format!("{v:.6}")).collect();
                text.push_str(&format!("{},{}\n", classes.join(" "), probs.join(" ")));
            }
        }
        _ => {
            let names: Vec<String> = (0..cols).map(|j| format!("y_{j}")).collect();
            text.push_str(&names.join(","));
            text.push('\n');
            for i in 0..out.rows() {
                let vals: Vec<String> = out.row(i).iter().map(|v| v.to_string()).collect();
                text.push_str(&vals.join(","));
                text.push('\n');
            }
        }
    }
    text
}

pub fn summary(path: &Path) -> Result<()> {
    let model: Model = if path.is_dir() { Model::load(path)?.0 } else { Experiment::from_file(path)?.model_for_data()? };
    print!("{}", model.summary());
    Ok(())
}

/// `descent generate`: the run's tokenizer encodes the prompt; tokens are printed as
/// they are drawn (whole characters only: a BPE token may end inside one).
pub fn generate(run: &Path, prompt: &str, opts: descent::train::SampleOptions) -> Result<()> {
    let (mut model, saved) = Model::load(run)?;
    let tokenizer = saved
        .preprocessing
        .tokenizer
        .clone()
        .ok_or_else(|| Error::Config(format!("{}: not a language model's run (no tokenizer saved with it)", run.display())))?;
    let ids = tokenizer.encode(prompt)?;
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{prompt}");
    let mut drawn: Vec<u32> = Vec::with_capacity(opts.max_tokens);
    let mut shown = 0;
    let started = std::time::Instant::now();
    model.generate(&ids, &opts, |t| {
        drawn.push(t);
        if let Ok(text) = tokenizer.decode(&drawn) {
            if text.len() > shown && text.is_char_boundary(shown) {
                let _ = write!(out, "{}", &text[shown..]);
                let _ = out.flush();
                shown = text.len();
            }
        }
        Ok(())
    })?;
    let secs = started.elapsed().as_secs_f64();
    let _ = writeln!(out);
    eprintln!("{} tokens in {secs:.2}s ({:.0} tokens/s)", drawn.len(), drawn.len() as f64 / secs.max(1e-9));
    Ok(())
}

/// A schedule from inline TOML (`{ name = … }` or a number) or from an experiment file.
fn parse_schedule(spec: &str) -> Result<LearningRate> {
    let path = Path::new(spec);
    if path.is_file() {
        let exp = Experiment::from_file(path)?;
        let name = exp.compile.optimizer.name();
        return Ok(exp
            .compile
            .optimizer
            .options
            .learning_rate
            .clone()
            .unwrap_or_else(|| default_learning_rate(name)));
    }
    #[derive(serde::Deserialize)]
    struct Wrapper {
        learning_rate: LearningRate,
    }
    let w: Wrapper = toml::from_str(&format!("learning_rate = {spec}"))
        .map_err(|e| Error::Config(format!("schedule `{spec}`: {}", e.message())))?;
    if let LearningRate::Schedule(s) = &w.learning_rate {
        s.validate().map_err(|e| Error::Config(format!("schedule: {e}")))?;
    }
    Ok(w.learning_rate)
}

fn default_learning_rate(name: &str) -> LearningRate {
    let opt = descent::optim::OptimizerConfig::named(name).and_then(|c| c.build());
    LearningRate::Constant(opt.map(|o| o.learning_rate()).unwrap_or(f32::NAN))
}

pub fn schedule(spec: &str, steps: u64, svg: Option<&Path>) -> Result<()> {
    let lr = parse_schedule(spec)?;
    let values: Vec<f32> = (0..steps).map(|s| lr.at(s)).collect();
    match svg {
        Some(path) => {
            write_atomic(path, schedule_svg(&values).as_bytes())?;
            eprintln!("wrote a chart of {steps} steps to {}", path.display());
        }
        None => {
            let mut out = String::from("step,learning_rate\n");
            values.iter().enumerate().for_each(|(i, v)| out.push_str(&format!("{i},{v}\n")));
            std::io::stdout().write_all(out.as_bytes()).map_err(|e| Error::Io { path: "<stdout>".into(), source: e })?;
        }
    }
    Ok(())
}

/// The schedule as an SVG line chart.
fn schedule_svg(values: &[f32]) -> String {
    let values: Vec<f64> = values.iter().map(|v| *v as f64).collect();
    descent::io::chart::line_chart("learning-rate schedule", "step", "learning rate", 0, &[descent::io::chart::Series { label: "lr", values: &values }])
}
