//! Activity regularization: y = x, adding l1·Σ|x| + l2·Σx² to the pass's penalty (part
//! of the loss, as Keras's `activity_regularizer`); backward adds l1·sign(x) + 2·l2·x.

use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};

impl Tape {
    /// `y = x`, with l1·Σ|x| + l2·Σx² added to the pass's penalty.
    pub fn activity_penalty(&mut self, store: &ParamStore, x: Var, l1: f32, l2: f32) -> Var {
        let xs = self.shape(x);
        let rg = self.requires_grad(x);
        let out = self.push(xs, Op::ActivityPenalty { x, l1, l2 }, rg);
        let mut penalty = 0.0f64;
        self.compute(store, out, |nodes, params, y, _| {
            let xv = value_of(nodes, params, x);
            y.copy_from_slice(xv);
            let (abs, sq) = xv.iter().fold((0.0f64, 0.0f64), |(a, s), v| (a + v.abs() as f64, s + (*v as f64) * (*v as f64)));
            penalty = l1 as f64 * abs + l2 as f64 * sq;
        });
        self.add_penalty(penalty);
        out
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var, l1: f32, l2: f32) {
    // The penalty is added to the loss itself, so its gradient enters with weight 1.
    ctx.with_own(i, |ctx, g, _| {
        ctx.with_grad(x, |nodes, pvals, gx| {
            let xv = value_of(nodes, pvals, x);
            for ((gx, g), v) in gx.iter_mut().zip(g.iter()).zip(xv) {
                let sign = if *v > 0.0 { 1.0 } else if *v < 0.0 { -1.0 } else { 0.0 };
                *gx += g + (l1 * sign + 2.0 * l2 * v);
            }
        });
    });
}
