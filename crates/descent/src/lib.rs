//! descent: deep-learning training with Keras's simplicity and fused CPU kernels.

pub mod autograd;
pub mod error;
pub mod tensor;

pub use error::{Error, Result};
