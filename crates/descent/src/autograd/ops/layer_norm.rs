//! Layer normalization of each row of `x: [batch, n]`: y = γ ⊙ (x − μ)/√(σ² + ε) + β.

use super::{norm_grads, value_of, Backward, Op, Saved};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::{Backend, DeviceSlice, B};

/// What backward reads: x̂ (the normalized input) and 1/σ of each row.
struct LayerNormSaved<'a> {
    xhat: &'a DeviceSlice,
    inv_std: &'a DeviceSlice,
}

impl<'a> LayerNormSaved<'a> {
    fn of(saved: &'a Saved) -> Self {
        LayerNormSaved { xhat: &saved[0], inv_std: &saved[1] }
    }
}

impl Tape {
    /// γ and β must hold one value per entry of the last axis of `x: [batch, …, n]`
    /// (the features, or an image's channels); returns (values / n, n): the rows the
    /// normalization sees.
    pub(crate) fn check_norm(&self, what: &str, x: Var, gamma: Var, beta: Var) -> Result<(usize, usize)> {
        let xs = self.shape(x);
        let n = self.shape(gamma).numel();
        if xs.rank() < 2 || xs.dims()[xs.rank() - 1] != n || self.shape(beta).numel() != n {
            return Err(Error::shape(what, format!("x [batch, …, {n}] with γ and β of {n} values"), xs));
        }
        Ok((xs.numel() / n, n))
    }

    /// Layer normalization of each row of `x` `[batch, n]`.
    pub fn layer_norm(&mut self, store: &ParamStore, x: Var, gamma: Var, beta: Var, eps: f32) -> Result<Var> {
        let (m, n) = self.check_norm("layer normalization", x, gamma, beta)?;
        let rg = self.requires_grad(x) || self.requires_grad(gamma) || self.requires_grad(beta);
        let out = self.push(self.shape(x), Op::LayerNorm { x, gamma, beta }, rg);
        self.compute(store, out, |nodes, params, y, saved| {
            let [xhat, inv_std, _] = saved;
            B::resize(xhat, m * n);
            B::resize(inv_std, m);
            let (xv, g, b) = (value_of(nodes, params, x), value_of(nodes, params, gamma), value_of(nodes, params, beta));
            B::layer_norm(xv, g, b, eps, y, xhat, inv_std);
        });
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var, gamma: Var, beta: Var) {
    ctx.with_own(i, |ctx, g, saved| {
        let s = LayerNormSaved::of(saved);
        norm_grads(ctx, (x, gamma, beta), |gv, gx, gg, gb| B::layer_norm_backward(g, s.xhat, s.inv_std, gv, gx, gg, gb));
    });
}
