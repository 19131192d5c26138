//! Softmax along any axis: y = exp(x − max) / Σ exp(x − max) over each lane of that axis;
//! backward ∂x = y ⊙ (∂y − Σ_lane ∂y ⊙ y). (Attention's scores: the last axis.)

use super::nd::axis_of;
use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::Result;
use crate::tensor::backend::around;
use crate::tensor::{Backend, B};

impl Tape {
    /// Softmax of `x` along `axis` (−1: the last).
    pub fn softmax(&mut self, store: &ParamStore, x: Var, axis: isize) -> Result<Var> {
        let xs = self.shape(x);
        let axis = axis_of("softmax", axis, xs.rank())?;
        let rg = self.requires_grad(x);
        let out = self.push(xs, Op::Softmax { x, axis: axis as u8 }, rg);
        let (outer, len, inner) = around(xs, axis);
        self.compute(store, out, |nodes, params, y, _| B::softmax_axis(y, value_of(nodes, params, x), outer, len, inner));
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var, axis: usize) {
    let shape = ctx.nodes[i].shape;
    let (outer, len, inner) = around(shape, axis);
    ctx.with_own(i, |ctx, g, _| {
        let y = std::mem::take(&mut ctx.nodes[i].value);
        ctx.with_grad(x, |_, _, gx| B::softmax_axis_backward(gx, g, &y, outer, len, inner));
        ctx.nodes[i].value = y;
    });
}
