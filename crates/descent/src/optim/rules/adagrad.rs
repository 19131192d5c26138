//! Adagrad (Duchi et al. 2011), Keras's form:
//!
//!   a ← a + g²;   p ← p − η·g/√(a + ε)        (a starts at initial_accumulator_value)

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_positive, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::Error;
use crate::tensor::kernels::optim::adagrad::AdagradStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Adagrad {
    pub initial_accumulator_value: f32,
    pub epsilon: f32,
}

impl Default for Adagrad {
    fn default() -> Self {
        Adagrad { initial_accumulator_value: 0.1, epsilon: 1e-7 }
    }
}

optimizer_api!(Adagrad { initial_accumulator_value: f32, epsilon: f32 });

impl Rule for Adagrad {
    const NAME: &'static str = "adagrad";
    const DEFAULT_LR: f32 = 0.001;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("accumulator", StateInit::Const(self.initial_accumulator_value))]
    }
    fn validate(&self) -> Result<()> {
        if !(self.initial_accumulator_value.is_finite() && self.initial_accumulator_value >= 0.0) {
            return Err(Error::Config(format!("adagrad: initial_accumulator_value must be ≥ 0, got {}", self.initial_accumulator_value)));
        }
        check_positive("adagrad", "epsilon", self.epsilon)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = AdagradStep { initial_accumulator_value: self.initial_accumulator_value, epsilon: self.epsilon, c: *c };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Adagrad(self.clone())
    }
}
