//! descent: deep-learning training with Keras's simplicity and fused CPU kernels.
//!
//! Layers of the crate, bottom up: `tensor` (storage, shapes, SIMD kernels, GEMM),
//! `autograd` (flat parameter store, tape, backward), `distributed` (the data-parallel
//! seam: gradient buckets, shares of a batch), `nn` (layers, losses, metrics,
//! Sequential), `optim` (fused optimizers), `data` (datasets and readers), `train`
//! (compile / fit / evaluate / predict, callbacks), `io` (safetensors weights, configs).

#[macro_use]
pub mod tensor;
pub mod autograd;
pub mod config_file;
pub(crate) mod config_util;
pub mod data;
pub mod distributed;
pub mod error;
pub mod experiment;
pub mod io;
pub mod nn;
pub mod optim;
pub mod rng;
pub mod train;

pub use error::{Error, Result};
