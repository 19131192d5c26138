//! BatchNormalization and LayerNormalization, with Keras's parameters and defaults
//! (epsilon 1e-3; batch norm momentum 0.99). Batch norm normalizes each feature with the
//! batch's statistics in training and with moving averages of them at inference; layer
//! norm normalizes each sample's features and behaves the same in both.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::layer::{named_layer, Layer};
use crate::autograd::{ParamId, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::{Backend, Shape, B};

fn default_momentum() -> f32 {
    0.99
}
fn default_epsilon() -> f32 {
    1e-3
}
fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormalizationConfig {
    /// moving = momentum · moving + (1 − momentum) · batch statistic.
    #[serde(default = "default_momentum")]
    pub momentum: f32,
    #[serde(default = "default_epsilon")]
    pub epsilon: f32,
    /// Learn β (else β = 0).
    #[serde(default = "yes")]
    pub center: bool,
    /// Learn γ (else γ = 1).
    #[serde(default = "yes")]
    pub scale: bool,
    /// Data-parallel (`mpirun -np N descent fit`), take the batch statistics over every
    /// rank's rows, as one process with the whole batch would (Keras's
    /// `synchronized`, PyTorch's `SyncBatchNorm`); the moving averages then agree on
    /// every rank. Costs three small sums over the ranks per layer and step. No effect
    /// in one process.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub synchronized: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    /// What this layer is applied to in a functional model: layer or input names
    /// (default: the previous layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerNormalizationConfig {
    #[serde(default = "default_epsilon")]
    pub epsilon: f32,
    #[serde(default = "yes")]
    pub center: bool,
    #[serde(default = "yes")]
    pub scale: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    /// What this layer is applied to in a functional model: layer or input names
    /// (default: the previous layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

/// γ (ones) and β (zeros) of `n` features; fixed (not trainable) unless learned.
fn affine(store: &mut ParamStore, name: &str, n: usize, scale: bool, center: bool) -> Result<(ParamId, ParamId)> {
    let shape = Shape::new(&[n])?;
    let gamma = store.add(format!("{name}.gamma"), shape, |g| g.fill(1.0));
    let beta = store.add(format!("{name}.beta"), shape, |b| b.fill(0.0));
    store.set_trainable(gamma, scale);
    store.set_trainable(beta, center);
    Ok((gamma, beta))
}

/// The normalized axis: the last (features, or an image's channels), as Keras's
/// default `axis = -1`.
fn last_axis(name: &str, kind: &str, input: &[usize]) -> Result<usize> {
    match input.last() {
        Some(n) if *n > 0 => Ok(*n),
        _ => Err(Error::shape(format!("layer '{name}' ({kind})"), "a per-sample input [..., features]", format!("{input:?}"))),
    }
}

#[derive(Debug)]
pub struct BatchNormalization {
    config: BatchNormalizationConfig,
    name: String,
    /// γ, β, moving mean, moving variance.
    params: Option<[ParamId; 4]>,
    /// The tape node of the last training forward, whose batch statistics update the
    /// moving averages after the step.
    last: Mutex<Option<Var>>,
}

impl Clone for BatchNormalization {
    fn clone(&self) -> Self {
        BatchNormalization { config: self.config.clone(), name: self.name.clone(), params: self.params, last: Mutex::new(None) }
    }
}

impl BatchNormalization {
    pub fn new() -> Self {
        BatchNormalization::from_config(BatchNormalizationConfig {
            momentum: default_momentum(),
            epsilon: default_epsilon(),
            center: true,
            scale: true,
            synchronized: false,
            name: None,
            input_shape: None,
            inputs: None,
        })
    }
    pub fn from_config(config: BatchNormalizationConfig) -> Self {
        BatchNormalization { name: config.name.clone().unwrap_or_default(), config, params: None, last: Mutex::new(None) }
    }
    pub fn momentum(mut self, m: f32) -> Self {
        self.config.momentum = m;
        self
    }
    pub fn epsilon(mut self, e: f32) -> Self {
        self.config.epsilon = e;
        self
    }
    /// Statistics over every data-parallel rank's rows (see the config's field).
    pub fn synchronized(mut self, on: bool) -> Self {
        self.config.synchronized = on;
        self
    }
    pub fn input_shape(mut self, shape: &[usize]) -> Self {
        self.config.input_shape = Some(shape.to_vec());
        self
    }
}

impl Default for BatchNormalization {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer for BatchNormalization {
    named_layer!("BatchNormalization", "batch_normalization", BatchNormalization);
    fn position_wise(&self) -> bool {
        true
    }
    fn build(&mut self, input: &[usize], store: &mut ParamStore, _: &mut Rng) -> Result<Vec<usize>> {
        let c = &self.config;
        if !(0.0..1.0).contains(&c.momentum) || c.epsilon.is_nan() || c.epsilon <= 0.0 {
            return Err(Error::Config(format!("layer '{}': momentum {} must be in [0, 1) and epsilon {} > 0", self.name, c.momentum, c.epsilon)));
        }
        let n = last_axis(&self.name, "BatchNormalization", input)?;
        let (gamma, beta) = affine(store, &self.name, n, c.scale, c.center)?;
        let shape = Shape::new(&[n])?;
        let mean = store.add(format!("{}.moving_mean", self.name), shape, |m| m.fill(0.0));
        let var = store.add(format!("{}.moving_variance", self.name), shape, |v| v.fill(1.0));
        store.set_trainable(mean, false);
        store.set_trainable(var, false);
        self.params = Some([gamma, beta, mean, var]);
        Ok(input.to_vec())
    }
    /// Training: y = γ ⊙ (x − μ_B)/√(σ²_B + ε) + β with the batch's μ_B, σ²_B;
    /// otherwise the moving averages take their place.
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, training: bool) -> Result<Var> {
        let [gamma, beta, mean, var] = self.params.ok_or_else(|| Error::State(format!("layer '{}' used before build", self.name)))?;
        let (g, b) = (tape.param(store, gamma), tape.param(store, beta));
        let fixed = if training { None } else { Some((tape.param(store, mean), tape.param(store, var))) };
        let y = match fixed {
            None if self.config.synchronized => tape.synchronized_batch_norm(store, x, g, b, self.config.epsilon)?,
            fixed => tape.batch_norm(store, x, g, b, self.config.epsilon, fixed)?,
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = training.then_some(y);
        Ok(y)
    }
    fn params(&self) -> Vec<ParamId> {
        self.params.map(|p| p.to_vec()).unwrap_or_default()
    }
    fn update_state(&self, tape: &Tape, store: &mut ParamStore) {
        let Some(y) = self.last.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        let (Some([_, _, mean, var]), Some((bm, bv))) = (self.params, tape.batch_stats(y)) else { return };
        let m = self.config.momentum;
        B::lerp_toward(store.device_value_mut(mean), bm, m);
        B::lerp_toward(store.device_value_mut(var), bv, m);
    }
}

#[derive(Clone, Debug)]
pub struct LayerNormalization {
    config: LayerNormalizationConfig,
    name: String,
    params: Option<[ParamId; 2]>,
}

impl LayerNormalization {
    pub fn new() -> Self {
        LayerNormalization::from_config(LayerNormalizationConfig { epsilon: default_epsilon(), center: true, scale: true, name: None, input_shape: None, inputs: None })
    }
    pub fn from_config(config: LayerNormalizationConfig) -> Self {
        LayerNormalization { name: config.name.clone().unwrap_or_default(), config, params: None }
    }
    pub fn input_shape(mut self, shape: &[usize]) -> Self {
        self.config.input_shape = Some(shape.to_vec());
        self
    }
}

impl Default for LayerNormalization {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer for LayerNormalization {
    named_layer!("LayerNormalization", "layer_normalization", LayerNormalization);
    fn position_wise(&self) -> bool {
        true
    }
    fn build(&mut self, input: &[usize], store: &mut ParamStore, _: &mut Rng) -> Result<Vec<usize>> {
        if self.config.epsilon.is_nan() || self.config.epsilon <= 0.0 {
            return Err(Error::Config(format!("layer '{}': epsilon {} must be > 0", self.name, self.config.epsilon)));
        }
        let n = last_axis(&self.name, "LayerNormalization", input)?;
        let (gamma, beta) = affine(store, &self.name, n, self.config.scale, self.config.center)?;
        self.params = Some([gamma, beta]);
        Ok(input.to_vec())
    }
    /// y = γ ⊙ (x − μ)/√(σ² + ε) + β with μ, σ² over each sample's features.
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, _training: bool) -> Result<Var> {
        let [gamma, beta] = self.params.ok_or_else(|| Error::State(format!("layer '{}' used before build", self.name)))?;
        let (g, b) = (tape.param(store, gamma), tape.param(store, beta));
        tape.layer_norm(store, x, g, b, self.config.epsilon)
    }
    fn params(&self) -> Vec<ParamId> {
        self.params.map(|p| p.to_vec()).unwrap_or_default()
    }
}
