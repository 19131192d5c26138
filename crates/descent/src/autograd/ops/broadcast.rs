//! Elementwise add and multiply with NumPy broadcasting: shapes aligned at the last
//! axis, each axis equal or 1 in one of them (a bias over channels, a mask over heads).
//! Backward sums the gradient over the axes an operand was broadcast along.

use super::nd::strides;
use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::Shape;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broadcast {
    Add,
    Mul,
}

/// The broadcast output shape, and each operand's strides over it (0 along an axis it
/// is broadcast on).
fn plan(sa: Shape, sb: Shape) -> Option<(Shape, [usize; 4], [usize; 4])> {
    let rank = sa.rank().max(sb.rank());
    let pad = |s: Shape| {
        let mut d = [1usize; 4];
        d[rank - s.rank()..rank].copy_from_slice(s.dims());
        d
    };
    let (da, db) = (pad(sa), pad(sb));
    let (ta, tb) = (strides(&da[..rank]), strides(&db[..rank]));
    let mut out = [1usize; 4];
    let (mut a_step, mut b_step) = ([0usize; 4], [0usize; 4]);
    for k in 0..rank {
        out[k] = match (da[k], db[k]) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
        a_step[k] = if da[k] == 1 { 0 } else { ta[k] };
        b_step[k] = if db[k] == 1 { 0 } else { tb[k] };
    }
    Some((Shape::new(&out[..rank]).ok()?, a_step, b_step))
}

/// For every output element in order, the indices of the two operands it combines.
fn for_each_pair(out: Shape, a_step: &[usize; 4], b_step: &[usize; 4], mut f: impl FnMut(usize, usize, usize)) {
    let rank = out.rank();
    let dims = out.dims();
    let (mut coord, mut ia, mut ib) = ([0usize; 4], 0usize, 0usize);
    for o in 0..out.numel() {
        f(o, ia, ib);
        for k in (0..rank).rev() {
            coord[k] += 1;
            ia += a_step[k];
            ib += b_step[k];
            if coord[k] < dims[k] {
                break;
            }
            ia -= a_step[k] * dims[k];
            ib -= b_step[k] * dims[k];
            coord[k] = 0;
        }
    }
}

impl Tape {
    /// `a + b` with broadcasting.
    pub fn add_broadcast(&mut self, store: &ParamStore, a: Var, b: Var) -> Result<Var> {
        self.broadcast(store, a, b, Broadcast::Add)
    }

    /// `a ⊙ b` with broadcasting.
    pub fn mul_broadcast(&mut self, store: &ParamStore, a: Var, b: Var) -> Result<Var> {
        self.broadcast(store, a, b, Broadcast::Mul)
    }

    fn broadcast(&mut self, store: &ParamStore, a: Var, b: Var, kind: Broadcast) -> Result<Var> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        let (out_shape, a_step, b_step) =
            plan(sa, sb).ok_or_else(|| Error::shape(format!("{kind:?} with broadcasting"), format!("shapes that broadcast with {sa}"), sb))?;
        let rg = self.requires_grad(a) || self.requires_grad(b);
        let out = self.push(out_shape, Op::Broadcast { a, b, kind }, rg);
        self.compute(store, out, |nodes, params, y, _| {
            let (av, bv) = (value_of(nodes, params, a), value_of(nodes, params, b));
            match kind {
                Broadcast::Add => for_each_pair(out_shape, &a_step, &b_step, |o, i, j| y[o] = av[i] + bv[j]),
                Broadcast::Mul => for_each_pair(out_shape, &a_step, &b_step, |o, i, j| y[o] = av[i] * bv[j]),
            }
        });
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, a: Var, b: Var, kind: Broadcast) {
    let (sa, sb) = (ctx.nodes[a.idx()].shape, ctx.nodes[b.idx()].shape);
    let (out_shape, a_step, b_step) = plan(sa, sb).expect("checked in forward");
    ctx.with_own(i, |ctx, g, _| {
        // ∂a = Σ over broadcast axes of ∂y (⊙ b for a product); ∂b likewise.
        if ctx.requires_grad(a) {
            ctx.with_grad(a, |nodes, pvals, ga| match kind {
                Broadcast::Add => for_each_pair(out_shape, &a_step, &b_step, |o, i, _| ga[i] += g[o]),
                Broadcast::Mul => {
                    let bv = value_of(nodes, pvals, b);
                    for_each_pair(out_shape, &a_step, &b_step, |o, i, j| ga[i] += g[o] * bv[j])
                }
            });
        }
        if ctx.requires_grad(b) {
            ctx.with_grad(b, |nodes, pvals, gb| match kind {
                Broadcast::Add => for_each_pair(out_shape, &a_step, &b_step, |o, _, j| gb[j] += g[o]),
                Broadcast::Mul => {
                    let av = value_of(nodes, pvals, a);
                    for_each_pair(out_shape, &a_step, &b_step, |o, i, j| gb[j] += g[o] * av[i])
                }
            });
        }
    });
}
