//! A layer that only applies an activation (Keras's `Activation` layer).

use super::layer::{named_layer, ActivationConfig, Layer};
use crate::autograd::{ParamId, ParamStore, Tape, Var};
use crate::error::Result;
use crate::rng::Rng;
use crate::tensor::kernels::activation::Activation;

#[derive(Clone, Debug)]
pub struct ActivationLayer {
    config: ActivationConfig,
    name: String,
}

impl ActivationLayer {
    pub fn new(activation: Activation) -> Self {
        Self::from_config(ActivationConfig { activation, name: None, input_shape: None, inputs: None })
    }
    pub fn from_config(config: ActivationConfig) -> Self {
        ActivationLayer { name: config.name.clone().unwrap_or_default(), config }
    }
    pub fn input_shape(mut self, shape: &[usize]) -> Self {
        self.config.input_shape = Some(shape.to_vec());
        self
    }
}

impl Layer for ActivationLayer {
    named_layer!("Activation", "activation", Activation);
    fn position_wise(&self) -> bool {
        true
    }
    fn build(&mut self, input: &[usize], _: &mut ParamStore, _: &mut Rng) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, _training: bool) -> Result<Var> {
        Ok(tape.activation(store, x, self.config.activation))
    }
    fn params(&self) -> Vec<ParamId> {
        Vec::new()
    }
    fn output_activation(&self) -> Option<Activation> {
        Some(self.config.activation)
    }
}
