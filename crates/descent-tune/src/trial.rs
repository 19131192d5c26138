//! What a study records about each trial.

use serde::{Deserialize, Serialize};

use crate::space::Params;
use descent::{Error, Result};

/// Whether the objective is to be minimized or maximized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Minimize,
    Maximize,
}

impl Direction {
    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Minimize => a < b,
            Direction::Maximize => a > b,
        }
    }
    /// The value turned into a loss (smaller is better), so samplers and pruners can
    /// be written once.
    pub fn as_loss(self, v: f64) -> f64 {
        match self {
            Direction::Minimize => v,
            Direction::Maximize => -v,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Minimize => "minimize",
            Direction::Maximize => "maximize",
        }
    }
    pub fn parse(s: &str) -> Result<Direction> {
        match s {
            "minimize" => Ok(Direction::Minimize),
            "maximize" => Ok(Direction::Maximize),
            other => Err(Error::Config(format!("direction `{other}` is not `minimize` or `maximize`"))),
        }
    }
}

/// A trial's life: queued (to be retried with its stored parameters after an
/// interruption), running, then complete, pruned or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialState {
    Queued,
    Running,
    Complete,
    Pruned,
    Failed,
}

impl TrialState {
    pub fn as_str(self) -> &'static str {
        match self {
            TrialState::Queued => "queued",
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Result<TrialState> {
        Ok(match s {
            "queued" => TrialState::Queued,
            "running" => TrialState::Running,
            "complete" => TrialState::Complete,
            "pruned" => TrialState::Pruned,
            "failed" => TrialState::Failed,
            other => return Err(Error::State(format!("unknown trial state `{other}` in the study database"))),
        })
    }
    pub fn is_finished(self) -> bool {
        matches!(self, TrialState::Complete | TrialState::Pruned | TrialState::Failed)
    }
}

/// One trial as stored.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrialRecord {
    /// 0, 1, 2, … in the order trials were created; kept when a trial is retried.
    pub number: u64,
    pub state: TrialState,
    pub params: Params,
    /// The objective (complete trials), or the last reported value (pruned ones).
    pub value: Option<f64>,
    /// Other scores of the trial (e.g. every metric's CV mean and std), as JSON.
    pub scores: serde_json::Value,
    /// Reported intermediate values: (step, value), steps increasing.
    pub intermediate: Vec<(u64, f64)>,
    /// How many times it was started (> 1 after being retried).
    pub attempts: u32,
    pub seconds: Option<f64>,
    pub message: Option<String>,
}

impl TrialRecord {
    /// The intermediate value reported at `step`, if any.
    pub fn at_step(&self, step: u64) -> Option<f64> {
        self.intermediate.iter().find(|(s, _)| *s == step).map(|(_, v)| *v)
    }
}
