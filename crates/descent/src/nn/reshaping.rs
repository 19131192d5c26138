//! Layers that move values without weights: `Flatten` (`[h, w, c]` → `[h·w·c]`),
//! `Reshape` (Keras's `target_shape`, one axis may be −1) and `ZeroPadding2D`.

use serde::{Deserialize, Serialize};

use super::layer::{named_layer, Layer};
use crate::autograd::{ParamId, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Shape;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlattenConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default)]
pub struct Flatten {
    config: FlattenConfig,
    name: String,
}

impl Flatten {
    pub fn new() -> Self {
        Flatten::from_config(FlattenConfig::default())
    }
    pub fn from_config(config: FlattenConfig) -> Self {
        Flatten { name: config.name.clone().unwrap_or_default(), config }
    }
}

impl Layer for Flatten {
    named_layer!("Flatten", "flatten", Flatten);
    fn build(&mut self, input: &[usize], _: &mut ParamStore, _: &mut Rng) -> Result<Vec<usize>> {
        Ok(vec![input.iter().product()])
    }
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, _training: bool) -> Result<Var> {
        if tape.shape(x).rank() == 2 {
            return Ok(x);
        }
        tape.flatten(store, x)
    }
    fn params(&self) -> Vec<ParamId> {
        Vec::new()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReshapeConfig {
    /// The per-sample shape; one entry may be −1 (inferred from the rest).
    pub target_shape: Vec<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

#[derive(Clone, Debug)]
pub struct Reshape {
    config: ReshapeConfig,
    name: String,
    /// `[batch (filled per call), target…]`, set at build.
    dims: Vec<usize>,
}

impl Reshape {
    pub fn new(target_shape: &[i64]) -> Self {
        Reshape::from_config(ReshapeConfig { target_shape: target_shape.to_vec(), name: None, input_shape: None, inputs: None })
    }
    pub fn from_config(config: ReshapeConfig) -> Self {
        Reshape { name: config.name.clone().unwrap_or_default(), config, dims: Vec::new() }
    }
}

impl Layer for Reshape {
    named_layer!("Reshape", "reshape", Reshape);
    fn build(&mut self, input: &[usize], _: &mut ParamStore, _: &mut Rng) -> Result<Vec<usize>> {
        let what = format!("layer '{}' (Reshape)", self.name);
        let n: usize = input.iter().product();
        let t = &self.config.target_shape;
        let unknown: Vec<usize> = (0..t.len()).filter(|&k| t[k] == -1).collect();
        if unknown.len() > 1 || t.iter().any(|&d| d == 0 || d < -1) || t.len() + 1 > Shape::MAX_RANK {
            return Err(Error::Config(format!(
                "{what}: target_shape {t:?} must have positive sizes, at most one −1, and at most {} axes",
                Shape::MAX_RANK - 1
            )));
        }
        let known: usize = t.iter().filter(|&&d| d > 0).map(|&d| d as usize).product();
        let mut out: Vec<usize> = t.iter().map(|&d| d.max(0) as usize).collect();
        if let Some(&k) = unknown.first() {
            if !n.is_multiple_of(known) {
                return Err(Error::shape(&what, format!("a multiple of {known} values per sample for target_shape {t:?}"), format!("{input:?} ({n} values)")));
            }
            out[k] = n / known;
        } else if known != n {
            return Err(Error::shape(&what, format!("{known} values per sample for target_shape {t:?}"), format!("{input:?} ({n} values)")));
        }
        self.dims = std::iter::once(0).chain(out.iter().copied()).collect();
        Ok(out)
    }
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, _training: bool) -> Result<Var> {
        let mut dims = [0usize; Shape::MAX_RANK];
        dims[..self.dims.len()].copy_from_slice(&self.dims);
        dims[0] = tape.shape(x).rows();
        tape.reshape(store, x, &dims[..self.dims.len()])
    }
    fn params(&self) -> Vec<ParamId> {
        Vec::new()
    }
}

/// Keras's `padding` of ZeroPadding2D: one number for all sides, (rows, cols) for
/// both sides of each, or ((top, bottom), (left, right)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Padding2d {
    All(usize),
    Symmetric([usize; 2]),
    Sides([[usize; 2]; 2]),
}

impl Padding2d {
    fn sides(&self) -> ((usize, usize), (usize, usize)) {
        match *self {
            Padding2d::All(p) => ((p, p), (p, p)),
            Padding2d::Symmetric([r, c]) => ((r, r), (c, c)),
            Padding2d::Sides([[t, b], [l, r]]) => ((t, b), (l, r)),
        }
    }
}

fn one_cell() -> Padding2d {
    Padding2d::All(1)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroPadding2dConfig {
    #[serde(default = "one_cell")]
    pub padding: Padding2d,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

#[derive(Clone, Debug)]
pub struct ZeroPadding2d {
    config: ZeroPadding2dConfig,
    name: String,
}

impl ZeroPadding2d {
    pub fn new(padding: Padding2d) -> Self {
        ZeroPadding2d::from_config(ZeroPadding2dConfig { padding, name: None, input_shape: None, inputs: None })
    }
    pub fn from_config(config: ZeroPadding2dConfig) -> Self {
        ZeroPadding2d { name: config.name.clone().unwrap_or_default(), config }
    }
}

impl Layer for ZeroPadding2d {
    named_layer!("ZeroPadding2D", "zero_padding2d", ZeroPadding2d);
    fn input_rank(&self) -> Option<usize> {
        Some(3)
    }
    fn build(&mut self, input: &[usize], _: &mut ParamStore, _: &mut Rng) -> Result<Vec<usize>> {
        let ((t, b), (l, r)) = self.config.padding.sides();
        match input {
            [h, w, c] => Ok(vec![h + t + b, w + l + r, *c]),
            _ => Err(Error::shape(format!("layer '{}' (ZeroPadding2D)", self.name), "a per-sample input [height, width, channels]", format!("{input:?}"))),
        }
    }
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, _training: bool) -> Result<Var> {
        tape.pad2d(store, x, self.config.padding.sides())
    }
    fn params(&self) -> Vec<ParamId> {
        Vec::new()
    }
}
