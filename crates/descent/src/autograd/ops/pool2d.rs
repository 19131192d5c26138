//! Max and average pooling over channels-last images (`[n, h, w, c]`, or `[n, len, c]`
//! as height 1): each output cell is the max or mean of its window (Keras's `padding`;
//! an average counts only cells inside the input). Backward sends a max window's
//! gradient to its first largest cell, found again from `x` (no indices kept), and an
//! average window's evenly to its cells.

use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::{image_dims, Backend, PoolKind, Shape, Window2d, WindowArgs, WindowSpec, B};

fn window(xs: Shape, ys: Shape, spec: WindowSpec) -> Window2d {
    let (n, h, w, c) = image_dims(xs.dims()).expect("checked when recorded");
    let (_, oh, ow, _) = image_dims(ys.dims()).expect("checked when recorded");
    spec.window(n, c, (h, w), (oh, ow))
}

impl Tape {
    /// Max or average pooling of `x` over `args`' windows.
    pub fn pool2d(&mut self, store: &ParamStore, x: Var, kind: PoolKind, args: WindowArgs) -> Result<Var> {
        let xs = self.shape(x);
        let Some((n, h, w, c)) = image_dims(xs.dims()) else {
            return Err(Error::shape("pooling", "an input [batch, height, width, channels] (or [batch, length, channels])", xs));
        };
        if xs.rank() == 3 && args.size[0] != 1 {
            return Err(Error::shape("pooling", "a window of height 1 for a 1-D input", format!("{:?}", args.size)));
        }
        let win = args.window("pooling", n, c, (h, w))?;
        let out_shape = if xs.rank() == 4 { Shape::new(&[n, win.rows.out, win.cols.out, c])? } else { Shape::new(&[n, win.cols.out, c])? };
        let rg = self.requires_grad(x);
        let out = self.push(out_shape, Op::Pool2d { x, kind, spec: WindowSpec::of(&win) }, rg);
        self.compute(store, out, |nodes, params, y, _| B::pool2d(y, value_of(nodes, params, x), &win, kind));
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var, kind: PoolKind, spec: WindowSpec) {
    let win = window(ctx.nodes[x.idx()].shape, ctx.nodes[i].shape, spec);
    ctx.with_own(i, |ctx, g, _| ctx.with_grad(x, |nodes, pvals, gx| B::pool2d_backward(gx, g, value_of(nodes, pvals, x), &win, kind)));
}
