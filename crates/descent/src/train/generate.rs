//! Sampling text from a trained language model: each new token is drawn from the
//! model's next-token distribution at the last position of the context (the last
//! `block_size` tokens), shaped by temperature, top-k and top-p (nucleus) filtering, with
//! a seeded generator: the same seed and prompt give the same tokens.
//!
//! While the context fits the model's window, each new token is one position of
//! incremental decoding: attention layers keep the keys and values of earlier positions
//! (a key/value cache) and only the new token goes through the network. Past the
//! window, learned absolute positions shift with every token, so the last `block_size`
//! tokens are recomputed for each new one (as nanoGPT crops). A model with a layer that
//! cannot decode position by position always recomputes the window.

use rand::{Rng as _, SeedableRng};

use super::Model;
use crate::autograd::Tape;
use crate::error::{Error, Result};
use crate::rng::Rng;

/// How tokens are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleOptions {
    pub max_tokens: usize,
    /// Divides the logits (0: always the most likely token).
    pub temperature: f32,
    /// Keep only the k most likely tokens.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probabilities sum to ≥ p.
    pub top_p: Option<f32>,
    pub seed: u64,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions { max_tokens: 500, temperature: 1.0, top_k: None, top_p: None, seed: 0 }
    }
}

impl SampleOptions {
    fn check(&self) -> Result<()> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(Error::Config(format!("generate: temperature {} must be a finite number ≥ 0", self.temperature)));
        }
        if self.top_k == Some(0) {
            return Err(Error::Config("generate: top_k must be at least 1".into()));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::Config(format!("generate: top_p {p} is outside (0, 1]")));
            }
        }
        Ok(())
    }
}

/// Picks a token from `logits` (overwritten with working values) by `opts`, using `order`
/// as scratch for the indices.
fn sample(logits: &mut [f32], order: &mut Vec<usize>, opts: &SampleOptions, rng: &mut Rng) -> u32 {
    if opts.temperature == 0.0 {
        return crate::tensor::kernels::reduce::argmax(logits) as u32;
    }
    let inv_t = 1.0 / opts.temperature;
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    // Probabilities (unnormalized), in f64 for the sums.
    let probs: Vec<f64> = logits.iter().map(|l| (((l - max) * inv_t) as f64).exp()).collect();
    order.clear();
    order.extend(0..logits.len());
    // Most likely first; ties by id, so the order is fixed.
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    let mut keep = opts.top_k.unwrap_or(order.len()).min(order.len());
    if let Some(p) = opts.top_p {
        let total: f64 = order[..keep].iter().map(|&i| probs[i]).sum();
        let mut acc = 0.0;
        for (n, &i) in order[..keep].iter().enumerate() {
            acc += probs[i];
            if acc >= p as f64 * total {
                keep = n + 1;
                break;
            }
        }
    }
    let total: f64 = order[..keep].iter().map(|&i| probs[i]).sum();
    let mut u = rng.random::<f64>() * total;
    for &i in &order[..keep] {
        u -= probs[i];
        if u <= 0.0 {
            return i as u32;
        }
    }
    order[keep - 1] as u32
}

impl Model {
    /// Continues `prompt` (token ids) by up to `opts.max_tokens` tokens, calling `on_token`
    /// with each as it is drawn (to stream it); returns the new tokens.
    pub fn generate(&mut self, prompt: &[u32], opts: &SampleOptions, mut on_token: impl FnMut(u32) -> Result<()>) -> Result<Vec<u32>> {
        opts.check()?;
        if !self.is_built() {
            return Err(Error::State("generate: the model has no weights yet (fit or load it first)".into()));
        }
        let block = match self.input_shape() {
            Some([t]) => *t,
            other => return Err(Error::shape("generate", "a language model taking windows [T] of token ids", format!("{other:?}"))),
        };
        let vocab = match self.output_shape_of(0) {
            [t, v] if *t == block => *v,
            other => return Err(Error::shape("generate", format!("next-token logits [{block}, vocabulary]"), format!("{other:?}"))),
        };
        if prompt.is_empty() {
            return Err(Error::Config("generate: the prompt has no tokens".into()));
        }
        if let Some(bad) = prompt.iter().find(|&&t| t as usize >= vocab) {
            return Err(Error::Config(format!("generate: prompt token {bad} is outside the model's vocabulary of {vocab}")));
        }
        let mut rng = Rng::seed_from_u64(opts.seed);
        let mut tokens: Vec<u32> = prompt.to_vec();
        let mut out = Vec::with_capacity(opts.max_tokens);
        let (mut logits, mut order) = (vec![0.0f32; vocab], Vec::with_capacity(vocab));
        let mut tape = Tape::new();
        let mut outputs = Vec::with_capacity(1);
        let net = &self.network;
        // Tokens already in the caches (None: recomputing the window).
        let mut cached = (net.decodes_incrementally() && tokens.len() <= block).then_some(0);
        let mut caches = Vec::new();
        for _ in 0..opts.max_tokens {
            if cached.is_some() && tokens.len() > block {
                cached = None;
            }
            let context = match cached {
                Some(done) => &tokens[done..],
                None => &tokens[tokens.len().saturating_sub(block)..],
            };
            let t = context.len();
            tape.no_grad(|tape| -> Result<()> {
                tape.reset();
                let x = tape.input_with(crate::tensor::Shape::new(&[1, t])?, |b| b.iter_mut().zip(context).for_each(|(v, id)| *v = *id as f32));
                let y = match cached {
                    Some(done) => net.forward_decode(tape, x, done, &mut caches)?,
                    None => {
                        net.forward_outputs(tape, &[x], false, &mut outputs)?;
                        outputs[0]
                    }
                };
                let y = tape.value(&net.store, y);
                logits.copy_from_slice(&y[(t - 1) * vocab..t * vocab]);
                Ok(())
            })?;
            if let Some(done) = &mut cached {
                *done = tokens.len();
            }
            let next = sample(&mut logits, &mut order, opts, &mut rng);
            tokens.push(next);
            out.push(next);
            on_token(next)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_respects_temperature_top_k_and_top_p() {
        let mut rng = Rng::seed_from_u64(1);
        let mut order = Vec::new();
        let logits = [1.0f32, 3.0, 2.0, 0.5];
        let greedy = SampleOptions { temperature: 0.0, ..Default::default() };
        assert_eq!(sample(&mut logits.clone(), &mut order, &greedy, &mut rng), 1);
        let top1 = SampleOptions { top_k: Some(1), ..Default::default() };
        assert!((0..50).all(|_| sample(&mut logits.clone(), &mut order, &top1, &mut rng) == 1));
        let top2 = SampleOptions { top_k: Some(2), ..Default::default() };
        assert!((0..200).all(|_| matches!(sample(&mut logits.clone(), &mut order, &top2, &mut rng), 1 | 2)));
        // p(1) = e³/(e³+e²+e+e^½) ≈ 0.64: top_p 0.5 keeps only it.
        let nucleus = SampleOptions { top_p: Some(0.5), ..Default::default() };
        assert!((0..50).all(|_| sample(&mut logits.clone(), &mut order, &nucleus, &mut rng) == 1));
        // At temperature 1 the frequencies follow the softmax.
        let n = 20_000;
        let hits = (0..n).filter(|_| sample(&mut logits.clone(), &mut order, &SampleOptions::default(), &mut rng) == 2).count() as f64 / n as f64;
        let z: f64 = logits.iter().map(|l| (*l as f64).exp()).sum();
        assert!((hits - 2f64.exp() / z).abs() < 0.015, "{hits}");
        assert!(SampleOptions { top_p: Some(0.0), ..Default::default() }.check().is_err());
        assert!(SampleOptions { temperature: f32::NAN, ..Default::default() }.check().is_err());
    }
}
