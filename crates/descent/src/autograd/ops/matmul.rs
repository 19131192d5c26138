//! Matrix product: y = a·b for `a: [m, k]`, `b: [k, n]`; backward ∂a = ∂y·bᵀ, ∂b = aᵀ·∂y.

use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::{Backend, Shape, B};

impl Tape {
    /// `y = a·b` for `a: [m, k]`, `b: [k, n]`.
    pub fn matmul(&mut self, store: &ParamStore, a: Var, b: Var) -> Result<Var> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        if sa.rank() != 2 || sb.rank() != 2 || sa.dims()[1] != sb.dims()[0] {
            return Err(Error::shape("matmul", format!("[m, k]·[k, n] (left is {sa})"), sb));
        }
        let (m, k, n) = (sa.dims()[0], sa.dims()[1], sb.dims()[1]);
        let rg = self.requires_grad(a) || self.requires_grad(b);
        let out = self.push(Shape::matrix(m, n), Op::MatMul { a, b }, rg);
        self.compute(store, out, |nodes, params, y, _| {
            B::matmul(y, value_of(nodes, params, a), value_of(nodes, params, b), m, k, n, false, false, false);
        });
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, a: Var, b: Var) {
    let shape = ctx.nodes[i].shape;
    let (m, n) = (shape.rows(), shape.cols());
    let k = ctx.nodes[a.idx()].shape.cols();
    ctx.with_own(i, |ctx, g, _| {
        if ctx.requires_grad(a) {
            ctx.with_grad(a, |nodes, pvals, ga| B::matmul(ga, g, value_of(nodes, pvals, b), m, n, k, false, true, true));
        }
        if ctx.requires_grad(b) {
            ctx.with_grad(b, |nodes, pvals, gb| B::matmul(gb, value_of(nodes, pvals, a), g, k, m, n, true, false, true));
        }
    });
}
