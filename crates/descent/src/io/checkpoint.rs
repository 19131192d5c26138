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
use crate::nn::{Layer, Model};
use crate::optim::{Optimizer, OptimizerState};
use crate::rng::Rng;
use crate::train::History;

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

/// What a checkpoint restores besides the model and optimizer.
#[derive(Clone, Debug, PartialEq)]
pub struct Restored {
    /// Epochs completed when it was written (training resumes at this epoch index).
    pub epoch: usize,
    pub history: History,
}

impl Model {
    /// Writes a full checkpoint after `epoch` completed epochs (atomically).
    pub fn save_checkpoint(&self, path: impl AsRef<Path>, epoch: usize, history: &History) -> Result<()> {
        let optimizer = self.optimizer().ok_or_else(|| Error::State("save_checkpoint: compile the model first".into()))?;
        write_checkpoint(path.as_ref(), self.params(), optimizer, self.layers(), epoch, history)
    }

    /// Restores weights, optimizer state and random streams from a checkpoint written
    /// by [`Sequential::save_checkpoint`] for this same model (compiled with the same
    /// optimizer). A truncated or corrupt file, or another model's, is an error naming
    /// the file and what differs; the model is unchanged then.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<Restored> {
        let path = path.as_ref();
        let bad = |m: String| Error::format(path, m);
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let corrupt = |e: safetensors::SafeTensorError| bad(format!("not a valid checkpoint (truncated or corrupt?): {e}"));
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(corrupt)?;
        let st = SafeTensors::deserialize(&bytes).map_err(corrupt)?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT) {
            return Err(bad(format!("not a descent checkpoint (format `{}`)", meta.get("format").map_or("none", |s| s))));
        }
        let state: State = serde_json::from_str(meta.get("state").map_or("", |s| s)).map_err(|e| bad(format!("checkpoint state: {e}")))?;
        // Same model: the same parameters, in the same order, with the same shapes.
        let store = self.params();
        let mine: Vec<(String, Vec<usize>)> = store.ids().map(|id| (store.entry(id).name.clone(), store.entry(id).shape.dims().to_vec())).collect();
        if mine != state.params {
            let describe = |p: &[(String, Vec<usize>)]| p.iter().map(|(n, s)| format!("{n} {s:?}")).collect::<Vec<_>>().join(", ");
            return Err(bad(format!(
                "written for another model: it holds {}; this model has {}",
                describe(&state.params),
                describe(&mine)
            )));
        }
        let optimizer = self.optimizer().ok_or_else(|| Error::State("load_checkpoint: compile the model first".into()))?;
        if optimizer.name() != state.optimizer && optimizer.save_state().optimizer != state.optimizer {
            return Err(bad(format!("written with optimizer `{}`, but the model is compiled with `{}`", state.optimizer, optimizer.name())));
        }
        // Read everything before changing anything.
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
        let opt_state = OptimizerState { optimizer: state.optimizer.clone(), iterations: state.iterations, scalars, buffers };
        let snapshot = self.params().clone();
        let compiled = self.compiled.as_mut().expect("checked above");
        compiled.optimizer.load_state(&opt_state, &snapshot).map_err(|e| bad(e.to_string()))?;
        let store = self.params_mut();
        let ids: Vec<_> = store.ids().collect();
        for (id, w) in ids.into_iter().zip(weights) {
            store.value_mut(id).copy_from_slice(&w);
        }
        for (layer, rng) in state.rngs {
            if let Some(l) = self.layers().iter().find(|l| l.name() == layer) {
                l.set_rng_state(rng);
            }
        }
        Ok(Restored { epoch: state.epoch, history: History { epochs: state.history_epochs, metrics: state.history } })
    }
}

/// [`Sequential::save_checkpoint`] from the model's parts (the fit loop holds them apart).
pub(crate) fn write_checkpoint(
    path: &Path,
    store: &ParamStore,
    optimizer: &dyn Optimizer,
    layers: &[Box<dyn Layer>],
    epoch: usize,
    history: &History,
) -> Result<()> {
    let opt = optimizer.save_state();
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> = store
        .ids()
        .map(|id| (format!("model/{}", store.entry(id).name), store.entry(id).shape.dims().to_vec(), store.value(id)))
        .collect();
    for (name, buf) in &opt.buffers {
        tensors.push((format!("optimizer/{name}"), vec![buf.len()], buf.as_slice()));
    }
    let state = State {
        version: 1,
        epoch,
        history_epochs: history.epochs.clone(),
        history: history.metrics.clone(),
        optimizer: opt.optimizer.clone(),
        iterations: opt.iterations,
        scalars: opt.scalars.iter().map(|(n, v)| (n.clone(), format!("{v:?}"))).collect(),
        rngs: layers.iter().filter_map(|l| l.rng_state().map(|r| (l.name().to_string(), r))).collect(),
        params: store.ids().map(|id| (store.entry(id).name.clone(), store.entry(id).shape.dims().to_vec())).collect(),
    };
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("state".to_string(), serde_json::to_string(&state).map_err(|e| Error::State(e.to_string()))?);
    write_atomic(path, &tensors_to_bytes(&tensors, Some(meta))?)
}
