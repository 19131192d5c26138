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

    /// A config value at a known key (a dotted path such as `model.layers[0].units`) is
    /// invalid; reading the file turns the key into its line.
    #[error("`{key}`: {message}")]
    Invalid { key: String, message: String },

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
    /// An invalid value at `key`. A configuration error from below (`Error::Config`)
    /// keeps its message; an error at a key inside `key` gets the longer path.
    pub fn invalid(key: &str, e: impl Into<InvalidReason>) -> Self {
        match e.into().0 {
            Ok(Error::Config(message)) => Error::Invalid { key: key.to_string(), message },
            Ok(Error::Invalid { key: inner, message }) => {
                let sep = if inner.starts_with('[') { "" } else { "." };
                Error::Invalid { key: format!("{key}{sep}{inner}"), message }
            }
            Ok(other) => Error::Invalid { key: key.to_string(), message: other.to_string() },
            Err(message) => Error::Invalid { key: key.to_string(), message },
        }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format { path: path.into(), message: message.into() }
    }
}

/// What [`Error::invalid`] takes: a message or an error from below.
pub struct InvalidReason(std::result::Result<Error, String>);

impl From<String> for InvalidReason {
    fn from(m: String) -> Self {
        InvalidReason(Err(m))
    }
}
impl From<&str> for InvalidReason {
    fn from(m: &str) -> Self {
        InvalidReason(Err(m.to_string()))
    }
}
impl From<Error> for InvalidReason {
    fn from(e: Error) -> Self {
        InvalidReason(Ok(e))
    }
}
