//! Product with a constant of the value's shape: y = x ⊙ m (dropout's scaled mask,
//! m ∈ {0, 1/(1 − rate)}); backward ∂L/∂x = ∂L/∂y ⊙ m.

use super::{value_of, Backward, Op, Saved};
use crate::autograd::{ParamStore, Tape, Var};
use crate::tensor::{Backend, DeviceSlice, B};

/// What backward reads: the constant factor.
struct MulConstSaved<'a> {
    factor: &'a DeviceSlice,
}

impl<'a> MulConstSaved<'a> {
    fn of(saved: &'a Saved) -> Self {
        MulConstSaved { factor: &saved[0] }
    }
}

impl Tape {
    /// `y = x ⊙ m` for a constant `m` shaped like `x`, written by `fill` into the node's
    /// reused buffer.
    pub fn mul_const(&mut self, store: &ParamStore, x: Var, fill: impl FnOnce(&mut [f32])) -> Var {
        let xs = self.shape(x);
        let rg = self.requires_grad(x);
        let out = self.push(xs, Op::MulConst { x }, rg);
        self.compute(store, out, |nodes, params, y, saved| {
            let factor = &mut saved[0];
            B::resize(factor, B::len(y));
            B::write_with(factor, fill);
            B::mul(y, value_of(nodes, params, x), factor);
        });
        out
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var) {
    ctx.with_own(i, |ctx, g, saved| {
        let factor = MulConstSaved::of(saved).factor;
        ctx.with_grad(x, |_, _, gx| B::mul_add_assign(gx, g, factor));
    });
}
