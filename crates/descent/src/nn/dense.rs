//! Dense (fully connected) layer: y = act(x·W + b), W: [in, out], b: [out].

use super::layer::{named_layer, DenseConfig, Layer};
use super::{Initializer, Regularizer};
use crate::autograd::{ParamId, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::kernels::activation::Activation;
use crate::tensor::Shape;

#[derive(Clone, Debug)]
pub struct Dense {
    config: DenseConfig,
    name: String,
    kernel: Option<ParamId>,
    bias: Option<ParamId>,
    in_features: usize,
}

impl Dense {
    /// `Dense(units, activation)` with Keras's defaults (glorot_uniform kernel, zero bias).
    pub fn new(units: usize, activation: Activation) -> Self {
        Dense::from_config(DenseConfig {
            units,
            activation,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
            activity_regularizer: None,
            tied_to: None,
            name: None,
            input_shape: None,
            inputs: None,
        })
    }

    pub fn from_config(config: DenseConfig) -> Self {
        Dense { name: config.name.clone().unwrap_or_default(), config, kernel: None, bias: None, in_features: 0 }
    }

    /// Declares the per-sample input shape (first layer of a Sequential).
    pub fn input_shape(mut self, shape: &[usize]) -> Self {
        self.config.input_shape = Some(shape.to_vec());
        self
    }
    pub fn use_bias(mut self, use_bias: bool) -> Self {
        self.config.use_bias = use_bias;
        self
    }
    pub fn kernel_initializer(mut self, init: Initializer) -> Self {
        self.config.kernel_initializer = init;
        self
    }
    pub fn bias_initializer(mut self, init: Initializer) -> Self {
        self.config.bias_initializer = init;
        self
    }
    /// A penalty on the kernel (Keras's `kernel_regularizer`), e.g. `Regularizer::l2(1e-4)`.
    pub fn kernel_regularizer(mut self, r: Regularizer) -> Self {
        self.config.kernel_regularizer = Some(r);
        self
    }
    pub fn bias_regularizer(mut self, r: Regularizer) -> Self {
        self.config.bias_regularizer = Some(r);
        self
    }
    /// A penalty on the outputs (Keras's `activity_regularizer`).
    pub fn activity_regularizer(mut self, r: Regularizer) -> Self {
        self.config.activity_regularizer = Some(r);
        self
    }
    pub fn name(mut self, name: &str) -> Self {
        self.config.name = Some(name.into());
        self.name = name.into();
        self
    }
    pub fn kernel(&self) -> Option<ParamId> {
        self.kernel
    }
    pub fn bias(&self) -> Option<ParamId> {
        self.bias
    }
}

impl Layer for Dense {
    named_layer!("Dense", "dense", Dense);
    fn position_wise(&self) -> bool {
        true
    }
    fn input_rank(&self) -> Option<usize> {
        Some(1)
    }

    fn build(&mut self, input: &[usize], store: &mut ParamStore, rng: &mut Rng) -> Result<Vec<usize>> {
        let c = &self.config;
        if c.units == 0 {
            return Err(Error::Config(format!("layer '{}': units must be at least 1", self.name)));
        }
        if input.is_empty() || input.len() > 3 {
            return Err(Error::shape(
                format!("layer '{}' (Dense)", self.name),
                "a per-sample input of 1 to 3 axes (Dense acts on the last)",
                format!("{input:?}"),
            ));
        }
        for (what, r) in [("kernel_regularizer", c.kernel_regularizer), ("bias_regularizer", c.bias_regularizer), ("activity_regularizer", c.activity_regularizer)] {
            if let Some(r) = r {
                r.check(&format!("layer '{}' {what}", self.name))?;
            }
        }
        let (fan_in, units) = (input[input.len() - 1], c.units);
        if let Some(tied) = &c.tied_to {
            // The embedding's table [vocabulary, width] serves as this kernel, transposed.
            let found = [format!("{tied}.token_embeddings"), format!("{tied}.embeddings")].into_iter().find_map(|n| store.find(&n));
            let id = found.ok_or_else(|| Error::Config(format!("layer '{}': tied_to = \"{tied}\" names no embedding layer built before it", self.name)))?;
            let shape = store.entry(id).shape;
            if shape.dims() != [units, fan_in] {
                return Err(Error::shape(format!("layer '{}' (Dense) tied to '{tied}'", self.name), format!("a table [{units}, {fan_in}] (units, input width)"), shape));
            }
            if c.kernel_regularizer.is_some() {
                return Err(Error::Config(format!("layer '{}': a tied kernel takes no kernel_regularizer (regularize the embedding)", self.name)));
            }
            self.kernel = Some(id);
        } else {
            let kernel_init = c.kernel_initializer;
            self.kernel = Some(store.add(format!("{}.kernel", self.name), Shape::matrix(fan_in, units), |w| {
                kernel_init.fill(w, fan_in, units, rng)
            }));
        }
        if c.use_bias {
            let bias_init = c.bias_initializer;
            let shape = Shape::new(&[units])?;
            self.bias = Some(store.add(format!("{}.bias", self.name), shape, |b| bias_init.fill(b, fan_in, units, rng)));
        }
        self.in_features = fan_in;
        let mut out = input.to_vec();
        *out.last_mut().expect("not empty") = units;
        Ok(out)
    }

    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, _training: bool) -> Result<Var> {
        let kernel = self.kernel.ok_or_else(|| Error::State(format!("layer '{}' used before build", self.name)))?;
        let xs = tape.shape(x);
        if xs.rank() < 2 || xs.dims()[xs.rank() - 1] != self.in_features {
            return Err(Error::shape(
                format!("layer '{}' (Dense)", self.name),
                format!("input [batch, …, {}]", self.in_features),
                xs,
            ));
        }
        let w = tape.param(store, kernel);
        let b = self.bias.map(|b| tape.param(store, b));
        let y = if self.config.tied_to.is_some() {
            tape.dense_transposed(store, x, w, b, self.config.activation)?
        } else {
            tape.dense(store, x, w, b, self.config.activation)?
        };
        Ok(match self.config.activity_regularizer.filter(|r| !r.is_zero()) {
            Some(r) => tape.activity_penalty(store, y, r.l1, r.l2),
            None => y,
        })
    }

    /// A tied kernel belongs to its embedding layer (counted and saved there).
    fn params(&self) -> Vec<ParamId> {
        self.kernel.filter(|_| self.config.tied_to.is_none()).into_iter().chain(self.bias).collect()
    }
    fn output_activation(&self) -> Option<Activation> {
        Some(self.config.activation)
    }
    fn regularizers(&self, f: &mut dyn FnMut(ParamId, Regularizer)) {
        if let (Some(id), Some(r)) = (self.kernel, self.config.kernel_regularizer) {
            f(id, r);
        }
        if let (Some(id), Some(r)) = (self.bias, self.config.bias_regularizer) {
            f(id, r);
        }
    }
}
