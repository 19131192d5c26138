//! Activation: y = act(x), elementwise (softmax over the last axis); backward
//! ∂L/∂x = ∂L/∂y ⊙ act'(x), from the output or, where the derivative needs it, the input.

use super::{value_of, Backward, Op, Saved};
use crate::autograd::{ParamStore, Tape, Var};
use crate::tensor::kernels::activation::Activation;
use crate::tensor::{Backend, DeviceSlice, B};

/// What the activation's backward reads besides the output: its input, for activations
/// whose derivative needs it.
struct ActivationSaved<'a> {
    input: &'a DeviceSlice,
}

impl<'a> ActivationSaved<'a> {
    fn of(saved: &'a Saved) -> Self {
        ActivationSaved { input: &saved[0] }
    }
}

impl Tape {
    /// `y = act(x)`, elementwise (softmax: over the last axis).
    pub fn activation(&mut self, store: &ParamStore, x: Var, act: Activation) -> Var {
        let xs = self.shape(x);
        let rg = self.requires_grad(x);
        let out = self.push(xs, Op::Act { x, act }, rg);
        let keep_input = rg && self.grad_enabled() && act.needs_input_for_backward();
        let cols = xs.cols().max(1);
        self.compute(store, out, |nodes, params, y, saved| {
            let xv = value_of(nodes, params, x);
            B::copy(y, xv);
            let input = &mut saved[0];
            B::resize(input, if keep_input { B::len(xv) } else { 0 });
            if keep_input {
                B::copy(input, xv);
            }
            B::bias_act(y, None, cols, act);
        });
        out
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var, act: Activation) {
    let cols = ctx.nodes[i].shape.cols().max(1);
    ctx.with_own(i, |ctx, g, saved| {
        B::act_backward(g, &ctx.nodes[i].value, ActivationSaved::of(saved).input, cols, act);
        ctx.accumulate(x, g);
    });
}
