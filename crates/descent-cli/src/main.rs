//! `descent`: train, evaluate and use models described by one TOML file.

mod bench;
mod bench_cnn;
mod bench_gpt;
mod bench_mlp;
#[cfg(feature = "mpi")]
mod bench_mpi;
mod commands;
mod doctor_commands;
mod explain_command;
#[cfg(feature = "mpi")]
mod mpi_group;
mod tune_commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use descent::distributed::Communicator;

#[derive(Parser)]
#[command(name = "descent", version, about = "Deep-learning training from one TOML file", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How to cut folds and run them.
#[derive(clap::Args)]
struct FoldOpts {
    #[arg(long, default_value_t = 5)]
    folds: usize,
    /// Keep class proportions in every fold.
    #[arg(long)]
    stratified: bool,
    /// Repeat the k-fold with new shuffles.
    #[arg(long, default_value_t = 1)]
    repeats: usize,
    /// Shuffle seed (default: the experiment's seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Folds trained at once (default: cores ÷ threads).
    #[arg(long)]
    jobs: Option<usize>,
    /// Threads per fold.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Override fit.epochs.
    #[arg(long)]
    epochs: Option<usize>,
}

impl FoldOpts {
    fn args(&self) -> tune_commands::FoldArgs {
        tune_commands::FoldArgs {
            folds: self.folds,
            stratified: self.stratified,
            repeats: self.repeats,
            seed: self.seed,
            jobs: self.jobs,
            threads: self.threads,
            epochs: self.epochs,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Train the experiment in FILE; writes a run folder (config, history, metrics, weights).
    Fit {
        /// Experiment TOML (schema: docs/experiment.md).
        file: PathBuf,
        /// Folder for run folders (default: the experiment's output.dir, "runs").
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override fit.epochs.
        #[arg(long)]
        epochs: Option<usize>,
        /// Override fit.verbose (0 silent, 1 progress bar, 2 one line per epoch).
        #[arg(long)]
        verbose: Option<u8>,
    },
    /// Evaluate a saved run: on its own held-out split, or on a labelled CSV (a language
    /// model: its validation windows, or a text file).
    Evaluate {
        /// A run folder written by `descent fit`.
        run: PathBuf,
        /// Labelled CSV (a text file for a language model) to evaluate on instead of the held-out split.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Label column of --data (default: the experiment's).
        #[arg(long)]
        label_column: Option<String>,
    },
    /// Predict with a saved run: CSV or .npy features in, CSV of classes and probabilities out.
    Predict {
        run: PathBuf,
        /// Features: .csv (with a header; a column named like the training label is ignored) or .npy.
        #[arg(long)]
        input: PathBuf,
        /// Where to write the predictions (default: standard output).
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Diagnose a run folder: unstable, underfit, overfit or slow — the evidence, the
    /// likely cause and the TOML change that fixes it.
    Doctor {
        run: PathBuf,
        /// Write the run's experiment with the fixes applied to this file.
        #[arg(long)]
        fix: Option<PathBuf>,
        /// Do not run the learning-rate range test when a finding blames the learning rate.
        #[arg(long)]
        no_lr_find: bool,
    },
    /// Write one self-contained HTML report of a run folder: curves, learning rate,
    /// per-layer gradient norms and update ratios, weight histograms, the confusion
    /// matrix, the doctor's findings, timings, the machine and the configuration. Given a
    /// study database (`descent tune`'s .sqlite), the study's report: the best trial, the
    /// objective by trial, parameter importance, each parameter against the objective.
    Report {
        run: PathBuf,
        /// Where to write it (default: RUN/report.html, or STUDY-report.html beside a
        /// study database).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// What a trained model relies on: permutation feature importance on labelled data
    /// (the held-out split, or --data FILE.csv), integrated gradients and saliency of
    /// the first samples and averaged per class (PNG heatmaps over images); saved as
    /// RUN/explain.json.
    Explain {
        run: PathBuf,
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long)]
        label_column: Option<String>,
        /// Samples explained by integrated gradients and saliency.
        #[arg(long, default_value_t = 3)]
        samples: usize,
        /// Rows scored by permutation importance (scikit-learn's max_samples; a seeded
        /// random subset when there are more).
        #[arg(long, default_value_t = 1000)]
        max_samples: usize,
        /// Shuffles per feature for permutation importance (scikit-learn's n_repeats).
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Points on the integrated-gradients path.
        #[arg(long, default_value_t = 50)]
        steps: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Explain only this class: its first samples, for its output, and its mean
        /// attributions.
        #[arg(long)]
        class: Option<usize>,
        /// Samples of each class whose attributions are averaged into the class's (0:
        /// no per-class aggregate).
        #[arg(long, default_value_t = 10)]
        per_class: usize,
    },
    /// The learning-rate range test: ~100 steps from 1e-7 to 10, a chart (SVG) and the
    /// suggested rate as a TOML line.
    LrFind {
        file: PathBuf,
        /// Where to write the chart (default: <name>_lr_find.svg).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = 100)]
        steps: usize,
    },
    /// Print the model of an experiment file or a run folder, Keras-style.
    Summary { path: PathBuf },
    /// Sample text from a language model's run folder, streamed as it is drawn.
    Generate {
        run: PathBuf,
        /// The text to continue (in the model's vocabulary).
        #[arg(long, default_value = "\n")]
        prompt: String,
        #[arg(long, default_value_t = 500)]
        max_tokens: usize,
        /// Divides the logits; 0 always takes the most likely token.
        #[arg(long, default_value_t = 0.8)]
        temperature: f32,
        /// Keep only the k most likely tokens.
        #[arg(long)]
        top_k: Option<usize>,
        /// Keep the most likely tokens whose probabilities sum to at least p.
        #[arg(long)]
        top_p: Option<f32>,
        /// Same seed, same prompt, same model: same text.
        #[arg(long, default_value_t = 1337)]
        seed: u64,
    },
    /// Benchmarks against PyTorch (WORKLOADS.md). `w0`: sgemm and STREAM ceilings; `w1`: the classic MLP, steps/s; `w2`: the
    /// wide MLP, samples/s and GFLOP/s; `w3`: every optimizer's step over 10M parameters
    /// beside the bandwidth ceiling; `w4`: Keras's mnist_convnet on Fashion-MNIST, samples/s,
    /// quiet and beside a busy core; `w5`: nanoGPT's shakespeare_char GPT, training and generation tokens/s.
    Bench {
        #[arg(value_parser = ["w0", "w1", "w2", "w3", "w4", "w5", "mpi", "all"])]
        workload: String,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Python with torch installed (default .venv/bin/python; skipped when missing).
        #[arg(long, default_value = ".venv/bin/python")]
        python: PathBuf,
        #[arg(long, default_value = "bench-results")]
        out: PathBuf,
        /// Only these optimizers (comma-separated names, e.g. adam,sgd_momentum).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// W4: training images in the timed epoch (of Fashion-MNIST's 60,000).
        #[arg(long, default_value_t = 12_800)]
        samples: usize,
        /// W5: timed training steps.
        #[arg(long, default_value_t = 200)]
        steps: usize,
    },
    /// k-fold cross-validation of an experiment: per-fold scores and mean ± std. The
    /// experiment's held-out test split is set aside and not used.
    Cv {
        file: PathBuf,
        #[command(flatten)]
        folds: FoldOpts,
        /// Also write the per-fold scores as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Run or resume a hyperparameter study (STUDY.toml; see docs/tuning.md). Kill it at
    /// any time; the same command resumes it.
    Tune {
        file: PathBuf,
        /// Override study.trials.
        #[arg(long)]
        trials: Option<usize>,
        /// Override the parallel trials.
        #[arg(long)]
        jobs: Option<usize>,
        /// No live table.
        #[arg(long)]
        quiet: bool,
    },
    /// Inspect a study database: `show` (every trial), `best`, `export` (the best trial's
    /// experiment as a TOML file ready for `descent fit`).
    Study {
        #[arg(value_parser = ["show", "best", "export"])]
        action: String,
        /// The study's SQLite file.
        db: PathBuf,
        /// Which study, when the file holds several.
        #[arg(long)]
        study: Option<String>,
        /// Where `export` writes (default: <db stem>-best.toml beside the database).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare experiments (or one experiment under several optimizers) on the same folds:
    /// mean ± std, ranking, paired significance test, learning curves.
    Compare {
        /// Experiment files; with --optimizers, exactly one base experiment.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Optimizers to try on the base experiment, e.g. sgd,momentum,rmsprop,adam (name@lr sets the rate).
        #[arg(long, value_delimiter = ',')]
        optimizers: Vec<String>,
        /// The metric to rank by (a compiled metric or loss).
        #[arg(long, default_value = "accuracy")]
        metric: String,
        #[command(flatten)]
        folds: FoldOpts,
        /// Write the learning curves (mean validation metric per epoch) as an SVG chart.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Write an HTML report: the ranking with its paired tests, each contender's
        /// scores per fold, and the learning curves.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// One measurement for `bench w1|w2|w4`, in its own process (prints one JSON line).
    #[command(hide = true)]
    BenchChild {
        workload: String,
        #[arg(long, default_value_t = 12_800)]
        samples: usize,
        /// Steps between telemetry samples (w1, w2; 0: none).
        #[arg(long, default_value_t = 50)]
        telemetry: usize,
    },
    /// Print (CSV) or chart (SVG) a learning-rate schedule over N steps, without training.
    Schedule {
        /// A schedule as inline TOML, e.g. '{ name = "cosine_decay", initial_learning_rate = 0.1, decay_steps = 1000 }',
        /// or an experiment file (its optimizer's learning_rate is used).
        spec: String,
        #[arg(long, default_value_t = 100)]
        steps: u64,
        /// Write an SVG chart here instead of printing CSV.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
}

/// The data-parallel group this process belongs to, when `mpirun` started several.
#[cfg(feature = "mpi")]
type Group = mpi_group::MpiGroup;
#[cfg(not(feature = "mpi"))]
type Group = NoGroup;

#[cfg(feature = "mpi")]
fn join_group() -> Option<Group> {
    if mpi_group::launched_by_mpi() { mpi_group::MpiGroup::init() } else { None }
}

/// Without the `mpi` feature there is never a group.
#[cfg(not(feature = "mpi"))]
enum NoGroup {}
#[cfg(not(feature = "mpi"))]
fn join_group() -> Option<Group> {
    None
}
#[cfg(not(feature = "mpi"))]
impl NoGroup {
    fn abort(&self, _: i32) -> ! {
        match *self {}
    }
}
#[cfg(not(feature = "mpi"))]
impl descent::distributed::Communicator for NoGroup {
    fn rank(&self) -> usize {
        match *self {}
    }
    fn size(&self) -> usize {
        match *self {}
    }
    fn sum(&mut self, _: &mut [f64]) {
        match *self {}
    }
    fn gather_all(&mut self, _: &[u8]) -> Vec<Vec<u8>> {
        match *self {}
    }
    fn begin_bucket(&mut self, _: usize, _: &[f32], _: f32) {
        match *self {}
    }
    fn progress(&mut self) {
        match *self {}
    }
    fn end_bucket(&mut self, _: usize, _: &mut [f32]) {
        match *self {}
    }
    fn sum_in_place(&mut self, _: usize, _: &mut [f32], _: f32) {
        match *self {}
    }
    fn replica_sum(&mut self) -> Box<dyn descent::autograd::ReplicaSum> {
        match *self {}
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut group = join_group();
    // A group of one is the ordinary run.
    let parallel = group.as_mut().filter(|g| g.size() > 1);
    let place = parallel.as_ref().map(|g| (g.rank(), g.size()));
    let result = match cli.command {
        Command::Fit { file, out, epochs, verbose } => commands::fit(&file, out.as_deref(), epochs, verbose, parallel.map(|g| g as &mut dyn Communicator)),
        Command::Evaluate { run, data, label_column } => commands::evaluate(&run, data.as_deref(), label_column),
        Command::Predict { run, input, output } => commands::predict(&run, &input, output.as_deref()),
        Command::Summary { path } => commands::summary(&path),
        Command::Doctor { run, fix, no_lr_find } => doctor_commands::doctor(&run, fix.as_deref(), !no_lr_find),
        Command::Explain { run, data, label_column, samples, max_samples, repeats, steps, seed, class, per_class } => {
            explain_command::explain(&run, data.as_deref(), label_column, &explain_command::ExplainOptions { samples, max_samples, repeats, steps, seed, class, per_class })
        }
        Command::Report { run, out } => doctor_commands::report(&run, out.as_deref()),
        Command::LrFind { file, out, steps } => doctor_commands::lr_find(&file, out.as_deref(), steps),
        Command::Generate { run, prompt, max_tokens, temperature, top_k, top_p, seed } => {
            commands::generate(&run, &prompt, descent::train::SampleOptions { max_tokens, temperature, top_k, top_p, seed })
        }
        Command::Bench { workload, rounds, python, out, only, samples, steps } => match workload.as_str() {
            "w3" => bench::w3(rounds, Some(&python), &out, &only),
            "w4" => bench_cnn::w4(rounds, Some(&python), &out, samples),
            "w5" => bench_gpt::w5(rounds, Some(&python), &out, steps),
            #[cfg(feature = "mpi")]
            "mpi" => bench_mpi::run(rounds, &out),
            #[cfg(not(feature = "mpi"))]
            "mpi" => Err(descent::Error::Config("`descent bench mpi` needs the MPI build: cargo build --release -p descent-cli --features mpi".into())),
            "w0" => {
                bench_mlp::ceilings(true);
                Ok(())
            }
            "all" => {
                bench_mlp::ceilings(true);
                bench_mlp::mlp("w1", rounds, Some(&python), &out)
                    .and_then(|_| bench_mlp::mlp("w2", rounds, Some(&python), &out))
                    .and_then(|_| bench::w3(rounds, Some(&python), &out, &only))
                    .and_then(|_| bench_cnn::w4(rounds, Some(&python), &out, samples))
            }
            w => bench_mlp::mlp(w, rounds, Some(&python), &out),
        },
        Command::Cv { file, folds, json } => tune_commands::cv(&file, &folds.args(), json.as_deref()),
        Command::Tune { file, trials, jobs, quiet } => tune_commands::tune(&file, trials, jobs, !quiet, parallel.map(|g| g as &mut dyn Communicator)),
        Command::Study { action, db, study, out } => tune_commands::study(&action, &db, study.as_deref(), out.as_deref()),
        Command::Compare { files, optimizers, metric, folds, svg, report } => {
            tune_commands::compare_cmd(&files, &optimizers, &metric, &folds.args(), svg.as_deref(), report.as_deref())
        }
        #[cfg(feature = "mpi")]
        Command::BenchChild { workload, .. } if workload == "mpi" => match group.as_mut() {
            Some(g) => bench_mpi::child(g),
            None => Err(descent::Error::Config("bench-child mpi runs under mpirun".into())),
        },
        Command::BenchChild { workload, samples, .. } if workload == "w4" => bench_cnn::child(samples, 10),
        Command::BenchChild { workload, samples, .. } if workload == "w5" => bench_gpt::child(samples, 20),
        Command::BenchChild { workload, telemetry, .. } => bench_mlp::child(&workload, telemetry),
        Command::Schedule { spec, steps, svg } => commands::schedule(&spec, steps, svg.as_deref()),
    };
    match (result, place) {
        (Ok(()), _) => ExitCode::SUCCESS,
        (Err(e), None) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
        (Err(e), Some((rank, size))) => {
            // The other ranks may be waiting for this one in a collective: end them all.
            eprintln!("error (rank {rank} of {size}): {e}");
            match &group {
                Some(g) => g.abort(1),
                None => ExitCode::FAILURE,
            }
        }
    }
}
