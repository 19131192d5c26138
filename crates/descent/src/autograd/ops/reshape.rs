//! Reshape (and flatten): the same elements in row-major order under another shape;
//! backward passes ∂L/∂y back unchanged.

use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::{Backend, Shape, B};

impl Tape {
    /// `x` under `dims` (same number of elements).
    pub fn reshape(&mut self, store: &ParamStore, x: Var, dims: &[usize]) -> Result<Var> {
        let xs = self.shape(x);
        let shape = Shape::new(dims)?;
        if shape.numel() != xs.numel() {
            return Err(Error::shape("reshape", format!("{} elements (as {xs})", xs.numel()), format!("{shape} ({} elements)", shape.numel())));
        }
        let rg = self.requires_grad(x);
        let out = self.push(shape, Op::Reshape { x }, rg);
        self.compute(store, out, |nodes, params, y, _| B::copy(y, value_of(nodes, params, x)));
        Ok(out)
    }

    /// `[batch, …]` → `[batch, features]` (Keras's `Flatten`).
    pub fn flatten(&mut self, store: &ParamStore, x: Var) -> Result<Var> {
        let s = self.shape(x);
        self.reshape(store, x, &[s.rows(), s.cols()])
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var) {
    ctx.with_own(i, |ctx, g, _| ctx.accumulate(x, g));
}
