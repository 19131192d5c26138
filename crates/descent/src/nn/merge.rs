//! Merge layers of functional models: `Add` (residual connections) and `Concatenate`
//! (branches side by side). Each takes two or more tensors; neither has parameters.
//! On the tape they are chains of pairwise ops: k inputs cost k − 1 passes.

use serde::{Deserialize, Serialize};

use super::layer::{named_layer, Layer};
use crate::autograd::{ParamId, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::rng::Rng;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    /// The tensors to add, by layer or input name (two or more, of one shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConcatenateConfig {
    /// The axis to join along; only the last (feature) axis today: -1 or 1.
    #[serde(default = "last_axis")]
    pub axis: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    /// The tensors to join, by layer or input name (two or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

/// The `Layer` methods every merge layer writes the same way: it takes two or more
/// inputs (so the single-input `build` and `forward` are errors), has no parameters,
/// and folds its inputs with a pairwise tape op.
macro_rules! merge_layer {
    ($kind:literal, $pairwise:ident) => {
        fn build(&mut self, _: &[usize], _: &mut ParamStore, _: &mut Rng) -> Result<Vec<usize>> {
            Err(one_input(&self.name, $kind, 1))
        }
        fn forward(&self, _: &mut Tape, _: &ParamStore, _: Var, _: bool) -> Result<Var> {
            Err(one_input(&self.name, $kind, 1))
        }
        fn forward_inputs(&self, tape: &mut Tape, store: &ParamStore, xs: &[Var], _training: bool) -> Result<Var> {
            at_least_two(&self.name, $kind, xs.len())?;
            let mut merged = xs[0];
            for &x in &xs[1..] {
                merged = tape.$pairwise(store, merged, x)?;
            }
            Ok(merged)
        }
        fn params(&self) -> Vec<ParamId> {
            Vec::new()
        }
        fn position_wise(&self) -> bool {
            true
        }
    };
}

fn last_axis() -> i64 {
    -1
}

fn at_least_two(name: &str, kind: &str, n: usize) -> Result<()> {
    if n < 2 {
        return Err(one_input(name, kind, n));
    }
    Ok(())
}

fn one_input(name: &str, kind: &str, n: usize) -> Error {
    Error::Config(format!("layer '{name}' ({kind}) merges two or more inputs, not {n}"))
}

/// Keras's `Add`: the elementwise sum of inputs of one shape.
#[derive(Clone, Debug, Default)]
pub struct Add {
    config: AddConfig,
    name: String,
}

impl Add {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn from_config(config: AddConfig) -> Self {
        Add { name: config.name.clone().unwrap_or_default(), config }
    }
    pub fn name(mut self, name: &str) -> Self {
        self.config.name = Some(name.into());
        self.name = name.into();
        self
    }
}

impl Layer for Add {
    named_layer!("Add", "add", Add);
    merge_layer!("Add", add);

    fn build_inputs(&mut self, inputs: &[&[usize]], _: &mut ParamStore, _: &mut Rng) -> Result<Vec<usize>> {
        at_least_two(&self.name, "Add", inputs.len())?;
        if let Some(other) = inputs.iter().find(|s| **s != inputs[0]) {
            return Err(Error::shape(format!("layer '{}' (Add)", self.name), format!("inputs of one shape {:?}", inputs[0]), format!("{other:?}")));
        }
        Ok(inputs[0].to_vec())
    }
}

/// Keras's `Concatenate`: inputs joined along the feature axis.
#[derive(Clone, Debug)]
pub struct Concatenate {
    config: ConcatenateConfig,
    name: String,
}

impl Default for Concatenate {
    fn default() -> Self {
        Concatenate::new()
    }
}

impl Concatenate {
    pub fn new() -> Self {
        Self::from_config(ConcatenateConfig { axis: last_axis(), name: None, input_shape: None, inputs: None })
    }
    pub fn from_config(config: ConcatenateConfig) -> Self {
        Concatenate { name: config.name.clone().unwrap_or_default(), config }
    }
    pub fn name(mut self, name: &str) -> Self {
        self.config.name = Some(name.into());
        self.name = name.into();
        self
    }
}

impl Layer for Concatenate {
    named_layer!("Concatenate", "concatenate", Concatenate);
    merge_layer!("Concatenate", concat);

    fn build_inputs(&mut self, inputs: &[&[usize]], _: &mut ParamStore, _: &mut Rng) -> Result<Vec<usize>> {
        at_least_two(&self.name, "Concatenate", inputs.len())?;
        if !matches!(self.config.axis, -1 | 1) {
            return Err(Error::Config(format!(
                "layer '{}' (Concatenate): axis = {} is not supported; only the feature axis (-1 or 1) today",
                self.name, self.config.axis
            )));
        }
        if let Some(bad) = inputs.iter().find(|s| s.len() != 1) {
            return Err(Error::shape(format!("layer '{}' (Concatenate)", self.name), "flat per-sample inputs [features]", format!("{bad:?}")));
        }
        Ok(vec![inputs.iter().map(|s| s[0]).sum()])
    }
}
