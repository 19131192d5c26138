//! Text for language models: a UTF-8 file turned into token ids by a tokenizer (one id
//! per character, or GPT-2's byte-level BPE), split by position into training and
//! validation parts (the first 90 % trains, as nanoGPT), and served as next-token
//! windows: a sample is `block_size` ids `x = tokens[o..o+T]` and their successors
//! `y = tokens[o+1..o+T+1]`.
//!
//! Training windows start at random offsets (a fresh draw per batch, seeded by the run's
//! seed and the epoch), as nanoGPT samples them; validation uses a fixed set of windows
//! drawn once, so every evaluation scores the same tokens.

use std::path::Path;
use std::sync::Arc;

use rand::{Rng as _, SeedableRng};
use serde::{Deserialize, Serialize};

use super::stream::BatchStream;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// Which tokenizer a text source uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// One id per distinct character of the file (sorted), as nanoGPT's shakespeare_char.
    #[default]
    Char,
    /// GPT-2's byte-level BPE (50,257 ids), its vocabulary compiled in.
    Gpt2,
}

/// A tokenizer and its vocabulary, saved with the model (`tokenizer.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Tokenizer {
    /// `chars[id]` is the character of id.
    Char { chars: String },
    Gpt2,
}

impl Tokenizer {
    /// The character tokenizer of `text`: its distinct characters, sorted.
    pub fn chars_of(text: &str) -> Tokenizer {
        let mut set: Vec<char> = text.chars().collect::<std::collections::BTreeSet<char>>().into_iter().collect();
        set.sort_unstable();
        Tokenizer::Char { chars: set.into_iter().collect() }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Char { chars } => chars.chars().count(),
            Tokenizer::Gpt2 => GPT2_VOCAB,
        }
    }

    /// The ids of `text`; a character the vocabulary lacks is an error naming it and
    /// its position (in characters).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        match self {
            Tokenizer::Char { chars } => {
                let table: std::collections::HashMap<char, u32> = chars.chars().enumerate().map(|(i, c)| (c, i as u32)).collect();
                text.chars()
                    .enumerate()
                    .map(|(at, c)| table.get(&c).copied().ok_or_else(|| Error::Config(format!("character {c:?} at position {at} is not in the model's vocabulary of {} characters", table.len()))))
                    .collect()
            }
            Tokenizer::Gpt2 => gpt2::encode(text),
        }
    }

    /// The text of `ids` (an id outside the vocabulary is an error).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        match self {
            Tokenizer::Char { chars } => {
                let table: Vec<char> = chars.chars().collect();
                ids.iter().map(|&i| table.get(i as usize).copied().ok_or_else(|| Error::Config(format!("token id {i} is outside the vocabulary of {}", table.len())))).collect()
            }
            Tokenizer::Gpt2 => gpt2::decode(ids),
        }
    }
}

/// GPT-2's vocabulary size (r50k_base: 50,000 merges, 256 bytes and `<|endoftext|>`).
pub const GPT2_VOCAB: usize = 50_257;

#[cfg(feature = "gpt2")]
mod gpt2 {
    use crate::error::{Error, Result};
    use std::sync::OnceLock;
    use tiktoken_rs::CoreBPE;

    fn bpe() -> Result<&'static CoreBPE> {
        static BPE: OnceLock<std::result::Result<CoreBPE, String>> = OnceLock::new();
        BPE.get_or_init(|| tiktoken_rs::r50k_base().map_err(|e| e.to_string())).as_ref().map_err(|e| Error::State(format!("GPT-2 tokenizer: {e}")))
    }
    pub fn encode(text: &str) -> Result<Vec<u32>> {
        Ok(bpe()?.encode_ordinary(text).into_iter().map(|t| t as u32).collect())
    }
    pub fn decode(ids: &[u32]) -> Result<String> {
        bpe()?.decode(ids).map_err(|e| Error::Config(format!("GPT-2 tokenizer cannot decode these ids: {e}")))
    }
}

#[cfg(not(feature = "gpt2"))]
mod gpt2 {
    use crate::error::{Error, Result};
    fn missing() -> Error {
        Error::Config("tokenizer = \"gpt2\" needs descent built with the `gpt2` feature (the descent binary has it)".into())
    }
    pub fn encode(_: &str) -> Result<Vec<u32>> {
        Err(missing())
    }
    pub fn decode(_: &[u32]) -> Result<String> {
        Err(missing())
    }
}

/// A tokenized text split by position.
#[derive(Clone, Debug)]
pub struct TextCorpus {
    pub tokenizer: Tokenizer,
    pub train: Arc<Vec<u32>>,
    pub valid: Arc<Vec<u32>>,
}

impl TextCorpus {
    /// Reads `path` (UTF-8), tokenizes it, and splits it: the last `val_fraction` of the
    /// tokens validates. Each part must hold at least one window of `block_size` + 1.
    pub fn load(path: &Path, kind: TokenizerKind, block_size: usize, val_fraction: f64) -> Result<TextCorpus> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            Error::format(path, format!("not UTF-8 text: invalid byte 0x{:02x} at byte {at}", e.as_bytes()[at]))
        })?;
        let tokenizer = match kind {
            TokenizerKind::Char => Tokenizer::chars_of(&text),
            TokenizerKind::Gpt2 => Tokenizer::Gpt2,
        };
        let ids = tokenizer.encode(&text).map_err(|e| Error::format(path, e.to_string()))?;
        let n_valid = (ids.len() as f64 * val_fraction).round() as usize;
        let n_train = ids.len() - n_valid;
        let need = block_size + 1;
        if n_train < need || (val_fraction > 0.0 && n_valid < need) {
            return Err(Error::format(
                path,
                format!("{} tokens split {n_train} / {n_valid} (val_fraction {val_fraction}): each part needs at least block_size + 1 = {need}", ids.len()),
            ));
        }
        let valid = ids[n_train..].to_vec();
        let mut train = ids;
        train.truncate(n_train);
        Ok(TextCorpus { tokenizer, train: Arc::new(train), valid: Arc::new(valid) })
    }
}

/// Where window `k` of a draw starts: uniform over every offset with a full window.
fn draw_offset(rng: &mut Rng, tokens: usize, block: usize) -> usize {
    rng.random_range(0..=tokens - block - 1)
}

/// `count` windows of `block` ids and their next-id targets, at offsets drawn from
/// `seed`: `x [count, block]` and `y [count, block]` (classes).
pub fn fixed_windows(tokens: &[u32], block: usize, count: usize, seed: u64) -> Result<(Tensor, Tensor)> {
    let mut rng = Rng::seed_from_u64(seed);
    let (mut x, mut y) = (Vec::with_capacity(count * block), Vec::with_capacity(count * block));
    for _ in 0..count {
        let o = draw_offset(&mut rng, tokens.len(), block);
        x.extend(tokens[o..o + block].iter().map(|&t| t as f32));
        y.extend_from_slice(&tokens[o + 1..o + block + 1]);
    }
    Ok((Tensor::new(x, &[count, block])?, Tensor::from_classes(y, &[count, block])?))
}

/// Every whole window of `block` ids that tiles `tokens` from the start (no overlap)
/// and their next-id targets: how a text file given to `descent evaluate` is scored.
pub fn tiling_windows(tokens: &[u32], block: usize) -> Result<(Tensor, Tensor)> {
    let count = tokens.len().saturating_sub(1) / block.max(1);
    if count == 0 {
        return Err(Error::Config(format!("{} tokens make no window of {block} (and its next token)", tokens.len())));
    }
    let x: Vec<f32> = tokens[..count * block].iter().map(|&t| t as f32).collect();
    let y = tokens[1..count * block + 1].to_vec();
    Ok((Tensor::new(x, &[count, block])?, Tensor::from_classes(y, &[count, block])?))
}

/// Training windows at random offsets, `samples` per epoch.
pub struct TextWindows {
    tokens: Arc<Vec<u32>>,
    block: usize,
    samples: usize,
    /// Windows over all epochs (the last epoch stops early when reached).
    total: usize,
    seed: u64,
    rng: Rng,
    left: usize,
    name: String,
}

impl TextWindows {
    pub fn new(tokens: Arc<Vec<u32>>, block: usize, samples_per_epoch: usize, seed: u64, name: impl Into<String>) -> Result<TextWindows> {
        if tokens.len() < block + 1 || block == 0 {
            return Err(Error::data(name.into(), format!("{} tokens: windows of {block} need at least {}", tokens.len(), block + 1)));
        }
        Ok(TextWindows { tokens, block, samples: samples_per_epoch, total: usize::MAX, seed, rng: Rng::seed_from_u64(seed), left: 0, name: name.into() })
    }
    /// Stops after `total` windows in all (a step budget: `max_steps · batch`).
    pub fn limit_total(mut self, total: usize) -> Self {
        self.total = total;
        self
    }
}

impl BatchStream for TextWindows {
    fn len(&self) -> usize {
        self.samples
    }
    fn features(&self) -> usize {
        self.block
    }
    fn target_cols(&self) -> usize {
        self.block
    }
    fn name(&self) -> String {
        self.name.clone()
    }
    fn begin_epoch(&mut self, epoch: u64) -> Result<()> {
        self.rng = crate::rng::derive(self.seed, epoch);
        let done = (epoch as usize).saturating_mul(self.samples);
        self.left = self.samples.min(self.total.saturating_sub(done));
        Ok(())
    }
    fn next_batch(&mut self, batch: usize, x: &mut Vec<f32>, y: &mut Vec<f32>) -> Result<usize> {
        let n = batch.min(self.left);
        x.clear();
        y.clear();
        for _ in 0..n {
            let o = draw_offset(&mut self.rng, self.tokens.len(), self.block);
            x.extend(self.tokens[o..o + self.block].iter().map(|&t| t as f32));
            y.extend(self.tokens[o + 1..o + self.block + 1].iter().map(|&t| t as f32));
        }
        self.left -= n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_tokenizer_round_trips_and_names_unknown_characters() {
        let t = Tokenizer::chars_of("hello, world");
        assert_eq!(t.vocab_size(), 9);
        let ids = t.encode("world, hello").unwrap();
        assert_eq!(t.decode(&ids).unwrap(), "world, hello");
        let e = t.encode("hellö").unwrap_err().to_string();
        assert!(e.contains("'ö'") && e.contains("position 4"), "{e}");
    }

    /// GPT-2's ids for a known string (as tiktoken's and Hugging Face's GPT-2 tokenizers
    /// give them): "Hello world" is [15496, 995].
    #[cfg(feature = "gpt2")]
    #[test]
    fn gpt2_bpe_gives_gpt2_ids_and_round_trips() {
        let t = Tokenizer::Gpt2;
        assert_eq!(t.vocab_size(), 50_257);
        assert_eq!(t.encode("Hello world").unwrap(), vec![15496, 995]);
        let text = "ROMEO:\nBut soft, what light through yonder window breaks? — naïve café";
        assert_eq!(t.decode(&t.encode(text).unwrap()).unwrap(), text);
    }

    #[test]
    fn windows_are_next_token_pairs_and_reproducible() {
        let tokens: Arc<Vec<u32>> = Arc::new((0..100).collect());
        let mut s = TextWindows::new(tokens.clone(), 8, 20, 3, "t").unwrap();
        let (mut x, mut y) = (Vec::new(), Vec::new());
        s.begin_epoch(0).unwrap();
        assert_eq!(s.next_batch(12, &mut x, &mut y).unwrap(), 12);
        for (xr, yr) in x.chunks(8).zip(y.chunks(8)) {
            for k in 0..8 {
                assert_eq!(yr[k], xr[k] + 1.0);
                if k > 0 {
                    assert_eq!(xr[k], xr[k - 1] + 1.0);
                }
            }
        }
        assert_eq!(s.next_batch(12, &mut x, &mut y).unwrap(), 8);
        let first = x.clone();
        assert_eq!(s.next_batch(12, &mut x, &mut y).unwrap(), 0);
        s.begin_epoch(0).unwrap();
        s.next_batch(12, &mut x, &mut y).unwrap();
        s.next_batch(12, &mut x, &mut y).unwrap();
        assert_eq!(x, first);
        let (vx, vy) = fixed_windows(&tokens, 8, 5, 1).unwrap();
        assert_eq!(vx.dims(), &[5, 8]);
        assert_eq!(vy.classes().unwrap()[0] as f32, vx.data()[0] + 1.0);
    }
}
