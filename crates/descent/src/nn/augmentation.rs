//! Image augmentation layers, active in training only (the identity at evaluation and
//! prediction), seeded like dropout: `RandomFlip` (Keras's modes) and
//! `RandomTranslation` (Keras's factors and fill modes). Each draws one transform per
//! sample per step; shifts are whole pixels (the factor times the size, rounded), so no
//! interpolation is needed.

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::layer::{named_layer, Layer};
use super::noise_layers::Stream;
use crate::autograd::{ParamId, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::{FillMode, REMAP_FIELDS};

/// Keras's `RandomFlip` modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlipMode {
    Horizontal,
    Vertical,
    #[default]
    HorizontalAndVertical,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomFlipConfig {
    #[serde(default)]
    pub mode: FlipMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

#[derive(Clone, Debug)]
pub struct RandomFlip {
    config: RandomFlipConfig,
    name: String,
    stream: Stream,
}

impl RandomFlip {
    pub fn new(mode: FlipMode) -> Self {
        RandomFlip::from_config(RandomFlipConfig { mode, seed: None, name: None, input_shape: None, inputs: None })
    }
    pub fn from_config(config: RandomFlipConfig) -> Self {
        RandomFlip { name: config.name.clone().unwrap_or_default(), config, stream: Stream::new() }
    }
}

fn image_input(name: &str, kind: &str, input: &[usize]) -> Result<Vec<usize>> {
    match input {
        [_, _, _] => Ok(input.to_vec()),
        _ => Err(Error::shape(format!("layer '{name}' ({kind})"), "a per-sample input [height, width, channels]", format!("{input:?}"))),
    }
}

impl Layer for RandomFlip {
    named_layer!("RandomFlip", "random_flip", RandomFlip);
    fn input_rank(&self) -> Option<usize> {
        Some(3)
    }
    fn build(&mut self, input: &[usize], _: &mut ParamStore, rng: &mut Rng) -> Result<Vec<usize>> {
        self.stream.reseed(self.config.seed, rng);
        image_input(&self.name, "RandomFlip", input)
    }
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, training: bool) -> Result<Var> {
        if !training {
            return Ok(x);
        }
        let (rows, cols) = match self.config.mode {
            FlipMode::Horizontal => (false, true),
            FlipMode::Vertical => (true, false),
            FlipMode::HorizontalAndVertical => (true, true),
        };
        tape.remap2d(store, x, FillMode::Nearest, |t| {
            self.stream.with(|rng| {
                for s in t.chunks_exact_mut(REMAP_FIELDS) {
                    let flip = |on: bool, rng: &mut Rng| if on && rng.random::<bool>() { 1.0 } else { 0.0 };
                    s[0] = flip(rows, rng);
                    s[1] = flip(cols, rng);
                    s[2] = 0.0;
                    s[3] = 0.0;
                }
            })
        })
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

/// A translation factor as Keras takes it: `f` for [−f, f], or `[lower, upper]`, as
/// fractions of the image's height or width.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Factor {
    Symmetric(f32),
    Range([f32; 2]),
}

impl Factor {
    fn range(&self, what: &str) -> Result<(f32, f32)> {
        let (lo, hi) = match *self {
            Factor::Symmetric(f) => (-f, f),
            Factor::Range([lo, hi]) => (lo, hi),
        };
        if !(lo.is_finite() && hi.is_finite() && lo <= hi && lo >= -1.0 && hi <= 1.0) {
            return Err(Error::Config(format!("{what}: the range [{lo}, {hi}] must be finite, ordered and within [−1, 1]")));
        }
        Ok((lo, hi))
    }
}

/// Keras's `fill_mode` names (the value for `constant` is `fill_value`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillModeName {
    #[default]
    Reflect,
    Wrap,
    Nearest,
    Constant,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomTranslationConfig {
    pub height_factor: Factor,
    pub width_factor: Factor,
    #[serde(default)]
    pub fill_mode: FillModeName,
    #[serde(default)]
    pub fill_value: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

#[derive(Clone, Debug)]
pub struct RandomTranslation {
    config: RandomTranslationConfig,
    name: String,
    stream: Stream,
    /// Set at build: the shift ranges in pixels, rows then columns.
    ranges: [(f32, f32); 2],
}

impl RandomTranslation {
    pub fn new(height_factor: Factor, width_factor: Factor) -> Self {
        RandomTranslation::from_config(RandomTranslationConfig {
            height_factor,
            width_factor,
            fill_mode: FillModeName::Reflect,
            fill_value: 0.0,
            seed: None,
            name: None,
            input_shape: None,
            inputs: None,
        })
    }
    pub fn from_config(config: RandomTranslationConfig) -> Self {
        RandomTranslation { name: config.name.clone().unwrap_or_default(), config, stream: Stream::new(), ranges: [(0.0, 0.0); 2] }
    }
    fn fill(&self) -> FillMode {
        match self.config.fill_mode {
            FillModeName::Reflect => FillMode::Reflect,
            FillModeName::Wrap => FillMode::Wrap,
            FillModeName::Nearest => FillMode::Nearest,
            FillModeName::Constant => FillMode::Constant(self.config.fill_value),
        }
    }
}

impl Layer for RandomTranslation {
    named_layer!("RandomTranslation", "random_translation", RandomTranslation);
    fn input_rank(&self) -> Option<usize> {
        Some(3)
    }
    fn build(&mut self, input: &[usize], _: &mut ParamStore, rng: &mut Rng) -> Result<Vec<usize>> {
        let out = image_input(&self.name, "RandomTranslation", input)?;
        let what = format!("layer '{}' (RandomTranslation)", self.name);
        let (h, w) = (input[0] as f32, input[1] as f32);
        let rows = self.config.height_factor.range(&format!("{what} height_factor"))?;
        let cols = self.config.width_factor.range(&format!("{what} width_factor"))?;
        if !self.config.fill_value.is_finite() {
            return Err(Error::Config(format!("{what}: fill_value must be finite")));
        }
        self.ranges = [(rows.0 * h, rows.1 * h), (cols.0 * w, cols.1 * w)];
        self.stream.reseed(self.config.seed, rng);
        Ok(out)
    }
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, training: bool) -> Result<Var> {
        if !training {
            return Ok(x);
        }
        let ranges = self.ranges;
        tape.remap2d(store, x, self.fill(), |t| {
            self.stream.with(|rng| {
                for s in t.chunks_exact_mut(REMAP_FIELDS) {
                    s[0] = 0.0;
                    s[1] = 0.0;
                    for (k, (lo, hi)) in ranges.iter().enumerate() {
                        let u: f32 = rng.random();
                        s[2 + k] = (lo + (hi - lo) * u).round();
                    }
                }
            })
        })
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
