//! Layers active only in training: Dropout (inverted: kept units are scaled by
//! 1/(1 − rate), so evaluation needs no rescaling) and GaussianNoise (adds N(0, σ²)).
//! Both are the identity at evaluation and prediction.

use std::sync::Mutex;

use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};

use super::layer::{named_layer, Layer};
use crate::autograd::{ParamId, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropoutConfig {
    /// Fraction of units zeroed in each training step, in [0, 1).
    pub rate: f32,
    /// Seed of the mask stream (default: drawn from the model's seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
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
pub struct GaussianNoiseConfig {
    /// Standard deviation of the added noise.
    pub stddev: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    /// What this layer is applied to in a functional model: layer or input names
    /// (default: the previous layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

/// The random stream of a noise layer: seeded at build, advanced by every training step.
/// Behind a mutex because `forward` takes `&self`; it is never contended.
#[derive(Debug)]
pub(super) struct Stream(Mutex<Rng>);

impl Stream {
    pub(super) fn new() -> Self {
        Stream(Mutex::new(Rng::seed_from_u64(0)))
    }
    pub(super) fn reseed(&self, configured: Option<u64>, model_rng: &mut Rng) {
        let seed = configured.unwrap_or_else(|| model_rng.random());
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Rng::seed_from_u64(seed);
    }
    pub(super) fn with<R>(&self, f: impl FnOnce(&mut Rng) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
    /// The generator's state, for checkpoints.
    pub(super) fn state(&self) -> Rng {
        self.with(|r| r.clone())
    }
    pub(super) fn set_state(&self, rng: Rng) {
        self.with(|r| *r = rng);
    }
}

impl Clone for Stream {
    fn clone(&self) -> Self {
        Stream(Mutex::new(self.state()))
    }
}

#[derive(Clone, Debug)]
pub struct Dropout {
    config: DropoutConfig,
    name: String,
    stream: Stream,
}

impl Dropout {
    pub fn new(rate: f32) -> Self {
        Dropout::from_config(DropoutConfig { rate, seed: None, name: None, input_shape: None, inputs: None })
    }
    pub fn from_config(config: DropoutConfig) -> Self {
        Dropout { name: config.name.clone().unwrap_or_default(), config, stream: Stream::new() }
    }
    pub fn seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }
    /// Declares the per-sample input shape (first layer of a Sequential).
    pub fn input_shape(mut self, shape: &[usize]) -> Self {
        self.config.input_shape = Some(shape.to_vec());
        self
    }
}

impl Layer for Dropout {
    named_layer!("Dropout", "dropout", Dropout);
    fn position_wise(&self) -> bool {
        true
    }
    fn build(&mut self, input: &[usize], _: &mut ParamStore, rng: &mut Rng) -> Result<Vec<usize>> {
        if !(0.0..1.0).contains(&self.config.rate) {
            return Err(Error::Config(format!("layer '{}': dropout rate {} is outside [0, 1)", self.name, self.config.rate)));
        }
        self.stream.reseed(self.config.seed, rng);
        Ok(input.to_vec())
    }
    /// y = x ⊙ m / (1 − rate), m ~ Bernoulli(1 − rate), in training; y = x otherwise.
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, training: bool) -> Result<Var> {
        let rate = self.config.rate;
        if !training || rate == 0.0 {
            return Ok(x);
        }
        let keep = 1.0 / (1.0 - rate);
        Ok(tape.mul_const(store, x, |m| {
            self.stream.with(|rng| m.iter_mut().for_each(|v| *v = if rng.random::<f32>() < rate { 0.0 } else { keep }))
        }))
    }
    fn params(&self) -> Vec<ParamId> {
        Vec::new()
    }
    fn rng_state(&self) -> Option<Rng> {
        Some(self.stream.state())
    }
    fn set_rng_state(&self, rng: Rng) {
        self.stream.set_state(rng)
    }
}

/// Keras's `SpatialDropout2D` / `SpatialDropout1D`: drops whole channels (feature
/// maps) of each sample, the same mask over every position, scaled by 1/(1 − rate).
/// Adjacent positions of a conv feature map are strongly correlated, so dropping single
/// values regularizes little; dropping a map does.
#[derive(Clone, Debug)]
pub struct SpatialDropout {
    config: DropoutConfig,
    name: String,
    stream: Stream,
    /// Spatial axes: 1 or 2.
    rank: usize,
}

impl SpatialDropout {
    pub fn new(rank: usize, config: DropoutConfig) -> Self {
        SpatialDropout { name: config.name.clone().unwrap_or_default(), config, stream: Stream::new(), rank }
    }
}

impl Layer for SpatialDropout {
    fn kind(&self) -> &'static str {
        if self.rank == 2 { "SpatialDropout2D" } else { "SpatialDropout1D" }
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
    fn default_name(&self) -> &'static str {
        if self.rank == 2 { "spatial_dropout2d" } else { "spatial_dropout1d" }
    }
    fn declared_input_shape(&self) -> Option<&[usize]> {
        self.config.input_shape.as_deref()
    }
    fn declared_inputs(&self) -> Option<&[String]> {
        self.config.inputs.as_deref()
    }
    fn input_rank(&self) -> Option<usize> {
        Some(self.rank + 1)
    }
    fn config(&self) -> crate::nn::LayerConfig {
        let c = DropoutConfig { name: Some(self.name.clone()), ..self.config.clone() };
        if self.rank == 2 { crate::nn::LayerConfig::SpatialDropout2d(c) } else { crate::nn::LayerConfig::SpatialDropout1d(c) }
    }
    fn build(&mut self, input: &[usize], _: &mut ParamStore, rng: &mut Rng) -> Result<Vec<usize>> {
        if !(0.0..1.0).contains(&self.config.rate) {
            return Err(Error::Config(format!("layer '{}': dropout rate {} is outside [0, 1)", self.name, self.config.rate)));
        }
        if input.len() != self.rank + 1 {
            return Err(Error::shape(format!("layer '{}' ({})", self.name, self.kind()), format!("a per-sample input of rank {}", self.rank + 1), format!("{input:?}")));
        }
        self.stream.reseed(self.config.seed, rng);
        Ok(input.to_vec())
    }
    /// y = x ⊙ m[sample, channel] / (1 − rate) in training; y = x otherwise.
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, training: bool) -> Result<Var> {
        let rate = self.config.rate;
        if !training || rate == 0.0 {
            return Ok(x);
        }
        let keep = 1.0 / (1.0 - rate);
        let s = tape.shape(x);
        let (n, c) = (s.rows(), *s.dims().last().unwrap_or(&1));
        let per = s.cols();
        Ok(tape.mul_const(store, x, |m| {
            self.stream.with(|rng| {
                for sample in 0..n {
                    let maps = &mut m[sample * per..][..per];
                    // One draw per channel, spread over every position.
                    let (first, rest) = maps.split_at_mut(c);
                    first.iter_mut().for_each(|v| *v = if rng.random::<f32>() < rate { 0.0 } else { keep });
                    for pos in rest.chunks_exact_mut(c) {
                        pos.copy_from_slice(first);
                    }
                }
            })
        }))
    }
    fn params(&self) -> Vec<ParamId> {
        Vec::new()
    }
    fn rng_state(&self) -> Option<Rng> {
        Some(self.stream.state())
    }
    fn set_rng_state(&self, rng: Rng) {
        self.stream.set_state(rng)
    }
}

#[derive(Clone, Debug)]
pub struct GaussianNoise {
    config: GaussianNoiseConfig,
    name: String,
    stream: Stream,
}

impl GaussianNoise {
    pub fn new(stddev: f32) -> Self {
        GaussianNoise::from_config(GaussianNoiseConfig { stddev, seed: None, name: None, input_shape: None, inputs: None })
    }
    pub fn from_config(config: GaussianNoiseConfig) -> Self {
        GaussianNoise { name: config.name.clone().unwrap_or_default(), config, stream: Stream::new() }
    }
}

impl Layer for GaussianNoise {
    named_layer!("GaussianNoise", "gaussian_noise", GaussianNoise);
    fn position_wise(&self) -> bool {
        true
    }
    fn build(&mut self, input: &[usize], _: &mut ParamStore, rng: &mut Rng) -> Result<Vec<usize>> {
        let s = self.config.stddev;
        if !(s >= 0.0 && s.is_finite()) {
            return Err(Error::Config(format!("layer '{}': stddev {s} must be finite and ≥ 0", self.name)));
        }
        self.stream.reseed(self.config.seed, rng);
        Ok(input.to_vec())
    }
    /// y = x + ε, ε ~ N(0, σ²), in training; y = x otherwise.
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, training: bool) -> Result<Var> {
        let s = self.config.stddev;
        if !training || s == 0.0 {
            return Ok(x);
        }
        Ok(tape.add_const(store, x, |noise| {
            self.stream.with(|rng| {
                noise.iter_mut().for_each(|v| *v = s * rng.sample::<f32, _>(rand_distr::StandardNormal))
            })
        }))
    }
    fn params(&self) -> Vec<ParamId> {
        Vec::new()
    }
    fn rng_state(&self) -> Option<Rng> {
        Some(self.stream.state())
    }
    fn set_rng_state(&self, rng: Rng) {
        self.stream.set_state(rng)
    }
}
