//! `descent`: train, evaluate and use models described by one TOML file.

mod bench;
mod bench_mlp;
mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "descent", version, about = "Deep-learning training from one TOML file", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Evaluate a saved run: on its own held-out split, or on a labelled CSV.
    Evaluate {
        /// A run folder written by `descent fit`.
        run: PathBuf,
        /// Labelled CSV to evaluate on instead of the run's held-out split.
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
    /// Print the model of an experiment file or a run folder, Keras-style.
    Summary { path: PathBuf },
    /// Benchmarks against PyTorch (WORKLOADS.md). `w0`: sgemm and STREAM ceilings; `w1`: the classic MLP, steps/s; `w2`: the
    /// wide MLP, samples/s and GFLOP/s; `w3`: every optimizer's step over 10M parameters
    /// beside the bandwidth ceiling.
    Bench {
        #[arg(value_parser = ["w0", "w1", "w2", "w3", "all"])]
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
    },
    /// One measurement for `bench w1|w2`, in its own process (prints one JSON line).
    #[command(hide = true)]
    BenchChild { workload: String },
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Fit { file, out, epochs, verbose } => commands::fit(&file, out.as_deref(), epochs, verbose),
        Command::Evaluate { run, data, label_column } => commands::evaluate(&run, data.as_deref(), label_column),
        Command::Predict { run, input, output } => commands::predict(&run, &input, output.as_deref()),
        Command::Summary { path } => commands::summary(&path),
        Command::Bench { workload, rounds, python, out, only } => match workload.as_str() {
            "w3" => bench::w3(rounds, Some(&python), &out, &only),
            "w0" => {
                bench_mlp::ceilings(true);
                Ok(())
            }
            "all" => {
                bench_mlp::ceilings(true);
                bench_mlp::mlp("w1", rounds, Some(&python), &out)
                    .and_then(|_| bench_mlp::mlp("w2", rounds, Some(&python), &out))
                    .and_then(|_| bench::w3(rounds, Some(&python), &out, &only))
            }
            w => bench_mlp::mlp(w, rounds, Some(&python), &out),
        },
        Command::BenchChild { workload } => bench_mlp::child(&workload),
        Command::Schedule { spec, steps, svg } => commands::schedule(&spec, steps, svg.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
