//! The one random-number generator type used everywhere, so a seed fixes a whole run.

use rand::SeedableRng;

/// PCG-64 (permuted congruential generator): small state, fast, statistically strong.
pub type Rng = rand_pcg::Pcg64;

pub fn seeded(seed: u64) -> Rng {
    Rng::seed_from_u64(seed)
}

/// A deterministic value in [−1, 1) from two indices (a mixing hash, no generator state):
/// for synthetic data too large to hold, which a writer and a checker must agree on
/// cell by cell in any order.
pub fn hash_uniform(row: usize, col: usize) -> f32 {
    let mut h = (row as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (col as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    h ^= h >> 29;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 32;
    (h >> 40) as f32 / (1u64 << 23) as f32 - 1.0
}

/// Derives an independent stream for a sub-task (initialization, shuffling, splits).
pub fn derive(seed: u64, stream: u64) -> Rng {
    seeded(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}
