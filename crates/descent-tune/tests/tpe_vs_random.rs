//! TPE must beat random search on the synthetic objective of the example, with the same
//! budget and seeds (the README quotes the example's full 10-seed table).

#[allow(dead_code)]
#[path = "../examples/tpe_vs_random.rs"]
mod example;

use descent_tune::{RandomSampler, TpeSampler};

#[test]
fn tpe_beats_random_search_over_seeds() {
    let dir = std::env::temp_dir().join(format!("descent-tpe-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut random, mut tpe, mut wins) = (0.0, 0.0, 0);
    let seeds = 1..=6;
    let n = seeds.clone().count() as f64;
    for seed in seeds {
        let r = example::best_of(Box::new(RandomSampler), seed, 60, &dir);
        let t = example::best_of(Box::new(TpeSampler::default()), seed, 60, &dir);
        wins += usize::from(t < r);
        random += r / n;
        tpe += t / n;
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(tpe < 0.7 * random, "mean best: TPE {tpe:.4} vs random {random:.4}");
    assert!(wins >= 4, "TPE better on only {wins} of 6 seeds");
}
