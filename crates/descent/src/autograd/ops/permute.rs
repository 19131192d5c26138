//! Permutation of axes (transpose): y[i₀, i₁, …] = x at the same coordinates reordered by
//! `axes` (output axis k is input axis axes[k]); backward scatters ∂L/∂y back.

use super::nd::strides;
use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::Shape;

/// For every output element, in order, the index of the input element it copies.
fn for_each_source(in_dims: &[usize], axes: &[u8], mut f: impl FnMut(usize, usize)) {
    let rank = in_dims.len();
    let in_strides = strides(in_dims);
    let mut out_dims = [1usize; Shape::MAX_RANK];
    let mut step = [0usize; Shape::MAX_RANK];
    for k in 0..rank {
        out_dims[k] = in_dims[axes[k] as usize];
        step[k] = in_strides[axes[k] as usize];
    }
    let total: usize = in_dims.iter().product();
    let mut coord = [0usize; Shape::MAX_RANK];
    let mut src = 0usize;
    for o in 0..total {
        f(o, src);
        // Odometer over the output coordinates, keeping the source index in step.
        for k in (0..rank).rev() {
            coord[k] += 1;
            src += step[k];
            if coord[k] < out_dims[k] {
                break;
            }
            src -= step[k] * out_dims[k];
            coord[k] = 0;
        }
    }
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
        self.compute(store, out, |nodes, params, y, _| {
            let xv = value_of(nodes, params, x);
            for_each_source(xs.dims(), &packed[..rank], |o, s| y[o] = xv[s]);
        });
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
    ctx.with_own(i, |ctx, g, _| {
        ctx.with_grad(x, |_, _, gx| for_each_source(in_shape.dims(), &axes[..in_shape.rank()], |o, s| gx[s] += g[o]));
    });
}
