//! The learning-rate range test (Smith 2015; fastai's `lr_find`): train from the
//! experiment's initial weights for about 100 steps while the learning rate grows
//! exponentially from 1e-7 to 10, record the loss smoothed as fastai does (an EMA with
//! β = 0.98, debiased), stop once it exceeds 4× its best, and suggest a rate:
//!
//! - `valley`: the point 1/3 + 1/6 of the way into the longest run of decreasing loss
//!   (the longest decreasing subsequence found by dynamic programming) — fastai's default;
//! - `steep`: where the loss falls fastest per unit of log learning rate;
//! - `minimum`: the learning rate at the lowest loss, divided by 10.
//!
//! As in fastai, suggestions ignore the first tenth of the planned steps and the last
//! five recorded points (warm-up noise and the blow-up).

use super::Experiment;
use crate::error::{Error, Result};
use crate::rng;
use crate::tensor::Tensor;

/// The range test's settings (fastai's defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct LrFindOptions {
    pub start: f64,
    pub end: f64,
    pub steps: usize,
    /// EMA factor of the smoothed loss.
    pub beta: f64,
    /// Stop when the smoothed loss exceeds this multiple of its best.
    pub stop_factor: f64,
}

impl Default for LrFindOptions {
    fn default() -> Self {
        LrFindOptions { start: 1e-7, end: 10.0, steps: 100, beta: 0.98, stop_factor: 4.0 }
    }
}

/// What the range test recorded and suggests.
#[derive(Clone, Debug, PartialEq)]
pub struct LrFinding {
    /// The learning rate of each step taken.
    pub learning_rates: Vec<f64>,
    /// The smoothed loss after each step.
    pub losses: Vec<f64>,
    /// Whether the test stopped early because the loss blew up.
    pub stopped_early: bool,
    pub valley: f64,
    pub steep: f64,
    pub minimum: f64,
}

impl LrFinding {
    /// The suggestion as a TOML line for `[compile] optimizer`.
    pub fn toml_line(&self) -> String {
        format!("learning_rate = {}  # lr-find valley (steep {}, minimum/10 {})", round3(self.valley), round3(self.steep), round3(self.minimum))
    }

    /// An SVG chart: smoothed loss against the learning rate (log axis), the three
    /// suggestions marked.
    pub fn chart(&self, title: &str) -> String {
        let points: Vec<(f64, f64)> = self.learning_rates.iter().copied().zip(self.losses.iter().copied()).collect();
        let marks = [("valley", self.valley), ("steep", self.steep), ("minimum/10", self.minimum)];
        crate::io::chart::log_x_chart(title, "learning rate", "smoothed loss", &points, &marks)
    }
}

/// `x` to three significant digits (what a TOML line should show).
pub fn round3(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(2 - x.abs().log10().floor() as i32);
    let r = (x * scale).round() / scale;
    // Printing r may still show binary noise; parsing its 3-digit form removes it.
    format!("{r:.3e}").parse().unwrap_or(r)
}

impl Experiment {
    /// Runs the range test on the experiment's training data (in memory), from the
    /// initial weights the seed gives, over shuffled batches of `fit.batch_size`.
    pub fn lr_find(&self, options: &LrFindOptions) -> Result<LrFinding> {
        if !(options.start > 0.0 && options.end > options.start && options.steps >= 10) {
            return Err(Error::Config(format!("lr-find: need 0 < start < end and at least 10 steps (got {} → {}, {} steps)", options.start, options.end, options.steps)));
        }
        if matches!(self.data.source, super::DataSource::Text { .. } | super::DataSource::Npy { stream: true, .. }) {
            return Err(Error::Config("lr-find works on in-memory data (not text or streamed sources) today".into()));
        }
        let (mut train, _) = self.load_splits()?;
        let (mut model, _, _) = self.compiled_for(&mut train)?;
        let batch = self.fit.batch_size.clamp(1, train.len());
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut r = rng::derive(self.seed, 0x1F_F1D);
        let mut pos = order.len();
        let ratio = options.end / options.start;
        let (mut avg, mut best) = (0.0f64, f64::INFINITY);
        let (mut lrs, mut losses) = (Vec::new(), Vec::new());
        let mut stopped_early = false;
        for i in 0..options.steps {
            if pos + batch > order.len() {
                use rand::seq::SliceRandom;
                order.shuffle(&mut r);
                pos = 0;
            }
            let rows = &order[pos..pos + batch];
            pos += batch;
            let (xb, yb): (Tensor, Tensor) = (train.x.select_rows(rows), train.y.select_rows(rows));
            let lr = options.start * ratio.powf(i as f64 / (options.steps - 1) as f64);
            model.optimizer_mut().ok_or_else(|| Error::State("lr-find: model not compiled".into()))?.set_learning_rate(lr as f32);
            let loss = model.train_on_batch(&xb, &yb)? as f64;
            avg = options.beta * avg + (1.0 - options.beta) * loss;
            let smoothed = avg / (1.0 - options.beta.powi(i as i32 + 1));
            lrs.push(lr);
            losses.push(smoothed);
            if !smoothed.is_finite() || smoothed > options.stop_factor * best {
                stopped_early = true;
                break;
            }
            best = best.min(smoothed);
        }
        let (valley, steep, minimum) = suggestions(&lrs, &losses, options.steps)?;
        Ok(LrFinding { learning_rates: lrs, losses, stopped_early, valley, steep, minimum })
    }
}

/// fastai's three suggestions over the recorded points, skipping the first tenth of
/// the planned steps and the last five points.
pub fn suggestions(lrs: &[f64], losses: &[f64], planned: usize) -> Result<(f64, f64, f64)> {
    let (lo, hi) = (planned / 10, lrs.len().saturating_sub(5));
    if hi < lo + 3 {
        return Err(Error::State(format!(
            "lr-find: the loss blew up after {} steps, too early to suggest a rate (start lower than {:e})",
            lrs.len(),
            lrs.first().copied().unwrap_or(0.0)
        )));
    }
    let (lrs, losses) = (&lrs[lo..hi], &losses[lo..hi]);
    let n = losses.len();
    // Longest decreasing subsequence: lds[i] = length of the longest one ending at i.
    let mut lds = vec![1usize; n];
    let (mut start, mut end) = (0, 0);
    for i in 1..n {
        for j in 0..i {
            if losses[i] < losses[j] && lds[i] < lds[j] + 1 {
                lds[i] = lds[j] + 1;
            }
        }
        if lds[end] < lds[i] {
            end = i;
            start = end.saturating_sub(lds[end]);
        }
    }
    let section = (end - start) as f64 / 3.0;
    let valley = lrs[(start + section as usize + (section / 2.0) as usize).min(n - 1)];
    let mut steepest = (f64::INFINITY, 0);
    for i in 1..n {
        let slope = (losses[i] - losses[i - 1]) / (lrs[i].ln() - lrs[i - 1].ln());
        if slope < steepest.0 {
            steepest = (slope, i - 1);
        }
    }
    let steep = lrs[steepest.1];
    let argmin = losses.iter().enumerate().min_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
    Ok((valley, steep, lrs[argmin] / 10.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic curve whose shape fixes every suggestion: flat to step 20, a linear
    /// decrease to a minimum at step 60 with one steeper step (45 → 46), then a rise.
    #[test]
    fn suggestions_follow_fastai_definitions() {
        let planned = 100;
        let lrs: Vec<f64> = (0..planned).map(|i| 1e-7 * 1e8f64.powf(i as f64 / 99.0)).collect();
        let loss = |i: usize| match i {
            0..=19 => 2.0,
            20..=60 => 2.0 - 0.02 * (i as f64 - 20.0) - if i >= 46 { 0.3 } else { 0.0 },
            _ => 0.9 + (i as f64 - 60.0) * 0.05,
        };
        let losses: Vec<f64> = (0..planned).map(loss).collect();
        let (valley, steep, minimum) = suggestions(&lrs, &losses, planned).unwrap();
        let at = |lr: f64| lrs.iter().position(|l| (l / lr - 1.0).abs() < 1e-9).unwrap();
        // After skipping 10 points the longest decreasing run ends at step 60 with 41
        // points (one flat point, then 21..=60); fastai's start is end − length (step
        // 19), a third of the 41 steps is 13.67: valley = 19 + 13 + 6 = step 38.
        assert_eq!(at(valley), 38);
        assert_eq!(at(steep), 45);
        assert_eq!(at(minimum * 10.0), 60);
    }

    #[test]
    fn a_test_that_blows_up_at_once_says_so() {
        let lrs = [1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2];
        let losses = [1.0, 1.0, 1.0, 1.0, 9.0, 99.0];
        let e = suggestions(&lrs, &losses, 100).unwrap_err().to_string();
        assert!(e.contains("too early"), "{e}");
    }

    #[test]
    fn round3_keeps_three_digits() {
        assert_eq!(round3(0.0012345), 0.00123);
        assert_eq!(round3(3.14159), 3.14);
        assert_eq!(round3(1234.5), 1230.0);
    }
}
