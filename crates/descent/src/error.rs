//! Errors as values, each saying what went wrong and where.

use std::path::PathBuf;

/// Everything that can go wrong in descent. Messages name the file, row, column, layer
/// or key involved so a user can fix their input without a debugger.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A shape did not match what an operation or layer expected.
    #[error("shape mismatch in {context}: expected {expected}, got {got}")]
    Shape { context: String, expected: String, got: String },

    /// Input data is unusable: NaN/inf, labels out of range, ragged rows, ...
    #[error("invalid data in {source_name}: {message}")]
    Data { source_name: String, message: String },

    /// A configuration value (TOML key, hyperparameter, option) is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },

    /// A file was read but its contents are malformed.
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },

    /// Training stopped because the loss became non-finite (where, and what to change).
    #[error("training diverged: {0}")]
    Diverged(String),

    /// The model was used in a way its state does not allow (e.g. fit before compile).
    #[error("{0}")]
    State(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn shape(context: impl Into<String>, expected: impl ToString, got: impl ToString) -> Self {
        Error::Shape { context: context.into(), expected: expected.to_string(), got: got.to_string() }
    }
    pub fn data(source_name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Data { source_name: source_name.into(), message: message.into() }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format { path: path.into(), message: message.into() }
    }
}
