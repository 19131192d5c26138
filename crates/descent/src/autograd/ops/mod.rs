//! The tape's ops, one file each: the `Tape` method that records and computes the op
//! (forward), its `backward` beside it, and a named struct for what backward reads from
//! the node's saved buffers. This file holds what they share: the [`Op`] record, the
//! saved buffers, the backward context and the dispatch of the reverse sweep.
//!
//! Saved buffers are a node's reusable storage: each op names the slots it uses in its
//! own `…Saved` struct (layout in one place), and the buffers keep their capacity from
//! step to step, so a steady-state step allocates nothing.

mod activation;
mod attention;
mod activity_penalty;
mod add;
mod add_const;
mod batch_norm;
mod batched_matmul;
mod broadcast;
mod concat;
mod conv2d;
mod dense;
mod gather;
mod layer_norm;
mod loss;
mod matmul;
mod mul_const;
mod nd;
mod pad2d;
mod pool2d;
mod permute;
mod reduce;
mod remap2d;
mod reshape;
mod slice;
mod softmax;

pub use attention::AttentionSpec;
pub use broadcast::Broadcast;
pub use reduce::Reduction;

use std::mem::take;
use std::ops::Range;

use super::tape::{Node, Var};
use crate::tensor::kernels::activation::Activation;
use crate::tensor::{FillMode, PoolKind, WindowSpec};
use crate::tensor::{Backend, DeviceSlice, DeviceVec, B};

/// What a node computes, from which values. Each variant's op lives in its own file.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op {
    /// Data fed in; never needs a gradient.
    Input,
    /// A view of a parameter in the `ParamStore` (values and gradients live there).
    Param { range: (usize, usize) },
    /// `wt`: the kernel is read transposed (`[out, in]`).
    Dense { x: Var, w: Var, b: Option<Var>, act: Activation, wt: bool },
    Act { x: Var, act: Activation },
    MatMul { a: Var, b: Var },
    Add { a: Var, b: Var },
    Concat { a: Var, b: Var },
    MulConst { x: Var },
    AddConst { x: Var },
    ActivityPenalty { x: Var, l1: f32, l2: f32 },
    LayerNorm { x: Var, gamma: Var, beta: Var },
    BatchNorm { x: Var, gamma: Var, beta: Var, fixed: bool, synchronized: bool },
    Loss { pred: Var },
    Reshape { x: Var },
    Permute { x: Var, axes: [u8; 4] },
    Broadcast { a: Var, b: Var, kind: Broadcast },
    BatchedMatMul { a: Var, b: Var },
    Softmax { x: Var, axis: u8 },
    Reduce { x: Var, axis: u8, kind: Reduction },
    Slice { x: Var, axis: u8, start: u32 },
    Gather { table: Var },
    Conv2d { x: Var, w: Var, b: Option<Var>, act: Activation, spec: WindowSpec, groups: u16 },
    Pool2d { x: Var, kind: PoolKind, spec: WindowSpec },
    Pad2d { x: Var, top: u16, left: u16 },
    Remap2d { x: Var, fill: FillMode },
    Attention { q: Var, k: Var, v: Var, spec: AttentionSpec },
}

/// A node's reusable saved buffers; each op's `…Saved` struct says what its slots hold.
pub(crate) type Saved = [DeviceVec; 3];

/// Where a value's storage is: a tape node's buffer or a range of the parameter store.
pub(crate) fn param_range(op: &Op) -> Option<Range<usize>> {
    match op {
        Op::Param { range } => Some(range.0..range.1),
        _ => None,
    }
}

pub(crate) fn value_of<'a>(nodes: &'a [Node], params: &'a DeviceSlice, v: Var) -> &'a DeviceSlice {
    let n = &nodes[v.idx()];
    match param_range(&n.op) {
        Some(r) => B::range(params, r),
        None => &n.value,
    }
}

/// What an op's backward works with: every node of the pass, the parameter values and
/// the flat parameter gradients.
pub(crate) struct Backward<'a> {
    pub(crate) nodes: &'a mut [Node],
    pub(crate) pvals: &'a DeviceSlice,
    pub(crate) pgrads: &'a mut DeviceSlice,
    /// Data-parallel: the other replicas (synchronized batch norm sums over them).
    pub(crate) replicas: Option<&'a mut super::replica::Replicas>,
}

impl Backward<'_> {
    pub(crate) fn requires_grad(&self, v: Var) -> bool {
        self.nodes[v.idx()].requires_grad
    }

    /// Runs `f` with a mutable view of `v`'s gradient and shared access to all nodes.
    pub(crate) fn with_grad<R>(&mut self, v: Var, f: impl FnOnce(&[Node], &DeviceSlice, &mut DeviceSlice) -> R) -> R {
        match param_range(&self.nodes[v.idx()].op) {
            Some(r) => f(self.nodes, self.pvals, B::range_mut(self.pgrads, r)),
            None => {
                let mut g = take(&mut self.nodes[v.idx()].grad);
                let out = f(self.nodes, self.pvals, &mut g);
                self.nodes[v.idx()].grad = g;
                out
            }
        }
    }

    /// Adds `g` into the gradient of `v`, when it needs one.
    pub(crate) fn accumulate(&mut self, v: Var, g: &DeviceSlice) {
        if self.requires_grad(v) {
            self.with_grad(v, |_, _, gv| B::add_assign(gv, g));
        }
    }

    /// Runs `f` with node `i`'s gradient and saved buffers moved out (so the inputs'
    /// gradients can be written meanwhile), then puts them back.
    pub(crate) fn with_own<R>(&mut self, i: usize, f: impl FnOnce(&mut Self, &mut DeviceVec, &mut Saved) -> R) -> R {
        let mut g = take(&mut self.nodes[i].grad);
        let mut saved = take(&mut self.nodes[i].saved);
        let out = f(self, &mut g, &mut saved);
        self.nodes[i].grad = g;
        self.nodes[i].saved = saved;
        out
    }
}

/// `y = act(y + bias)` in place over rows of `cols`, keeping the pre-activation `y + bias`
/// in `pre_activation` when backward will need it (`keep`; else it is emptied) — the
/// epilogue of dense and convolution.
pub(crate) fn bias_then_activation(y: &mut DeviceSlice, bias: Option<&DeviceSlice>, cols: usize, act: Activation, keep: bool, pre_activation: &mut DeviceVec) {
    if keep {
        B::bias_act(y, bias, cols, Activation::Linear);
        B::resize(pre_activation, B::len(y));
        B::copy(pre_activation, y);
        B::bias_act(y, None, cols, act);
    } else {
        B::clear(pre_activation);
        B::bias_act(y, bias, cols, act);
    }
}

/// Disjoint ranges of one buffer, mutably (any may be absent).
pub(crate) fn split_disjoint<const N: usize>(mut buf: &mut DeviceSlice, ranges: [Option<Range<usize>>; N]) -> [Option<&mut DeviceSlice>; N] {
    let mut order: [usize; N] = std::array::from_fn(|i| i);
    order.sort_by_key(|&i| ranges[i].as_ref().map_or(usize::MAX, |r| r.start));
    let mut out: [Option<&mut DeviceSlice>; N] = std::array::from_fn(|_| None);
    let mut offset = 0;
    for i in order {
        if let Some(r) = &ranges[i] {
            let rest = buf;
            let (_, tail) = B::split_at_mut(rest, r.start - offset);
            let (mid, tail) = B::split_at_mut(tail, r.end - r.start);
            out[i] = Some(mid);
            buf = tail;
            offset = r.end;
        }
    }
    out
}

/// Node `i`'s backward: adds its contribution to its inputs' gradients.
pub(crate) fn backward(ctx: &mut Backward, i: usize) {
    match ctx.nodes[i].op {
        Op::Input | Op::Param { .. } => {}
        Op::Dense { x, w, b, act, wt } => dense::backward(ctx, i, (x, w, b), act, wt),
        Op::Act { x, act } => activation::backward(ctx, i, x, act),
        Op::MatMul { a, b } => matmul::backward(ctx, i, a, b),
        Op::Add { a, b } => add::backward(ctx, i, a, b),
        Op::Concat { a, b } => concat::backward(ctx, i, a, b),
        Op::MulConst { x } => mul_const::backward(ctx, i, x),
        Op::AddConst { x } => add_const::backward(ctx, i, x),
        Op::ActivityPenalty { x, l1, l2 } => activity_penalty::backward(ctx, i, x, l1, l2),
        Op::LayerNorm { x, gamma, beta } => layer_norm::backward(ctx, i, x, gamma, beta),
        Op::BatchNorm { x, gamma, beta, fixed, synchronized } => batch_norm::backward(ctx, i, (x, gamma, beta), fixed, synchronized),
        Op::Loss { pred } => loss::backward(ctx, i, pred),
        Op::Reshape { x } => reshape::backward(ctx, i, x),
        Op::Permute { x, axes } => permute::backward(ctx, i, x, axes),
        Op::Broadcast { a, b, kind } => broadcast::backward(ctx, i, a, b, kind),
        Op::BatchedMatMul { a, b } => batched_matmul::backward(ctx, i, a, b),
        Op::Softmax { x, axis } => softmax::backward(ctx, i, x, axis as usize),
        Op::Reduce { x, axis, kind } => reduce::backward(ctx, i, x, axis as usize, kind),
        Op::Slice { x, axis, start } => slice::backward(ctx, i, x, axis as usize, start as usize),
        Op::Gather { table } => gather::backward(ctx, i, table),
        Op::Conv2d { x, w, b, act, spec, groups } => conv2d::backward(ctx, i, (x, w, b), act, spec, groups as usize),
        Op::Pool2d { x, kind, spec } => pool2d::backward(ctx, i, x, kind, spec),
        Op::Pad2d { x, top, left } => pad2d::backward(ctx, i, x, (top as usize, left as usize)),
        Op::Remap2d { x, fill } => remap2d::backward(ctx, i, x, fill),
        Op::Attention { q, k, v, spec } => attention::backward(ctx, i, (q, k, v), spec),
    }
}

/// A normalization's backward: γ's values and mutable views of the gradients of x, γ
/// and β (each `None` when it needs none). Their buffers are moved out of the nodes (or
/// are disjoint ranges of the parameter gradients) for the duration.
pub(crate) fn norm_grads(
    ctx: &mut Backward,
    (x, gamma, beta): (Var, Var, Var),
    f: impl FnOnce(&DeviceSlice, Option<&mut DeviceSlice>, Option<&mut DeviceSlice>, Option<&mut DeviceSlice>),
) {
    let nodes = &mut *ctx.nodes;
    // γ is normally a parameter, read from the store without a copy.
    match param_range(&nodes[gamma.idx()].op) {
        Some(r) => norm_grads_with(nodes, ctx.pgrads, B::range(ctx.pvals, r), (x, gamma, beta), f),
        None => {
            let gamma_values = nodes[gamma.idx()].value.clone();
            norm_grads_with(nodes, ctx.pgrads, &gamma_values, (x, gamma, beta), f)
        }
    }
}

fn norm_grads_with(
    nodes: &mut [Node],
    pgrads: &mut DeviceSlice,
    gamma_values: &DeviceSlice,
    (x, gamma, beta): (Var, Var, Var),
    f: impl FnOnce(&DeviceSlice, Option<&mut DeviceSlice>, Option<&mut DeviceSlice>, Option<&mut DeviceSlice>),
) {
    let mut own = |v: Var| -> Option<DeviceVec> {
        (nodes[v.idx()].requires_grad && param_range(&nodes[v.idx()].op).is_none()).then(|| take(&mut nodes[v.idx()].grad))
    };
    let (mut gx, mut gg, mut gb) = (own(x), own(gamma), own(beta));
    let range = |v: Var| if nodes[v.idx()].requires_grad { param_range(&nodes[v.idx()].op) } else { None };
    let [px, pg, pb] = split_disjoint(pgrads, [range(x), range(gamma), range(beta)]);
    f(gamma_values, gx.as_deref_mut().or(px), gg.as_deref_mut().or(pg), gb.as_deref_mut().or(pb));
    for (v, buf) in [(x, gx), (gamma, gg), (beta, gb)] {
        if let Some(b) = buf {
            nodes[v.idx()].grad = b;
        }
    }
}
