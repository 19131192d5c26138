//! Model descriptions: layers, initializers, regularizers, losses, metrics, and the
//! `Network` (Sequential and functional graphs). Nothing here trains or saves: that is
//! `train` and `io`, above.

mod activation_layer;
mod attention;
mod augmentation;
mod confusion;
mod conv;
mod dense;
mod embedding;
mod functional;
mod init;
mod layer;
mod loss;
mod merge;
mod metrics;
mod model;
mod noise_layers;
mod normalization;
mod pooling;
mod regularizer;
mod reshaping;

pub use crate::tensor::kernels::activation::Activation;
pub use activation_layer::ActivationLayer;
pub use attention::{MultiHeadAttention, MultiHeadAttentionConfig};
pub use embedding::{Embedding, EmbeddingConfig, TokenAndPositionEmbedding, TokenAndPositionEmbeddingConfig};
pub use augmentation::{Factor, FillModeName, FlipMode, RandomFlip, RandomFlipConfig, RandomTranslation, RandomTranslationConfig};
pub use conv::{Conv, ConvConfig, DepthwiseConv2dConfig, Size};
pub use pooling::{GlobalPoolingConfig, Pooling, PoolingConfig};
pub use reshaping::{Flatten, FlattenConfig, Padding2d, Reshape, ReshapeConfig, ZeroPadding2d, ZeroPadding2dConfig};
pub use crate::tensor::{Padding, PoolKind};
pub use dense::Dense;
pub use functional::{Call, Input, SharedLayer, SymbolicTensor};
pub use init::Initializer;
pub use layer::{ActivationConfig, CallConfig, DecodeCache, DenseConfig, Layer, LayerConfig};
pub use loss::Loss;
pub use merge::{Add, AddConfig, Concatenate, ConcatenateConfig};
pub use confusion::{Average, ConfusionMatrix};
pub use metrics::{average_precision, roc_auc, Metric, MetricContext, MetricState};
pub use noise_layers::{Dropout, DropoutConfig, GaussianNoise, GaussianNoiseConfig, SpatialDropout};
pub use normalization::{BatchNormalization, BatchNormalizationConfig, LayerNormalization, LayerNormalizationConfig};
pub use regularizer::Regularizer;
pub use model::{InputConfig, ModelConfig, ModelKind, Network, DEFAULT_SEED};
