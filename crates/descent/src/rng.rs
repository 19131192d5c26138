//! The one random-number generator type used everywhere, so a seed fixes a whole run.

use rand::SeedableRng;

/// PCG-64 (permuted congruential generator): small state, fast, statistically strong.
pub type Rng = rand_pcg::Pcg64;

pub fn seeded(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// Derives an independent stream for a sub-task (initialization, shuffling, splits).
pub fn derive(seed: u64, stream: u64) -> Rng {
    seeded(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
