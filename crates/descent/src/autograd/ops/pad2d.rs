//! Zero padding of channels-last images (Keras's ZeroPadding2D): `x: [n, h, w, c]`
//! placed at (top, left) of zeros `[n, h + top + bottom, w + left + right, c]`;
//! backward takes the gradient of that region.

use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::{image_dims, Backend, Shape, B};

impl Tape {
    /// `x` padded with `((top, bottom), (left, right))` zeros (1-D inputs: height 1,
    /// only left and right).
    pub fn pad2d(&mut self, store: &ParamStore, x: Var, ((top, bottom), (left, right)): ((usize, usize), (usize, usize))) -> Result<Var> {
        let xs = self.shape(x);
        let Some((n, h, w, c)) = image_dims(xs.dims()) else {
            return Err(Error::shape("zero padding", "an input [batch, height, width, channels] (or [batch, length, channels])", xs));
        };
        if xs.rank() == 3 && top + bottom > 0 {
            return Err(Error::shape("zero padding", "no padding of the height of a 1-D input", top + bottom));
        }
        if top.max(left) > u16::MAX as usize {
            return Err(Error::Config("zero padding: at most 65535 cells before an axis".into()));
        }
        let (oh, ow) = (h + top + bottom, w + left + right);
        let shape = if xs.rank() == 4 { Shape::new(&[n, oh, ow, c])? } else { Shape::new(&[n, ow, c])? };
        let rg = self.requires_grad(x);
        let out = self.push(shape, Op::Pad2d { x, top: top as u16, left: left as u16 }, rg);
        self.compute(store, out, |nodes, params, y, _| B::pad2d(y, value_of(nodes, params, x), (h, w), (oh, ow), c, (top, left)));
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var, at: (usize, usize)) {
    let (_, h, w, c) = image_dims(ctx.nodes[x.idx()].shape.dims()).expect("checked when recorded");
    let (_, oh, ow, _) = image_dims(ctx.nodes[i].shape.dims()).expect("checked when recorded");
    ctx.with_own(i, |ctx, g, _| ctx.with_grad(x, |_, _, gx| B::pad2d_backward(gx, g, (h, w), (oh, ow), c, at)));
}
