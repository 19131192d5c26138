//! The layer interface and the serializable layer configurations.

use serde::{Deserialize, Serialize};

use super::noise_layers::{Dropout, DropoutConfig, GaussianNoise, GaussianNoiseConfig};
use super::merge::{Add, AddConfig, Concatenate, ConcatenateConfig};
use super::normalization::{BatchNormalization, BatchNormalizationConfig, LayerNormalization, LayerNormalizationConfig};
use super::augmentation::{RandomFlip, RandomFlipConfig, RandomTranslation, RandomTranslationConfig};
use super::conv::{Conv, ConvConfig, DepthwiseConv2dConfig};
use super::attention::{MultiHeadAttention, MultiHeadAttentionConfig};
use super::embedding::{Embedding, EmbeddingConfig, TokenAndPositionEmbedding, TokenAndPositionEmbeddingConfig};
use super::noise_layers::SpatialDropout;
use super::pooling::{GlobalPoolingConfig, Pooling, PoolingConfig};
use super::reshaping::{Flatten, FlattenConfig, Reshape, ReshapeConfig, ZeroPadding2d, ZeroPadding2dConfig};
use super::{ActivationLayer, Dense, Initializer, Regularizer};
use crate::tensor::PoolKind;
use crate::autograd::{ParamId, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::kernels::activation::Activation;

/// A layer: built once for an input shape (creating its parameters in the model's flat
/// store), then applied to batches on the tape.
pub trait Layer: Send + Sync {
    /// Keras's class name, e.g. `Dense`.
    fn kind(&self) -> &'static str;
    /// Unique name within the model (also the prefix of its weight names).
    fn name(&self) -> &str;
    fn set_name(&mut self, name: String);
    /// Prefix for automatic names (`dense`, `dense_1`, …).
    fn default_name(&self) -> &'static str;
    /// Per-sample input shape this layer was declared with (first layer only), if any.
    fn declared_input_shape(&self) -> Option<&[usize]> {
        None
    }
    /// The per-sample rank this layer needs its input to have, when it needs one (3 for
    /// Conv2D's `[h, w, c]`, 1 for Dense): how an undeclared model input is shaped
    /// from the data's samples.
    fn input_rank(&self) -> Option<usize> {
        None
    }
    /// The names of what this layer is applied to, as declared in a functional config.
    fn declared_inputs(&self) -> Option<&[String]> {
        None
    }
    /// Creates parameters for a per-sample `input` shape; returns the per-sample output shape.
    fn build(&mut self, input: &[usize], store: &mut ParamStore, rng: &mut Rng) -> Result<Vec<usize>>;
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, training: bool) -> Result<Var>;
    /// `build` for a layer applied to several tensors (merge layers override it; every
    /// other layer takes exactly one).
    fn build_inputs(&mut self, inputs: &[&[usize]], store: &mut ParamStore, rng: &mut Rng) -> Result<Vec<usize>> {
        match inputs {
            [one] => self.build(one, store, rng),
            _ => Err(Error::Config(format!("layer '{}' ({}) takes one input, not {}", self.name(), self.kind(), inputs.len()))),
        }
    }
    /// `forward` over several inputs, in the order of `build_inputs`.
    fn forward_inputs(&self, tape: &mut Tape, store: &ParamStore, xs: &[Var], training: bool) -> Result<Var> {
        match xs {
            [x] => self.forward(tape, store, *x, training),
            _ => Err(Error::Config(format!("layer '{}' ({}) takes one input, not {}", self.name(), self.kind(), xs.len()))),
        }
    }
    /// The parameters this layer owns.
    fn params(&self) -> Vec<ParamId>;
    /// The activation applied last, if any (for the softmax-with-from_logits check).
    fn output_activation(&self) -> Option<Activation> {
        None
    }
    fn config(&self) -> LayerConfig;
    /// Calls `f` for each of this layer's parameters that carries a weight penalty.
    fn regularizers(&self, _f: &mut dyn FnMut(ParamId, Regularizer)) {}
    /// The state of the layer's random stream (dropout masks, noise), for checkpoints.
    fn rng_state(&self) -> Option<Rng> {
        None
    }
    fn set_rng_state(&self, _rng: Rng) {}
    /// Whether each position's output depends only on that position's input (Dense,
    /// normalizations over the last axis, adds, dropout at inference): such a layer
    /// decodes new positions of a sequence unchanged.
    fn position_wise(&self) -> bool {
        false
    }
    /// Whether [`Layer::forward_decode`] works for this layer (position-wise layers, and
    /// those that keep what they need of earlier positions in a [`DecodeCache`]).
    fn decodes_incrementally(&self) -> bool {
        self.position_wise()
    }
    /// Incremental decoding (generation with a key/value cache): `xs` hold only the new
    /// positions of one sequence, the first of them at absolute position `pos`; what the
    /// layer needs of earlier positions it keeps in `cache` (one per call of the layer).
    fn forward_decode(&self, tape: &mut Tape, store: &ParamStore, xs: &[Var], pos: usize, cache: &mut DecodeCache) -> Result<Var> {
        let _ = (pos, cache);
        if !self.position_wise() {
            return Err(Error::Config(format!("layer '{}' ({}) cannot decode one position at a time", self.name(), self.kind())));
        }
        self.forward_inputs(tape, store, xs, false)
    }
    /// After a training step: update non-trainable state from what the forward pass
    /// recorded on `tape` (batch normalization's moving statistics).
    fn update_state(&self, _tape: &Tape, _store: &mut ParamStore) {}
}

/// What a layer keeps of a sequence's earlier positions while decoding (attention's keys
/// and values, `[positions, width]` each, appended as positions come).
#[derive(Clone, Debug, Default)]
pub struct DecodeCache {
    pub keys: Vec<f32>,
    pub values: Vec<f32>,
}

/// The `Layer` methods every layer writes the same way, for a struct with a `name`
/// field and a `config` with `input_shape` and `name`: `named_layer!("Dense", "dense", Dense)`
/// gives `kind`, `name`, `set_name`, `default_name`, `declared_input_shape` and `config`.
macro_rules! named_layer {
    ($kind:literal, $default:literal, $variant:ident) => {
        fn kind(&self) -> &'static str {
            $kind
        }
        fn name(&self) -> &str {
            &self.name
        }
        fn set_name(&mut self, name: String) {
            self.name = name;
        }
        fn default_name(&self) -> &'static str {
            $default
        }
        fn declared_input_shape(&self) -> Option<&[usize]> {
            self.config.input_shape.as_deref()
        }
        fn declared_inputs(&self) -> Option<&[String]> {
            self.config.inputs.as_deref()
        }
        fn config(&self) -> $crate::nn::LayerConfig {
            let mut c = self.config.clone();
            c.name = Some(self.name.clone());
            $crate::nn::LayerConfig::$variant(c)
        }
    };
}
pub(crate) use named_layer;

/// A layer as written in a TOML experiment or the saved `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerConfig {
    Dense(DenseConfig),
    Activation(ActivationConfig),
    Dropout(DropoutConfig),
    GaussianNoise(GaussianNoiseConfig),
    BatchNormalization(BatchNormalizationConfig),
    LayerNormalization(LayerNormalizationConfig),
    Add(AddConfig),
    Concatenate(ConcatenateConfig),
    Conv1d(ConvConfig),
    Conv2d(ConvConfig),
    DepthwiseConv2d(DepthwiseConv2dConfig),
    MaxPooling1d(PoolingConfig),
    MaxPooling2d(PoolingConfig),
    AveragePooling1d(PoolingConfig),
    AveragePooling2d(PoolingConfig),
    GlobalMaxPooling1d(GlobalPoolingConfig),
    GlobalMaxPooling2d(GlobalPoolingConfig),
    GlobalAveragePooling1d(GlobalPoolingConfig),
    GlobalAveragePooling2d(GlobalPoolingConfig),
    Flatten(FlattenConfig),
    Reshape(ReshapeConfig),
    ZeroPadding2d(ZeroPadding2dConfig),
    SpatialDropout1d(DropoutConfig),
    SpatialDropout2d(DropoutConfig),
    RandomFlip(RandomFlipConfig),
    RandomTranslation(RandomTranslationConfig),
    Embedding(EmbeddingConfig),
    TokenAndPositionEmbedding(TokenAndPositionEmbeddingConfig),
    MultiHeadAttention(MultiHeadAttentionConfig),
    /// A further call of an earlier layer, with the same weights (a shared layer).
    Call(CallConfig),
}

/// `type = "call"`: calls the earlier layer `layer` again on `inputs` (one set of weights
/// for every call; gradients sum over the calls). `name` names this call's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallConfig {
    pub layer: String,
    /// Names this call's output (default `<layer>_call_<k>`, k counting the layer's calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
    /// A call has no shape of its own to declare.
    #[serde(skip)]
    pub input_shape: Option<Vec<usize>>,
}

/// `$f` applied to the config struct inside each variant of a `LayerConfig`.
macro_rules! each_config {
    ($self:expr, $c:ident => $body:expr) => {
        match $self {
            LayerConfig::Dense($c) => $body,
            LayerConfig::Activation($c) => $body,
            LayerConfig::Dropout($c) => $body,
            LayerConfig::GaussianNoise($c) => $body,
            LayerConfig::BatchNormalization($c) => $body,
            LayerConfig::LayerNormalization($c) => $body,
            LayerConfig::Add($c) => $body,
            LayerConfig::Concatenate($c) => $body,
            LayerConfig::Conv1d($c) | LayerConfig::Conv2d($c) => $body,
            LayerConfig::DepthwiseConv2d($c) => $body,
            LayerConfig::MaxPooling1d($c) | LayerConfig::MaxPooling2d($c) | LayerConfig::AveragePooling1d($c) | LayerConfig::AveragePooling2d($c) => $body,
            LayerConfig::GlobalMaxPooling1d($c)
            | LayerConfig::GlobalMaxPooling2d($c)
            | LayerConfig::GlobalAveragePooling1d($c)
            | LayerConfig::GlobalAveragePooling2d($c) => $body,
            LayerConfig::Flatten($c) => $body,
            LayerConfig::Reshape($c) => $body,
            LayerConfig::ZeroPadding2d($c) => $body,
            LayerConfig::SpatialDropout1d($c) | LayerConfig::SpatialDropout2d($c) => $body,
            LayerConfig::RandomFlip($c) => $body,
            LayerConfig::RandomTranslation($c) => $body,
            LayerConfig::Embedding($c) => $body,
            LayerConfig::TokenAndPositionEmbedding($c) => $body,
            LayerConfig::MultiHeadAttention($c) => $body,
            LayerConfig::Call($c) => $body,
        }
    };
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenseConfig {
    pub units: usize,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "yes")]
    pub use_bias: bool,
    #[serde(default)]
    pub kernel_initializer: Initializer,
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
    /// Penalty on the kernel, e.g. `{ l2 = 1e-4 }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_regularizer: Option<Regularizer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias_regularizer: Option<Regularizer>,
    /// Penalty on the layer's outputs (added to the loss for each batch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_regularizer: Option<Regularizer>,
    /// Weight tying: the kernel is the token table `[units, in]` of the embedding layer
    /// of this name (built earlier), read transposed; this layer owns only its bias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tied_to: Option<String>,
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
pub struct ActivationConfig {
    pub activation: Activation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    /// What this layer is applied to in a functional model: layer or input names
    /// (default: the previous layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}
fn zeros() -> Initializer {
    Initializer::Zeros
}

impl LayerConfig {
    /// Instantiates the layer (unbuilt: parameters come at `build`). A `call` entry is
    /// no layer of its own (it calls an earlier one) and is an error here.
    pub fn into_layer(self) -> Result<Box<dyn Layer>> {
        Ok(match self {
            LayerConfig::Dense(c) => Box::new(Dense::from_config(c)),
            LayerConfig::Activation(c) => Box::new(ActivationLayer::from_config(c)),
            LayerConfig::Dropout(c) => Box::new(Dropout::from_config(c)),
            LayerConfig::GaussianNoise(c) => Box::new(GaussianNoise::from_config(c)),
            LayerConfig::BatchNormalization(c) => Box::new(BatchNormalization::from_config(c)),
            LayerConfig::LayerNormalization(c) => Box::new(LayerNormalization::from_config(c)),
            LayerConfig::Add(c) => Box::new(Add::from_config(c)),
            LayerConfig::Concatenate(c) => Box::new(Concatenate::from_config(c)),
            LayerConfig::Conv1d(c) => Box::new(Conv::conv1d(c)),
            LayerConfig::Conv2d(c) => Box::new(Conv::conv2d(c)),
            LayerConfig::DepthwiseConv2d(c) => Box::new(Conv::depthwise(c)),
            LayerConfig::MaxPooling1d(c) => Box::new(Pooling::windowed(PoolKind::Max, 1, c)),
            LayerConfig::MaxPooling2d(c) => Box::new(Pooling::windowed(PoolKind::Max, 2, c)),
            LayerConfig::AveragePooling1d(c) => Box::new(Pooling::windowed(PoolKind::Average, 1, c)),
            LayerConfig::AveragePooling2d(c) => Box::new(Pooling::windowed(PoolKind::Average, 2, c)),
            LayerConfig::GlobalMaxPooling1d(c) => Box::new(Pooling::global(PoolKind::Max, 1, c)),
            LayerConfig::GlobalMaxPooling2d(c) => Box::new(Pooling::global(PoolKind::Max, 2, c)),
            LayerConfig::GlobalAveragePooling1d(c) => Box::new(Pooling::global(PoolKind::Average, 1, c)),
            LayerConfig::GlobalAveragePooling2d(c) => Box::new(Pooling::global(PoolKind::Average, 2, c)),
            LayerConfig::Flatten(c) => Box::new(Flatten::from_config(c)),
            LayerConfig::Reshape(c) => Box::new(Reshape::from_config(c)),
            LayerConfig::ZeroPadding2d(c) => Box::new(ZeroPadding2d::from_config(c)),
            LayerConfig::SpatialDropout1d(c) => Box::new(SpatialDropout::new(1, c)),
            LayerConfig::SpatialDropout2d(c) => Box::new(SpatialDropout::new(2, c)),
            LayerConfig::RandomFlip(c) => Box::new(RandomFlip::from_config(c)),
            LayerConfig::RandomTranslation(c) => Box::new(RandomTranslation::from_config(c)),
            LayerConfig::Embedding(c) => Box::new(Embedding::from_config(c)),
            LayerConfig::TokenAndPositionEmbedding(c) => Box::new(TokenAndPositionEmbedding::from_config(c)),
            LayerConfig::MultiHeadAttention(c) => Box::new(MultiHeadAttention::from_config(c)),
            LayerConfig::Call(c) => {
                return Err(Error::Config(format!("a `call` of layer '{}' calls an earlier layer of a functional model; it is not a layer of its own", c.layer)))
            }
        })
    }

    /// What this layer is applied to in a functional model (layer or input names).
    pub fn inputs_mut(&mut self) -> &mut Option<Vec<String>> {
        each_config!(self, c => &mut c.inputs)
    }
    pub fn inputs(&self) -> Option<&[String]> {
        each_config!(self, c => c.inputs.as_deref())
    }
    pub fn name(&self) -> Option<&str> {
        each_config!(self, c => c.name.as_deref())
    }

    /// The per-sample input shape declared on this (first) layer.
    pub fn input_shape_mut(&mut self) -> &mut Option<Vec<usize>> {
        each_config!(self, c => &mut c.input_shape)
    }
}
