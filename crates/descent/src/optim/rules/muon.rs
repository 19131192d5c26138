//! Muon (Jordan et al. 2024), as Keras 3 ships it (`keras.optimizers.Muon`, 3.15):
//! hidden 2-D weights take momentum orthogonalized by Newton–Schulz iterations,
//! everything else (vectors, embeddings, and layers named in `exclude_layers`) takes
//! Adam with the `adam_*` hyperparameters, in one optimizer:
//!
//!   Muon:  m ← μ·m + g;   u = g + μ·m (Nesterov) or m;   O = NS₅(u)
//!          p ← p − η·O·rms_rate·√max(rows, cols)        (Moonlight's scale)
//!   NS₅:   X = u/(‖u‖_F + 1e-7); 5 × X ← a·X + (b·A + c·A²)·X, A = X·Xᵀ,
//!          (a, b, c) = (3.4445, −4.7750, 2.0315), over the shorter side
//!   Adam:  Keras's Adam at η·adam_lr_ratio with adam_beta_1, adam_beta_2, epsilon
//!
//! Decoupled weight decay is descent's common `weight_decay` option for both parts
//! (Keras has a separate `adam_weight_decay`; with equal values the two agree).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::rule::{check_positive, check_unit, Rule, StateInit, StepCtx, TensorInfo};
use crate::optim::RuleConfig;
use crate::tensor::kernels::optim::adam::AdamStep;
use crate::tensor::kernels::optim::muon::MuonStep;
use crate::tensor::{Backend, DeviceSlice, B};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Muon {
    pub momentum: f32,
    pub nesterov: bool,
    pub ns_steps: u32,
    pub muon_a: f32,
    pub muon_b: f32,
    pub muon_c: f32,
    /// Update scale rms_rate·√max(rows, cols) (0: the bare orthogonalized update).
    pub rms_rate: f32,
    pub adam_beta_1: f32,
    pub adam_beta_2: f32,
    pub epsilon: f32,
    pub adam_lr_ratio: f32,
    /// Embedding tables (a parameter name containing "embedding") take Adam.
    pub exclude_embeddings: bool,
    /// Parameters whose name contains any of these take Adam.
    pub exclude_layers: Vec<String>,
}

impl Default for Muon {
    fn default() -> Self {
        Muon {
            momentum: 0.95,
            nesterov: true,
            ns_steps: 5,
            muon_a: 3.4445,
            muon_b: -4.7750,
            muon_c: 2.0315,
            rms_rate: 0.2,
            adam_beta_1: 0.9,
            adam_beta_2: 0.999,
            epsilon: 1e-7,
            adam_lr_ratio: 1.0,
            exclude_embeddings: true,
            exclude_layers: Vec::new(),
        }
    }
}

optimizer_api!(Muon { momentum: f32, nesterov: bool, ns_steps: u32, rms_rate: f32, adam_lr_ratio: f32, exclude_embeddings: bool });

impl Muon {
    /// Whether tensor `t` takes the Adam part (Keras's `_should_use_adamw`).
    pub fn uses_adam(&self, t: &TensorInfo) -> bool {
        t.shape.rank() != 2
            || (self.exclude_embeddings && t.name.to_lowercase().contains("embedding"))
            || self.exclude_layers.iter().any(|k| t.name.contains(k.as_str()))
    }
}

impl Rule for Muon {
    const NAME: &'static str = "muon";
    const DEFAULT_LR: f32 = 0.001;
    // Each matrix is orthogonalized as a whole.
    const ELEMENTWISE: bool = false;
    /// `m` (both parts), `v`: Adam's second moment, or Muon's update being orthogonalized.
    fn state_buffers(&self, _lr0: f32) -> Vec<(&'static str, StateInit)> {
        vec![("m", StateInit::Const(0.0)), ("v", StateInit::Const(0.0))]
    }
    fn validate(&self) -> Result<()> {
        check_unit("muon", "momentum", self.momentum)?;
        check_unit("muon", "adam_beta_1", self.adam_beta_1)?;
        check_unit("muon", "adam_beta_2", self.adam_beta_2)?;
        check_positive("muon", "epsilon", self.epsilon)?;
        check_positive("muon", "adam_lr_ratio", self.adam_lr_ratio)?;
        if !(1..100).contains(&self.ns_steps) {
            return Err(Error::Config(format!("muon: ns_steps {} is outside 1..100", self.ns_steps)));
        }
        for (k, v) in [("muon_a", self.muon_a), ("muon_b", self.muon_b), ("muon_c", self.muon_c), ("rms_rate", self.rms_rate)] {
            if !v.is_finite() {
                return Err(Error::Config(format!("muon: {k} = {v} must be finite")));
            }
        }
        Ok(())
    }
    fn update(&self, c: &StepCtx, t: TensorInfo, p: &mut DeviceSlice, g: &DeviceSlice, s: &mut [Option<&mut DeviceSlice>]) {
        if self.uses_adam(&t) {
            let c = StepCtx { lr: c.lr * self.adam_lr_ratio, ..*c };
            let step = AdamStep { beta_1: self.adam_beta_1, beta_2: self.adam_beta_2, epsilon: self.epsilon, amsgrad: false, c };
            B::optimizer_step(&step, p, g, s);
        } else {
            let step = MuonStep {
                momentum: self.momentum,
                nesterov: self.nesterov,
                ns_steps: self.ns_steps,
                coefficients: [self.muon_a, self.muon_b, self.muon_c],
                rms_rate: self.rms_rate,
                rows: t.shape.dims()[0],
                cols: t.shape.dims()[1],
                c: *c,
            };
            B::optimizer_step(&step, p, g, s);
        }
    }
    fn to_config(&self) -> RuleConfig {
        RuleConfig::Muon(self.clone())
    }
}
