//! Sum and mean along one axis (the axis removed); backward spreads ∂L/∂y back over it
//! (÷ its length for the mean).

use super::nd::axis_of;
use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::Result;
use crate::tensor::backend::around;
use crate::tensor::{Backend, Shape, B};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    Sum,
    Mean,
}

impl Tape {
    /// Σ of `x` along `axis` (−1: the last), which the result no longer has.
    pub fn sum_axis(&mut self, store: &ParamStore, x: Var, axis: isize) -> Result<Var> {
        self.reduce(store, x, axis, Reduction::Sum)
    }

    /// Mean of `x` along `axis`.
    pub fn mean_axis(&mut self, store: &ParamStore, x: Var, axis: isize) -> Result<Var> {
        self.reduce(store, x, axis, Reduction::Mean)
    }

    fn reduce(&mut self, store: &ParamStore, x: Var, axis: isize, kind: Reduction) -> Result<Var> {
        let xs = self.shape(x);
        let axis = axis_of("reduction", axis, xs.rank())?;
        let out_dims: Vec<usize> = xs.dims().iter().enumerate().filter(|(k, _)| *k != axis).map(|(_, d)| *d).collect();
        let (outer, len, inner) = around(xs, axis);
        let scale = if kind == Reduction::Mean { 1.0 / len.max(1) as f32 } else { 1.0 };
        let rg = self.requires_grad(x);
        let out = self.push(Shape::new(&out_dims)?, Op::Reduce { x, axis: axis as u8, kind }, rg);
        self.compute(store, out, |nodes, params, y, _| B::sum_axis(y, value_of(nodes, params, x), outer, len, inner, scale));
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var, axis: usize, kind: Reduction) {
    let xs = ctx.nodes[x.idx()].shape;
    let (outer, len, inner) = around(xs, axis);
    let scale = if kind == Reduction::Mean { 1.0 / len.max(1) as f32 } else { 1.0 };
    ctx.with_own(i, |ctx, g, _| ctx.with_grad(x, |_, _, gx| B::spread_axis(gx, g, outer, len, inner, scale)));
}
