//! A saved model is a folder: `model.json` (architecture, compile settings,
//! preprocessing), `model.safetensors` (weights) and, once trained,
//! `optimizer.safetensors` (optimizer state, for resuming exactly).

use std::collections::HashMap;
use std::path::Path;

use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::weights::{load_weights, tensors_to_bytes, view_to_f32, weights_to_bytes};
use super::write_atomic;
use crate::data::Preprocessing;
use crate::error::{Error, Result};
use crate::nn::{Loss, ModelConfig, Model, Sequential};
use crate::optim::{OptimizerConfig, OptimizerState};

pub const MODEL_CONFIG_FILE: &str = "model.json";
pub const MODEL_WEIGHTS_FILE: &str = "model.safetensors";
pub const OPTIMIZER_STATE_FILE: &str = "optimizer.safetensors";
const FORMAT: &str = "descent.model";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompileConfig {
    pub optimizer: OptimizerConfig,
    pub loss: Loss,
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
}

/// Saves architecture, weights, compile settings and optimizer state into `dir`.
pub fn save_model(model: &Model, dir: impl AsRef<Path>, preprocessing: &Preprocessing) -> Result<()> {
    let dir = dir.as_ref();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    if !model.is_built() {
        return Err(Error::State("save_model: the model has no weights yet (build or fit it first)".into()));
    }
    let compile = model.compiled().map(|c| CompileConfig {
        optimizer: c.optimizer.config(),
        loss: c.loss,
        metrics: c.metrics.iter().map(|(n, _)| n.clone()).collect(),
    });
    let saved = SavedModel {
        format: FORMAT.into(),
        version: 1,
        seed: model.seed(),
        model: model.config()?,
        compile,
        preprocessing: preprocessing.clone(),
    };
    let json = serde_json::to_string_pretty(&saved).map_err(|e| Error::State(e.to_string()))?;
    // Weights first, config last: a reader never sees a config without its weights.
    write_atomic(dir.join(MODEL_WEIGHTS_FILE), &weights_to_bytes(model.params())?)?;
    if let Some(opt) = model.optimizer().filter(|o| o.iterations() > 0) {
        write_atomic(dir.join(OPTIMIZER_STATE_FILE), &optimizer_state_to_bytes(&opt.save_state())?)?;
    }
    write_atomic(dir.join(MODEL_CONFIG_FILE), json.as_bytes())
}

/// Loads a model saved by [`save_model`]: rebuilt, weights restored, compiled as it was
/// (with its optimizer state when saved).
pub fn load_model(dir: impl AsRef<Path>) -> Result<(Model, SavedModel)> {
    let dir = dir.as_ref();
    let config_path = dir.join(MODEL_CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let saved: SavedModel =
        serde_json::from_str(&text).map_err(|e| Error::format(&config_path, format!("invalid model file: {e}")))?;
    if saved.format != FORMAT {
        return Err(Error::format(&config_path, format!("format is `{}`, expected `{FORMAT}`", saved.format)));
    }
    let mut model = Sequential::from_config(saved.model.clone())?.with_seed(saved.seed)?;
    if !model.is_built() {
        return Err(Error::format(&config_path, "the model has no input_shape, so its weights cannot be placed"));
    }
    load_weights(&mut model, dir.join(MODEL_WEIGHTS_FILE))?;
    if let Some(c) = &saved.compile {
        let metrics: Vec<&str> = c.metrics.iter().map(String::as_str).collect();
        model.compile(c.optimizer.build()?, c.loss, &metrics)?;
        let state_path = dir.join(OPTIMIZER_STATE_FILE);
        if state_path.exists() {
            load_optimizer_state(&mut model, &state_path)?;
        }
    }
    Ok((model, saved))
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
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(format!("not a valid optimizer state file: {e}")))?;
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

fn load_optimizer_state(model: &mut Model, path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let state = optimizer_state_from_bytes(&bytes, path)?;
    let store = model.store.clone();
    let compiled = model.compiled.as_mut().ok_or_else(|| Error::State("not compiled".into()))?;
    compiled.optimizer.load_state(&state, &store).map_err(|e| Error::format(path, e.to_string()))
}
