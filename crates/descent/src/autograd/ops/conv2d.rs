//! 2-D convolution, channels-last: `y = act(conv(x, W) + b)` with `x: [n, h, w, c]`
//! (or `[n, len, c]`, a 1-D input of height 1), Keras's kernel `W: [kh, kw, c/groups, f]`
//! (`[k, c/groups, f]` for 1-D), `b: [f]` and `y: [n, oh, ow, f]`. Forward: im2col and
//! one GEMM per group, then the fused bias + activation pass dense uses; backward
//! ∂z = ∂y ⊙ act'(z), ∂b = Σ ∂z, ∂W = colsᵀ·∂z, ∂x = col2im(∂z·Wᵀ).

use super::{bias_then_activation, value_of, Backward, Op, Saved};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::kernels::activation::Activation;
use crate::tensor::{image_dims, Backend, ConvGeometry, DeviceSlice, DeviceVec, Shape, WindowArgs, WindowSpec, B};

/// What conv's backward reads and works in: the im2col matrices (empty for a 1×1
/// convolution, which reads `x` itself), the pre-activation (only for activations whose
/// derivative needs it), and scratch for a group's product.
struct ConvSaved<'a> {
    cols: &'a DeviceSlice,
    pre_activation: &'a DeviceSlice,
    scratch: &'a mut DeviceVec,
}

impl<'a> ConvSaved<'a> {
    fn of(saved: &'a mut Saved) -> Self {
        let [cols, pre, scratch] = saved;
        ConvSaved { cols, pre_activation: pre, scratch }
    }
}

/// The geometry of a convolution node from its input and output shapes.
fn geometry(xs: Shape, ys: Shape, spec: WindowSpec, groups: usize) -> ConvGeometry {
    let (n, h, w, c) = image_dims(xs.dims()).expect("checked when recorded");
    let (_, oh, ow, f) = image_dims(ys.dims()).expect("checked when recorded");
    ConvGeometry { window: spec.window(n, c, (h, w), (oh, ow)), filters: f, groups }
}

impl Tape {
    /// `act(conv(x, w) + b)`; `args.size` is ignored (the kernel's shape gives it).
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d(&mut self, store: &ParamStore, x: Var, w: Var, b: Option<Var>, args: WindowArgs, groups: usize, act: Activation) -> Result<Var> {
        let (xs, ws) = (self.shape(x), self.shape(w));
        let Some((n, h, wd, c)) = image_dims(xs.dims()) else {
            return Err(Error::shape("conv2d", "an input [batch, height, width, channels] (or [batch, length, channels])", xs));
        };
        let (kh, kw, cg, f) = match *ws.dims() {
            [kh, kw, cg, f] if xs.rank() == 4 => (kh, kw, cg, f),
            [k, cg, f] if xs.rank() == 3 => (1, k, cg, f),
            _ => return Err(Error::shape("conv2d kernel", format!("a kernel of rank {} for an input of rank {}", xs.rank(), xs.rank()), ws)),
        };
        if groups == 0 || groups > u16::MAX as usize || c % groups != 0 || f % groups != 0 || cg * groups != c {
            return Err(Error::shape(
                "conv2d",
                format!("input channels {c} and filters {f} divisible by groups {groups}, with {} channels per group in the kernel", c / groups.max(1)),
                ws,
            ));
        }
        if let Some(b) = b {
            if self.shape(b).numel() != f {
                return Err(Error::shape("conv2d bias", f, self.shape(b)));
            }
        }
        let win = WindowArgs { size: [kh, kw], ..args }.window("conv2d", n, c, (h, wd))?;
        let geo = ConvGeometry { window: win, filters: f, groups };
        let out_dims = if xs.rank() == 4 { Shape::new(&[n, win.rows.out, win.cols.out, f])? } else { Shape::new(&[n, win.cols.out, f])? };
        let rg = self.requires_grad(x) || self.requires_grad(w) || b.is_some_and(|b| self.requires_grad(b));
        let spec = WindowSpec::of(&win);
        let out = self.push(out_dims, Op::Conv2d { x, w, b, act, spec, groups: groups as u16 }, rg);
        let keep_input = rg && self.grad_enabled() && act.needs_input_for_backward();
        self.compute(store, out, |nodes, params, y, saved| {
            let [cols, pre_activation, scratch] = saved;
            B::conv2d(y, value_of(nodes, params, x), value_of(nodes, params, w), &geo, cols, scratch);
            bias_then_activation(y, b.map(|b| value_of(nodes, params, b)), f, act, keep_input, pre_activation);
        });
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, (x, w, b): (Var, Var, Option<Var>), act: Activation, spec: WindowSpec, groups: usize) {
    let geo = geometry(ctx.nodes[x.idx()].shape, ctx.nodes[i].shape, spec, groups);
    let f = geo.filters;
    ctx.with_own(i, |ctx, g, saved| {
        let s = ConvSaved::of(saved);
        // ∂L/∂z = ∂L/∂y ⊙ act'(z), in place.
        B::act_backward(g, &ctx.nodes[i].value, s.pre_activation, f, act);
        if let Some(b) = b.filter(|b| ctx.requires_grad(*b)) {
            ctx.with_grad(b, |_, _, gb| B::col_sums(gb, g, f, true));
        }
        if ctx.requires_grad(w) {
            ctx.with_grad(w, |nodes, pvals, gw| B::conv2d_filter_grad(gw, g, value_of(nodes, pvals, x), s.cols, &geo, s.scratch));
        }
        if ctx.requires_grad(x) {
            ctx.with_grad(x, |nodes, pvals, gx| B::conv2d_input_grad(gx, g, value_of(nodes, pvals, w), &geo, s.scratch));
        }
    });
}
