//! Convolution as im2col + descent's GEMM, and pooling, over channels-last images.
//!
//! Forward, per group: the im2col matrix `cols[(n, oy, ox), (ky, kx, c)]` (zeros where a
//! tap falls in the padding) times the kernel seen as `[kh·kw·c, filters]` (Keras's
//! layout is already that matrix). The matrix is kept for the filter gradient
//! `∂W = colsᵀ·∂Y`; the input gradient is `∂cols = ∂Y·Wᵀ`, scattered back (col2im).
//! A 1×1 stride-1 convolution reads the input itself as its im2col matrix.
//!
//! Every pass is split over samples (im2col, col2im, pooling) or by GEMM over rows and
//! columns only, so each output element is summed in one fixed order whatever the
//! thread count.

use rayon::prelude::*;

use super::gemm::{gemm, MatRef};
use super::matmul::PARALLEL_MIN_MACS;
use crate::tensor::conv::{remap_source, ConvGeometry, FillMode, PoolKind, Window2d, WindowAxis, REMAP_FIELDS};

/// Samples per parallel task of the per-sample passes: enough work to pay for a task.
fn samples_per_task(per_sample: usize) -> usize {
    (super::parallel::MIN_PARALLEL_LEN / per_sample.max(1)).max(1)
}

fn parallel(macs: usize) -> bool {
    rayon::current_num_threads() > 1 && macs >= PARALLEL_MIN_MACS
}

/// The input position of tap `k` of output `o`, for a tap known to be inside.
#[inline]
fn inside(a: &WindowAxis, o: usize, k: usize) -> usize {
    o * a.stride + k * a.dilation - a.pad_before
}

/// Writes group `g`'s im2col rows for one sample: `cols` is `[positions, depth]`.
/// Ungrouped with column dilation 1, the taps of one kernel row that fall inside the
/// input are one contiguous run of `x` (kw·c values), copied at once.
fn im2col_sample(cols: &mut [f32], x: &[f32], geo: &ConvGeometry, g: usize) {
    let w = &geo.window;
    let (c, cg) = (w.channels, geo.group_channels());
    let (kh, kw) = (w.rows.window, w.cols.window);
    let depth = geo.depth();
    let runs = cg == c && w.cols.dilation == 1;
    for oy in 0..w.rows.out {
        for ox in 0..w.cols.out {
            let row = &mut cols[(oy * w.cols.out + ox) * depth..][..depth];
            let span = w.cols.taps_inside(ox);
            for ky in 0..kh {
                let taps = &mut row[ky * kw * cg..][..kw * cg];
                let Some(iy) = w.rows.source(oy, ky) else {
                    taps.fill(0.0);
                    continue;
                };
                taps[..span.start * cg].fill(0.0);
                taps[span.end * cg..].fill(0.0);
                if runs {
                    if !span.is_empty() {
                        let ix = inside(&w.cols, ox, span.start);
                        taps[span.start * c..span.end * c].copy_from_slice(&x[(iy * w.cols.input + ix) * c..][..span.len() * c]);
                    }
                    continue;
                }
                for kx in span.clone() {
                    let ix = inside(&w.cols, ox, kx);
                    taps[kx * cg..][..cg].copy_from_slice(&x[(iy * w.cols.input + ix) * c + g * cg..][..cg]);
                }
            }
        }
    }
}

/// The adjoint of [`im2col_sample`]: `gx += scatter(gcols)` for one sample and group
/// (contiguous runs as there).
fn col2im_sample(gx: &mut [f32], gcols: &[f32], geo: &ConvGeometry, g: usize) {
    let w = &geo.window;
    let (c, cg) = (w.channels, geo.group_channels());
    let kw = w.cols.window;
    let depth = geo.depth();
    let runs = cg == c && w.cols.dilation == 1;
    for oy in 0..w.rows.out {
        for ox in 0..w.cols.out {
            let row = &gcols[(oy * w.cols.out + ox) * depth..][..depth];
            let span = w.cols.taps_inside(ox);
            for ky in w.rows.taps_inside(oy) {
                let iy = inside(&w.rows, oy, ky);
                if runs {
                    if !span.is_empty() {
                        let ix = inside(&w.cols, ox, span.start);
                        let dst = &mut gx[(iy * w.cols.input + ix) * c..][..span.len() * c];
                        let src = &row[(ky * kw + span.start) * c..][..span.len() * c];
                        dst.iter_mut().zip(src).for_each(|(d, s)| *d += *s);
                    }
                    continue;
                }
                for kx in span.clone() {
                    let ix = inside(&w.cols, ox, kx);
                    let dst = &mut gx[(iy * w.cols.input + ix) * c + g * cg..][..cg];
                    for (d, s) in dst.iter_mut().zip(&row[(ky * kw + kx) * cg..][..cg]) {
                        *d += *s;
                    }
                }
            }
        }
    }
}

/// Group `g`'s im2col matrix of the whole batch into `cols` (`[rows, depth]`).
fn im2col(cols: &mut [f32], x: &[f32], geo: &ConvGeometry, g: usize) {
    let w = &geo.window;
    let per = w.out_positions() * geo.depth();
    let task = samples_per_task(per);
    cols.par_chunks_mut(per * task).zip(x.par_chunks(w.in_len() * task)).for_each(|(cols, x)| {
        for (c, xs) in cols.chunks_mut(per).zip(x.chunks(w.in_len())) {
            im2col_sample(c, xs, geo, g);
        }
    });
}

fn col2im(gx: &mut [f32], gcols: &[f32], geo: &ConvGeometry, g: usize) {
    let w = &geo.window;
    let per = w.out_positions() * geo.depth();
    let task = samples_per_task(per);
    gx.par_chunks_mut(w.in_len() * task).zip(gcols.par_chunks(per * task)).for_each(|(gx, gcols)| {
        for (gxs, gc) in gx.chunks_mut(w.in_len()).zip(gcols.chunks(per)) {
            col2im_sample(gxs, gc, geo, g);
        }
    });
}

/// Samples per task of an ungrouped im2col convolution: each task runs its own im2col,
/// col2im and single-threaded GEMMs over its samples (the patches it just wrote are still
/// in its cache), and the filter gradient sums one partial per task, in task order, so
/// the result is the same for any thread count. Measured on conv2 of mnist_convnet
/// (13×13×32 → 64, batch 128): ∂W 6.4 → 4.5 ms against one GEMM split over threads.
const SAMPLES_PER_CHUNK: usize = 16;

/// Group `g`'s columns `[rows, fg]` of a `[rows, filters]` matrix.
fn group_cols<'a>(m: &'a [f32], geo: &ConvGeometry, g: usize) -> MatRef<'a> {
    MatRef { data: &m[g * geo.group_filters()..], rs: geo.filters, cs: 1 }
}

/// `y = conv(x, w)` (overwritten; `y: [batch, oh, ow, filters]`). `cols` receives the
/// im2col matrices of every group (`groups × [rows, depth]`, kept for the filter
/// gradient; empty for a pointwise convolution); `scratch` holds one group's output
/// when there are several.
pub fn conv2d(y: &mut [f32], x: &[f32], w: &[f32], geo: &ConvGeometry, cols: &mut Vec<f32>, scratch: &mut Vec<f32>) {
    let (rows, depth, fg) = (geo.rows(), geo.depth(), geo.group_filters());
    let par = parallel(geo.macs());
    if geo.is_pointwise() {
        cols.clear();
        let a = MatRef { data: x, rs: depth, cs: 1 };
        return gemm(y, a, MatRef { data: w, rs: geo.filters, cs: 1 }, rows, depth, geo.filters, false, par);
    }
    cols.resize(geo.groups * rows * depth, 0.0);
    if geo.groups == 1 {
        let win = &geo.window;
        let (positions, f) = (win.out_positions(), geo.filters);
        let chunks = cols.par_chunks_mut(positions * depth * SAMPLES_PER_CHUNK).zip(y.par_chunks_mut(positions * f * SAMPLES_PER_CHUNK));
        chunks.zip(x.par_chunks(win.in_len() * SAMPLES_PER_CHUNK)).for_each(|((cols, y), x)| {
            for (c, xs) in cols.chunks_mut(positions * depth).zip(x.chunks(win.in_len())) {
                im2col_sample(c, xs, geo, 0);
            }
            let r = y.len() / f;
            gemm(y, MatRef { data: cols, rs: depth, cs: 1 }, MatRef { data: w, rs: f, cs: 1 }, r, depth, f, false, false);
        });
        return;
    }
    for g in 0..geo.groups {
        let cg = &mut cols[g * rows * depth..][..rows * depth];
        im2col(cg, x, geo, g);
        let a = MatRef { data: cg, rs: depth, cs: 1 };
        if geo.groups == 1 {
            gemm(y, a, MatRef { data: w, rs: geo.filters, cs: 1 }, rows, depth, fg, false, par);
        } else {
            scratch.resize(rows * fg, 0.0);
            gemm(scratch, a, group_cols(w, geo, g), rows, depth, fg, false, par);
            for (dst, src) in y.chunks_exact_mut(geo.filters).zip(scratch.chunks_exact(fg)) {
                dst[g * fg..][..fg].copy_from_slice(src);
            }
        }
    }
}

/// `gw += colsᵀ·gy` per group (`gw: [depth, filters]` as Keras's kernel).
pub fn conv2d_filter_grad(gw: &mut [f32], gy: &[f32], x: &[f32], cols: &[f32], geo: &ConvGeometry, scratch: &mut Vec<f32>) {
    let (rows, depth, fg) = (geo.rows(), geo.depth(), geo.group_filters());
    let par = parallel(geo.macs());
    if geo.is_pointwise() {
        let a = MatRef { data: x, rs: 1, cs: depth };
        return gemm(gw, a, MatRef { data: gy, rs: geo.filters, cs: 1 }, depth, rows, geo.filters, true, par);
    }
    for g in 0..geo.groups {
        let a = MatRef { data: &cols[g * rows * depth..][..rows * depth], rs: 1, cs: depth };
        if geo.groups == 1 {
            // One partial ∂Wᵀ = ∂Yᵀ·cols per chunk of samples (single-threaded GEMMs in
            // parallel), summed in chunk order into ∂W.
            let (positions, f) = (geo.window.out_positions(), geo.filters);
            let per = positions * SAMPLES_PER_CHUNK;
            let kernel = depth * f;
            scratch.resize(rows.div_ceil(per) * kernel, 0.0);
            scratch.par_chunks_mut(kernel).zip(gy.par_chunks(per * f)).zip(cols.par_chunks(per * depth)).for_each(|((part, gy), cols)| {
                let r = gy.len() / f;
                gemm(part, MatRef { data: gy, rs: 1, cs: f }, MatRef { data: cols, rs: depth, cs: 1 }, f, r, depth, false, false);
            });
            for part in scratch.chunks_exact(kernel) {
                for (d, row) in gw.chunks_exact_mut(f).enumerate() {
                    for (j, v) in row.iter_mut().enumerate() {
                        *v += part[j * depth + d];
                    }
                }
            }
        } else {
            scratch.resize(depth * fg, 0.0);
            gemm(scratch, a, group_cols(gy, geo, g), depth, rows, fg, false, par);
            for (dst, src) in gw.chunks_exact_mut(geo.filters).zip(scratch.chunks_exact(fg)) {
                for (d, s) in dst[g * fg..][..fg].iter_mut().zip(src) {
                    *d += *s;
                }
            }
        }
    }
}

/// `gx += col2im(gy·Wᵀ)` per group; `scratch` holds one group's `∂cols`.
pub fn conv2d_input_grad(gx: &mut [f32], gy: &[f32], w: &[f32], geo: &ConvGeometry, scratch: &mut Vec<f32>) {
    let (rows, depth, fg) = (geo.rows(), geo.depth(), geo.group_filters());
    let par = parallel(geo.macs());
    // Wᵀ of group g: element (p, j) = W[j, g·fg + p].
    let wt = |g: usize| MatRef { data: &w[g * fg..], rs: 1, cs: geo.filters };
    if geo.is_pointwise() {
        return gemm(gx, MatRef { data: gy, rs: geo.filters, cs: 1 }, wt(0), rows, geo.filters, depth, true, par);
    }
    scratch.resize(rows * depth, 0.0);
    if geo.groups == 1 {
        let win = &geo.window;
        let (positions, f) = (win.out_positions(), geo.filters);
        let chunks = scratch.par_chunks_mut(positions * depth * SAMPLES_PER_CHUNK).zip(gy.par_chunks(positions * f * SAMPLES_PER_CHUNK));
        chunks.zip(gx.par_chunks_mut(win.in_len() * SAMPLES_PER_CHUNK)).for_each(|((gcols, gy), gx)| {
            let r = gy.len() / f;
            gemm(gcols, MatRef { data: gy, rs: f, cs: 1 }, wt(0), r, f, depth, false, false);
            for (gxs, gc) in gx.chunks_mut(win.in_len()).zip(gcols.chunks(positions * depth)) {
                col2im_sample(gxs, gc, geo, 0);
            }
        });
        return;
    }
    for g in 0..geo.groups {
        gemm(scratch, group_cols(gy, geo, g), wt(g), rows, fg, depth, false, par);
        col2im(gx, scratch, geo, g);
    }
}

/// Channels per block of the max-pooling backward's running maxima (kept on the stack).
const POOL_BLOCK: usize = 16;

/// Max or average of each window of `x` into `y` (`[batch, oh, ow, channels]`).
pub fn pool2d(y: &mut [f32], x: &[f32], win: &Window2d, kind: PoolKind) {
    let (c, out_len) = (win.channels, win.out_positions() * win.channels);
    let task = samples_per_task(win.in_len());
    y.par_chunks_mut(out_len * task).zip(x.par_chunks(win.in_len() * task)).for_each(|(y, x)| {
        for (ys, xs) in y.chunks_mut(out_len).zip(x.chunks(win.in_len())) {
            for oy in 0..win.rows.out {
                let ry = win.rows.taps_inside(oy);
                for ox in 0..win.cols.out {
                    let rx = win.cols.taps_inside(ox);
                    let out = &mut ys[(oy * win.cols.out + ox) * c..][..c];
                    out.fill(if kind == PoolKind::Max { f32::NEG_INFINITY } else { 0.0 });
                    for ky in ry.clone() {
                        let iy = inside(&win.rows, oy, ky);
                        for kx in rx.clone() {
                            let src = &xs[(iy * win.cols.input + inside(&win.cols, ox, kx)) * c..][..c];
                            match kind {
                                // The first largest wins; a NaN propagates.
                                PoolKind::Max => out.iter_mut().zip(src).for_each(|(o, &v)| *o = if v > *o || v.is_nan() { v } else { *o }),
                                PoolKind::Average => out.iter_mut().zip(src).for_each(|(o, v)| *o += *v),
                            }
                        }
                    }
                    if kind == PoolKind::Average {
                        let inv = 1.0 / (ry.len() * rx.len()) as f32;
                        out.iter_mut().for_each(|o| *o *= inv);
                    }
                }
            }
        }
    });
}

/// The adjoint of [`pool2d`], accumulated into `gx`: a max window's gradient goes to
/// its first largest cell (found again from `x`, as PyTorch picks it), an average
/// window's spreads evenly over its cells inside the input.
pub fn pool2d_backward(gx: &mut [f32], gy: &[f32], x: &[f32], win: &Window2d, kind: PoolKind) {
    let (c, out_len) = (win.channels, win.out_positions() * win.channels);
    let task = samples_per_task(win.in_len());
    let chunks = gx.par_chunks_mut(win.in_len() * task).zip(gy.par_chunks(out_len * task)).zip(x.par_chunks(win.in_len() * task));
    chunks.for_each(|((gx, gy), x)| {
        for ((gxs, gys), xs) in gx.chunks_mut(win.in_len()).zip(gy.chunks(out_len)).zip(x.chunks(win.in_len())) {
            for oy in 0..win.rows.out {
                let ry = win.rows.taps_inside(oy);
                for ox in 0..win.cols.out {
                    let rx = win.cols.taps_inside(ox);
                    let g = &gys[(oy * win.cols.out + ox) * c..][..c];
                    let cell = |ky: usize, kx: usize| (inside(&win.rows, oy, ky) * win.cols.input + inside(&win.cols, ox, kx)) * c;
                    if kind == PoolKind::Average {
                        let inv = 1.0 / (ry.len() * rx.len()) as f32;
                        for ky in ry.clone() {
                            for kx in rx.clone() {
                                let at = cell(ky, kx);
                                gxs[at..at + c].iter_mut().zip(g).for_each(|(d, v)| *d += *v * inv);
                            }
                        }
                        continue;
                    }
                    // Running maxima of a block of channels and where they are, from the
                    // window's first cell on (selects, no branches: they vectorize).
                    if ry.is_empty() || rx.is_empty() {
                        continue;
                    }
                    let first = cell(ry.start, rx.start);
                    let cells = ry.clone().flat_map(|ky| rx.clone().map(move |kx| (ky, kx))).skip(1);
                    for c0 in (0..c).step_by(POOL_BLOCK) {
                        let width = POOL_BLOCK.min(c - c0);
                        let mut best = [0.0f32; POOL_BLOCK];
                        let mut at = [0usize; POOL_BLOCK];
                        for j in 0..width {
                            best[j] = xs[first + c0 + j];
                            at[j] = first + c0 + j;
                        }
                        for (ky, kx) in cells.clone() {
                            let base = cell(ky, kx) + c0;
                            let vals = &xs[base..base + width];
                            for j in 0..width {
                                let v = vals[j];
                                let take = v > best[j] || v.is_nan() && !best[j].is_nan();
                                best[j] = if take { v } else { best[j] };
                                at[j] = if take { base + j } else { at[j] };
                            }
                        }
                        for j in 0..width {
                            gxs[at[j]] += g[c0 + j];
                        }
                    }
                }
            }
        }
    });
}

/// `y[o] = x[o − start]` inside, 0 outside: `x: [n, h, w, c]` placed at (`top`, `left`)
/// of `y: [n, h + …, w + …, c]` (Keras's ZeroPadding2D).
pub fn pad2d(y: &mut [f32], x: &[f32], in_hw: (usize, usize), out_hw: (usize, usize), c: usize, (top, left): (usize, usize)) {
    let (per_in, per_out) = (in_hw.0 * in_hw.1 * c, out_hw.0 * out_hw.1 * c);
    y.par_chunks_mut(per_out).zip(x.par_chunks(per_in)).for_each(|(ys, xs)| {
        ys.fill(0.0);
        for (r, src) in xs.chunks(in_hw.1 * c).enumerate() {
            ys[((top + r) * out_hw.1 + left) * c..][..src.len()].copy_from_slice(src);
        }
    });
}

/// The adjoint of [`pad2d`]: `gx += gy` over the region `x` was placed at.
pub fn pad2d_backward(gx: &mut [f32], gy: &[f32], in_hw: (usize, usize), out_hw: (usize, usize), c: usize, (top, left): (usize, usize)) {
    let (per_in, per_out) = (in_hw.0 * in_hw.1 * c, out_hw.0 * out_hw.1 * c);
    gx.par_chunks_mut(per_in).zip(gy.par_chunks(per_out)).for_each(|(gxs, gys)| {
        for (r, dst) in gxs.chunks_mut(in_hw.1 * c).enumerate() {
            let src = &gys[((top + r) * out_hw.1 + left) * c..][..dst.len()];
            dst.iter_mut().zip(src).for_each(|(d, s)| *d += *s);
        }
    });
}

/// Shifts and flips each sample of `x: [n, h, w, c]` by its `transforms` row (see
/// [`crate::tensor::conv::REMAP_FIELDS`]).
pub fn remap2d(y: &mut [f32], x: &[f32], (h, w, c): (usize, usize, usize), transforms: &[f32], fill: FillMode) {
    let per = h * w * c;
    y.par_chunks_mut(per).zip(x.par_chunks(per)).zip(transforms.par_chunks(REMAP_FIELDS)).for_each(|((ys, xs), t)| {
        for oy in 0..h {
            let sy = remap_source(oy, h, t[2], t[0] != 0.0, fill);
            for ox in 0..w {
                let out = &mut ys[(oy * w + ox) * c..][..c];
                match (sy, remap_source(ox, w, t[3], t[1] != 0.0, fill)) {
                    (Some(sy), Some(sx)) => out.copy_from_slice(&xs[(sy * w + sx) * c..][..c]),
                    _ => out.fill(if let FillMode::Constant(v) = fill { v } else { 0.0 }),
                }
            }
        }
    });
}

/// The adjoint of [`remap2d`]: `gx[source(o)] += gy[o]` (cells filled with the constant
/// have no source).
pub fn remap2d_backward(gx: &mut [f32], gy: &[f32], (h, w, c): (usize, usize, usize), transforms: &[f32], fill: FillMode) {
    let per = h * w * c;
    gx.par_chunks_mut(per).zip(gy.par_chunks(per)).zip(transforms.par_chunks(REMAP_FIELDS)).for_each(|((gxs, gys), t)| {
        for oy in 0..h {
            let Some(sy) = remap_source(oy, h, t[2], t[0] != 0.0, fill) else { continue };
            for ox in 0..w {
                let Some(sx) = remap_source(ox, w, t[3], t[1] != 0.0, fill) else { continue };
                let g = &gys[(oy * w + ox) * c..][..c];
                gxs[(sy * w + sx) * c..][..c].iter_mut().zip(g).for_each(|(d, v)| *d += *v);
            }
        }
    });
}
