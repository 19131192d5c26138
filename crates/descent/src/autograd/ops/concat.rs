//! Concatenation along the feature axis: y = [a | b] for `a: [m, p]`, `b: [m, q]`;
//! backward gives each input its column block of ∂L/∂y.

use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::{Backend, Shape, B};

impl Tape {
    /// `y = [a | b]` for `a: [m, p]`, `b: [m, q]`: each row of `a` followed by the same row
    /// of `b` (Keras's `Concatenate` along the last axis).
    pub fn concat(&mut self, store: &ParamStore, a: Var, b: Var) -> Result<Var> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        if sa.rank() != 2 || sb.rank() != 2 || sa.rows() != sb.rows() {
            return Err(Error::shape("concatenate", format!("[{}, features] (as the first input {sa})", sa.rows()), sb));
        }
        let (m, p, q) = (sa.rows(), sa.cols(), sb.cols());
        let rg = self.requires_grad(a) || self.requires_grad(b);
        let out = self.push(Shape::matrix(m, p + q), Op::Concat { a, b }, rg);
        self.compute(store, out, |nodes, params, y, _| {
            B::concat_cols(y, value_of(nodes, params, a), value_of(nodes, params, b), p, q);
        });
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, a: Var, b: Var) {
    let (p, q) = (ctx.nodes[a.idx()].shape.cols(), ctx.nodes[b.idx()].shape.cols());
    ctx.with_own(i, |ctx, g, _| {
        for (v, offset, width) in [(a, 0, p), (b, p, q)] {
            if ctx.requires_grad(v) {
                ctx.with_grad(v, |_, _, gv| B::add_col_block(gv, g, offset, width, p + q));
            }
        }
    });
}
