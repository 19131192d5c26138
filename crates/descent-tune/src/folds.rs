//! Cross-validation folds: k-fold, stratified k-fold, repeated, shuffled with a seed.
//!
//! Fold sizes follow scikit-learn's rule: the first `n % k` folds get one extra sample.
//! Stratified folds deal each class's (shuffled) samples round-robin over the folds, so
//! every fold holds each class in the proportion of the whole set, ±1 sample.

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use descent::{rng, Error, Result};

/// How to cut a training set into folds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FoldSpec {
    /// Number of folds k (≥ 2).
    pub folds: usize,
    /// Keep each class's proportion in every fold (classification labels only).
    pub stratified: bool,
    /// Repeat the whole k-fold this many times with different shuffles.
    pub repeats: usize,
    /// Shuffle before cutting (always on when `repeats` > 1).
    pub shuffle: bool,
    pub seed: u64,
}

impl Default for FoldSpec {
    fn default() -> Self {
        FoldSpec { folds: 5, stratified: false, repeats: 1, shuffle: true, seed: descent::nn::DEFAULT_SEED }
    }
}

/// One split: indices into the training set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fold {
    /// Which repetition (0-based) and which fold within it.
    pub repeat: usize,
    pub index: usize,
    pub train: Vec<usize>,
    pub valid: Vec<usize>,
}

impl FoldSpec {
    /// The folds of `n` samples; `labels` (class index per sample) is required when
    /// stratified. Every sample is in exactly one validation set per repetition.
    pub fn split(&self, n: usize, labels: Option<&[usize]>) -> Result<Vec<Fold>> {
        if self.folds < 2 {
            return Err(Error::Config(format!("folds = {} must be at least 2", self.folds)));
        }
        if self.folds > n {
            return Err(Error::Config(format!("folds = {} is more than the {n} training samples", self.folds)));
        }
        if self.repeats == 0 {
            return Err(Error::Config("repeats must be at least 1".into()));
        }
        let mut out = Vec::with_capacity(self.folds * self.repeats);
        for repeat in 0..self.repeats {
            let mut rng = rng::derive(self.seed, 0xF01D + repeat as u64);
            let shuffle = self.shuffle || self.repeats > 1;
            let assignment = if self.stratified {
                let labels = labels.ok_or_else(|| Error::Config("stratified folds need class labels".into()))?;
                if labels.len() != n {
                    return Err(Error::Config(format!("{} labels for {n} samples", labels.len())));
                }
                stratified_assignment(labels, self.folds, shuffle, &mut rng)
            } else {
                plain_assignment(n, self.folds, shuffle, &mut rng)
            };
            for index in 0..self.folds {
                let (mut train, mut valid) = (Vec::new(), Vec::new());
                for (i, f) in assignment.iter().enumerate() {
                    if *f == index { valid.push(i) } else { train.push(i) }
                }
                out.push(Fold { repeat, index, train, valid });
            }
        }
        Ok(out)
    }
}

/// Fold of each sample: contiguous blocks of the (optionally shuffled) order.
fn plain_assignment(n: usize, k: usize, shuffle: bool, rng: &mut rng::Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if shuffle {
        order.shuffle(rng);
    }
    let mut fold_of = vec![0; n];
    let (base, extra) = (n / k, n % k);
    let mut pos = 0;
    for f in 0..k {
        let size = base + usize::from(f < extra);
        for &i in &order[pos..pos + size] {
            fold_of[i] = f;
        }
        pos += size;
    }
    fold_of
}

/// Fold of each sample: each class's samples dealt round-robin, continuing where the
/// previous class stopped so fold sizes stay within one of each other.
fn stratified_assignment(labels: &[usize], k: usize, shuffle: bool, rng: &mut rng::Rng) -> Vec<usize> {
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &c) in labels.iter().enumerate() {
        by_class[c].push(i);
    }
    let mut fold_of = vec![0; labels.len()];
    let mut next = 0;
    for members in &mut by_class {
        if shuffle {
            members.shuffle(rng);
        }
        for &i in members.iter() {
            fold_of[i] = next;
            next = (next + 1) % k;
        }
    }
    fold_of
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(folds: usize, stratified: bool) -> FoldSpec {
        FoldSpec { folds, stratified, ..Default::default() }
    }

    #[test]
    fn kfold_sizes_disjoint_and_covering() {
        let folds = spec(5, false).split(23, None).unwrap();
        let sizes: Vec<usize> = folds.iter().map(|f| f.valid.len()).collect();
        assert_eq!(sizes, vec![5, 5, 5, 4, 4]);
        let mut seen = vec![0; 23];
        for f in &folds {
            assert_eq!(f.train.len() + f.valid.len(), 23);
            for &i in &f.valid {
                seen[i] += 1;
                assert!(!f.train.contains(&i), "sample {i} in both train and valid");
            }
        }
        assert!(seen.iter().all(|&c| c == 1), "every sample validated exactly once: {seen:?}");
    }

    #[test]
    fn unshuffled_folds_are_contiguous_blocks() {
        let s = FoldSpec { shuffle: false, ..spec(3, false) };
        let folds = s.split(7, None).unwrap();
        assert_eq!(folds[0].valid, vec![0, 1, 2]);
        assert_eq!(folds[1].valid, vec![3, 4]);
        assert_eq!(folds[2].valid, vec![5, 6]);
    }

    #[test]
    fn deterministic_per_seed_and_different_across_seeds() {
        let a = spec(4, false).split(40, None).unwrap();
        let b = spec(4, false).split(40, None).unwrap();
        let c = FoldSpec { seed: 7, ..spec(4, false) }.split(40, None).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn stratified_keeps_class_proportions() {
        // 60 of class 0, 30 of class 1, 10 of class 2 → each of 5 folds: 12, 6, 2.
        let labels: Vec<usize> = (0..100).map(|i| if i < 60 { 0 } else if i < 90 { 1 } else { 2 }).collect();
        let folds = spec(5, true).split(100, Some(&labels)).unwrap();
        for f in &folds {
            let count = |c| f.valid.iter().filter(|&&i| labels[i] == c).count();
            assert_eq!((count(0), count(1), count(2)), (12, 6, 2), "fold {}", f.index);
        }
        // Uneven classes: proportions within one sample, sizes within one of each other.
        let labels: Vec<usize> = (0..53).map(|i| (i * 7 % 3 == 0) as usize + (i % 11 == 0) as usize).collect();
        let folds = spec(4, true).split(53, Some(&labels)).unwrap();
        let sizes: Vec<usize> = folds.iter().map(|f| f.valid.len()).collect();
        assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
        for c in 0..3 {
            let total = labels.iter().filter(|&&l| l == c).count() as f64;
            for f in &folds {
                let got = f.valid.iter().filter(|&&i| labels[i] == c).count() as f64;
                assert!((got - total / 4.0).abs() <= 1.0, "class {c}: {got} of {total}");
            }
        }
    }

    #[test]
    fn repeats_reshuffle() {
        let s = FoldSpec { repeats: 3, ..spec(2, false) };
        let folds = s.split(20, None).unwrap();
        assert_eq!(folds.len(), 6);
        assert_ne!(folds[0].valid, folds[2].valid);
        assert_eq!((folds[4].repeat, folds[4].index), (2, 0));
    }

    #[test]
    fn bad_specs_are_errors() {
        assert!(spec(1, false).split(10, None).unwrap_err().to_string().contains("at least 2"));
        assert!(spec(11, false).split(10, None).unwrap_err().to_string().contains("more than the 10"));
        assert!(spec(2, true).split(10, None).unwrap_err().to_string().contains("labels"));
    }
}
