//! A slice along one axis: `len` entries from `start` (split = several slices; the heads
//! of a fused QKV projection); backward writes ∂L/∂y into that part of ∂L/∂x.

use super::nd::axis_of;
use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::{Backend, Layout, Shape, B};

impl Tape {
    /// Entries `start..start + len` of `x` along `axis` (−1: the last).
    pub fn slice(&mut self, store: &ParamStore, x: Var, axis: isize, start: usize, len: usize) -> Result<Var> {
        let xs = self.shape(x);
        let axis = axis_of("slice", axis, xs.rank())?;
        if start + len > xs.dims()[axis] || len == 0 {
            return Err(Error::shape("slice", format!("a non-empty range within 0..{} of axis {axis} of {xs}", xs.dims()[axis]), format!("{start}..{}", start + len)));
        }
        let mut dims = xs.dims().to_vec();
        dims[axis] = len;
        let view = Layout::narrowed(xs, axis, start, len);
        let rg = self.requires_grad(x);
        let out = self.push(Shape::new(&dims)?, Op::Slice { x, axis: axis as u8, start: start as u32 }, rg);
        self.compute(store, out, |nodes, params, y, _| B::copy_strided(y, value_of(nodes, params, x), &view));
        Ok(out)
    }

    /// `x` split along `axis` into consecutive parts of the given sizes.
    pub fn split(&mut self, store: &ParamStore, x: Var, axis: isize, sizes: &[usize]) -> Result<Vec<Var>> {
        let mut start = 0;
        let mut parts = Vec::with_capacity(sizes.len());
        for &len in sizes {
            parts.push(self.slice(store, x, axis, start, len)?);
            start += len;
        }
        Ok(parts)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var, axis: usize, start: usize) {
    let xs = ctx.nodes[x.idx()].shape;
    let len = ctx.nodes[i].shape.dims()[axis];
    let view = Layout::narrowed(xs, axis, start, len);
    ctx.with_own(i, |ctx, g, _| ctx.with_grad(x, |_, _, gx| B::add_strided_back(gx, g, &view)));
}
