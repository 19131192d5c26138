//! Sum with a constant of the value's shape: y = x + c (Gaussian noise); backward
//! passes ∂L/∂y through.

use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::tensor::{Backend, B};


impl Tape {
    /// `y = x + c` for a constant `c` shaped like `x`, written by `fill` straight into the
    /// output buffer.
    pub fn add_const(&mut self, store: &ParamStore, x: Var, fill: impl FnOnce(&mut [f32])) -> Var {
        let xs = self.shape(x);
        let rg = self.requires_grad(x);
        let out = self.push(xs, Op::AddConst { x }, rg);
        self.compute(store, out, |nodes, params, y, _| {
            B::write_with(y, fill);
            B::add_assign(y, value_of(nodes, params, x));
        });
        out
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var) {
    ctx.with_own(i, |ctx, g, _| ctx.accumulate(x, g));
}
