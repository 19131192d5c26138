//! Schedule-free AdamW (Defazio et al. 2024, "The Road Less Scheduled"), Keras's form.
//!
//! Why it is here: it removes the learning-rate schedule — and with it the need to know
//! the training length in advance — while matching tuned cosine schedules (it won the
//! self-tuning track of the AlgoPerf 2024 benchmark). It keeps a base sequence z and an
//! average x; the parameters hold their interpolation y, where gradients are taken:
//!
//!   v ← v + (1−β₂)(g² − v);   z' = z − η·g/(√(v/(1−β₂ᵗ)) + ε)
//!   x = (y − (1−β₁)z)/β₁;   x' = (1 − 1/t)·x + z'/t;   y ← (1−β₁)z' + β₁x'
//!
//! (η ramps linearly over `warmup_steps`; z starts at the initial parameters.) Evaluate at
//! x, as the paper does: `Model::use_eval_weights()` swaps it in (Keras evaluates at y).

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_positive, check_unit, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::tensor::kernels::optim::schedule_free::ScheduleFreeAdamWStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleFreeAdamW {
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    pub warmup_steps: u64,
}

impl Default for ScheduleFreeAdamW {
    fn default() -> Self {
        ScheduleFreeAdamW { beta_1: 0.9, beta_2: 0.999, epsilon: 1e-8, warmup_steps: 0 }
    }
}

optimizer_api!(ScheduleFreeAdamW { beta_1: f32, beta_2: f32, epsilon: f32, warmup_steps: u64 });

impl Rule for ScheduleFreeAdamW {
    const NAME: &'static str = "schedule_free_adamw";
    const DEFAULT_LR: f32 = 0.0025;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("z", StateInit::Params), ("v", StateInit::Const(0.0))]
    }
    fn validate(&self) -> Result<()> {
        check_unit("schedule_free_adamw", "beta_1", self.beta_1)?;
        if self.beta_1 == 0.0 {
            return Err(crate::Error::Config("schedule_free_adamw: beta_1 must be > 0".into()));
        }
        check_unit("schedule_free_adamw", "beta_2", self.beta_2)?;
        check_positive("schedule_free_adamw", "epsilon", self.epsilon)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = ScheduleFreeAdamWStep { beta_1: self.beta_1, beta_2: self.beta_2, epsilon: self.epsilon, warmup_steps: self.warmup_steps, c: *c };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::ScheduleFreeAdamw(self.clone())
    }
    /// The paper evaluates at the average x = (y − (1−β₁)z)/β₁, not at y.
    fn eval_weights(&self, y: &[f32], state: &[&[f32]]) -> Option<Vec<f32>> {
        let z = state.first()?;
        let b1 = self.beta_1;
        Some(y.iter().zip(z.iter()).map(|(y, z)| (y - (1.0 - b1) * z) / b1).collect())
    }
}
