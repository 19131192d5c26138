//! Elementwise add and multiply with NumPy broadcasting: shapes aligned at the last
//! axis, each axis equal or 1 in one of them (a bias over channels, a mask over heads).
//! Backward sums the gradient over the axes an operand was broadcast along.

use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::backend::Binary;
use crate::tensor::{Backend, Layout, Shape, B};

pub type Broadcast = Binary;

/// The broadcast output shape, and each operand read as it (a [`Layout`] with stride 0
/// along the axes it is broadcast on).
fn plan(sa: Shape, sb: Shape) -> Option<(Shape, Layout, Layout)> {
    let rank = sa.rank().max(sb.rank());
    let dim = |s: Shape, k: usize| if k + s.rank() < rank { 1 } else { s.dims()[k + s.rank() - rank] };
    let mut out = [1usize; Shape::MAX_RANK];
    for (k, o) in out.iter_mut().enumerate().take(rank) {
        *o = match (dim(sa, k), dim(sb, k)) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    let out = Shape::new(&out[..rank]).ok()?;
    Some((out, Layout::broadcast(sa, out)?, Layout::broadcast(sb, out)?))
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
        let (out_shape, la, lb) =
            plan(sa, sb).ok_or_else(|| Error::shape(format!("{kind:?} with broadcasting"), format!("shapes that broadcast with {sa}"), sb))?;
        let rg = self.requires_grad(a) || self.requires_grad(b);
        let out = self.push(out_shape, Op::Broadcast { a, b, kind }, rg);
        self.compute(store, out, |nodes, params, y, _| {
            B::binary_strided(kind, y, value_of(nodes, params, a), &la, value_of(nodes, params, b), &lb);
        });
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, a: Var, b: Var, kind: Broadcast) {
    let (sa, sb) = (ctx.nodes[a.idx()].shape, ctx.nodes[b.idx()].shape);
    let (_, la, lb) = plan(sa, sb).expect("checked in forward");
    ctx.with_own(i, |ctx, g, _| {
        // ∂a = Σ over broadcast axes of ∂y (⊙ b for a product); ∂b likewise.
        for (v, lv, other, lo) in [(a, la, b, lb), (b, lb, a, la)] {
            if ctx.requires_grad(v) {
                ctx.with_grad(v, |nodes, pvals, gv| match kind {
                    Broadcast::Add => B::add_strided_back(gv, g, &lv),
                    Broadcast::Mul => B::mul_strided_back(gv, &lv, g, value_of(nodes, pvals, other), &lo),
                });
            }
        }
    });
}
