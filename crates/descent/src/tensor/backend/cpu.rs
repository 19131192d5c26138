//! The CPU backend: buffers in host memory, kernels from `tensor::kernels` (SIMD chosen
//! at run time, large passes split over rayon's threads in an order fixed by length).

use std::fmt;
use std::ops::{Deref, DerefMut, Range};

use super::{Backend, Binary, OptimizerKernel};
use crate::tensor::kernels::activation::{act_backward_inplace, bias_act_inplace, Activation};
use crate::tensor::kernels::loss::LossKind;
use crate::tensor::kernels::parallel::{for_each_split, MIN_PARALLEL_LEN};
use crate::tensor::conv::{ConvGeometry, FillMode, PoolKind, Window2d};
use crate::tensor::kernels::attention;
use crate::tensor::AttentionDims;
use crate::tensor::kernels::{axis, conv, elementwise, matmul, norm, reduce, strided};
use crate::tensor::{alloc, Layout};

pub struct Cpu;

/// A borrowed run of f32 in host memory. Only the backend sees the elements.
#[repr(transparent)]
pub struct CpuSlice([f32]);

impl CpuSlice {
    fn of(s: &[f32]) -> &CpuSlice {
        // SAFETY: `CpuSlice` is a transparent wrapper of `[f32]`.
        unsafe { &*(s as *const [f32] as *const CpuSlice) }
    }
    fn of_mut(s: &mut [f32]) -> &mut CpuSlice {
        // SAFETY: as in `of`.
        unsafe { &mut *(s as *mut [f32] as *mut CpuSlice) }
    }
}

/// An owned buffer of f32 in host memory.
#[derive(Clone, Default, PartialEq)]
pub struct CpuVec(Vec<f32>);

impl fmt::Debug for CpuVec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CpuVec[{}]", self.0.len())
    }
}

impl Deref for CpuVec {
    type Target = CpuSlice;
    fn deref(&self) -> &CpuSlice {
        CpuSlice::of(&self.0)
    }
}
impl DerefMut for CpuVec {
    fn deref_mut(&mut self) -> &mut CpuSlice {
        CpuSlice::of_mut(&mut self.0)
    }
}

/// An owned buffer of u32 in host memory.
#[derive(Clone, Default, Debug, PartialEq)]
pub struct CpuInts(Vec<u32>);

fn opt_mut(s: Option<&mut CpuSlice>) -> Option<&mut [f32]> {
    s.map(|s| &mut s.0)
}

impl Backend for Cpu {
    type Vec = CpuVec;
    type Slice = CpuSlice;
    type Ints = CpuInts;
    type HostRef<'a> = &'a [f32];
    type HostMut<'a> = &'a mut [f32];

    fn zeros(len: usize) -> CpuVec {
        CpuVec(alloc::zeroed(len))
    }
    fn from_host(data: &[f32]) -> CpuVec {
        CpuVec(alloc::copied(data))
    }
    fn resize(v: &mut CpuVec, len: usize) {
        v.0.resize(len, 0.0);
    }
    fn clear(v: &mut CpuVec) {
        v.0.clear();
    }
    fn len(s: &CpuSlice) -> usize {
        s.0.len()
    }
    fn range(s: &CpuSlice, r: Range<usize>) -> &CpuSlice {
        CpuSlice::of(&s.0[r])
    }
    fn range_mut(s: &mut CpuSlice, r: Range<usize>) -> &mut CpuSlice {
        CpuSlice::of_mut(&mut s.0[r])
    }
    fn split_at_mut(s: &mut CpuSlice, mid: usize) -> (&mut CpuSlice, &mut CpuSlice) {
        let (a, b) = s.0.split_at_mut(mid);
        (CpuSlice::of_mut(a), CpuSlice::of_mut(b))
    }
    fn host(s: &CpuSlice) -> &[f32] {
        &s.0
    }
    fn host_mut(s: &mut CpuSlice) -> &mut [f32] {
        &mut s.0
    }
    fn write_with(s: &mut CpuSlice, fill: impl FnOnce(&mut [f32])) {
        fill(&mut s.0)
    }
    fn stage_with(v: &mut CpuVec, fill: impl FnOnce(&mut Vec<f32>)) {
        v.0.clear();
        fill(&mut v.0)
    }
    fn ints_write(v: &mut CpuInts, ids: &[u32]) {
        v.0.clear();
        v.0.extend_from_slice(ids);
    }
    fn ints_stage_with(v: &mut CpuInts, fill: impl FnOnce(&mut Vec<u32>)) {
        v.0.clear();
        fill(&mut v.0)
    }
    fn ints_from_values(ids: &mut CpuInts, values: &CpuSlice, limit: usize) -> Option<(usize, f32)> {
        ids.0.clear();
        for (pos, &v) in values.0.iter().enumerate() {
            if !(v.fract() == 0.0 && v >= 0.0 && (v as usize) < limit) {
                return Some((pos, v));
            }
            ids.0.push(v as u32);
        }
        None
    }
    fn ints_len(v: &CpuInts) -> usize {
        v.0.len()
    }
    fn ints_host(v: &CpuInts) -> &[u32] {
        &v.0
    }
    fn read(s: &CpuSlice, i: usize) -> f32 {
        s.0[i]
    }

    fn copy(dst: &mut CpuSlice, src: &CpuSlice) {
        dst.0.copy_from_slice(&src.0)
    }
    fn fill(dst: &mut CpuSlice, value: f32) {
        dst.0.fill(value)
    }
    fn add(y: &mut CpuSlice, a: &CpuSlice, b: &CpuSlice) {
        elementwise::add(&mut y.0, &a.0, &b.0)
    }
    fn add_assign(dst: &mut CpuSlice, src: &CpuSlice) {
        elementwise::add_assign(&mut dst.0, &src.0)
    }
    fn axpy(dst: &mut CpuSlice, alpha: f32, src: &CpuSlice) {
        elementwise::axpy(&mut dst.0, alpha, &src.0)
    }
    fn mul(y: &mut CpuSlice, a: &CpuSlice, b: &CpuSlice) {
        elementwise::mul(&mut y.0, &a.0, &b.0)
    }
    fn mul_add_assign(dst: &mut CpuSlice, a: &CpuSlice, b: &CpuSlice) {
        elementwise::mul_add_assign(&mut dst.0, &a.0, &b.0)
    }
    fn add_then_scale(dst: &mut CpuSlice, src: &CpuSlice, scale: f32) {
        for_each_split([&mut dst.0], [&src.0], &|[d], [s]| elementwise::add_then_scale(d, s, scale))
    }
    fn lerp_toward(avg: &mut CpuSlice, x: &CpuSlice, momentum: f32) {
        for_each_split([&mut avg.0], [&x.0], &|[a], [x]| elementwise::lerp_toward(a, x, momentum))
    }
    fn optimizer_step<K: OptimizerKernel>(k: &K, p: &mut CpuSlice, g: &CpuSlice, states: &mut [Option<&mut CpuSlice>]) {
        let n = states.len().min(super::MAX_VIEWS);
        let mut it = states.iter_mut();
        let mut views: [&mut [f32]; super::MAX_VIEWS] = std::array::from_fn(|_| it.next().and_then(|s| s.as_deref_mut()).map_or(&mut [][..], |s| &mut s.0));
        k.cpu(&mut p.0, &g.0, &mut views[..n])
    }

    fn matmul(c: &mut CpuSlice, a: &CpuSlice, b: &CpuSlice, m: usize, k: usize, n: usize, trans_a: bool, trans_b: bool, accumulate: bool) {
        matmul::matmul(&mut c.0, &a.0, &b.0, m, k, n, trans_a, trans_b, accumulate)
    }
    fn bias_act(x: &mut CpuSlice, bias: Option<&CpuSlice>, cols: usize, act: Activation) {
        bias_act_inplace(&mut x.0, bias.map_or(&[][..], |b| &b.0), cols, act)
    }
    fn act_backward(g: &mut CpuSlice, y: &CpuSlice, z: &CpuSlice, cols: usize, act: Activation) {
        act_backward_inplace(&mut g.0, &y.0, &z.0, cols, act)
    }
    fn col_sums(out: &mut CpuSlice, x: &CpuSlice, cols: usize, accumulate: bool) {
        reduce::col_sums(&mut out.0, &x.0, cols, accumulate)
    }

    fn conv2d(y: &mut CpuSlice, x: &CpuSlice, w: &CpuSlice, geo: &ConvGeometry, cols: &mut CpuVec, scratch: &mut CpuVec) {
        conv::conv2d(&mut y.0, &x.0, &w.0, geo, &mut cols.0, &mut scratch.0)
    }
    fn conv2d_filter_grad(gw: &mut CpuSlice, gy: &CpuSlice, x: &CpuSlice, cols: &CpuSlice, geo: &ConvGeometry, scratch: &mut CpuVec) {
        conv::conv2d_filter_grad(&mut gw.0, &gy.0, &x.0, &cols.0, geo, &mut scratch.0)
    }
    fn conv2d_input_grad(gx: &mut CpuSlice, gy: &CpuSlice, w: &CpuSlice, geo: &ConvGeometry, scratch: &mut CpuVec) {
        conv::conv2d_input_grad(&mut gx.0, &gy.0, &w.0, geo, &mut scratch.0)
    }
    fn pool2d(y: &mut CpuSlice, x: &CpuSlice, win: &Window2d, kind: PoolKind) {
        conv::pool2d(&mut y.0, &x.0, win, kind)
    }
    fn pool2d_backward(gx: &mut CpuSlice, gy: &CpuSlice, x: &CpuSlice, win: &Window2d, kind: PoolKind) {
        conv::pool2d_backward(&mut gx.0, &gy.0, &x.0, win, kind)
    }
    fn pad2d(y: &mut CpuSlice, x: &CpuSlice, in_hw: (usize, usize), out_hw: (usize, usize), c: usize, at: (usize, usize)) {
        conv::pad2d(&mut y.0, &x.0, in_hw, out_hw, c, at)
    }
    fn pad2d_backward(gx: &mut CpuSlice, gy: &CpuSlice, in_hw: (usize, usize), out_hw: (usize, usize), c: usize, at: (usize, usize)) {
        conv::pad2d_backward(&mut gx.0, &gy.0, in_hw, out_hw, c, at)
    }

    fn remap2d(y: &mut CpuSlice, x: &CpuSlice, hwc: (usize, usize, usize), transforms: &CpuSlice, fill: FillMode) {
        conv::remap2d(&mut y.0, &x.0, hwc, &transforms.0, fill)
    }
    fn remap2d_backward(gx: &mut CpuSlice, gy: &CpuSlice, hwc: (usize, usize, usize), transforms: &CpuSlice, fill: FillMode) {
        conv::remap2d_backward(&mut gx.0, &gy.0, hwc, &transforms.0, fill)
    }

    fn copy_strided(y: &mut CpuSlice, x: &CpuSlice, layout: &Layout) {
        // Contiguous from the start: a leading part of `x` (a slice of the first axis
        // taken from 0 reads fewer elements than `x` holds).
        if layout.is_contiguous() {
            return y.0.copy_from_slice(&x.0[..y.0.len()]);
        }
        strided::copy_strided(&mut y.0, &x.0, layout)
    }
    fn add_strided_back(gx: &mut CpuSlice, g: &CpuSlice, layout: &Layout) {
        if layout.is_contiguous() {
            let n = g.0.len();
            return elementwise::add_assign(&mut gx.0[..n], &g.0);
        }
        strided::add_strided_back(&mut gx.0, &g.0, layout)
    }
    fn binary_strided(op: Binary, y: &mut CpuSlice, a: &CpuSlice, la: &Layout, b: &CpuSlice, lb: &Layout) {
        strided::binary_strided(op == Binary::Mul, &mut y.0, &a.0, la, &b.0, lb)
    }
    fn mul_strided_back(ga: &mut CpuSlice, la: &Layout, g: &CpuSlice, b: &CpuSlice, lb: &Layout) {
        strided::mul_strided_back(&mut ga.0, la, &g.0, &b.0, lb)
    }
    fn concat_cols(y: &mut CpuSlice, a: &CpuSlice, b: &CpuSlice, p: usize, q: usize) {
        axis::concat_cols(&mut y.0, &a.0, &b.0, p, q)
    }
    fn add_col_block(dst: &mut CpuSlice, g: &CpuSlice, offset: usize, width: usize, total: usize) {
        axis::add_col_block(&mut dst.0, &g.0, offset, width, total)
    }
    fn sum_axis(y: &mut CpuSlice, x: &CpuSlice, outer: usize, len: usize, inner: usize, scale: f32) {
        axis::sum_axis(&mut y.0, &x.0, outer, len, inner, scale)
    }
    fn spread_axis(gx: &mut CpuSlice, g: &CpuSlice, outer: usize, len: usize, inner: usize, scale: f32) {
        axis::spread_axis(&mut gx.0, &g.0, outer, len, inner, scale)
    }
    fn softmax_axis(y: &mut CpuSlice, x: &CpuSlice, outer: usize, len: usize, inner: usize) {
        axis::softmax_axis(&mut y.0, &x.0, outer, len, inner)
    }
    fn softmax_axis_backward(gx: &mut CpuSlice, g: &CpuSlice, y: &CpuSlice, outer: usize, len: usize, inner: usize) {
        axis::softmax_axis_backward(&mut gx.0, &g.0, &y.0, outer, len, inner)
    }
    fn gather_rows(y: &mut CpuSlice, table: &CpuSlice, ids: &CpuInts, width: usize) {
        axis::gather_rows(&mut y.0, &table.0, &ids.0, width)
    }
    fn scatter_add_rows(gtable: &mut CpuSlice, g: &CpuSlice, ids: &CpuInts, width: usize) {
        axis::scatter_add_rows(&mut gtable.0, &g.0, &ids.0, width)
    }

    fn attention(o: &mut CpuSlice, lse: &mut CpuSlice, q: &CpuSlice, k: &CpuSlice, v: &CpuSlice, dims: &AttentionDims) {
        attention::attention_forward(&mut o.0, &mut lse.0, &q.0, &k.0, &v.0, dims)
    }
    fn attention_backward(gq: &mut CpuSlice, gk: &mut CpuSlice, gv: &mut CpuSlice, go: &CpuSlice, o: &CpuSlice, lse: &CpuSlice, q: &CpuSlice, k: &CpuSlice, v: &CpuSlice, dims: &AttentionDims) {
        attention::attention_backward(&mut gq.0, &mut gk.0, &mut gv.0, &go.0, &o.0, &lse.0, &q.0, &k.0, &v.0, dims)
    }

    fn layer_norm(x: &CpuSlice, gamma: &CpuSlice, beta: &CpuSlice, eps: f32, y: &mut CpuSlice, xhat: &mut CpuSlice, inv_std: &mut CpuSlice) {
        norm::layer_norm_forward(&x.0, &gamma.0, &beta.0, eps, &mut y.0, &mut xhat.0, &mut inv_std.0)
    }
    fn layer_norm_backward(g: &CpuSlice, xhat: &CpuSlice, inv_std: &CpuSlice, gamma: &CpuSlice, gx: Option<&mut CpuSlice>, ggamma: Option<&mut CpuSlice>, gbeta: Option<&mut CpuSlice>) {
        norm::layer_norm_backward(&g.0, &xhat.0, &inv_std.0, &gamma.0, opt_mut(gx), opt_mut(ggamma), opt_mut(gbeta))
    }
    fn batch_norm(x: &CpuSlice, gamma: &CpuSlice, beta: &CpuSlice, eps: f32, fixed: bool, y: &mut CpuSlice, xhat: &mut CpuSlice, stats: &mut CpuSlice) {
        let n = gamma.0.len();
        let (mean, rest) = stats.0.split_at_mut(n);
        let (var, inv) = rest.split_at_mut(n);
        if fixed {
            norm::batch_norm_inference(&x.0, &gamma.0, &beta.0, mean, var, eps, &mut y.0, &mut xhat.0, inv)
        } else {
            norm::batch_norm_forward(&x.0, &gamma.0, &beta.0, eps, &mut y.0, &mut xhat.0, mean, var, inv)
        }
    }
    fn batch_norm_backward(g: &CpuSlice, xhat: &CpuSlice, inv_std: &CpuSlice, gamma: &CpuSlice, fixed: bool, gx: Option<&mut CpuSlice>, ggamma: Option<&mut CpuSlice>, gbeta: Option<&mut CpuSlice>) {
        norm::batch_norm_backward(&g.0, &xhat.0, &inv_std.0, &gamma.0, fixed, opt_mut(gx), opt_mut(ggamma), opt_mut(gbeta))
    }
    fn column_sums(x: &CpuSlice, n: usize, sums: &mut [f64]) {
        norm::column_sums(&x.0, n, sums)
    }
    fn column_centered_squares(x: &CpuSlice, mean: &[f64], sums: &mut [f64]) {
        norm::column_centered_squares(&x.0, mean, sums)
    }
    fn batch_norm_given(x: &CpuSlice, gamma: &CpuSlice, beta: &CpuSlice, eps: f32, mean64: &[f64], var64: &[f64], y: &mut CpuSlice, xhat: &mut CpuSlice, stats: &mut CpuSlice) {
        let n = gamma.0.len();
        let (mean, rest) = stats.0.split_at_mut(n);
        let (var, inv) = rest.split_at_mut(n);
        norm::batch_norm_given(&x.0, &gamma.0, &beta.0, eps, mean64, var64, &mut y.0, &mut xhat.0, mean, var, inv)
    }
    fn batch_norm_backward_sums(g: &CpuSlice, xhat: &CpuSlice, gamma: &CpuSlice, sums: &mut [f64]) {
        norm::batch_norm_backward_sums(&g.0, &xhat.0, &gamma.0, sums)
    }
    fn batch_norm_backward_given(g: &CpuSlice, xhat: &CpuSlice, inv_std: &CpuSlice, gamma: &CpuSlice, means: &[f64], gx: Option<&mut CpuSlice>, ggamma: Option<&mut CpuSlice>, gbeta: Option<&mut CpuSlice>) {
        norm::batch_norm_backward_given(&g.0, &xhat.0, &inv_std.0, &gamma.0, means, opt_mut(gx), opt_mut(ggamma), opt_mut(gbeta))
    }

    fn loss(kind: LossKind, pred: &CpuSlice, targets: &CpuSlice, labels: &CpuInts, weights: &CpuSlice, cols: usize, grad: Option<&mut CpuSlice>, scale: f32) -> f64 {
        kind.compute_weighted(&pred.0, &targets.0, &labels.0, &weights.0, cols, opt_mut(grad), scale)
    }

    /// Fixed-size chunks (summed in parallel when large), then the chunk sums in order:
    /// the order depends on the length alone.
    fn sum_squares(x: &CpuSlice) -> f32 {
        let x = &x.0;
        if x.len() < MIN_PARALLEL_LEN || rayon::current_num_threads() == 1 {
            return x.chunks(MIN_PARALLEL_LEN).map(reduce::sum_squares).fold(0.0f32, |a, b| a + b);
        }
        use rayon::prelude::*;
        // Chunk sums are collected in order on the stack, 64 at a time (no allocation).
        let mut total = 0.0f32;
        for group in x.chunks(MIN_PARALLEL_LEN * 64) {
            let mut partials = [0.0f32; 64];
            let chunks = group.len().div_ceil(MIN_PARALLEL_LEN);
            partials[..chunks].par_iter_mut().zip(group.par_chunks(MIN_PARALLEL_LEN)).for_each(|(s, c)| *s = reduce::sum_squares(c));
            total = partials[..chunks].iter().fold(total, |a, b| a + b);
        }
        total
    }
    fn abs_and_square_sums(x: &CpuSlice) -> (f64, f64) {
        elementwise::abs_and_square_sums(&x.0)
    }
    fn penalty_grad(g: &mut CpuSlice, w: &CpuSlice, l1: f32, l2: f32) {
        elementwise::penalty_grad(&mut g.0, &w.0, l1, l2)
    }
    fn penalty_backward(gx: &mut CpuSlice, g: &CpuSlice, x: &CpuSlice, l1: f32, l2: f32) {
        elementwise::penalty_backward(&mut gx.0, &g.0, &x.0, l1, l2)
    }
}
