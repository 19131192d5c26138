//! Softmax along any axis: y = exp(x − max) / Σ exp(x − max) over each lane of that axis;
//! backward ∂x = y ⊙ (∂y − Σ_lane ∂y ⊙ y). (Attention's scores: the last axis.)

use super::nd::{around, axis_of};
use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::Result;

/// Calls `f` with the element indices of every lane along the axis (`len` elements,
/// `stride` apart, starting at `start`).
fn lanes(dims: &[usize], axis: usize, mut f: impl FnMut(usize, usize, usize)) {
    let (outer, len, inner) = around(dims, axis);
    for o in 0..outer {
        for i in 0..inner {
            f(o * len * inner + i, len, inner);
        }
    }
}

impl Tape {
    /// Softmax of `x` along `axis` (−1: the last).
    pub fn softmax(&mut self, store: &ParamStore, x: Var, axis: isize) -> Result<Var> {
        let xs = self.shape(x);
        let axis = axis_of("softmax", axis, xs.rank())?;
        let rg = self.requires_grad(x);
        let out = self.push(xs, Op::Softmax { x, axis: axis as u8 }, rg);
        self.compute(store, out, |nodes, params, y, _| {
            let xv = value_of(nodes, params, x);
            lanes(xs.dims(), axis, |start, len, stride| {
                let at = |j: usize| start + j * stride;
                let max = (0..len).map(|j| xv[at(j)]).fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0f32;
                for j in 0..len {
                    let e = (xv[at(j)] - max).exp();
                    y[at(j)] = e;
                    sum += e;
                }
                let inv = 1.0 / sum;
                (0..len).for_each(|j| y[at(j)] *= inv);
            });
        });
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var, axis: usize) {
    let shape = ctx.nodes[i].shape;
    ctx.with_own(i, |ctx, g, _| {
        let y = std::mem::take(&mut ctx.nodes[i].value);
        ctx.with_grad(x, |_, _, gx| {
            lanes(shape.dims(), axis, |start, len, stride| {
                let at = |j: usize| start + j * stride;
                let dot: f32 = (0..len).map(|j| g[at(j)] * y[at(j)]).sum();
                (0..len).for_each(|j| gx[at(j)] += y[at(j)] * (g[at(j)] - dot));
            });
        });
        ctx.nodes[i].value = y;
    });
}
