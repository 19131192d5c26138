//! Rprop's fused kernel (the rule: `optim/rules/rprop.rs`).

use super::{states, Prep, StepCtx};
use crate::tensor::backend::OptimizerKernel;
use crate::tensor::kernels::parallel::for_each_split;

/// One step of Rprop on one tensor: the rule's hyperparameters and the step's context.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RpropStep {
    pub eta_minus: f32,
    pub eta_plus: f32,
    pub step_size_min: f32,
    pub step_size_max: f32,
    pub c: StepCtx,
}

simd_dispatch! {
    fn rprop_kernel(p: &mut [f32], prev: &mut [f32], step: &mut [f32], g: &[f32], h: RpropStep, prep: Prep) {
        for i in 0..p.len() {
            let gi = prep.grad(g[i], p[i]);
            let s = gi * prev[i];
            let factor = if s > 0.0 { h.eta_plus } else if s < 0.0 { h.eta_minus } else { 1.0 };
            step[i] = (step[i] * factor).clamp(h.step_size_min, h.step_size_max);
            let gi = if s < 0.0 { 0.0 } else { gi };
            let dir = if gi > 0.0 { 1.0 } else if gi < 0.0 { -1.0 } else { 0.0 };
            p[i] = prep.decay(p[i]) - dir * step[i];
            prev[i] = gi;
        }
    }
}

impl OptimizerKernel for RpropStep {
    const NAME: &'static str = "rprop";
    fn cpu(&self, p: &mut [f32], g: &[f32], s: &mut [&mut [f32]]) {
        let c = &self.c;
        let [prev, step] = states(s);
        let (h, prep) = (*self, c.prep);
        for_each_split([p, prev, step], [g], &|[p, prev, step], [g]| rprop_kernel(p, prev, step, g, h, prep));
    }
}
