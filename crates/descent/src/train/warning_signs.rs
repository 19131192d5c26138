//! The signs of a run going wrong that can be seen while it trains — one definition,
//! used both by `fit`, which warns once when a sign first appears, and by the doctor,
//! which reads them from a finished run's telemetry.
//!
//! - **Loss spike**: a step's loss above 3× the median of the 20 steps before it and
//!   above the loss training started from, the median of its first 20 steps (a noisy
//!   but falling loss is not a spike; a loss back up above where it began is). One spike can be an unlucky batch; the second
//!   is the sign.
//! - **Overfitting**: the validation loss ≥ 10% above its best, ≥ 2 epochs after that
//!   best, while the training loss is below what it was then (the gap widening).

/// Steps before a spike can be judged: the window the median is taken over.
pub const SPIKE_WINDOW: usize = 20;
/// How far above the window's median a spike is.
pub const SPIKE_FACTOR: f64 = 3.0;
/// Spikes before a run is called unstable.
pub const SPIKES_TO_WARN: usize = 2;

/// Whether `loss` is a spike after the `before` losses (the last [`SPIKE_WINDOW`]
/// steps; non-finite ones are left out of the median), given the loss training started
/// from. Returns the median it was judged against when it is.
pub fn spike(before: &[f32], loss: f32, start: f64) -> Option<f64> {
    let loss = loss as f64;
    if before.len() < SPIKE_WINDOW || !loss.is_finite() || loss <= start {
        return None;
    }
    let median = window_median(&before[before.len() - SPIKE_WINDOW..])?;
    (loss > SPIKE_FACTOR * median).then_some(median)
}

/// The median of the finite values of `window` (at most [`SPIKE_WINDOW`] of them);
/// None when none is finite.
fn window_median(window: &[f32]) -> Option<f64> {
    let mut sorted = [0.0f64; SPIKE_WINDOW];
    let mut n = 0;
    for &l in window.iter().take(SPIKE_WINDOW).filter(|l| l.is_finite()) {
        sorted[n] = l as f64;
        n += 1;
    }
    let sorted = &mut sorted[..n];
    sorted.sort_by(f64::total_cmp);
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some(0.5 * (sorted[n / 2 - 1] + sorted[n / 2])),
    }
}

/// The loss training started from: the median of the first [`SPIKE_WINDOW`] steps'.
pub fn starting_loss(losses: &[f32]) -> f64 {
    window_median(&losses[..losses.len().min(SPIKE_WINDOW)]).unwrap_or(f64::NAN)
}

/// The steps of `losses` that are spikes.
pub fn spike_steps(losses: &[f32]) -> Vec<usize> {
    let start = starting_loss(losses);
    (SPIKE_WINDOW..losses.len()).filter(|&i| spike(&losses[..i], losses[i], start).is_some()).collect()
}

/// The model overfits by the end of `val` (validation losses per epoch; `train` the
/// training losses of the same epochs): `(best epoch, last epoch)` when the last
/// validation loss is ≥ 10% above its best, ≥ 2 epochs later, and the training loss
/// fell meanwhile. Needs finite validation losses.
pub fn overfitting(val: &[f64], train: &[f64]) -> Option<(usize, usize)> {
    if val.len() < 4 || train.len() < val.len() || !val.iter().all(|v| v.is_finite()) {
        return None;
    }
    let (best, best_val) = val.iter().copied().enumerate().min_by(|a, b| a.1.total_cmp(&b.1))?;
    let last = val.len() - 1;
    (last >= best + 2 && val[last] > 1.1 * best_val && train[last] < train[best]).then_some((best, last))
}

/// What `fit` watches as it trains, to warn once per sign. Holds the last
/// [`SPIKE_WINDOW`] step losses in a ring, so a step costs a sort of 20 numbers only
/// when its loss is above the starting loss, and allocates nothing.
pub(crate) struct LiveWarnings {
    ring: [f32; SPIKE_WINDOW],
    seen: usize,
    start: f64,
    spikes: usize,
    warned_spikes: bool,
    warned_overfit: bool,
}

impl LiveWarnings {
    pub fn new() -> Self {
        LiveWarnings { ring: [0.0; SPIKE_WINDOW], seen: 0, start: f64::NAN, spikes: 0, warned_spikes: false, warned_overfit: false }
    }

    /// The step's mean loss; the warning to print when this step makes the run's second
    /// spike (once per fit).
    pub fn step(&mut self, loss: f32, epoch: usize, step: usize) -> Option<String> {
        if self.seen == SPIKE_WINDOW {
            self.start = starting_loss(&self.ring);
        }
        let mut warning = None;
        if !self.warned_spikes && self.seen >= SPIKE_WINDOW {
            // The median of the last steps does not depend on their order: the ring as is.
            if let Some(median) = spike(&self.ring, loss, self.start) {
                self.spikes += 1;
                if self.spikes >= SPIKES_TO_WARN {
                    self.warned_spikes = true;
                    warning = Some(format!(
                        "warning: loss spike number {} at epoch {}, step {} (loss {loss:.4}, {:.1}× the median {median:.4} of the {SPIKE_WINDOW} steps before, above the starting {:.4}): training is unstable. Lower the learning rate, add warmup or clipping; `descent doctor` on the run folder gives the exact change",
                        self.spikes,
                        epoch + 1,
                        step + 1,
                        loss as f64 / median,
                        self.start
                    ));
                }
            }
        }
        self.ring[self.seen % SPIKE_WINDOW] = loss;
        self.seen += 1;
        warning
    }

    /// After an epoch, with the history so far: the warning to print when the model has
    /// just begun to overfit (once per fit; not after a spike warning: an unstable run's
    /// rising validation loss is its instability, as the doctor reads it too).
    pub fn epoch(&mut self, history: &super::History) -> Option<String> {
        if self.warned_overfit || self.warned_spikes {
            return None;
        }
        let (val, train) = (history.get("val_loss")?, history.get("loss")?);
        let (best, last) = overfitting(val, train)?;
        self.warned_overfit = true;
        Some(format!(
            "warning: the model overfits: val_loss was lowest at epoch {} ({:.4}) and is {:.4} (+{:.0}%) at epoch {}, while the training loss fell from {:.4} to {:.4}. Stop early with the best weights restored (an early_stopping callback, restore_best_weights = true), or regularize",
            best + 1,
            val[best],
            val[last],
            100.0 * (val[last] / val[best] - 1.0),
            last + 1,
            train[best],
            train[last]
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_is_judged_against_the_median_of_the_window_and_the_start() {
        let flat = [1.0f32; SPIKE_WINDOW];
        assert_eq!(spike(&flat, 3.5, 2.0), Some(1.0));
        assert_eq!(spike(&flat, 2.9, 2.0), None, "under 3× the median");
        assert_eq!(spike(&flat, 3.5, 4.0), None, "under the starting loss");
        assert_eq!(spike(&flat[1..], 3.5, 2.0), None, "too few steps to judge");
        assert_eq!(starting_loss(&[3.0, f32::NAN, 1.0, 2.0]), 2.0);
        let mut noisy = flat;
        noisy[3] = f32::NAN;
        noisy[4] = 100.0;
        assert_eq!(spike(&noisy, 3.5, 2.0), Some(1.0), "a non-finite loss is left out and one outlier moves no median");
    }

    #[test]
    fn the_live_watch_warns_once_at_the_second_spike_as_the_doctor_counts_them() {
        // Starting at 2, falling to 0.5, with spikes to 4 at steps 30, 45 and 60.
        let losses: Vec<f32> = (0..80).map(|i| if [30, 45, 60].contains(&i) { 4.0 } else { (2.0 - i as f32 * 0.05).max(0.5) }).collect();
        assert_eq!(spike_steps(&losses), vec![30, 45, 60]);
        let mut live = LiveWarnings::new();
        let warned: Vec<(usize, String)> = losses.iter().enumerate().filter_map(|(i, &l)| live.step(l, 0, i).map(|w| (i, w))).collect();
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert_eq!(warned[0].0, 45);
        assert!(warned[0].1.contains("loss spike number 2 at epoch 1, step 46 (loss 4.0000, 8.0× the median 0.5000"), "{}", warned[0].1);
    }

    #[test]
    fn overfitting_needs_a_rising_validation_loss_two_epochs_past_its_best_and_a_falling_training_loss() {
        let train = [1.0, 0.8, 0.6, 0.5, 0.4, 0.3];
        assert_eq!(overfitting(&[1.0, 0.9, 0.8, 0.85, 0.9, 0.95], &train), Some((2, 5)));
        assert_eq!(overfitting(&[1.0, 0.9, 0.8, 0.85, 0.86, 0.87], &train), None, "under 10% above the best");
        assert_eq!(overfitting(&[1.0, 0.9, 0.8, 0.85, 0.7, 0.95], &train), None, "the best is one epoch old");
        assert_eq!(overfitting(&[1.0, 0.9, 0.8, 0.85, 0.9, 0.95], &[1.0, 0.8, 0.6, 0.7, 0.7, 0.7]), None, "training loss did not fall");
        assert_eq!(overfitting(&[1.0, 0.8, f64::NAN, 0.9, 0.95], &train), None);

        let mut history = crate::train::History::default();
        let mut live = LiveWarnings::new();
        let mut warnings = Vec::new();
        for (e, (&v, &t)) in [1.0, 0.9, 0.8, 0.85, 0.9, 0.95].iter().zip(&train).enumerate() {
            let mut logs = crate::train::Logs::new();
            logs.set("loss", t);
            logs.set("val_loss", v);
            history.record(e, &logs);
            warnings.extend(live.epoch(&history).map(|w| (e, w)));
        }
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].0, 4, "at the first epoch the rule holds");
        assert!(warnings[0].1.contains("val_loss was lowest at epoch 3 (0.8000) and is 0.9000 (+12%) at epoch 5"), "{}", warnings[0].1);
    }
}
