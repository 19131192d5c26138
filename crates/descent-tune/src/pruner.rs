//! Pruners stop unpromising trials from their intermediate values (one per epoch, or
//! per fold-epoch under cross-validation). Both read only the stored trials, so they
//! work the same across parallel workers and after a resume.

use crate::trial::{Direction, TrialRecord, TrialState};

pub trait Pruner: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether `trial`, which just reported its value at `step`, should stop. `others`
    /// are the study's other trials (any state).
    fn should_prune(&self, trial: &TrialRecord, step: u64, others: &[TrialRecord], direction: Direction) -> bool;
}

/// Never prunes.
#[derive(Clone, Debug, Default)]
pub struct NoPruner;

impl Pruner for NoPruner {
    fn name(&self) -> &'static str {
        "none"
    }
    fn should_prune(&self, _: &TrialRecord, _: u64, _: &[TrialRecord], _: Direction) -> bool {
        false
    }
}

/// Prunes a trial whose best value so far is worse than the median of the completed
/// trials' values at the same step.
#[derive(Clone, Debug)]
pub struct MedianPruner {
    /// Completed trials needed before anything is pruned.
    pub n_startup_trials: usize,
    /// Steps every trial runs before it can be pruned.
    pub n_warmup_steps: u64,
}

impl Default for MedianPruner {
    fn default() -> Self {
        MedianPruner { n_startup_trials: 5, n_warmup_steps: 0 }
    }
}

impl Pruner for MedianPruner {
    fn name(&self) -> &'static str {
        "median"
    }
    // Written as a negated comparison on purpose: NaN on either side counts as worse.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    fn should_prune(&self, trial: &TrialRecord, step: u64, others: &[TrialRecord], direction: Direction) -> bool {
        if step < self.n_warmup_steps {
            return false;
        }
        let completed: Vec<&TrialRecord> =
            others.iter().filter(|t| t.state == TrialState::Complete && t.number != trial.number).collect();
        if completed.len() < self.n_startup_trials {
            return false;
        }
        let mut at_step: Vec<f64> =
            completed.iter().filter_map(|t| t.at_step(step)).filter(|v| v.is_finite()).map(|v| direction.as_loss(v)).collect();
        if at_step.is_empty() {
            return false;
        }
        at_step.sort_by(f64::total_cmp);
        let n = at_step.len();
        let median = if n % 2 == 1 { at_step[n / 2] } else { 0.5 * (at_step[n / 2 - 1] + at_step[n / 2]) };
        let best_so_far = trial
            .intermediate
            .iter()
            .filter(|(s, _)| *s <= step)
            .map(|(_, v)| direction.as_loss(*v))
            .fold(f64::INFINITY, |a, b| if b.is_nan() { a } else { a.min(b) });
        // A NaN/inf trial is worse than any median.
        !(best_so_far <= median)
    }
}

/// Asynchronous successive halving (Li et al., "A System for Massively Parallel
/// Hyperparameter Tuning", MLSys 2020). Rung k sits at step `min_resource · η^(k + s)`;
/// a trial reaching a rung continues only if its value there is within the best 1/η of
/// all values recorded at that rung so far (itself included), so no trial ever waits
/// for others.
#[derive(Clone, Debug)]
pub struct SuccessiveHalvingPruner {
    pub min_resource: u64,
    pub reduction_factor: u64,
    /// s: how many of the lowest rungs to skip (Hyperband's brackets differ in it).
    pub min_early_stopping_rate: u32,
}

impl Default for SuccessiveHalvingPruner {
    fn default() -> Self {
        SuccessiveHalvingPruner { min_resource: 1, reduction_factor: 3, min_early_stopping_rate: 0 }
    }
}

impl SuccessiveHalvingPruner {
    /// The first rung's step, min_resource · η^s, or `None` where it overflows.
    pub fn first_rung(&self) -> Option<u64> {
        self.reduction_factor.max(2).checked_pow(self.min_early_stopping_rate)?.checked_mul(self.min_resource.max(1))
    }

    /// Whether `step` is a rung, for this bracket. Checked arithmetic: with budgets from
    /// a file, a wrapped product would loop forever.
    fn is_rung(&self, step: u64) -> bool {
        let Some(mut r) = self.first_rung() else { return false };
        while r < step {
            match r.checked_mul(self.reduction_factor.max(2)) {
                Some(next) => r = next,
                None => return false,
            }
        }
        r == step
    }

    fn decide<'a>(&self, trial: &TrialRecord, step: u64, competitors: impl Iterator<Item = &'a TrialRecord>, direction: Direction) -> bool {
        if !self.is_rung(step) {
            return false;
        }
        let Some(mine) = trial.at_step(step) else { return false };
        if !mine.is_finite() {
            return true;
        }
        let mut values: Vec<f64> = competitors
            .filter(|t| t.number != trial.number)
            .filter_map(|t| t.at_step(step))
            .filter(|v| v.is_finite())
            .map(|v| direction.as_loss(v))
            .collect();
        values.push(direction.as_loss(mine));
        values.sort_by(f64::total_cmp);
        let keep = (values.len() as u64 / self.reduction_factor.max(2)).max(1) as usize;
        direction.as_loss(mine) > values[keep - 1]
    }
}

impl Pruner for SuccessiveHalvingPruner {
    fn name(&self) -> &'static str {
        "successive_halving"
    }
    fn should_prune(&self, trial: &TrialRecord, step: u64, others: &[TrialRecord], direction: Direction) -> bool {
        self.decide(trial, step, others.iter(), direction)
    }
}

/// Hyperband (Li et al., JMLR 2018) over asynchronous successive halving: brackets
/// s = 0 … ⌊log_η(max/min)⌋ trade many short trials against few long ones. Trial `n` runs in
/// bracket `n mod brackets` and competes only with trials of its bracket.
#[derive(Clone, Debug)]
pub struct HyperbandPruner {
    pub min_resource: u64,
    pub max_resource: u64,
    pub reduction_factor: u64,
}

impl HyperbandPruner {
    pub fn brackets(&self) -> u32 {
        let (mut r, mut n) = (self.min_resource.max(1), 1);
        while let Some(next) = r.checked_mul(self.reduction_factor.max(2)).filter(|&next| next <= self.max_resource) {
            r = next;
            n += 1;
        }
        n
    }
    fn bracket(&self, number: u64) -> u32 {
        (number % self.brackets() as u64) as u32
    }
}

impl Pruner for HyperbandPruner {
    fn name(&self) -> &'static str {
        "hyperband"
    }
    fn should_prune(&self, trial: &TrialRecord, step: u64, others: &[TrialRecord], direction: Direction) -> bool {
        let b = self.bracket(trial.number);
        let sh = SuccessiveHalvingPruner {
            min_resource: self.min_resource,
            reduction_factor: self.reduction_factor,
            min_early_stopping_rate: b,
        };
        sh.decide(trial, step, others.iter().filter(|t| self.bracket(t.number) == b), direction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Params;

    /// A trial whose curve is `values[i]` at step i + 1.
    fn curve(number: u64, state: TrialState, values: &[f64]) -> TrialRecord {
        TrialRecord {
            number,
            state,
            params: Params::new(),
            value: values.last().copied(),
            scores: serde_json::Value::Null,
            intermediate: values.iter().enumerate().map(|(i, v)| (i as u64 + 1, *v)).collect(),
            attempts: 1,
            seconds: None,
            message: None,
        }
    }

    #[test]
    fn median_prunes_below_median_curves_only() {
        // Five finished accuracy curves; medians at steps 1..3 are 0.5, 0.6, 0.7.
        let done: Vec<TrialRecord> = (0..5)
            .map(|i| curve(i, TrialState::Complete, &[0.3 + 0.1 * i as f64, 0.4 + 0.1 * i as f64, 0.5 + 0.1 * i as f64]))
            .collect();
        let p = MedianPruner::default();
        let bad = curve(9, TrialState::Running, &[0.45]);
        assert!(p.should_prune(&bad, 1, &done, Direction::Maximize));
        let good = curve(9, TrialState::Running, &[0.55, 0.65]);
        assert!(!p.should_prune(&good, 2, &done, Direction::Maximize));
        // Its best so far counts: dipping below the median at step 2 after a strong step 1 survives.
        let dip = curve(9, TrialState::Running, &[0.7, 0.5]);
        assert!(!p.should_prune(&dip, 2, &done, Direction::Maximize));
        // For a loss (minimize) the same values mean the opposite.
        assert!(!p.should_prune(&bad, 1, &done, Direction::Minimize));
        // NaN is always pruned once startup is over; never before it.
        assert!(p.should_prune(&curve(9, TrialState::Running, &[f64::NAN]), 1, &done, Direction::Maximize));
        assert!(!p.should_prune(&bad, 1, &done[..4], Direction::Maximize));
        assert!(!MedianPruner { n_warmup_steps: 2, ..Default::default() }.should_prune(&bad, 1, &done, Direction::Maximize));
    }

    #[test]
    fn successive_halving_keeps_the_top_third_at_each_rung() {
        let p = SuccessiveHalvingPruner { min_resource: 1, reduction_factor: 3, min_early_stopping_rate: 0 };
        // Rungs at steps 1, 3, 9.
        assert!(p.is_rung(1) && p.is_rung(3) && p.is_rung(9) && !p.is_rung(2) && !p.is_rung(4));
        let others: Vec<TrialRecord> =
            [0.9, 0.8, 0.7, 0.6, 0.5].iter().enumerate().map(|(i, v)| curve(i as u64, TrialState::Complete, &[*v, *v, *v])).collect();
        // With 6 values at rung 1 the best 2 continue: 0.85 (second) does, 0.75 (third) not.
        assert!(!p.should_prune(&curve(7, TrialState::Running, &[0.85]), 1, &others, Direction::Maximize));
        assert!(p.should_prune(&curve(7, TrialState::Running, &[0.75]), 1, &others, Direction::Maximize));
        // Not at a rung: never pruned, however bad.
        assert!(!p.should_prune(&curve(7, TrialState::Running, &[0.95, 0.0]), 2, &others, Direction::Maximize));
        // The first trial at a rung always continues (asynchronous: nobody to wait for).
        assert!(!p.should_prune(&curve(7, TrialState::Running, &[0.1]), 1, &[], Direction::Maximize));
    }

    #[test]
    fn hyperband_brackets_compete_separately() {
        let p = HyperbandPruner { min_resource: 1, max_resource: 9, reduction_factor: 3 };
        assert_eq!(p.brackets(), 3);
        // Trial 3 is in bracket 0 (rungs 1, 3, 9) with trial 0 only; trial 4 in bracket 1
        // (rungs 3, 9), where step 1 is no rung.
        let others = vec![curve(0, TrialState::Complete, &[0.9, 0.9, 0.9]), curve(1, TrialState::Complete, &[0.9, 0.9, 0.9])];
        assert!(p.should_prune(&curve(3, TrialState::Running, &[0.2]), 1, &others, Direction::Maximize));
        assert!(!p.should_prune(&curve(4, TrialState::Running, &[0.2]), 1, &others, Direction::Maximize));
        assert!(!p.should_prune(&curve(4, TrialState::Running, &[0.2, 0.2, 0.95]), 3, &others, Direction::Maximize));
        assert!(p.should_prune(&curve(4, TrialState::Running, &[0.2, 0.2, 0.5]), 3, &others, Direction::Maximize));
    }

    #[test]
    fn huge_budgets_neither_wrap_nor_loop() {
        // Budgets from a file: a rung product past u64 used to wrap (to 0 with η = 2^32)
        // and spin forever; now it is no rung, and a bracket count stops at the range.
        let p = SuccessiveHalvingPruner { min_resource: 1 << 40, reduction_factor: 1 << 32, min_early_stopping_rate: 0 };
        assert!(!p.is_rung(u64::MAX) && p.is_rung(1 << 40));
        let p = SuccessiveHalvingPruner { min_resource: 3, reduction_factor: 3, min_early_stopping_rate: 60 };
        assert_eq!(p.first_rung(), None);
        assert!(!p.is_rung(5));
        let h = HyperbandPruner { min_resource: 1, max_resource: u64::MAX, reduction_factor: 3 };
        assert_eq!(h.brackets(), 41);
    }
}
