//! Addition of two values of one shape: y = a + b; backward passes ∂L/∂y to both.

use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::{Backend, B};


impl Tape {
    /// `y = a + b`, same shapes.
    pub fn add(&mut self, store: &ParamStore, a: Var, b: Var) -> Result<Var> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        if sa != sb {
            return Err(Error::shape("add", sa, sb));
        }
        let rg = self.requires_grad(a) || self.requires_grad(b);
        let out = self.push(sa, Op::Add { a, b }, rg);
        self.compute(store, out, |nodes, params, y, _| {
            B::add(y, value_of(nodes, params, a), value_of(nodes, params, b));
        });
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, a: Var, b: Var) {
    ctx.with_own(i, |ctx, g, _| {
        ctx.accumulate(a, g);
        ctx.accumulate(b, g);
    });
}
