//! Stochastic gradient descent with optional (Nesterov) momentum, in Keras's form:
//!
//!   m ← μ·m − η·(1−d)·g;   p ← p + m              (momentum; d = dampening)
//!   m ← μ·m − η·(1−d)·g;   p ← p + μ·m − η·g      (Nesterov)
//!   p ← p − η·g                                    (μ = 0)
//!
//! With a constant learning rate this equals PyTorch's SGD (its buffer b = −m/η); as in
//! PyTorch, dampening does not apply on the first step. Full-batch gradient descent is
//! this optimizer with batch_size = dataset size.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::optim::rule::{check_unit, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::tensor::kernels::optim::sgd::SgdStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Sgd {
    pub momentum: f32,
    pub nesterov: bool,
    pub dampening: f32,
}

optimizer_api!(Sgd { momentum: f32, nesterov: bool, dampening: f32 });

impl Rule for Sgd {
    const NAME: &'static str = "sgd";
    const DEFAULT_LR: f32 = 0.01;
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        if self.momentum > 0.0 { vec![("velocity", StateInit::Const(0.0))] } else { vec![] }
    }
    fn validate(&self) -> Result<()> {
        check_unit("sgd", "momentum", self.momentum)?;
        check_unit("sgd", "dampening", self.dampening)
    }
    fn update(&self, c: &StepCtx, _t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        let step = SgdStep { momentum: self.momentum, nesterov: self.nesterov, dampening: self.dampening, c: *c };
        B::optimizer_step(&step, p, g, s);
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Sgd(self.clone())
    }
}
