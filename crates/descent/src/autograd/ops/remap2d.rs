//! Per-sample shifts and flips of channels-last images (the augmentation layers'
//! RandomFlip and RandomTranslation): output cell (oy, ox) of a sample reads one input
//! cell (or a constant), by the sample's row of transforms; backward adds each output
//! cell's gradient to the cell it read.

use super::{value_of, Backward, Op, Saved};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::{image_dims, Backend, DeviceSlice, FillMode, B, REMAP_FIELDS};

/// What backward reads: each sample's transform.
struct RemapSaved<'a> {
    transforms: &'a DeviceSlice,
}

impl<'a> RemapSaved<'a> {
    fn of(saved: &'a Saved) -> Self {
        RemapSaved { transforms: &saved[0] }
    }
}

impl Tape {
    /// `x` with each sample shifted and flipped as `transforms` writes
    /// ([`REMAP_FIELDS`] values per sample: flip rows, flip columns, shift rows, shift
    /// columns), cells from outside the image read by `fill`.
    pub fn remap2d(&mut self, store: &ParamStore, x: Var, fill: FillMode, transforms: impl FnOnce(&mut [f32])) -> Result<Var> {
        let xs = self.shape(x);
        let Some((n, h, w, c)) = image_dims(xs.dims()) else {
            return Err(Error::shape("image augmentation", "an input [batch, height, width, channels]", xs));
        };
        let rg = self.requires_grad(x);
        let out = self.push(xs, Op::Remap2d { x, fill }, rg);
        self.compute(store, out, |nodes, params, y, saved| {
            let t = &mut saved[0];
            B::resize(t, n * REMAP_FIELDS);
            B::write_with(t, transforms);
            B::remap2d(y, value_of(nodes, params, x), (h, w, c), t, fill);
        });
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, x: Var, fill: FillMode) {
    let (_, h, w, c) = image_dims(ctx.nodes[i].shape.dims()).expect("checked when recorded");
    ctx.with_own(i, |ctx, g, saved| {
        let t = RemapSaved::of(saved).transforms;
        ctx.with_grad(x, |_, _, gx| B::remap2d_backward(gx, g, (h, w, c), t, fill));
    });
}
