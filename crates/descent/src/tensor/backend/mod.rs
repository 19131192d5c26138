//! The backend seam: every kernel autograd, layers and optimizers run is reached through
//! the [`Backend`] trait, over buffers they cannot look inside.
//!
//! Modelled on candle's storage + layout: a backend owns a buffer type ([`Backend::Vec`],
//! borrowed as the unsized [`Backend::Slice`], as a device slice is in the CUDA crates)
//! and implements the kernels over it; *how* a value is read out of a buffer (shape,
//! strides, offset) is a [`Layout`], which is plain data every backend understands. The
//! ops in `autograd/ops/`, the layers in `nn/` and the rules in `optim/` hold
//! [`DeviceVec`]s and [`DeviceSlice`]s and call [`B`]`::…`; the buffers' contents are
//! private to the backend module, so they cannot index them by accident.
//!
//! Host access ([`Backend::host`], [`Backend::host_mut`], [`Backend::write_with`]) is for
//! the edges: filling inputs, reading predictions, saving and loading. On the CPU it is a
//! plain borrow; a device backend copies (and writes back on drop).
//!
//! Today the CPU ([`cpu::Cpu`]) is the only backend and [`B`] names it. A CUDA backend is
//! a second implementation of this trait (its `Slice` a device slice, its kernels CUDA's);
//! selecting it changes the alias here and nothing in autograd, `nn` or `optim`.

pub mod cpu;

use std::fmt::Debug;
use std::ops::{Deref, DerefMut, Range};

use super::kernels::activation::Activation;
use super::kernels::loss::LossKind;
use super::conv::{ConvGeometry, FillMode, PoolKind, Window2d};
use super::AttentionDims;
use super::{Layout, Shape};

/// The backend this build runs on.
pub type B = cpu::Cpu;
/// An owned buffer of f32 in the backend's memory.
pub type DeviceVec = <B as Backend>::Vec;
/// A borrowed range of one.
pub type DeviceSlice = <B as Backend>::Slice;
/// An owned buffer of u32 (class labels, token ids) in the backend's memory.
pub type DeviceInts = <B as Backend>::Ints;
/// A host view of a buffer (a borrow on the CPU, a copy from a device).
pub type HostRef<'a> = <B as Backend>::HostRef<'a>;
/// A writable host view (written back on drop by a device backend).
pub type HostMut<'a> = <B as Backend>::HostMut<'a>;

/// An optimizer rule's fused update of one tensor, as plain data: the rule's
/// hyperparameters and the step's context (`#[repr(C)]`, so a device backend can pass it
/// by value to its own compiled kernel of the same [`OptimizerKernel::NAME`]), and the
/// CPU body over the tensor's parameters, raw gradient and state buffers, which the CPU
/// backend runs. The bodies are in `tensor/kernels/optim/`, one file per rule.
pub trait OptimizerKernel: Copy + Sync {
    const NAME: &'static str;
    fn cpu(&self, p: &mut [f32], g: &[f32], state: &mut [&mut [f32]]);
}

/// Most state buffers [`Backend::optimizer_step`] takes.
pub const MAX_VIEWS: usize = 4;

/// Elementwise binary ops with broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Mul,
}

/// The kernels of one backend. Lengths are in elements; a `[rows, cols]` operand is
/// row-major. Functions that accumulate (`+=`) say so; the rest overwrite.
#[allow(clippy::too_many_arguments)]
pub trait Backend: 'static {
    type Vec: Default + Clone + Debug + Send + Sync + Deref<Target = Self::Slice> + DerefMut;
    type Slice: ?Sized + Send + Sync;
    type Ints: Default + Clone + Debug + Send + Sync;
    type HostRef<'a>: Deref<Target = [f32]>;
    type HostMut<'a>: DerefMut<Target = [f32]>;

    // ---- memory ----
    /// `len` zeros, in memory advised for large sequential passes (huge pages).
    fn zeros(len: usize) -> Self::Vec;
    /// A copy of host data, advised like [`Backend::zeros`].
    fn from_host(data: &[f32]) -> Self::Vec;
    /// Sets the length, zero-filling new elements; within capacity it never allocates.
    fn resize(v: &mut Self::Vec, len: usize);
    /// Drops the contents but keeps the capacity.
    fn clear(v: &mut Self::Vec);
    fn len(s: &Self::Slice) -> usize;
    fn range(s: &Self::Slice, r: Range<usize>) -> &Self::Slice;
    fn range_mut(s: &mut Self::Slice, r: Range<usize>) -> &mut Self::Slice;
    fn split_at_mut(s: &mut Self::Slice, mid: usize) -> (&mut Self::Slice, &mut Self::Slice);
    /// Reads on the host.
    fn host(s: &Self::Slice) -> Self::HostRef<'_>;
    /// Reads and writes on the host.
    fn host_mut(s: &mut Self::Slice) -> Self::HostMut<'_>;
    /// Writes from the host: `fill` gets the (staged) contents to overwrite.
    fn write_with(s: &mut Self::Slice, fill: impl FnOnce(&mut [f32]));
    /// Replaces `v`'s contents with whatever `fill` appends on the host (a batch's
    /// targets, gathered), keeping capacity.
    fn stage_with(v: &mut Self::Vec, fill: impl FnOnce(&mut Vec<f32>));
    fn ints_write(v: &mut Self::Ints, ids: &[u32]);
    fn ints_stage_with(v: &mut Self::Ints, fill: impl FnOnce(&mut Vec<u32>));
    fn ints_len(v: &Self::Ints) -> usize;
    /// Integer ids from their values as numbers (token ids fed as f32), each a whole
    /// number below `limit`; else the first that is not, with its position (and `ids`
    /// unspecified).
    fn ints_from_values(ids: &mut Self::Ints, values: &Self::Slice, limit: usize) -> Option<(usize, f32)>;
    fn ints_host(v: &Self::Ints) -> &[u32];
    /// One element, read on the host (a loss, a seed gradient): a synchronization point.
    fn read(s: &Self::Slice, i: usize) -> f32;

    // ---- elementwise ----
    fn copy(dst: &mut Self::Slice, src: &Self::Slice);
    fn fill(dst: &mut Self::Slice, value: f32);
    /// `y = a + b`.
    fn add(y: &mut Self::Slice, a: &Self::Slice, b: &Self::Slice);
    /// `dst += src`.
    fn add_assign(dst: &mut Self::Slice, src: &Self::Slice);
    /// `dst += alpha · src`.
    fn axpy(dst: &mut Self::Slice, alpha: f32, src: &Self::Slice);
    /// `y = a ⊙ b`.
    fn mul(y: &mut Self::Slice, a: &Self::Slice, b: &Self::Slice);
    /// `dst += a ⊙ b`.
    fn mul_add_assign(dst: &mut Self::Slice, a: &Self::Slice, b: &Self::Slice);
    /// `dst = (dst + src) · scale`.
    fn add_then_scale(dst: &mut Self::Slice, src: &Self::Slice, scale: f32);
    /// `avg = m·avg + (1 − m)·x` (moving averages, EMA of weights).
    fn lerp_toward(avg: &mut Self::Slice, x: &Self::Slice, momentum: f32);
    /// Runs an optimizer rule's fused update over a parameter range, its gradient and up
    /// to [`MAX_VIEWS`] state buffers of the same range.
    fn optimizer_step<K: OptimizerKernel>(k: &K, p: &mut Self::Slice, g: &Self::Slice, states: &mut [Option<&mut Self::Slice>]);

    // ---- dense ----
    /// `c = op(a)·op(b)` (or `c +=` when `accumulate`), `op` an optional transpose:
    /// `a` is `[m, k]` (`[k, m]` with `trans_a`), `b` is `[k, n]` (`[n, k]` with `trans_b`).
    fn matmul(c: &mut Self::Slice, a: &Self::Slice, b: &Self::Slice, m: usize, k: usize, n: usize, trans_a: bool, trans_b: bool, accumulate: bool);
    /// `x[i, j] = act(x[i, j] + bias[j])` in place (no bias: `None`).
    fn bias_act(x: &mut Self::Slice, bias: Option<&Self::Slice>, cols: usize, act: Activation);
    /// `g = ∂L/∂y` into `∂L/∂z` in place for `y = act(z)`, from the output `y` and,
    /// for activations that need it, the input `z` (else empty).
    fn act_backward(g: &mut Self::Slice, y: &Self::Slice, z: &Self::Slice, cols: usize, act: Activation);
    /// `out[j] (+)= Σ_i x[i, j]`.
    fn col_sums(out: &mut Self::Slice, x: &Self::Slice, cols: usize, accumulate: bool);

    // ---- layouts and axes ----
    /// `y = x` read through `layout` (permute, slice, broadcast), `y` contiguous.
    fn copy_strided(y: &mut Self::Slice, x: &Self::Slice, layout: &Layout);
    /// The adjoint of [`Backend::copy_strided`]: `gx[layout(o)] += g[o]`.
    fn add_strided_back(gx: &mut Self::Slice, g: &Self::Slice, layout: &Layout);
    /// `y[o] = a[la(o)] ∘ b[lb(o)]` over the broadcast shape.
    fn binary_strided(op: Binary, y: &mut Self::Slice, a: &Self::Slice, la: &Layout, b: &Self::Slice, lb: &Layout);
    /// `ga[la(o)] += g[o] · b[lb(o)]` (the gradient of a broadcast product).
    fn mul_strided_back(ga: &mut Self::Slice, la: &Layout, g: &Self::Slice, b: &Self::Slice, lb: &Layout);
    /// `y = [a | b]` row by row (`a: [rows, p]`, `b: [rows, q]`).
    fn concat_cols(y: &mut Self::Slice, a: &Self::Slice, b: &Self::Slice, p: usize, q: usize);
    /// `dst += g[:, offset..offset + width]` for `g: [rows, total]`, `dst: [rows, width]`.
    fn add_col_block(dst: &mut Self::Slice, g: &Self::Slice, offset: usize, width: usize, total: usize);
    /// `y[o, i] = scale · Σ_j x[o, j, i]` for `x` seen as `[outer, len, inner]`.
    fn sum_axis(y: &mut Self::Slice, x: &Self::Slice, outer: usize, len: usize, inner: usize, scale: f32);
    /// The adjoint: `gx[o, j, i] += scale · g[o, i]`.
    fn spread_axis(gx: &mut Self::Slice, g: &Self::Slice, outer: usize, len: usize, inner: usize, scale: f32);
    /// Softmax of `x` seen as `[outer, len, inner]` along the middle axis.
    fn softmax_axis(y: &mut Self::Slice, x: &Self::Slice, outer: usize, len: usize, inner: usize);
    /// Its backward: `gx += y ⊙ (g − Σ_lane g ⊙ y)`.
    fn softmax_axis_backward(gx: &mut Self::Slice, g: &Self::Slice, y: &Self::Slice, outer: usize, len: usize, inner: usize);
    /// `y[r] = table[ids[r]]`, rows of `width`.
    fn gather_rows(y: &mut Self::Slice, table: &Self::Slice, ids: &Self::Ints, width: usize);
    /// The adjoint: `gtable[ids[r]] += g[r]` (repeated ids sum, in order).
    fn scatter_add_rows(gtable: &mut Self::Slice, g: &Self::Slice, ids: &Self::Ints, width: usize);

    // ---- convolution and pooling (channels-last) ----
    /// `y = conv(x, w)` for `x: [n, h, w, c]`, Keras's kernel `w: [kh, kw, c/groups, f]`
    /// and `y: [n, oh, ow, f]` (bias and activation come after, with [`Backend::bias_act`]).
    /// `cols` receives what the filter gradient reads (the im2col matrices); `scratch`
    /// is working space. Both keep their capacity between steps.
    fn conv2d(y: &mut Self::Slice, x: &Self::Slice, w: &Self::Slice, geo: &ConvGeometry, cols: &mut Self::Vec, scratch: &mut Self::Vec);
    /// `gw += ∂L/∂w` from `gy = ∂L/∂y` and the forward pass's `x` and `cols`.
    fn conv2d_filter_grad(gw: &mut Self::Slice, gy: &Self::Slice, x: &Self::Slice, cols: &Self::Slice, geo: &ConvGeometry, scratch: &mut Self::Vec);
    /// `gx += ∂L/∂x` from `gy` and the kernel.
    fn conv2d_input_grad(gx: &mut Self::Slice, gy: &Self::Slice, w: &Self::Slice, geo: &ConvGeometry, scratch: &mut Self::Vec);
    /// Max or average over each window of `x: [n, h, w, c]` into `y: [n, oh, ow, c]`.
    fn pool2d(y: &mut Self::Slice, x: &Self::Slice, win: &Window2d, kind: PoolKind);
    /// `gx += ∂L/∂x` of [`Backend::pool2d`] (the max cell found again from `x`).
    fn pool2d_backward(gx: &mut Self::Slice, gy: &Self::Slice, x: &Self::Slice, win: &Window2d, kind: PoolKind);
    /// `x: [n, h, w, c]` into zeros `y: [n, oh, ow, c]` at (top, left).
    fn pad2d(y: &mut Self::Slice, x: &Self::Slice, in_hw: (usize, usize), out_hw: (usize, usize), c: usize, at: (usize, usize));
    /// `gx += ∂L/∂x` of [`Backend::pad2d`].
    fn pad2d_backward(gx: &mut Self::Slice, gy: &Self::Slice, in_hw: (usize, usize), out_hw: (usize, usize), c: usize, at: (usize, usize));

    /// Each sample of `x: [n, h, w, c]` shifted and flipped by its row of `transforms`
    /// (`REMAP_FIELDS` per sample), cells from outside read by `fill`.
    fn remap2d(y: &mut Self::Slice, x: &Self::Slice, hwc: (usize, usize, usize), transforms: &Self::Slice, fill: FillMode);
    /// `gx += ∂L/∂x` of [`Backend::remap2d`].
    fn remap2d_backward(gx: &mut Self::Slice, gy: &Self::Slice, hwc: (usize, usize, usize), transforms: &Self::Slice, fill: FillMode);

    // ---- attention ----
    /// Fused scaled dot-product attention: `o = softmax(scale·q·kᵀ, masked)·v` per head
    /// (`q [B, Tq, H·dk]`, `k [B, Tk, H·dk]`, `v [B, Tk, H·dv]`, `o [B, Tq, H·dv]`) and the
    /// log-sum-exp of each score row `[B, H, Tq]`; never more than a tile of scores.
    fn attention(o: &mut Self::Slice, lse: &mut Self::Slice, q: &Self::Slice, k: &Self::Slice, v: &Self::Slice, dims: &AttentionDims);
    /// Its backward: `gq`, `gk`, `gv` overwritten from `go`, recomputing scores by tiles.
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(gq: &mut Self::Slice, gk: &mut Self::Slice, gv: &mut Self::Slice, go: &Self::Slice, o: &Self::Slice, lse: &Self::Slice, q: &Self::Slice, k: &Self::Slice, v: &Self::Slice, dims: &AttentionDims);

    // ---- normalization ----
    /// Layer norm of each row of `x: [rows, n]`, keeping x̂ and 1/σ per row.
    fn layer_norm(x: &Self::Slice, gamma: &Self::Slice, beta: &Self::Slice, eps: f32, y: &mut Self::Slice, xhat: &mut Self::Slice, inv_std: &mut Self::Slice);
    fn layer_norm_backward(g: &Self::Slice, xhat: &Self::Slice, inv_std: &Self::Slice, gamma: &Self::Slice, gx: Option<&mut Self::Slice>, ggamma: Option<&mut Self::Slice>, gbeta: Option<&mut Self::Slice>);
    /// Batch norm of each column of `x: [rows, n]`; `stats` is `[mean | var | 1/σ]`, each
    /// `n` long: computed from the batch, or (`fixed`) mean and var given, 1/σ computed.
    fn batch_norm(x: &Self::Slice, gamma: &Self::Slice, beta: &Self::Slice, eps: f32, fixed: bool, y: &mut Self::Slice, xhat: &mut Self::Slice, stats: &mut Self::Slice);
    fn batch_norm_backward(g: &Self::Slice, xhat: &Self::Slice, inv_std: &Self::Slice, gamma: &Self::Slice, fixed: bool, gx: Option<&mut Self::Slice>, ggamma: Option<&mut Self::Slice>, gbeta: Option<&mut Self::Slice>);
    /// Batch statistics over several replicas' rows (synchronized batch norm) in steps
    /// the replicas' sums go between: Σ x per column of `x: [rows, n]` into `sums`
    /// (host f64, `n` long), then Σ (x − mean)², then normalization with the summed
    /// statistics (`stats` as in [`Backend::batch_norm`]).
    fn column_sums(x: &Self::Slice, n: usize, sums: &mut [f64]);
    fn column_centered_squares(x: &Self::Slice, mean: &[f64], sums: &mut [f64]);
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_given(x: &Self::Slice, gamma: &Self::Slice, beta: &Self::Slice, eps: f32, mean: &[f64], var: &[f64], y: &mut Self::Slice, xhat: &mut Self::Slice, stats: &mut Self::Slice);
    /// Its backward: per column Σ g⊙γ and Σ g⊙γ⊙x̂ into `sums` `[2n]`, then, with the
    /// replicas' means of those two in `means`, the gradients (added into).
    fn batch_norm_backward_sums(g: &Self::Slice, xhat: &Self::Slice, gamma: &Self::Slice, sums: &mut [f64]);
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward_given(g: &Self::Slice, xhat: &Self::Slice, inv_std: &Self::Slice, gamma: &Self::Slice, means: &[f64], gx: Option<&mut Self::Slice>, ggamma: Option<&mut Self::Slice>, gbeta: Option<&mut Self::Slice>);

    // ---- losses and reductions ----
    /// Σ over rows of `kind`'s loss of `pred: [rows, cols]` against `targets` (values
    /// shaped like `pred`) or `labels` (one class per row, for sparse kinds), each row
    /// weighted by `weights` when not empty. Fills `grad` with `scale · w · ∂/∂pred`.
    fn loss(kind: LossKind, pred: &Self::Slice, targets: &Self::Slice, labels: &Self::Ints, weights: &Self::Slice, cols: usize, grad: Option<&mut Self::Slice>, scale: f32) -> f64;
    /// Σx², in an order fixed by the length alone (never by the thread count).
    fn sum_squares(x: &Self::Slice) -> f32;
    /// (Σ|x|, Σx²) in f64.
    fn abs_and_square_sums(x: &Self::Slice) -> (f64, f64);
    /// `g += l1·sign(w) + 2·l2·w` (a weight penalty's gradient).
    fn penalty_grad(g: &mut Self::Slice, w: &Self::Slice, l1: f32, l2: f32);
    /// `gx += g + l1·sign(x) + 2·l2·x` (an activity penalty's backward).
    fn penalty_backward(gx: &mut Self::Slice, g: &Self::Slice, x: &Self::Slice, l1: f32, l2: f32);
}

/// The value's shape as (outer, len, inner) around `axis`.
pub fn around(shape: Shape, axis: usize) -> (usize, usize, usize) {
    let dims = shape.dims();
    (dims[..axis].iter().product(), dims[axis], dims[axis + 1..].iter().product())
}
