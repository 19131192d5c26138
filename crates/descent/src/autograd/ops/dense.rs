//! Dense: y = act(x·W + b) with `x: [batch, …, in]`, `W: [in, out]`, `b: [out]` (over the
//! last axis, as Keras: a sequence `[batch, T, in]` is `batch·T` rows) — one GEMM
//! and one fused bias + activation pass forward; backward ∂L/∂z = ∂L/∂y ⊙ act'(z), then
//! ∂b = Σ_rows ∂z, ∂W = xᵀ·∂z, ∂x = ∂z·Wᵀ.

use super::{bias_then_activation, value_of, Backward, Op, Saved};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::kernels::activation::Activation;
use crate::tensor::{Backend, DeviceSlice, B};

/// What dense's backward reads besides the output: the pre-activation z = x·W + b, kept
/// only for activations whose derivative needs their input (GELU, ELU, softplus, …).
struct DenseSaved<'a> {
    pre_activation: &'a DeviceSlice,
}

impl<'a> DenseSaved<'a> {
    fn of(saved: &'a Saved) -> Self {
        DenseSaved { pre_activation: &saved[0] }
    }
}

impl Tape {
    /// `y = act(x·W + b)` with `x: [batch, …, in]`, `W: [in, out]`, `b: [out]`; `y` is
    /// shaped like `x` with `out` in its last axis.
    pub fn dense(&mut self, store: &ParamStore, x: Var, w: Var, b: Option<Var>, act: Activation) -> Result<Var> {
        self.dense_with(store, x, w, b, act, false)
    }

    /// `y = act(x·Wᵀ + b)` with `W: [out, in]`: a layer whose kernel is another's matrix
    /// read transposed (an output head tied to the token embedding `[vocabulary, width]`).
    pub fn dense_transposed(&mut self, store: &ParamStore, x: Var, w: Var, b: Option<Var>, act: Activation) -> Result<Var> {
        self.dense_with(store, x, w, b, act, true)
    }

    fn dense_with(&mut self, store: &ParamStore, x: Var, w: Var, b: Option<Var>, act: Activation, wt: bool) -> Result<Var> {
        let (xs, ws) = (self.shape(x), self.shape(w));
        let fan_in = if wt { 1 } else { 0 };
        if xs.rank() < 2 || ws.rank() != 2 || xs.dims()[xs.rank() - 1] != ws.dims()[fan_in] {
            return Err(Error::shape("dense", format!("x [batch, …, {}] for kernel {ws}{}", ws.dims()[fan_in], if wt { " (transposed)" } else { "" }), xs));
        }
        let (k, n) = (ws.dims()[fan_in], ws.dims()[1 - fan_in]);
        let m = xs.numel() / k;
        let mut ys = xs;
        ys.set_dim(xs.rank() - 1, n);
        if let Some(b) = b {
            if self.shape(b).numel() != n {
                return Err(Error::shape("dense bias", n, self.shape(b)));
            }
        }
        let rg = self.requires_grad(x) || self.requires_grad(w) || b.is_some_and(|b| self.requires_grad(b));
        let out = self.push(ys, Op::Dense { x, w, b, act, wt }, rg);
        let keep_input = rg && self.grad_enabled() && act.needs_input_for_backward();
        self.compute(store, out, |nodes, params, y, saved| {
            B::matmul(y, value_of(nodes, params, x), value_of(nodes, params, w), m, k, n, false, wt, false);
            bias_then_activation(y, b.map(|b| value_of(nodes, params, b)), n, act, keep_input, &mut saved[0]);
        });
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, (x, w, b): (Var, Var, Option<Var>), act: Activation, wt: bool) {
    let shape = ctx.nodes[i].shape;
    let n = shape.dims()[shape.rank() - 1];
    let m = shape.numel() / n;
    let k = ctx.nodes[x.idx()].shape.numel() / m;
    ctx.with_own(i, |ctx, g, saved| {
        // ∂L/∂z = ∂L/∂y ⊙ act'(z), in place in this node's gradient buffer.
        B::act_backward(g, &ctx.nodes[i].value, DenseSaved::of(saved).pre_activation, n, act);
        // ∂L/∂b = Σ_rows ∂L/∂z
        if let Some(b) = b.filter(|b| ctx.requires_grad(*b)) {
            ctx.with_grad(b, |_, _, gb| B::col_sums(gb, g, n, true));
        }
        // ∂L/∂W = xᵀ·∂L/∂z (transposed kernel: ∂L/∂Wᵀ = ∂L/∂zᵀ·x)
        if ctx.requires_grad(w) {
            ctx.with_grad(w, |nodes, pvals, gw| {
                let xv = value_of(nodes, pvals, x);
                if wt { B::matmul(gw, g, xv, n, m, k, true, false, true) } else { B::matmul(gw, xv, g, k, m, n, true, false, true) }
            });
        }
        // ∂L/∂x = ∂L/∂z·Wᵀ (transposed kernel: ∂L/∂z·W)
        if ctx.requires_grad(x) {
            ctx.with_grad(x, |nodes, pvals, gx| B::matmul(gx, g, value_of(nodes, pvals, w), m, n, k, false, !wt, true));
        }
    });
}
