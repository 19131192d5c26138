//! Embeddings of integer ids: Keras's `Embedding` (a `[input_dim, output_dim]` table
//! whose rows the ids pick) and KerasHub's `TokenAndPositionEmbedding` (a token table
//! plus a learned position table `[sequence_length, embedding_dim]`, added: GPT's
//! input). Ids come in as numbers (a batch of token windows `[batch, T]`) and must be
//! whole numbers below the table's rows; the error names the first that is not.

use serde::{Deserialize, Serialize};

use super::layer::{named_layer, DecodeCache, Layer};
use super::{Initializer, Regularizer};
use crate::autograd::{ParamId, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Shape;

fn uniform() -> Initializer {
    Initializer::Uniform
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingConfig {
    /// Size of the vocabulary: ids run over `0..input_dim`.
    pub input_dim: usize,
    /// Width of each embedding vector.
    pub output_dim: usize,
    #[serde(default = "uniform")]
    pub embeddings_initializer: Initializer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings_regularizer: Option<Regularizer>,
    /// Keras: id 0 is padding and masked downstream. Masks are not propagated yet, so
    /// `true` is refused rather than silently ignored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mask_zero: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

#[derive(Clone, Debug)]
pub struct Embedding {
    config: EmbeddingConfig,
    name: String,
    table: Option<ParamId>,
}

impl Embedding {
    pub fn new(input_dim: usize, output_dim: usize) -> Self {
        Embedding::from_config(EmbeddingConfig {
            input_dim,
            output_dim,
            embeddings_initializer: uniform(),
            embeddings_regularizer: None,
            mask_zero: false,
            name: None,
            input_shape: None,
            inputs: None,
        })
    }
    pub fn from_config(config: EmbeddingConfig) -> Self {
        Embedding { name: config.name.clone().unwrap_or_default(), config, table: None }
    }
    /// The `[input_dim, output_dim]` table, after build.
    pub fn table(&self) -> Option<ParamId> {
        self.table
    }
}

/// Checks the shared arguments of the embedding layers; `what` names the layer.
fn check_sizes(what: &str, sizes: &[(&str, usize)], init: Initializer, mask_zero: bool) -> Result<()> {
    if let Some((key, _)) = sizes.iter().find(|(_, n)| *n == 0) {
        return Err(Error::Config(format!("{what}: {key} must be at least 1")));
    }
    init.check(&format!("{what} embeddings_initializer"))?;
    if mask_zero {
        return Err(Error::Config(format!("{what}: mask_zero = true is not supported yet (masks are not propagated); pad with a token the loss may see, or drop padding")));
    }
    Ok(())
}

/// The per-sample id shape an embedding takes: `[T]` (or a single id, `[]`/`[1]`).
fn check_ids(what: &str, input: &[usize]) -> Result<()> {
    if input.len() > 2 {
        return Err(Error::shape(what, "ids per sample [T] (a window of token ids)", format!("{input:?}")));
    }
    Ok(())
}

impl Layer for Embedding {
    named_layer!("Embedding", "embedding", Embedding);
    fn position_wise(&self) -> bool {
        true
    }
    fn input_rank(&self) -> Option<usize> {
        Some(1)
    }
    fn build(&mut self, input: &[usize], store: &mut ParamStore, rng: &mut Rng) -> Result<Vec<usize>> {
        let c = &self.config;
        let what = format!("layer '{}' (Embedding)", self.name);
        check_sizes(&what, &[("input_dim", c.input_dim), ("output_dim", c.output_dim)], c.embeddings_initializer, c.mask_zero)?;
        check_ids(&what, input)?;
        if let Some(r) = c.embeddings_regularizer {
            r.check(&format!("{what} embeddings_regularizer"))?;
        }
        let (v, d, init) = (c.input_dim, c.output_dim, c.embeddings_initializer);
        self.table = Some(store.add(format!("{}.embeddings", self.name), Shape::matrix(v, d), |w| init.fill(w, v, d, rng)));
        let mut out = input.to_vec();
        out.push(d);
        Ok(out)
    }
    /// y = table[ids]: `[batch, T]` → `[batch, T, output_dim]`.
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, _training: bool) -> Result<Var> {
        let table = self.table.ok_or_else(|| Error::State(format!("layer '{}' used before build", self.name)))?;
        let t = tape.param(store, table);
        tape.gather_by(store, t, x, &|| format!("layer '{}' (Embedding) ids", self.name))
    }
    fn params(&self) -> Vec<ParamId> {
        self.table.into_iter().collect()
    }
    fn regularizers(&self, f: &mut dyn FnMut(ParamId, Regularizer)) {
        if let (Some(t), Some(r)) = (self.table, self.config.embeddings_regularizer) {
            f(t, r);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenAndPositionEmbeddingConfig {
    pub vocabulary_size: usize,
    /// The longest window: positions run over `0..sequence_length`.
    pub sequence_length: usize,
    pub embedding_dim: usize,
    #[serde(default = "uniform")]
    pub embeddings_initializer: Initializer,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mask_zero: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

#[derive(Clone, Debug)]
pub struct TokenAndPositionEmbedding {
    config: TokenAndPositionEmbeddingConfig,
    name: String,
    /// (token table [vocabulary_size, embedding_dim], position table [sequence_length, embedding_dim])
    tables: Option<(ParamId, ParamId)>,
}

impl TokenAndPositionEmbedding {
    pub fn new(vocabulary_size: usize, sequence_length: usize, embedding_dim: usize) -> Self {
        TokenAndPositionEmbedding::from_config(TokenAndPositionEmbeddingConfig {
            vocabulary_size,
            sequence_length,
            embedding_dim,
            embeddings_initializer: uniform(),
            mask_zero: false,
            name: None,
            input_shape: None,
            inputs: None,
        })
    }
    pub fn from_config(config: TokenAndPositionEmbeddingConfig) -> Self {
        TokenAndPositionEmbedding { name: config.name.clone().unwrap_or_default(), config, tables: None }
    }
    /// The token table (the one an output head may be tied to), after build.
    pub fn token_table(&self) -> Option<ParamId> {
        self.tables.map(|t| t.0)
    }
}

impl TokenAndPositionEmbedding {
    /// Tokens `x [batch, T]` embedded at positions `pos..pos + T`.
    fn embed_at(&self, tape: &mut Tape, store: &ParamStore, x: Var, pos: usize) -> Result<Var> {
        let (tokens, positions) = self.tables.ok_or_else(|| Error::State(format!("layer '{}' used before build", self.name)))?;
        let what = || format!("layer '{}' (TokenAndPositionEmbedding)", self.name);
        let xs = tape.shape(x);
        let longest = self.config.sequence_length;
        if xs.rank() != 2 || pos + xs.dims()[1] > longest {
            return Err(Error::shape(what(), format!("ids [batch, T] at positions below {longest} (sequence_length)"), format!("{xs} from position {pos}")));
        }
        let steps = xs.dims()[1];
        let table = tape.param(store, tokens);
        let tok = tape.gather_by(store, table, x, &|| format!("{} ids", what()))?;
        let mut pos_table = tape.param(store, positions);
        if pos > 0 || steps < longest {
            pos_table = tape.slice(store, pos_table, 0, pos, steps)?;
        }
        tape.add_broadcast(store, tok, pos_table)
    }
}

impl Layer for TokenAndPositionEmbedding {
    named_layer!("TokenAndPositionEmbedding", "token_and_position_embedding", TokenAndPositionEmbedding);
    fn input_rank(&self) -> Option<usize> {
        Some(1)
    }
    fn build(&mut self, input: &[usize], store: &mut ParamStore, rng: &mut Rng) -> Result<Vec<usize>> {
        let c = &self.config;
        let what = format!("layer '{}' (TokenAndPositionEmbedding)", self.name);
        check_sizes(
            &what,
            &[("vocabulary_size", c.vocabulary_size), ("sequence_length", c.sequence_length), ("embedding_dim", c.embedding_dim)],
            c.embeddings_initializer,
            c.mask_zero,
        )?;
        if input.len() != 1 || input[0] > c.sequence_length {
            return Err(Error::shape(&what, format!("windows of at most {} ids per sample (sequence_length)", c.sequence_length), format!("{input:?}")));
        }
        let (v, t, d, init) = (c.vocabulary_size, c.sequence_length, c.embedding_dim, c.embeddings_initializer);
        let tokens = store.add(format!("{}.token_embeddings", self.name), Shape::matrix(v, d), |w| init.fill(w, v, d, rng));
        let positions = store.add(format!("{}.position_embeddings", self.name), Shape::matrix(t, d), |w| init.fill(w, t, d, rng));
        self.tables = Some((tokens, positions));
        Ok(vec![input[0], d])
    }
    /// y[b, t] = tokens[ids[b, t]] + positions[t]: `[batch, T]` → `[batch, T, embedding_dim]`.
    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, _training: bool) -> Result<Var> {
        self.embed_at(tape, store, x, 0)
    }
    fn decodes_incrementally(&self) -> bool {
        true
    }
    /// The new ids at positions `pos..pos + T`.
    fn forward_decode(&self, tape: &mut Tape, store: &ParamStore, xs: &[Var], pos: usize, _cache: &mut DecodeCache) -> Result<Var> {
        let [x] = xs else { return Err(Error::Config(format!("layer '{}' takes one input", self.name))) };
        self.embed_at(tape, store, *x, pos)
    }
    fn params(&self) -> Vec<ParamId> {
        self.tables.map(|(a, b)| vec![a, b]).unwrap_or_default()
    }
}
