//! Sum and mean along one axis (the axis removed); backward spreads ∂L/∂y back over it
//! (÷ its length for the mean).

use super::nd::{around, axis_of};
use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::Result;
use crate::tensor::Shape;

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
        let (outer, len, inner) = around(xs.dims(), axis);
        let scale = if kind == Reduction::Mean { 1.0 / len.max(1) as f32 } else { 1.0 };
        let rg = self.requires_grad(x);
        let out = self.push(Shape::new(&out_dims)?, Op::Reduce { x, axis: axis as u8, kind }, rg);
        self.compute(store, out, |nodes, params, y, _| {
            let xv = value_of(nodes, params, x);
            y.fill(0.0);
            for o in 0..outer {
                for j in 0..len {
                    let row = &xv[(o * len + j) * inner..(o * len + j + 1) * inner];
                    y[o * inner..(o + 1) * inner].iter_mut().zip(row).for_each(|(a, b)| *a += b);
                }
            }
            y.iter_mut().for_each(|v| *v *= scale);
        });
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var, axis: usize, kind: Reduction) {
    let xs = ctx.nodes[x.idx()].shape;
    let (outer, len, inner) = around(xs.dims(), axis);
    let scale = if kind == Reduction::Mean { 1.0 / len.max(1) as f32 } else { 1.0 };
    ctx.with_own(i, |ctx, g, _| {
        ctx.with_grad(x, |_, _, gx| {
            for o in 0..outer {
                for j in 0..len {
                    let dst = &mut gx[(o * len + j) * inner..(o * len + j + 1) * inner];
                    dst.iter_mut().zip(&g[o * inner..(o + 1) * inner]).for_each(|(d, s)| *d += s * scale);
                }
            }
        });
    });
}
