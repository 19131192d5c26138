//! The `gpt` model preset: nanoGPT's decoder-only transformer written out as an explicit
//! functional layer graph (what `descent summary` shows and `model.json` saves), so a
//! preset model is an ordinary model in every other respect.
//!
//! ```text
//! tokens [T] → token + position embedding [T, C] → dropout
//!   → n_layer × ( x + proj(attn(ln_1(x))) ; x + mlp(ln_2(x)) )   mlp: C → 4C GELU → C
//!   → ln_f → head: Dense(vocab) (logits)
//! ```
//!
//! Weights start as GPT-2's: N(0, 0.02²), the residual projections N(0, (0.02/√(2·n_layer))²)
//! (nanoGPT's `c_proj` rule), biases zero; LayerNorm ε = 1e-5, exact GELU.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::nn::{
    Activation, AddConfig, DenseConfig, DropoutConfig, Initializer, InputConfig, LayerConfig, LayerNormalizationConfig, MultiHeadAttentionConfig,
    TokenAndPositionEmbeddingConfig,
};

/// `[model.gpt]`: nanoGPT's `GPTConfig` (the vocabulary comes from the data's tokenizer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptPreset {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    /// The context length (the data's `block_size` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<usize>,
    #[serde(default)]
    pub dropout: f32,
    /// Biases in the Dense layers and LayerNorms (nanoGPT's default is false).
    #[serde(default)]
    pub bias: bool,
    /// The output head reads the token embedding transposed (weight tying, as nanoGPT
    /// and GPT-2): `vocabulary × n_embd` fewer parameters.
    #[serde(default)]
    pub tie_weights: bool,
}

fn normal(stddev: f32) -> Initializer {
    Initializer::RandomNormal { mean: 0.0, stddev }
}

impl GptPreset {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid("model.gpt", m));
        for (k, v) in [("n_layer", self.n_layer), ("n_head", self.n_head), ("n_embd", self.n_embd)] {
            if v == 0 {
                return bad(format!("{k} must be at least 1"));
            }
        }
        if self.n_embd % self.n_head != 0 {
            return bad(format!("n_embd {} is not a multiple of n_head {}", self.n_embd, self.n_head));
        }
        if self.block_size == Some(0) {
            return bad("block_size must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(format!("dropout {} is outside [0, 1)", self.dropout));
        }
        Ok(())
    }

    /// The layer graph for a vocabulary of `vocab` ids and windows of `block` ids:
    /// (inputs, layers, outputs) of a functional model.
    pub fn expand(&self, vocab: usize, block: usize) -> (Vec<InputConfig>, Vec<LayerConfig>, Vec<String>) {
        let (c, bias, p) = (self.n_embd, self.bias, self.dropout);
        let block = self.block_size.unwrap_or(block);
        let proj_std = 0.02 / ((2 * self.n_layer) as f32).sqrt();
        let mut layers = Vec::new();
        let named = |s: &str| Some(s.to_string());
        let from = |names: &[&str]| Some(names.iter().map(|n| n.to_string()).collect::<Vec<_>>());
        let dense = |units: usize, act: Activation, std: f32, name: String, input: &str| {
            LayerConfig::Dense(DenseConfig {
                units,
                activation: act,
                use_bias: bias,
                kernel_initializer: normal(std),
                bias_initializer: Initializer::Zeros,
                kernel_regularizer: None,
                bias_regularizer: None,
                activity_regularizer: None,
                tied_to: None,
                name: Some(name),
                input_shape: None,
                inputs: from(&[input]),
            })
        };
        let norm = |name: String, input: &str| {
            LayerConfig::LayerNormalization(LayerNormalizationConfig { epsilon: 1e-5, center: bias, scale: true, name: Some(name), input_shape: None, inputs: from(&[input]) })
        };
        let dropout = |name: String, input: &str| LayerConfig::Dropout(DropoutConfig { rate: p, seed: None, name: Some(name), input_shape: None, inputs: from(&[input]) });
        let add = |name: String, a: &str, b: &str| LayerConfig::Add(AddConfig { name: Some(name), input_shape: None, inputs: from(&[a, b]) });
        layers.push(LayerConfig::TokenAndPositionEmbedding(TokenAndPositionEmbeddingConfig {
            vocabulary_size: vocab,
            sequence_length: block,
            embedding_dim: c,
            embeddings_initializer: normal(0.02),
            mask_zero: false,
            name: named("embedding"),
            input_shape: None,
            inputs: from(&["tokens"]),
        }));
        let mut x = "embedding".to_string();
        if p > 0.0 {
            layers.push(dropout("embedding_dropout".into(), &x));
            x = "embedding_dropout".into();
        }
        for l in 0..self.n_layer {
            let h = |part: &str| format!("h{l}_{part}");
            layers.push(norm(h("ln_1"), &x));
            layers.push(LayerConfig::MultiHeadAttention(MultiHeadAttentionConfig {
                num_heads: self.n_head,
                key_dim: c / self.n_head,
                value_dim: None,
                dropout: p,
                use_bias: bias,
                output_shape: None,
                use_causal_mask: true,
                kernel_initializer: normal(0.02),
                bias_initializer: Initializer::Zeros,
                seed: None,
                name: Some(h("attn")),
                input_shape: None,
                inputs: from(&[&h("ln_1")]),
            }));
            let mut attn = h("attn");
            if p > 0.0 {
                layers.push(dropout(h("attn_dropout"), &attn));
                attn = h("attn_dropout");
            }
            layers.push(add(h("residual_1"), &x, &attn));
            layers.push(norm(h("ln_2"), &h("residual_1")));
            layers.push(dense(4 * c, Activation::Gelu { approximate: false }, 0.02, h("mlp_fc"), &h("ln_2")));
            layers.push(dense(c, Activation::Linear, proj_std, h("mlp_proj"), &h("mlp_fc")));
            let mut mlp = h("mlp_proj");
            if p > 0.0 {
                layers.push(dropout(h("mlp_dropout"), &mlp));
                mlp = h("mlp_dropout");
            }
            layers.push(add(h("residual_2"), &h("residual_1"), &mlp));
            x = h("residual_2");
        }
        layers.push(norm("ln_f".into(), &x));
        let mut head = dense(vocab, Activation::Linear, 0.02, "head".into(), "ln_f");
        if let LayerConfig::Dense(d) = &mut head {
            d.use_bias = false;
            if self.tie_weights {
                d.tied_to = Some("embedding".into());
            }
        }
        layers.push(head);
        (vec![InputConfig { name: "tokens".into(), shape: Some(vec![block]) }], layers, vec!["head".into()])
    }
}
