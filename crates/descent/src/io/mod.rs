//! Saving and loading: atomic file writes, safetensors weights, saved models.

mod atomic;
mod checkpoint;
pub mod chart;
pub mod heatmap;
mod model_file;
mod weights;

pub use atomic::write_atomic;
pub use checkpoint::{read_checkpoint, write_checkpoint, Checkpoint};
pub use model_file::{
    load_model, optimizer_state_from_bytes, optimizer_state_to_bytes, save_model, CompileConfig, LoadedModel, SavedModel, MODEL_CONFIG_FILE,
    MODEL_WEIGHTS_FILE, OPTIMIZER_STATE_FILE,
};
pub use weights::{load_weights, save_weights, weights_to_bytes, weights_to_bytes_named};
