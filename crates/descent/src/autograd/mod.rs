//! Reverse-mode autodiff over a tape of coarse, fused ops.
//!
//! The tape is reused across training steps: `reset()` forgets the ops but keeps every
//! node's buffers, so a steady-state step (same shapes each time) allocates nothing.

mod ops;
mod params;
mod replica;
mod tape;

pub use params::{ParamEntry, ParamId, ParamStore};
pub use ops::AttentionSpec;
pub use replica::ReplicaSum;
pub use tape::{Tape, Var};
#[cfg(test)]
mod gradcheck;
#[cfg(test)]
mod gradcheck_nd;
#[cfg(test)]
mod gradcheck_conv;
#[cfg(test)]
mod gradcheck_attention;
#[cfg(test)]
mod conv_reference_tests;
#[cfg(test)]
mod flops_tests;
#[cfg(test)]
mod sync_batch_norm_tests;
