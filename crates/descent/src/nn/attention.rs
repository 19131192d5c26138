//! Keras's `MultiHeadAttention`: project the query, key and value (`[batch, T, D]`) to
//! `num_heads` heads, attend with the fused op (`autograd/ops/attention.rs`), and
//! project the heads' outputs back. Weights keep Keras's shapes and element order:
//! `query/kernel [D, H, key_dim]` is stored as the matrix `[D, H·key_dim]` (the same
//! row-major bytes), so each projection is one dense GEMM and heads are column ranges.
//!
//! Applied to one tensor it is self-attention; to `[query, value]` or
//! `[query, value, key]` (Keras's call order) it attends from the query to the others.
//! `use_causal_mask` (a call argument in Keras) is part of the config here.

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::layer::{named_layer, DecodeCache, Layer};
use super::noise_layers::Stream;
use super::Initializer;
use crate::autograd::{AttentionSpec, ParamId, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::kernels::activation::Activation;
use crate::tensor::Shape;

fn yes() -> bool {
    true
}
fn zeros() -> Initializer {
    Initializer::Zeros
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiHeadAttentionConfig {
    pub num_heads: usize,
    /// Width of each head's query and key.
    pub key_dim: usize,
    /// Width of each head's value (default: key_dim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_dim: Option<usize>,
    /// Dropout on the attention weights, in training.
    #[serde(default)]
    pub dropout: f32,
    #[serde(default = "yes")]
    pub use_bias: bool,
    /// Width of the output's last axis (default: the query's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_shape: Option<usize>,
    /// Each position attends only to itself and earlier ones (a decoder's mask).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_causal_mask: bool,
    #[serde(default)]
    pub kernel_initializer: Initializer,
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

/// One projection's kernel `[in, H·width]` and bias.
#[derive(Clone, Copy, Debug)]
struct Projection {
    kernel: ParamId,
    bias: Option<ParamId>,
}

impl Projection {
    /// x·kernel + bias on the tape.
    fn apply(&self, tape: &mut Tape, store: &ParamStore, x: Var) -> Result<Var> {
        let w = tape.param(store, self.kernel);
        let b = self.bias.map(|b| tape.param(store, b));
        tape.dense(store, x, w, b, Activation::Linear)
    }
}

#[derive(Clone, Debug)]
pub struct MultiHeadAttention {
    config: MultiHeadAttentionConfig,
    name: String,
    /// query, key, value, output
    projections: Option<[Projection; 4]>,
    stream: Stream,
}

impl MultiHeadAttention {
    pub fn new(num_heads: usize, key_dim: usize) -> Self {
        MultiHeadAttention::from_config(MultiHeadAttentionConfig {
            num_heads,
            key_dim,
            value_dim: None,
            dropout: 0.0,
            use_bias: true,
            output_shape: None,
            use_causal_mask: false,
            kernel_initializer: Initializer::default(),
            bias_initializer: zeros(),
            seed: None,
            name: None,
            input_shape: None,
            inputs: None,
        })
    }
    pub fn from_config(config: MultiHeadAttentionConfig) -> Self {
        MultiHeadAttention { name: config.name.clone().unwrap_or_default(), config, projections: None, stream: Stream::new() }
    }
    pub fn causal(mut self) -> Self {
        self.config.use_causal_mask = true;
        self
    }
    pub fn dropout(mut self, rate: f32) -> Self {
        self.config.dropout = rate;
        self
    }
    pub fn use_bias(mut self, on: bool) -> Self {
        self.config.use_bias = on;
        self
    }
    fn value_dim(&self) -> usize {
        self.config.value_dim.unwrap_or(self.config.key_dim)
    }
    fn what(&self) -> String {
        format!("layer '{}' (MultiHeadAttention)", self.name)
    }
}

impl Layer for MultiHeadAttention {
    named_layer!("MultiHeadAttention", "multi_head_attention", MultiHeadAttention);
    fn input_rank(&self) -> Option<usize> {
        Some(2)
    }
    fn build(&mut self, input: &[usize], store: &mut ParamStore, rng: &mut Rng) -> Result<Vec<usize>> {
        self.build_inputs(&[input], store, rng)
    }
    fn build_inputs(&mut self, inputs: &[&[usize]], store: &mut ParamStore, rng: &mut Rng) -> Result<Vec<usize>> {
        let c = self.config.clone();
        let what = self.what();
        if inputs.is_empty() || inputs.len() > 3 {
            return Err(Error::Config(format!("{what} takes 1 (self-attention), 2 [query, value] or 3 [query, value, key] inputs, not {}", inputs.len())));
        }
        if let Some(bad) = inputs.iter().find(|s| s.len() != 2) {
            return Err(Error::shape(&what, "sequences [T, features] per sample", format!("{bad:?}")));
        }
        let (query, value) = (inputs[0], inputs.get(1).copied().unwrap_or(inputs[0]));
        let key = inputs.get(2).copied().unwrap_or(value);
        if key[0] != value[0] {
            return Err(Error::shape(&what, format!("a key as long as the value ({} steps)", value[0]), format!("{key:?}")));
        }
        if c.num_heads > u16::MAX as usize {
            return Err(Error::Config(format!("{what}: num_heads {} is above {}", c.num_heads, u16::MAX)));
        }
        for (k, n) in [("num_heads", c.num_heads), ("key_dim", c.key_dim), ("value_dim", self.value_dim())] {
            if n == 0 {
                return Err(Error::Config(format!("{what}: {k} must be at least 1")));
            }
        }
        if !(0.0..1.0).contains(&c.dropout) {
            return Err(Error::Config(format!("{what}: dropout {} is outside [0, 1)", c.dropout)));
        }
        c.kernel_initializer.check(&format!("{what} kernel_initializer"))?;
        c.bias_initializer.check(&format!("{what} bias_initializer"))?;
        let (h, kd, vd) = (c.num_heads, c.key_dim, self.value_dim());
        let out_dim = c.output_shape.unwrap_or(query[1]);
        let mut add = |part: &str, fan: usize, heads: usize, width: usize, rows: usize, cols: usize| {
            // Keras's fans for an einsum kernel [fan, heads, width]: (heads·fan, width·fan).
            let (fi, fo) = (heads * fan, width * fan);
            let init = c.kernel_initializer;
            let kernel = store.add(format!("{}.{part}.kernel", self.name), Shape::matrix(rows, cols), |w| init.fill(w, fi, fo, rng));
            let bias = c.use_bias.then(|| {
                let b = c.bias_initializer;
                store.add(format!("{}.{part}.bias", self.name), Shape::new(&[cols]).expect("rank 1"), |v| b.fill(v, fi, fo, rng))
            });
            Projection { kernel, bias }
        };
        let q = add("query", query[1], h, kd, query[1], h * kd);
        let k = add("key", key[1], h, kd, key[1], h * kd);
        let v = add("value", value[1], h, vd, value[1], h * vd);
        // Output kernel [H, vd, out]: receptive field H, so fans (vd·H, out·H).
        let o = add("attention_output", h, vd, out_dim, h * vd, out_dim);
        self.projections = Some([q, k, v, o]);
        self.stream.reseed(c.seed, rng);
        Ok(vec![query[0], out_dim])
    }
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, training: bool) -> Result<Var> {
        self.forward_inputs(tape, store, &[x], training)
    }
    /// softmax(q·kᵀ/√key_dim [+ causal mask]) · v per head, then the output projection.
    fn forward_inputs(&self, tape: &mut Tape, store: &ParamStore, xs: &[Var], training: bool) -> Result<Var> {
        let [pq, pk, pv, po] = self.projections.ok_or_else(|| Error::State(format!("layer '{}' used before build", self.name)))?;
        let (query, value) = match xs {
            [q] => (*q, *q),
            [q, v] | [q, v, _] => (*q, *v),
            _ => return Err(Error::Config(format!("{} takes 1 to 3 inputs, not {}", self.what(), xs.len()))),
        };
        let key = xs.get(2).copied().unwrap_or(value);
        let q = pq.apply(tape, store, query)?;
        let k = pk.apply(tape, store, key)?;
        let v = pv.apply(tape, store, value)?;
        let dropout = if training { self.config.dropout } else { 0.0 };
        let seed = if dropout > 0.0 { self.stream.with(|r| r.random()) } else { 0 };
        let spec = AttentionSpec { heads: self.config.num_heads as u16, causal: self.config.use_causal_mask, queries_last: false, scale: None, dropout, seed };
        let o = tape.attention(store, q, k, v, spec)?;
        po.apply(tape, store, o)
    }
    fn decodes_incrementally(&self) -> bool {
        true
    }
    /// Self-attention over the new positions and every earlier one: their keys and
    /// values are appended to the cache, the queries attend as the last positions.
    fn forward_decode(&self, tape: &mut Tape, store: &ParamStore, xs: &[Var], _pos: usize, cache: &mut DecodeCache) -> Result<Var> {
        let [pq, pk, pv, po] = self.projections.ok_or_else(|| Error::State(format!("layer '{}' used before build", self.name)))?;
        let [x] = xs else {
            return Err(Error::Config(format!("{}: decoding with a cache takes self-attention (one input), not {} inputs", self.what(), xs.len())));
        };
        let q = pq.apply(tape, store, *x)?;
        let k = pk.apply(tape, store, *x)?;
        let v = pv.apply(tape, store, *x)?;
        cache.keys.extend_from_slice(&tape.value(store, k));
        cache.values.extend_from_slice(&tape.value(store, v));
        let (kw, vw) = (tape.shape(k).dims()[2], tape.shape(v).dims()[2]);
        let seen = cache.keys.len() / kw;
        let k_all = tape.input(Shape::new(&[1, seen, kw])?, &cache.keys)?;
        let v_all = tape.input(Shape::new(&[1, seen, vw])?, &cache.values)?;
        let spec = AttentionSpec { heads: self.config.num_heads as u16, causal: self.config.use_causal_mask, queries_last: true, scale: None, dropout: 0.0, seed: 0 };
        let o = tape.attention(store, q, k_all, v_all, spec)?;
        po.apply(tape, store, o)
    }
    fn params(&self) -> Vec<ParamId> {
        self.projections.map(|ps| ps.iter().flat_map(|p| std::iter::once(p.kernel).chain(p.bias)).collect()).unwrap_or_default()
    }
    fn rng_state(&self) -> Option<Rng> {
        (self.config.dropout > 0.0).then(|| self.stream.state())
    }
    fn set_rng_state(&self, rng: Rng) {
        self.stream.set_state(rng)
    }
}
