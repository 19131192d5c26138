//! Activity regularization: y = x, adding l1·Σ|x| + l2·Σx² to the pass's penalty (part
//! of the loss, as Keras's `activity_regularizer`); backward adds l1·sign(x) + 2·l2·x.

use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::tensor::{Backend, B};


impl Tape {
    /// `y = x`, with l1·Σ|x| + l2·Σx² added to the pass's penalty.
    pub fn activity_penalty(&mut self, store: &ParamStore, x: Var, l1: f32, l2: f32) -> Var {
        let xs = self.shape(x);
        let rg = self.requires_grad(x);
        let out = self.push(xs, Op::ActivityPenalty { x, l1, l2 }, rg);
        let mut penalty = 0.0f64;
        self.compute(store, out, |nodes, params, y, _| {
            let xv = value_of(nodes, params, x);
            B::copy(y, xv);
            let (abs, sq) = B::abs_and_square_sums(xv);
            penalty = l1 as f64 * abs + l2 as f64 * sq;
        });
        self.add_penalty(penalty);
        out
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var, l1: f32, l2: f32) {
    // The penalty is added to the loss itself, so its gradient enters with weight 1.
    ctx.with_own(i, |ctx, g, _| {
        ctx.with_grad(x, |nodes, pvals, gx| B::penalty_backward(gx, g, value_of(nodes, pvals, x), l1, l2));
    });
}
