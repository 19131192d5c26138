//! Full training checkpoints in one safetensors file: weights (`model/<name>`),
//! optimizer buffers (`optimizer/<name>`), and in the metadata the epoch, the history,
//! the optimizer's step count and scalars (hence the schedule position), the random
//! streams of dropout/noise layers and a fingerprint of the model's parameters.
//!
//! One file written with `write_atomic` (temp file, fsync, rename): a crash at any point
//! leaves either the previous checkpoint or the new one, never a mix. The shuffling
//! order needs no saving: it is a function of the seed and the epoch, replayed on resume.

use std::collections::HashMap;
use std::path::Path;

use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::weights::{tensors_to_bytes, view_to_f32};
use super::write_atomic;
use crate::error::{Error, Result};
use crate::autograd::ParamStore;
use crate::optim::OptimizerState;
use crate::rng::Rng;

const FORMAT: &str = "descent.checkpoint";

/// What the metadata's `state` entry holds.
#[derive(Serialize, Deserialize)]
struct State {
    version: u32,
    /// Epochs completed.
    epoch: usize,
    history_epochs: Vec<usize>,
    history: Vec<(String, Vec<f64>)>,
    optimizer: String,
    iterations: u64,
    /// Exact f64 values as text (JSON numbers would round some).
    scalars: Vec<(String, String)>,
    /// (layer name, generator state) of every layer with a random stream.
    rngs: Vec<(String, Rng)>,
    /// (name, shape) of every parameter, to refuse another model's checkpoint.
    params: Vec<(String, Vec<usize>)>,
}

/// Everything a checkpoint holds besides the weights, as plain data.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Epochs completed when it was written (training resumes at this epoch index).
    pub epoch: usize,
    /// The history so far: epoch numbers, and each metric's values.
    pub history_epochs: Vec<usize>,
    pub history: Vec<(String, Vec<f64>)>,
    pub optimizer: OptimizerState,
    /// (layer name, generator state) of every layer with a random stream.
    pub rngs: Vec<(String, Rng)>,
}

/// Reads a checkpoint written by [`write_checkpoint`] for the parameters of `store`
/// (same names, order and shapes): its state and one weight vector per parameter. A
/// truncated or corrupt file, or another model's, is an error naming the file and
/// what differs.
pub fn read_checkpoint(path: &Path, store: &ParamStore) -> Result<(Checkpoint, Vec<Vec<f32>>)> {
    let bad = |m: String| Error::format(path, m);
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let corrupt = |e: safetensors::SafeTensorError| bad(format!("not a valid checkpoint: {}", super::weights::safetensors_problem(&bytes, &e)));
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(corrupt)?;
    let st = SafeTensors::deserialize(&bytes).map_err(corrupt)?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(bad(format!("not a descent checkpoint (format `{}`)", meta.get("format").map_or("none", |s| s))));
    }
    let state: State = serde_json::from_str(meta.get("state").map_or("", |s| s)).map_err(|e| bad(format!("checkpoint state: {e}")))?;
    // Same model: the same parameters, in the same order, with the same shapes.
    let mine: Vec<(String, Vec<usize>)> = store.ids().map(|id| (store.entry(id).name.clone(), store.entry(id).shape.dims().to_vec())).collect();
    if mine != state.params {
        let describe = |p: &[(String, Vec<usize>)]| p.iter().map(|(n, s)| format!("{n} {s:?}")).collect::<Vec<_>>().join(", ");
        return Err(bad(format!("written for another model: it holds {}; this model has {}", describe(&state.params), describe(&mine))));
    }
    let mut weights = Vec::new();
    for (name, _) in &state.params {
        let key = format!("model/{name}");
        let view = st.tensor(&key).map_err(|e| bad(format!("`{key}`: {e}")))?;
        weights.push(view_to_f32(&view, path, &key)?);
    }
    let mut buffers = Vec::new();
    for name in st.names() {
        if let Some(b) = name.strip_prefix("optimizer/") {
            let view = st.tensor(name).map_err(|e| bad(e.to_string()))?;
            buffers.push((b.to_string(), view_to_f32(&view, path, name)?));
        }
    }
    buffers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut scalars = Vec::new();
    for (n, v) in &state.scalars {
        scalars.push((n.clone(), v.parse::<f64>().map_err(|_| bad(format!("scalar `{n}` is not a number: {v}")))?));
    }
    let optimizer = OptimizerState { optimizer: state.optimizer, iterations: state.iterations, scalars, buffers };
    let checkpoint = Checkpoint { epoch: state.epoch, history_epochs: state.history_epochs, history: state.history, optimizer, rngs: state.rngs };
    Ok((checkpoint, weights))
}

/// Writes `store`'s weights and `checkpoint` into one safetensors file, atomically.
pub fn write_checkpoint(path: &Path, store: &ParamStore, checkpoint: &Checkpoint) -> Result<()> {
    let opt = &checkpoint.optimizer;
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> = store
        .ids()
        .map(|id| (format!("model/{}", store.entry(id).name), store.entry(id).shape.dims().to_vec(), store.value(id)))
        .collect();
    for (name, buf) in &opt.buffers {
        tensors.push((format!("optimizer/{name}"), vec![buf.len()], buf.as_slice()));
    }
    let state = State {
        version: 1,
        epoch: checkpoint.epoch,
        history_epochs: checkpoint.history_epochs.clone(),
        history: checkpoint.history.clone(),
        optimizer: opt.optimizer.clone(),
        iterations: opt.iterations,
        scalars: opt.scalars.iter().map(|(n, v)| (n.clone(), format!("{v:?}"))).collect(),
        rngs: checkpoint.rngs.clone(),
        params: store.ids().map(|id| (store.entry(id).name.clone(), store.entry(id).shape.dims().to_vec())).collect(),
    };
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("state".to_string(), serde_json::to_string(&state).map_err(|e| Error::State(e.to_string()))?);
    write_atomic(path, &tensors_to_bytes(&tensors, Some(meta))?)
}
