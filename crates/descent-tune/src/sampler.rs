//! Samplers choose each trial's hyperparameters: grid, random, and TPE (Bergstra et al.,
//! "Algorithms for Hyper-Parameter Optimization", NeurIPS 2011).
//!
//! Parameters are sampled one at a time as the objective asks for them
//! (define-by-run), each from the finished trials that used it, so conditional
//! parameters need nothing special. Grid search instead fixes a whole point per trial.

use rand::Rng as _;

use crate::space::{Distribution, ParamValue, Params, Space};
use crate::trial::{Direction, TrialRecord, TrialState};
use descent::rng::Rng;
use descent::{Error, Result};

/// What a sampler wants for the next trial.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Sample each parameter when the objective asks for it.
    Sample,
    /// Use exactly these values (a grid point).
    Fixed(Params),
    /// Nothing left to try (the grid is done).
    Exhausted,
}

pub trait Sampler: Send + Sync {
    fn name(&self) -> &'static str;
    /// Called when a trial is created; `history` holds every trial so far, running ones too.
    fn plan(&self, _history: &[TrialRecord]) -> Plan {
        Plan::Sample
    }
    /// One value for parameter `name`, given the trials so far.
    fn sample(&self, name: &str, dist: &Distribution, history: &[TrialRecord], direction: Direction, rng: &mut Rng) -> ParamValue;
}

/// Independent uniform draws (log-uniform for log distributions).
#[derive(Clone, Debug, Default)]
pub struct RandomSampler;

/// A uniform draw from a distribution, shared by every sampler's start-up phase.
pub fn sample_uniform(dist: &Distribution, rng: &mut Rng) -> ParamValue {
    match dist {
        Distribution::Categorical { choices } => choices[rng.random_range(0..choices.len())].clone(),
        d => {
            let (lo, hi) = d.internal_range().expect("numeric distribution");
            d.from_internal(rng.random_range(lo..hi))
        }
    }
}

impl Sampler for RandomSampler {
    fn name(&self) -> &'static str {
        "random"
    }
    fn sample(&self, _name: &str, dist: &Distribution, _h: &[TrialRecord], _d: Direction, rng: &mut Rng) -> ParamValue {
        sample_uniform(dist, rng)
    }
}

/// Every point of the space's grid once, in order; the study ends when all were tried.
#[derive(Clone, Debug)]
pub struct GridSampler {
    points: Vec<Params>,
}

impl GridSampler {
    pub fn new(space: &Space) -> Result<GridSampler> {
        let points = space.grid()?;
        if points.len() > 100_000 {
            return Err(Error::Config(format!("grid search: {} points is too many; narrow the grids", points.len())));
        }
        Ok(GridSampler { points })
    }
    pub fn len(&self) -> usize {
        self.points.len()
    }
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

impl Sampler for GridSampler {
    fn name(&self) -> &'static str {
        "grid"
    }
    fn plan(&self, history: &[TrialRecord]) -> Plan {
        // The first point no trial (finished, running or queued) has taken.
        match self.points.iter().find(|p| !history.iter().any(|t| &t.params == *p)) {
            Some(p) => Plan::Fixed(p.clone()),
            None => Plan::Exhausted,
        }
    }
    fn sample(&self, name: &str, dist: &Distribution, _h: &[TrialRecord], _d: Direction, rng: &mut Rng) -> ParamValue {
        // Only reached for a parameter outside the declared space (define-by-run use).
        let _ = name;
        sample_uniform(dist, rng)
    }
}

/// Tree-structured Parzen Estimator. Finished trials are split into the best
/// `γ`-fraction ("good", density l(x)) and the rest ("bad", g(x)); candidates are drawn
/// from l and the one maximizing l(x)/g(x) — which maximizes expected improvement
/// (Bergstra et al. 2011, §4) — is chosen. Pruned trials count as bad.
#[derive(Clone, Debug)]
pub struct TpeSampler {
    /// Random trials before TPE starts modelling.
    pub n_startup_trials: usize,
    /// Candidates drawn from l(x) per parameter.
    pub n_ei_candidates: usize,
    /// Fraction of finished trials that are "good" (at least 1, at most `max_good`).
    pub gamma: f64,
    pub max_good: usize,
    /// Weight of the prior component (a wide Gaussian / uniform counts) in each density.
    pub prior_weight: f64,
}

impl Default for TpeSampler {
    fn default() -> Self {
        TpeSampler { n_startup_trials: 10, n_ei_candidates: 24, gamma: 0.1, max_good: 25, prior_weight: 1.0 }
    }
}

impl Sampler for TpeSampler {
    fn name(&self) -> &'static str {
        "tpe"
    }
    fn sample(&self, name: &str, dist: &Distribution, history: &[TrialRecord], direction: Direction, rng: &mut Rng) -> ParamValue {
        // (internal value, loss) of complete trials that used this parameter.
        let mut done: Vec<(f64, f64)> = Vec::new();
        let mut pruned: Vec<f64> = Vec::new();
        for t in history {
            let Some(x) = t.params.get(name).and_then(|v| dist.to_internal(v)) else { continue };
            match (t.state, t.value) {
                (TrialState::Complete, Some(v)) if v.is_finite() => done.push((x, direction.as_loss(v))),
                (TrialState::Pruned, _) => pruned.push(x),
                _ => {}
            }
        }
        if done.len() < self.n_startup_trials.max(1) {
            return sample_uniform(dist, rng);
        }
        done.sort_by(|a, b| a.1.total_cmp(&b.1));
        let n_good = ((self.gamma * done.len() as f64).ceil() as usize).clamp(1, self.max_good);
        let good: Vec<f64> = done[..n_good].iter().map(|d| d.0).collect();
        let bad: Vec<f64> = done[n_good..].iter().map(|d| d.0).chain(pruned).collect();
        match dist {
            Distribution::Categorical { choices } => {
                let l = categorical_weights(&good, choices.len(), self.prior_weight);
                let g = categorical_weights(&bad, choices.len(), self.prior_weight);
                let best = (0..self.n_ei_candidates)
                    .map(|_| pick_weighted(&l, rng))
                    .max_by(|&a, &b| (l[a].ln() - g[a].ln()).total_cmp(&(l[b].ln() - g[b].ln())))
                    .expect("at least one candidate");
                choices[best].clone()
            }
            d => {
                let (lo, hi) = d.internal_range().expect("numeric distribution");
                let l = Parzen::new(&good, lo, hi, self.prior_weight);
                let g = Parzen::new(&bad, lo, hi, self.prior_weight);
                let best = (0..self.n_ei_candidates)
                    .map(|_| l.sample(rng))
                    .max_by(|&a, &b| (l.log_pdf(a) - g.log_pdf(a)).total_cmp(&(l.log_pdf(b) - g.log_pdf(b))))
                    .expect("at least one candidate");
                d.from_internal(best)
            }
        }
    }
}

/// Category probabilities: counts plus the prior weight spread evenly.
fn categorical_weights(obs: &[f64], k: usize, prior: f64) -> Vec<f64> {
    let mut w = vec![prior / k as f64; k];
    for &x in obs {
        w[x as usize] += 1.0;
    }
    let total: f64 = w.iter().sum();
    w.iter().map(|v| v / total).collect()
}

fn pick_weighted(w: &[f64], rng: &mut Rng) -> usize {
    let mut u = rng.random::<f64>() * w.iter().sum::<f64>();
    for (i, v) in w.iter().enumerate() {
        if u < *v {
            return i;
        }
        u -= v;
    }
    w.len() - 1
}

/// A mixture of Gaussians truncated to [lo, hi]: one per observation plus a wide prior
/// centred on the range. Each observation's width is the larger gap to its neighbours,
/// clipped to [range / min(100, n + 1), range] (the "magic clip" of Bergstra et al.).
struct Parzen {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    weights: Vec<f64>,
    lo: f64,
    hi: f64,
}

impl Parzen {
    fn new(obs: &[f64], lo: f64, hi: f64, prior_weight: f64) -> Parzen {
        let range = hi - lo;
        let prior_mu = 0.5 * (lo + hi);
        let mut mus: Vec<f64> = obs.to_vec();
        mus.push(prior_mu);
        let mut order: Vec<usize> = (0..mus.len()).collect();
        order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]));
        let min_sigma = range / (100.0f64).min(mus.len() as f64 + 1.0);
        let mut sigmas = vec![0.0; mus.len()];
        for (pos, &i) in order.iter().enumerate() {
            let left = if pos == 0 { lo } else { mus[order[pos - 1]] };
            let right = if pos + 1 == order.len() { hi } else { mus[order[pos + 1]] };
            sigmas[i] = (mus[i] - left).max(right - mus[i]).clamp(min_sigma, range);
        }
        let last = mus.len() - 1;
        sigmas[last] = range;
        let mut weights = vec![1.0; mus.len()];
        weights[last] = prior_weight;
        Parzen { mus, sigmas, weights, lo, hi }
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
        let i = pick_weighted(&self.weights, rng);
        for _ in 0..100 {
            let z: f64 = rng.sample(rand_distr::StandardNormal);
            let x = self.mus[i] + self.sigmas[i] * z;
            if (self.lo..=self.hi).contains(&x) {
                return x;
            }
        }
        self.mus[i].clamp(self.lo, self.hi)
    }

    fn log_pdf(&self, x: f64) -> f64 {
        let total: f64 = self.weights.iter().sum();
        let p: f64 = (0..self.mus.len())
            .map(|i| {
                let (m, s) = (self.mus[i], self.sigmas[i]);
                let mass = normal_cdf((self.hi - m) / s) - normal_cdf((self.lo - m) / s);
                let z = (x - m) / s;
                self.weights[i] / total * (-0.5 * z * z).exp() / (s * (2.0 * std::f64::consts::PI).sqrt() * mass.max(1e-12))
            })
            .sum();
        p.max(1e-300).ln()
    }
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * (1.0 + libm::erf(z / std::f64::consts::SQRT_2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::ParamSpec;

    fn record(number: u64, x: f64, value: f64) -> TrialRecord {
        TrialRecord {
            number,
            state: TrialState::Complete,
            params: Params::from([("x".to_string(), ParamValue::Float(x))]),
            value: Some(value),
            scores: serde_json::Value::Null,
            intermediate: Vec::new(),
            attempts: 1,
            seconds: None,
            message: None,
        }
    }

    #[test]
    fn random_stays_in_range_and_is_seeded() {
        let d = Distribution::LogUniform { low: 1e-4, high: 1e-1 };
        let draw = |seed| (0..200).map(|_| 0).scan(descent::rng::seeded(seed), |r, _| Some(sample_uniform(&d, r))).collect::<Vec<_>>();
        let a = draw(1);
        assert_eq!(a, draw(1));
        assert!(a.iter().all(|v| d.contains(v)));
        // Log-uniform: about a third of draws per decade.
        let below = a.iter().filter(|v| v.as_f64().unwrap() < 1e-3).count();
        assert!((45..=90).contains(&below), "{below} of 200 below 1e-3");
    }

    #[test]
    fn grid_visits_each_point_once_then_stops() {
        let space = Space::new(vec![
            ParamSpec::new("a", Distribution::Categorical { choices: vec![ParamValue::Int(1), ParamValue::Int(2)] }),
            ParamSpec::new("b", Distribution::Int { low: 0, high: 2, step: 1, log: false }),
        ])
        .unwrap();
        let g = GridSampler::new(&space).unwrap();
        assert_eq!(g.len(), 6);
        let mut history = Vec::new();
        for n in 0..6 {
            let Plan::Fixed(p) = g.plan(&history) else { panic!("grid ended early") };
            assert!(!history.iter().any(|t: &TrialRecord| t.params == p));
            history.push(TrialRecord { params: p, ..record(n, 0.0, 0.0) });
        }
        assert_eq!(g.plan(&history), Plan::Exhausted);
    }

    #[test]
    fn tpe_concentrates_near_the_good_trials() {
        // Losses (x − 0.7)² on [0, 1]: after 30 random-ish trials, TPE's proposals should
        // sit much closer to 0.7 than uniform draws (mean |x − 0.7| = 0.29 for uniform).
        let d = Distribution::Uniform { low: 0.0, high: 1.0 };
        let history: Vec<TrialRecord> = (0..30).map(|i| {
            let x = (i as f64 * 0.618_034) % 1.0;
            record(i, x, (x - 0.7).powi(2))
        }).collect();
        let tpe = TpeSampler::default();
        let mut rng = descent::rng::seeded(3);
        let dist: f64 = (0..100)
            .map(|_| (tpe.sample("x", &d, &history, Direction::Minimize, &mut rng).as_f64().unwrap() - 0.7).abs())
            .sum::<f64>() / 100.0;
        assert!(dist < 0.08, "mean distance to the optimum {dist}");
        // Maximizing the negated objective is the same search.
        let neg: Vec<TrialRecord> = history.iter().map(|t| TrialRecord { value: t.value.map(|v| -v), ..t.clone() }).collect();
        let mut rng = descent::rng::seeded(3);
        let x = tpe.sample("x", &d, &neg, Direction::Maximize, &mut rng).as_f64().unwrap();
        assert!((x - 0.7).abs() < 0.2, "{x}");
    }

    #[test]
    fn tpe_categorical_prefers_the_winning_choice() {
        let d = Distribution::Categorical { choices: vec![ParamValue::Str("a".into()), ParamValue::Str("b".into()), ParamValue::Str("c".into())] };
        let history: Vec<TrialRecord> = (0..30)
            .map(|i| {
                let c = ["a", "b", "c"][i % 3];
                TrialRecord {
                    params: Params::from([("x".to_string(), ParamValue::Str(c.into()))]),
                    ..record(i as u64, 0.0, if c == "b" { 0.1 } else { 1.0 + i as f64 })
                }
            })
            .collect();
        let mut rng = descent::rng::seeded(5);
        let picks: Vec<ParamValue> = (0..50).map(|_| TpeSampler::default().sample("x", &d, &history, Direction::Minimize, &mut rng)).collect();
        let b = picks.iter().filter(|v| **v == ParamValue::Str("b".into())).count();
        assert!(b >= 45, "picked b {b} of 50");
    }
}
