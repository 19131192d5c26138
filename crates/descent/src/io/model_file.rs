//! A saved model is a folder: `model.json` (architecture, compile settings,
//! preprocessing), `model.safetensors` (weights) and, once trained,
//! `optimizer.safetensors` (optimizer state, for resuming exactly).

use std::collections::HashMap;
use std::path::Path;

use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::weights::{load_weights_from_bytes, tensors_to_bytes, view_to_f32, weights_to_bytes};
use super::write_atomic;
use crate::data::Preprocessing;
use crate::error::{Error, Result};
use crate::nn::{Loss, ModelConfig, Network};
use crate::optim::{OptimizerConfig, OptimizerState};

pub const MODEL_CONFIG_FILE: &str = "model.json";
pub const MODEL_WEIGHTS_FILE: &str = "model.safetensors";
pub const OPTIMIZER_STATE_FILE: &str = "optimizer.safetensors";
const FORMAT: &str = "descent.model";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompileConfig {
    pub optimizer: OptimizerConfig,
    /// The loss (of the first output, when `output_losses` is given).
    pub loss: Loss,
    /// For a model with several outputs trained with different losses or weights: one
    /// loss and one weight per output (empty: `loss` for every output, weighted 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_losses: Vec<Loss>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loss_weights: Vec<f32>,
    pub metrics: Vec<String>,
}

/// The contents of `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedModel {
    pub format: String,
    pub version: u32,
    pub seed: u64,
    pub model: ModelConfig,
    #[serde(default)]
    pub compile: Option<CompileConfig>,
    #[serde(default)]
    pub preprocessing: Preprocessing,
    /// CRC-32C of each weight file beside it (`model.safetensors`, `optimizer.safetensors`),
    /// as `crc32c:xxxxxxxx`, verified on load: a flipped byte or a file from another run
    /// is an error, not garbage predictions. (Absent in folders saved before it existed.)
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub checksums: std::collections::BTreeMap<String, String>,
}

/// `crc32c:xxxxxxxx` of `bytes`.
fn checksum(bytes: &[u8]) -> String {
    format!("crc32c:{:08x}", crc32c::crc32c(bytes))
}

/// `bytes` of `file` (in `dir`) against the checksum `model.json` records for it.
fn verify(saved: &SavedModel, dir: &Path, file: &str, bytes: &[u8]) -> Result<()> {
    match saved.checksums.get(file) {
        Some(want) if *want != checksum(bytes) => Err(Error::format(
            dir.join(file),
            format!("checksum {} does not match {want} recorded in {MODEL_CONFIG_FILE}: the file is corrupt or from another save", checksum(bytes)),
        )),
        _ => Ok(()),
    }
}

/// Saves a network's architecture and weights into `dir`, with its compile settings and
/// optimizer state when given. Weights first, config last: a reader never sees a config
/// without its weights.
pub fn save_model(
    network: &Network,
    dir: impl AsRef<Path>,
    compile: Option<&CompileConfig>,
    optimizer_state: Option<&OptimizerState>,
    preprocessing: &Preprocessing,
) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    if !network.is_built() {
        return Err(Error::State("save_model: the model has no weights yet (build or fit it first)".into()));
    }
    let mut saved = SavedModel {
        format: FORMAT.into(),
        version: 1,
        seed: network.seed(),
        model: network.config()?,
        compile: compile.cloned(),
        preprocessing: preprocessing.clone(),
        checksums: Default::default(),
    };
    let weights = weights_to_bytes(network.params())?;
    saved.checksums.insert(MODEL_WEIGHTS_FILE.into(), checksum(&weights));
    write_atomic(dir.join(MODEL_WEIGHTS_FILE), &weights)?;
    if let Some(state) = optimizer_state {
        let state = optimizer_state_to_bytes(state)?;
        saved.checksums.insert(OPTIMIZER_STATE_FILE.into(), checksum(&state));
        write_atomic(dir.join(OPTIMIZER_STATE_FILE), &state)?;
    }
    let json = serde_json::to_string_pretty(&saved).map_err(|e| Error::State(e.to_string()))?;
    write_atomic(dir.join(MODEL_CONFIG_FILE), json.as_bytes())
}

/// What a saved model folder holds, read back: the network (rebuilt, weights restored),
/// `model.json`, and the optimizer state when one was saved.
pub struct LoadedModel {
    pub network: Network,
    pub saved: SavedModel,
    pub optimizer_state: Option<OptimizerState>,
}

/// Reads a folder written by [`save_model`].
pub fn load_model(dir: impl AsRef<Path>) -> Result<LoadedModel> {
    let dir = dir.as_ref();
    let config_path = dir.join(MODEL_CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(|e| missing_file(dir, &config_path, e))?;
    let saved: SavedModel =
        serde_json::from_str(&text).map_err(|e| Error::format(&config_path, format!("invalid model file: {e}")))?;
    if saved.format != FORMAT {
        return Err(Error::format(&config_path, format!("format is `{}`, expected `{FORMAT}`", saved.format)));
    }
    // A value at a key of the file (a layer too large for memory, say) names the file.
    let at_file = |e: Error| match e {
        Error::Invalid { key, message } => Error::format(&config_path, format!("`{key}`: {message}")),
        Error::Config(message) => Error::format(&config_path, message),
        other => other,
    };
    let mut network = Network::from_config(saved.model.clone()).map_err(at_file)?.with_seed(saved.seed).map_err(at_file)?;
    if !network.is_built() {
        return Err(Error::format(&config_path, "the model has no input_shape, so its weights cannot be placed"));
    }
    let weights_path = dir.join(MODEL_WEIGHTS_FILE);
    let weights = std::fs::read(&weights_path).map_err(|e| missing_file(dir, &weights_path, e))?;
    verify(&saved, dir, MODEL_WEIGHTS_FILE, &weights)?;
    load_weights_from_bytes(&mut network, &weights, &weights_path)?;
    let state_path = dir.join(OPTIMIZER_STATE_FILE);
    let optimizer_state = match saved.compile.is_some() && state_path.exists() {
        true => {
            let bytes = std::fs::read(&state_path).map_err(|e| Error::io(&state_path, e))?;
            verify(&saved, dir, OPTIMIZER_STATE_FILE, &bytes)?;
            Some(optimizer_state_from_bytes(&bytes, &state_path)?)
        }
        false => None,
    };
    Ok(LoadedModel { network, saved, optimizer_state })
}

/// The error for a model file that could not be read. When it is missing from a folder
/// that exists, the error says which of the model's files are missing and what the
/// folder holds instead — a run interrupted or failed while being written looks like
/// this — with the reason its `status.json` (written by a failed run) gives.
fn missing_file(dir: &Path, path: &Path, e: std::io::Error) -> Error {
    if e.kind() != std::io::ErrorKind::NotFound || !dir.is_dir() {
        return Error::io(path, e);
    }
    let missing: Vec<&str> = [MODEL_CONFIG_FILE, MODEL_WEIGHTS_FILE].into_iter().filter(|f| !dir.join(f).exists()).collect();
    let mut held: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    held.sort();
    let holds = match held.is_empty() {
        true => "the folder is empty".to_string(),
        false => format!("it holds {}", held.join(", ")),
    };
    let status = std::fs::read_to_string(dir.join("status.json"))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string));
    let why = match status {
        Some(m) => format!("its status.json says the run failed: {m}"),
        None => "a run killed or failed while it was written leaves this: run it again".to_string(),
    };
    Error::format(dir, format!("not a complete model folder: {} missing ({holds}); {why}", missing.join(" and ") + if missing.len() > 1 { " are" } else { " is" }))
}

/// Optimizer state as safetensors: one tensor per buffer; step count, optimizer name
/// and scalar state (exact f64 text) in the metadata.
pub fn optimizer_state_to_bytes(state: &OptimizerState) -> Result<Vec<u8>> {
    let tensors: Vec<(String, Vec<usize>, &[f32])> =
        state.buffers.iter().map(|(n, b)| (n.clone(), vec![b.len()], b.as_slice())).collect();
    let mut meta = HashMap::new();
    meta.insert("optimizer".to_string(), state.optimizer.clone());
    meta.insert("iterations".to_string(), state.iterations.to_string());
    for (name, value) in &state.scalars {
        meta.insert(format!("scalar.{name}"), format!("{value:?}"));
    }
    tensors_to_bytes(&tensors, Some(meta))
}

/// Reads what [`optimizer_state_to_bytes`] wrote; errors name the file.
pub fn optimizer_state_from_bytes(bytes: &[u8], path: &Path) -> Result<OptimizerState> {
    let bad = |m: String| Error::format(path, m);
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| bad(format!("not a valid optimizer state file: {e}")))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a valid optimizer state file: {}", super::weights::safetensors_problem(bytes, &e))))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    let optimizer = meta.get("optimizer").cloned().ok_or_else(|| bad("missing `optimizer` metadata".into()))?;
    let iterations: u64 = meta
        .get("iterations")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("missing or invalid `iterations` metadata".into()))?;
    let mut scalars = Vec::new();
    for (k, v) in &meta {
        if let Some(name) = k.strip_prefix("scalar.") {
            let value: f64 = v.parse().map_err(|_| bad(format!("scalar `{name}` is not a number: {v}")))?;
            scalars.push((name.to_string(), value));
        }
    }
    scalars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut buffers = Vec::new();
    for name in st.names() {
        let view = st.tensor(name).map_err(|e| bad(e.to_string()))?;
        buffers.push((name.to_string(), view_to_f32(&view, path, name)?));
    }
    buffers.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(OptimizerState { optimizer, iterations, scalars, buffers })
}
