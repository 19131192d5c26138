//! Training: the [`Trainer`] (tape, optimizer, loss, metrics and the step), Keras's
//! [`Model`] over it (compile / fit / evaluate / predict / train_on_batch for both the
//! Sequential and the functional form), and the callbacks they drive.

mod batch;
mod callbacks;
mod checkpoint;
pub mod explain;
#[cfg(test)]
mod conv_tests;
mod fit;
mod generate;
#[cfg(test)]
mod functional_tests;
#[cfg(test)]
mod gpt_tests;
mod keras_callbacks;
mod model;
#[cfg(test)]
mod normalization_tests;
mod progress;
pub mod tensorboard;
#[cfg(test)]
mod regularization_tests;
#[cfg(test)]
mod resume_tests;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod update_fidelity_tests;
mod parallel;
mod telemetry;
mod trainer;
mod validate;
pub mod warning_signs;

pub use callbacks::{Callback, History, LambdaCallback, Logs, Mode, ReduceLROnPlateau, TrainContext};
pub use checkpoint::Restored;
pub use fit::{BackupAndRestore, FitOptions};
pub use generate::SampleOptions;
pub use keras_callbacks::{CallbackConfig, CsvLogger, EarlyStopping, LearningRateScheduler, ModelCheckpoint, Monitor, TerminateOnNaN};
pub use model::{Model, Sequential};
pub use progress::ProgressCallback;
pub use telemetry::{Divergence, EpochRecord, Histogram, LayerSeries, Machine, OptimizerInfo, StepSeries, Telemetry, TELEMETRY_VERSION};
pub use trainer::Trainer;
pub use tensorboard::TensorBoard;
pub use validate::{check_dataset_targets, check_inputs, check_targets};

use crate::error::Result;
use crate::nn::Metric;

/// Parses metric names (`"accuracy"`, `"sparse_categorical_accuracy"`, …).
pub fn parse_metric(name: &str) -> Result<Metric> {
    Metric::parse(name)
}

#[cfg(test)]
mod tests;
