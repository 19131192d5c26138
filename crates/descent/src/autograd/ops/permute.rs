//! Permutation of axes (transpose): y[i₀, i₁, …] = x at the same coordinates reordered by
//! `axes` (output axis k is input axis axes[k]); backward scatters ∂L/∂y back. Both
//! go through the permutation's [`Layout`] over the input.

use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::{Backend, Layout, Shape, B};

/// The permutation as a layout over the input's buffer.
fn layout(input: Shape, axes: &[u8]) -> Layout {
    let mut a = [0usize; Shape::MAX_RANK];
    for (k, v) in axes.iter().enumerate() {
        a[k] = *v as usize;
    }
    Layout::permuted(input, &a[..axes.len()])
}

impl Tape {
    /// `x` with its axes reordered: output axis k is input axis `axes[k]`.
    pub fn permute(&mut self, store: &ParamStore, x: Var, axes: &[usize]) -> Result<Var> {
        let xs = self.shape(x);
        let rank = xs.rank();
        let mut seen = [false; Shape::MAX_RANK];
        if axes.len() != rank || axes.iter().any(|&a| a >= rank || std::mem::replace(&mut seen[a], true)) {
            return Err(Error::shape("permute", format!("a permutation of 0..{rank} for {xs}"), format!("{axes:?}")));
        }
        let out_dims: Vec<usize> = axes.iter().map(|&a| xs.dims()[a]).collect();
        let mut packed = [0u8; 4];
        for (p, a) in packed.iter_mut().zip(axes) {
            *p = *a as u8;
        }
        let rg = self.requires_grad(x);
        let out = self.push(Shape::new(&out_dims)?, Op::Permute { x, axes: packed }, rg);
        let view = layout(xs, &packed[..rank]);
        self.compute(store, out, |nodes, params, y, _| B::copy_strided(y, value_of(nodes, params, x), &view));
        Ok(out)
    }

    /// The last two axes swapped.
    pub fn transpose(&mut self, store: &ParamStore, x: Var) -> Result<Var> {
        let rank = self.shape(x).rank();
        if rank < 2 {
            return Err(Error::shape("transpose", "at least 2 axes", self.shape(x)));
        }
        let mut axes: Vec<usize> = (0..rank).collect();
        axes.swap(rank - 2, rank - 1);
        self.permute(store, x, &axes)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var, axes: [u8; 4]) {
    let in_shape = ctx.nodes[x.idx()].shape;
    let view = layout(in_shape, &axes[..in_shape.rank()]);
    ctx.with_own(i, |ctx, g, _| ctx.with_grad(x, |_, _, gx| B::add_strided_back(gx, g, &view)));
}
