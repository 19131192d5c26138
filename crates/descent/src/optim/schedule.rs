//! Learning-rate schedules: values of the step number (0-based, the optimizer's step
//! counter), with Keras's names and formulas (PyTorch's for one-cycle and cyclic).
//! A schedule is a plain value: `descent schedule` prints or charts one without training.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

/// A learning rate: a number, or a schedule table.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LearningRate {
    Constant(f32),
    Schedule(Schedule),
}

impl LearningRate {
    pub fn at(&self, step: u64) -> f32 {
        match self {
            LearningRate::Constant(v) => *v,
            LearningRate::Schedule(s) => s.at(step),
        }
    }
    pub fn validate(&self) -> Result<(), String> {
        match self {
            LearningRate::Constant(v) if v.is_finite() && *v > 0.0 => Ok(()),
            LearningRate::Constant(v) => Err(format!("must be a positive number, got {v}")),
            LearningRate::Schedule(s) => s.validate(),
        }
    }
}

// By hand rather than `untagged`, so a bad schedule table reports its own error (e.g.
// "missing field `initial_learning_rate`") instead of "did not match any variant".
impl<'de> Deserialize<'de> for LearningRate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_json::Value::deserialize(d)?;
        crate::config_util::refuse_null(&v, "learning_rate")?;
        match v {
            serde_json::Value::Number(n) => Ok(LearningRate::Constant(n.as_f64().unwrap_or(f64::NAN) as f32)),
            v @ serde_json::Value::Object(_) => {
                serde_json::from_value(v).map(LearningRate::Schedule).map_err(|e| D::Error::custom(format!("learning_rate schedule: {e}")))
            }
            other => Err(D::Error::custom(format!("learning_rate must be a number or a schedule table, got {other}"))),
        }
    }
}

impl From<f32> for LearningRate {
    fn from(v: f32) -> Self {
        LearningRate::Constant(v)
    }
}
impl From<Schedule> for LearningRate {
    fn from(s: Schedule) -> Self {
        LearningRate::Schedule(s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Anneal {
    #[default]
    Cos,
    Linear,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CyclicMode {
    #[default]
    Triangular,
    Triangular2,
    ExpRange,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// The same value at every step.
    Constant { value: f32 },
    /// `values[0]` for step ≤ boundaries[0], `values[i]` for boundaries[i−1] < step ≤ boundaries[i], …
    PiecewiseConstantDecay { boundaries: Vec<u64>, values: Vec<f32> },
    /// initial · rate^(step / decay_steps)  (exponent floored with `staircase`)
    ExponentialDecay {
        initial_learning_rate: f32,
        decay_steps: u64,
        decay_rate: f32,
        #[serde(default)]
        staircase: bool,
    },
    /// initial / (1 + rate · step / decay_steps)  (floored with `staircase`)
    InverseTimeDecay {
        initial_learning_rate: f32,
        decay_steps: u64,
        decay_rate: f32,
        #[serde(default)]
        staircase: bool,
    },
    /// (initial − end)·(1 − step/decay_steps)^power + end; with `cycle`, restarts with
    /// decay_steps stretched to the next multiple.
    PolynomialDecay {
        initial_learning_rate: f32,
        decay_steps: u64,
        #[serde(default = "default_end_lr")]
        end_learning_rate: f32,
        #[serde(default = "one")]
        power: f32,
        #[serde(default)]
        cycle: bool,
    },
    /// initial · ((1 − α)·½(1 + cos(π·min(step, T)/T)) + α); with `warmup_target`, first a
    /// linear warmup from initial to warmup_target over warmup_steps, then the decay from it.
    CosineDecay {
        initial_learning_rate: f32,
        decay_steps: u64,
        #[serde(default)]
        alpha: f32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        warmup_target: Option<f32>,
        #[serde(default)]
        warmup_steps: u64,
    },
    /// SGDR (Loshchilov & Hutter): cosine cycles, each `t_mul` times longer and `m_mul` times lower.
    CosineDecayRestarts {
        initial_learning_rate: f32,
        first_decay_steps: u64,
        #[serde(default = "two")]
        t_mul: f32,
        #[serde(default = "one")]
        m_mul: f32,
        #[serde(default)]
        alpha: f32,
    },
    /// Linear warmup from `start_learning_rate` to `after`'s first value over
    /// `warmup_steps`, then `after` (whose step count starts at 0 when warmup ends).
    Warmup {
        warmup_steps: u64,
        #[serde(default)]
        start_learning_rate: f32,
        after: Box<Schedule>,
    },
    /// Smith's 1cycle policy (PyTorch's OneCycleLR).
    OneCycle {
        max_learning_rate: f32,
        total_steps: u64,
        #[serde(default = "default_pct_start")]
        pct_start: f32,
        #[serde(default)]
        anneal_strategy: Anneal,
        #[serde(default = "default_div_factor")]
        div_factor: f32,
        #[serde(default = "default_final_div_factor")]
        final_div_factor: f32,
        #[serde(default)]
        three_phase: bool,
    },
    /// Smith's cyclical learning rates (PyTorch's CyclicLR).
    Cyclic {
        base_learning_rate: f32,
        max_learning_rate: f32,
        #[serde(default = "default_step_size_up")]
        step_size_up: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step_size_down: Option<u64>,
        #[serde(default)]
        mode: CyclicMode,
        #[serde(default = "one")]
        gamma: f32,
    },
}

fn default_end_lr() -> f32 {
    1e-4
}
fn one() -> f32 {
    1.0
}
fn two() -> f32 {
    2.0
}
fn default_pct_start() -> f32 {
    0.3
}
fn default_div_factor() -> f32 {
    25.0
}
fn default_final_div_factor() -> f32 {
    1e4
}
fn default_step_size_up() -> u64 {
    2000
}

impl Schedule {
    /// The learning rate at `step` (0-based), computed in f64.
    pub fn at(&self, step: u64) -> f32 {
        self.at_f64(step as f64) as f32
    }

    fn at_f64(&self, step: f64) -> f64 {
        match self {
            Schedule::Constant { value } => *value as f64,
            Schedule::PiecewiseConstantDecay { boundaries, values } => {
                let i = boundaries.iter().position(|b| step <= *b as f64).unwrap_or(boundaries.len());
                values[i] as f64
            }
            Schedule::ExponentialDecay { initial_learning_rate, decay_steps, decay_rate, staircase } => {
                let mut p = step / *decay_steps as f64;
                if *staircase {
                    p = p.floor();
                }
                *initial_learning_rate as f64 * (*decay_rate as f64).powf(p)
            }
            Schedule::InverseTimeDecay { initial_learning_rate, decay_steps, decay_rate, staircase } => {
                let mut p = step / *decay_steps as f64;
                if *staircase {
                    p = p.floor();
                }
                *initial_learning_rate as f64 / (1.0 + *decay_rate as f64 * p)
            }
            Schedule::PolynomialDecay { initial_learning_rate, decay_steps, end_learning_rate, power, cycle } => {
                let mut steps = *decay_steps as f64;
                let mut s = step;
                if *cycle {
                    let mult = if s == 0.0 { 1.0 } else { (s / steps).ceil() };
                    steps *= mult;
                } else {
                    s = s.min(steps);
                }
                let (i, e) = (*initial_learning_rate as f64, *end_learning_rate as f64);
                (i - e) * (1.0 - s / steps).powf(*power as f64) + e
            }
            Schedule::CosineDecay { initial_learning_rate, decay_steps, alpha, warmup_target, warmup_steps } => {
                let initial = *initial_learning_rate as f64;
                let (start, s) = match warmup_target {
                    Some(target) if step < *warmup_steps as f64 => {
                        return initial + (*target as f64 - initial) * step / *warmup_steps as f64;
                    }
                    Some(target) => (*target as f64, step - *warmup_steps as f64),
                    None => (initial, step),
                };
                let t = *decay_steps as f64;
                let done = s.min(t) / t;
                let cosine = 0.5 * (1.0 + (PI * done).cos());
                start * ((1.0 - *alpha as f64) * cosine + *alpha as f64)
            }
            Schedule::CosineDecayRestarts { initial_learning_rate, first_decay_steps, t_mul, m_mul, alpha } => {
                let (t_mul, m_mul) = (*t_mul as f64, *m_mul as f64);
                let mut frac = step / *first_decay_steps as f64;
                let restart = if t_mul == 1.0 {
                    let r = frac.floor();
                    frac -= r;
                    r
                } else {
                    let r = ((1.0 - frac * (1.0 - t_mul)).ln() / t_mul.ln()).floor();
                    let sum = (1.0 - t_mul.powf(r)) / (1.0 - t_mul);
                    frac = (frac - sum) / t_mul.powf(r);
                    r
                };
                let cosine = 0.5 * m_mul.powf(restart) * (1.0 + (PI * frac).cos());
                *initial_learning_rate as f64 * ((1.0 - *alpha as f64) * cosine + *alpha as f64)
            }
            Schedule::Warmup { warmup_steps, start_learning_rate, after } => {
                let w = *warmup_steps as f64;
                if step < w {
                    let target = after.at_f64(0.0);
                    *start_learning_rate as f64 + (target - *start_learning_rate as f64) * step / w
                } else {
                    after.at_f64(step - w)
                }
            }
            Schedule::OneCycle { max_learning_rate, total_steps, pct_start, anneal_strategy, div_factor, final_div_factor, three_phase } => {
                let max = *max_learning_rate as f64;
                let initial = max / *div_factor as f64;
                let min = initial / *final_div_factor as f64;
                let total = *total_steps as f64;
                let pct = *pct_start as f64;
                // (end step, start lr, end lr) of each phase
                let phases: Vec<(f64, f64, f64)> = if *three_phase {
                    vec![(pct * total - 1.0, initial, max), (2.0 * pct * total - 2.0, max, initial), (total - 1.0, initial, min)]
                } else {
                    vec![(pct * total - 1.0, initial, max), (total - 1.0, max, min)]
                };
                let mut start_step = 0.0;
                let mut lr = min;
                for (i, (end_step, from, to)) in phases.iter().enumerate() {
                    if step <= *end_step || i == phases.len() - 1 {
                        let p = (step - start_step) / (end_step - start_step);
                        lr = match anneal_strategy {
                            Anneal::Cos => to + (from - to) / 2.0 * ((PI * p).cos() + 1.0),
                            Anneal::Linear => (to - from) * p + from,
                        };
                        break;
                    }
                    start_step = *end_step;
                }
                lr
            }
            Schedule::Cyclic { base_learning_rate, max_learning_rate, step_size_up, step_size_down, mode, gamma } => {
                let up = *step_size_up as f64;
                let down = step_size_down.map_or(up, |d| d as f64);
                let total = up + down;
                let ratio = up / total;
                let cycle = (1.0 + step / total).floor();
                let x = 1.0 + step / total - cycle;
                let scale = if x <= ratio { x / ratio } else { (x - 1.0) / (ratio - 1.0) };
                let height = (*max_learning_rate as f64 - *base_learning_rate as f64) * scale;
                let factor = match mode {
                    CyclicMode::Triangular => 1.0,
                    CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
                    CyclicMode::ExpRange => (*gamma as f64).powf(step),
                };
                *base_learning_rate as f64 + height * factor
            }
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        let positive = |k: &str, v: f32| if v.is_finite() && v > 0.0 { Ok(()) } else { Err(format!("{k} must be > 0, got {v}")) };
        let steps = |k: &str, v: u64| if v > 0 { Ok(()) } else { Err(format!("{k} must be at least 1")) };
        match self {
            Schedule::Constant { value } => positive("value", *value),
            Schedule::PiecewiseConstantDecay { boundaries, values } => {
                if values.len() != boundaries.len() + 1 {
                    return Err(format!("needs one more value than boundaries ({} boundaries, {} values)", boundaries.len(), values.len()));
                }
                if boundaries.windows(2).any(|w| w[0] >= w[1]) {
                    return Err("boundaries must increase".into());
                }
                values.iter().try_for_each(|v| positive("values", *v))
            }
            Schedule::ExponentialDecay { initial_learning_rate, decay_steps, decay_rate, .. }
            | Schedule::InverseTimeDecay { initial_learning_rate, decay_steps, decay_rate, .. } => {
                positive("initial_learning_rate", *initial_learning_rate)?;
                steps("decay_steps", *decay_steps)?;
                positive("decay_rate", *decay_rate)
            }
            Schedule::PolynomialDecay { initial_learning_rate, decay_steps, .. } => {
                positive("initial_learning_rate", *initial_learning_rate)?;
                steps("decay_steps", *decay_steps)
            }
            Schedule::CosineDecay { initial_learning_rate, decay_steps, alpha, warmup_target, warmup_steps } => {
                steps("decay_steps", *decay_steps)?;
                if let Some(target) = warmup_target {
                    // Warming up from 0 is the usual case.
                    if !(initial_learning_rate.is_finite() && *initial_learning_rate >= 0.0) {
                        return Err(format!("initial_learning_rate must be ≥ 0, got {initial_learning_rate}"));
                    }
                    positive("warmup_target", *target)?;
                    steps("warmup_steps", *warmup_steps)?;
                } else {
                    positive("initial_learning_rate", *initial_learning_rate)?;
                }
                if !(0.0..=1.0).contains(alpha) {
                    return Err(format!("alpha = {alpha} is outside [0, 1]"));
                }
                Ok(())
            }
            Schedule::CosineDecayRestarts { initial_learning_rate, first_decay_steps, t_mul, .. } => {
                positive("initial_learning_rate", *initial_learning_rate)?;
                steps("first_decay_steps", *first_decay_steps)?;
                positive("t_mul", *t_mul)
            }
            Schedule::Warmup { warmup_steps, after, .. } => {
                steps("warmup_steps", *warmup_steps)?;
                after.validate()
            }
            Schedule::OneCycle { max_learning_rate, total_steps, pct_start, .. } => {
                positive("max_learning_rate", *max_learning_rate)?;
                steps("total_steps", *total_steps)?;
                if !(*pct_start > 0.0 && *pct_start < 1.0) {
                    return Err(format!("pct_start = {pct_start} is outside (0, 1)"));
                }
                Ok(())
            }
            Schedule::Cyclic { base_learning_rate, max_learning_rate, step_size_up, .. } => {
                positive("base_learning_rate", *base_learning_rate)?;
                positive("max_learning_rate", *max_learning_rate)?;
                steps("step_size_up", *step_size_up)
            }
        }
    }
}
