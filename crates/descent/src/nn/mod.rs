//! Layers, initializers, losses, metrics and the Sequential model.

mod activation_layer;
mod confusion;
mod dense;
mod init;
mod layer;
mod loss;
mod metrics;
mod noise_layers;
mod normalization;
mod regularizer;
mod sequential;

pub use crate::tensor::kernels::activation::Activation;
pub use activation_layer::ActivationLayer;
pub use dense::Dense;
pub use init::Initializer;
pub use layer::{ActivationConfig, DenseConfig, Layer, LayerConfig};
pub use loss::Loss;
pub use confusion::{Average, ConfusionMatrix};
pub use metrics::{average_precision, roc_auc, Metric, MetricContext, MetricState};
pub use noise_layers::{Dropout, DropoutConfig, GaussianNoise, GaussianNoiseConfig};
pub use normalization::{BatchNormalization, BatchNormalizationConfig, LayerNormalization, LayerNormalizationConfig};
pub use regularizer::Regularizer;
pub use sequential::{ModelConfig, Sequential, DEFAULT_SEED};
