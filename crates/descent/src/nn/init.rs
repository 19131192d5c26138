//! Weight initializers with Keras's names and formulas.

use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// Keras's initializers. In configs: `"he_normal"`, or `{ constant = 0.1 }`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Initializer {
    /// U(−l, l), l = √(6 / (fan_in + fan_out)) — Keras's default for kernels.
    #[default]
    GlorotUniform,
    /// Truncated N(0, σ²), σ = √(2 / (fan_in + fan_out)) / 0.8796…
    GlorotNormal,
    /// U(−l, l), l = √(6 / fan_in)
    HeUniform,
    /// Truncated N(0, σ²), σ = √(2 / fan_in) / 0.8796…
    HeNormal,
    /// U(−l, l), l = √(3 / fan_in)
    LecunUniform,
    /// Truncated N(0, σ²), σ = √(1 / fan_in) / 0.8796…
    LecunNormal,
    Zeros,
    Ones,
    Constant(f32),
    /// U(−0.05, 0.05): Keras's `"uniform"` (RandomUniform's defaults), Embedding's default.
    Uniform,
    /// N(0, 0.05²): Keras's `"normal"` (RandomNormal's defaults).
    Normal,
    /// U(minval, maxval), e.g. `{ random_uniform = { minval = -0.1, maxval = 0.1 } }`.
    RandomUniform {
        #[serde(default = "minus_005")]
        minval: f32,
        #[serde(default = "plus_005")]
        maxval: f32,
    },
    /// N(mean, stddev²), e.g. `{ random_normal = { stddev = 0.02 } }` (GPT-2's weights).
    RandomNormal {
        #[serde(default)]
        mean: f32,
        #[serde(default = "plus_005")]
        stddev: f32,
    },
}

fn minus_005() -> f32 {
    -0.05
}
fn plus_005() -> f32 {
    0.05
}

/// Standard deviation of a standard normal truncated to [−2, 2]; Keras divides by it so
/// the truncated distribution keeps the intended variance.
const TRUNC_STD: f64 = 0.879_625_661_034_239_8;

impl Initializer {
    /// Fills `out` for a tensor with the given fan-in and fan-out.
    pub fn fill(&self, out: &mut [f32], fan_in: usize, fan_out: usize, rng: &mut Rng) {
        let (fi, fo) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        match *self {
            Initializer::GlorotUniform => uniform(out, (6.0 / (fi + fo)).sqrt(), rng),
            Initializer::HeUniform => uniform(out, (6.0 / fi).sqrt(), rng),
            Initializer::LecunUniform => uniform(out, (3.0 / fi).sqrt(), rng),
            Initializer::GlorotNormal => truncated_normal(out, (2.0 / (fi + fo)).sqrt() / TRUNC_STD, rng),
            Initializer::HeNormal => truncated_normal(out, (2.0 / fi).sqrt() / TRUNC_STD, rng),
            Initializer::LecunNormal => truncated_normal(out, (1.0 / fi).sqrt() / TRUNC_STD, rng),
            Initializer::Zeros => out.fill(0.0),
            Initializer::Ones => out.fill(1.0),
            Initializer::Constant(c) => out.fill(c),
            Initializer::Uniform => uniform(out, 0.05, rng),
            Initializer::Normal => normal(out, 0.0, 0.05, rng),
            Initializer::RandomUniform { minval, maxval } => {
                let (lo, hi) = (minval as f64, maxval as f64);
                uniform(out, (hi - lo) / 2.0, rng);
                out.iter_mut().for_each(|v| *v = (*v as f64 + (hi + lo) / 2.0) as f32);
            }
            Initializer::RandomNormal { mean, stddev } => normal(out, mean as f64, stddev as f64, rng),
        }
    }

    /// The initializer's numbers that must be finite and ordered (for config checks).
    pub fn check(&self, what: &str) -> crate::error::Result<()> {
        let bad = match *self {
            Initializer::Constant(c) => !c.is_finite(),
            Initializer::RandomUniform { minval, maxval } => !(minval.is_finite() && maxval.is_finite() && minval < maxval),
            Initializer::RandomNormal { mean, stddev } => !(mean.is_finite() && stddev.is_finite() && stddev >= 0.0),
            _ => false,
        };
        if bad {
            return Err(crate::error::Error::Config(format!("{what}: {self:?} needs finite values (minval < maxval, stddev ≥ 0)")));
        }
        Ok(())
    }
}

/// N(mean, std²).
fn normal(out: &mut [f32], mean: f64, std: f64, rng: &mut Rng) {
    for v in out {
        let z: f64 = StandardNormal.sample(rng);
        *v = (mean + z * std) as f32;
    }
}

/// U(−limit, limit): exactly the values of `rng.random_range(-limit..limit)` drawn in
/// turn (rand 0.9 turns one u64 into one f64 in [1, 2), then `(x − 1)·(high − low) + low`),
/// but large tensors are filled in parallel pieces: PCG can jump ahead, so each piece
/// starts where the sequential stream would be. A W2-sized model is built in half the time.
fn uniform(out: &mut [f32], limit: f64, rng: &mut Rng) {
    use rand::RngCore as _;
    use rayon::prelude::*;
    const PIECE: usize = 1 << 16;
    let (low, scale) = (-limit, limit - -limit);
    let draw = |out: &mut [f32], rng: &mut Rng| {
        for v in out {
            let one_two = f64::from_bits((rng.next_u64() >> 12) | 1f64.to_bits());
            *v = ((one_two - 1.0) * scale + low) as f32;
        }
    };
    if out.len() < 2 * PIECE || rayon::current_num_threads() == 1 {
        return draw(out, rng);
    }
    out.par_chunks_mut(PIECE).enumerate().for_each(|(i, piece)| {
        let mut at = rng.clone();
        at.advance((i * PIECE) as u128);
        draw(piece, &mut at);
    });
    rng.advance(out.len() as u128);
}

/// N(0, σ²) resampled until within 2σ.
fn truncated_normal(out: &mut [f32], std: f64, rng: &mut Rng) {
    for v in out {
        let z = loop {
            let z: f64 = StandardNormal.sample(rng);
            if z.abs() <= 2.0 {
                break z;
            }
        };
        *v = (z * std) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;
    use rand::Rng as _;

    fn moments(init: Initializer, fan_in: usize, fan_out: usize) -> (f64, f64, f64) {
        let mut v = vec![0.0f32; 200_000];
        init.fill(&mut v, fan_in, fan_out, &mut seeded(1));
        let n = v.len() as f64;
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
        let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n;
        let max = v.iter().fold(0.0f64, |m, x| m.max(x.abs() as f64));
        (mean, var, max)
    }

    #[test]
    fn variances_follow_keras_formulas() {
        // Every variance-scaling initializer targets Var = scale / fan with these fans.
        let (fi, fo) = (100, 64);
        let cases = [
            (Initializer::GlorotUniform, 2.0 / (fi + fo) as f64),
            (Initializer::GlorotNormal, 2.0 / (fi + fo) as f64),
            (Initializer::HeUniform, 2.0 / fi as f64),
            (Initializer::HeNormal, 2.0 / fi as f64),
            (Initializer::LecunUniform, 1.0 / fi as f64),
            (Initializer::LecunNormal, 1.0 / fi as f64),
        ];
        for (init, want) in cases {
            let (mean, var, _) = moments(init, fi, fo);
            assert!(mean.abs() < 0.01 * want.sqrt() * 10.0, "{init:?} mean {mean}");
            assert!((var / want - 1.0).abs() < 0.02, "{init:?} variance {var} vs {want}");
        }
        let (_, _, max) = moments(Initializer::GlorotUniform, fi, fo);
        assert!(max <= (6.0 / (fi + fo) as f64).sqrt());
        let (_, _, max) = moments(Initializer::HeNormal, fi, fo);
        assert!(max <= 2.0 * (2.0 / fi as f64).sqrt() / TRUNC_STD + 1e-6);
    }

    #[test]
    fn parallel_uniform_draws_the_sequential_stream() {
        for len in [1000, 300_001] {
            let (mut fast, mut slow) = (seeded(7), seeded(7));
            let mut got = vec![0.0f32; len];
            uniform(&mut got, 0.3, &mut fast);
            let want: Vec<f32> = (0..len).map(|_| slow.random_range(-0.3..0.3) as f32).collect();
            assert_eq!(got, want, "len {len}");
            assert_eq!(fast.random::<u64>(), slow.random::<u64>(), "the stream continues in step");
        }
    }

    #[test]
    fn constants() {
        let mut v = [9.0f32; 4];
        Initializer::Zeros.fill(&mut v, 1, 1, &mut seeded(0));
        assert_eq!(v, [0.0; 4]);
        Initializer::Constant(0.5).fill(&mut v, 1, 1, &mut seeded(0));
        assert_eq!(v, [0.5; 4]);
        let parsed: Initializer = toml::from_str::<std::collections::HashMap<String, Initializer>>("i = { constant = 0.25 }").unwrap()["i"];
        assert_eq!(parsed, Initializer::Constant(0.25));
    }
}
