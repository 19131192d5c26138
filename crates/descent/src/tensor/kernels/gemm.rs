//! descent's own single-precision GEMM, BLIS-style:
//!
//!   for each KC-deep slice p of the shared dimension:
//!     pack A[:, p] into MR-row micro-panels, B[p, :] into NR-column micro-panels
//!     for each MR×NR tile of C (tiles split over threads in MC×NCB blocks):
//!       C_tile (+)= Σ_p A_panel[p] ⊗ B_panel[p]    (register-tiled microkernel)
//!
//! Why not the `gemm` crate (DESIGN.md suggested it): it allocates its packing buffers
//! and a bookkeeping Vec on every call and has no API for caller-provided scratch, so a
//! training step could never be allocation-free, and large products would pay page
//! faults. Here packing buffers live in per-thread scratch that grows once and is reused.
//!
//! The microkernel is one generic loop compiled per instruction set (AVX-512: 14×32
//! tile, AVX2: 6×16, baseline: 4×8) and chosen at run time. Work is split over M and N
//! only, never over K, so every element of C is summed in the same order whatever the
//! thread count.

use std::cell::RefCell;

use rayon::prelude::*;

use super::simd::{simd_level, SimdLevel};

/// Depth of one packed slice: A and B panels of this depth stay in L1/L2.
const KC: usize = 256;
/// Rows of C per parallel task, in micro-panels (19 × 14 = 266 rows with AVX-512 tiles):
/// tall, narrow tasks keep a task's B panels in L2 while its A block streams from L2 —
/// measured on this machine against 168 × 256: +8% on W2's forward products, +10% on
/// its transposed backward one, +2% on 2048³, unchanged on W1's tiny products.
const MC_PANELS: usize = 19;
/// Columns of C per parallel task (a multiple of every NR).
const NCB: usize = 64;

thread_local! {
    /// Packing scratch for A and B, grown on demand and reused by later calls.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// A matrix operand: base slice and strides (in elements) between rows and columns.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl MatRef<'_> {
    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.rs + c * self.cs]
    }
}

/// `c[m×n] (+)= a[m×k]·b[k×n]` with `c` row-major and contiguous.
pub fn gemm(c: &mut [f32], a: MatRef, b: MatRef, m: usize, k: usize, n: usize, accumulate: bool, parallel: bool) {
    debug_assert_eq!(c.len(), m * n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    match simd_level() {
        SimdLevel::Avx512 => driver::<14, 32>(c, a, b, m, k, n, accumulate, parallel, micro_avx512),
        SimdLevel::Avx2 => driver::<6, 16>(c, a, b, m, k, n, accumulate, parallel, micro_avx2),
        SimdLevel::Scalar => driver::<4, 8>(c, a, b, m, k, n, accumulate, parallel, micro_scalar),
    }
}

/// A microkernel: `kc`, packed A panel, packed B panel, C tile pointer, C row stride,
/// valid rows, valid columns, overwrite (else accumulate).
type Micro = unsafe fn(usize, *const f32, *const f32, *mut f32, usize, usize, usize, bool);

/// Raw pointer to C that tasks share; each task writes a disjoint set of tiles.
#[derive(Clone, Copy)]
struct CPtr(*mut f32);
// SAFETY: tasks write disjoint tiles of C (see `driver`), so sharing the pointer is sound.
unsafe impl Send for CPtr {}
unsafe impl Sync for CPtr {}

#[allow(clippy::too_many_arguments)]
fn driver<const MR: usize, const NR: usize>(
    c: &mut [f32],
    a: MatRef,
    b: MatRef,
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
    parallel: bool,
    micro: Micro,
) {
    let m_pad = m.div_ceil(MR) * MR;
    let n_pad = n.div_ceil(NR) * NR;
    // Take the scratch out for the duration: a nested call on this thread (rayon work
    // stealing) then finds it empty and uses its own, instead of a double borrow.
    let (mut ap, mut bp) = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let kc_max = KC.min(k);
    if ap.len() < m_pad * kc_max {
        ap.resize(m_pad * kc_max, 0.0);
    }
    if bp.len() < n_pad * kc_max {
        bp.resize(n_pad * kc_max, 0.0);
    }
    let cptr = CPtr(c.as_mut_ptr());
    // Row blocks start on micro-panel boundaries: a whole number of MR-row panels.
    let mc = MC_PANELS * MR;
    let row_blocks = m.div_ceil(mc);
    let col_blocks = n.div_ceil(NCB);
    let tasks = row_blocks * col_blocks;
    let mut p0 = 0;
    while p0 < k {
        let kc = KC.min(k - p0);
        pack_a::<MR>(&mut ap[..m_pad * kc], a, p0, kc, m, parallel);
        pack_b::<NR>(&mut bp[..n_pad * kc], b, p0, kc, n, parallel);
        let overwrite = p0 == 0 && !accumulate;
        let (ap, bp) = (&ap[..m_pad * kc], &bp[..n_pad * kc]);
        let run = |task: usize| {
            let (rb, cb) = (task / col_blocks, task % col_blocks);
            let (r_end, c_end) = (((rb + 1) * mc).min(m), ((cb + 1) * NCB).min(n));
            let mut jr = cb * NCB;
            while jr < c_end {
                let mut ir = rb * mc;
                while ir < r_end {
                    // SAFETY: the tile [ir, ir+rows) × [jr, jr+cols) lies inside C and
                    // belongs to this task alone; panels hold kc·MR and kc·NR values.
                    unsafe {
                        micro(
                            kc,
                            ap.as_ptr().add(ir * kc),
                            bp.as_ptr().add(jr * kc),
                            { cptr }.0.add(ir * n + jr),
                            n,
                            MR.min(m - ir),
                            NR.min(n - jr),
                            overwrite,
                        );
                    }
                    ir += MR;
                }
                jr += NR;
            }
        };
        if parallel && tasks > 1 {
            (0..tasks).into_par_iter().for_each(run);
        } else {
            (0..tasks).for_each(run);
        }
        p0 += kc;
    }
    SCRATCH.with(|s| *s.borrow_mut() = (ap, bp));
}

/// A[:, p0..p0+kc] into micro-panels: panel r holds rows r·MR.. as `[kc][MR]`, zero-padded.
fn pack_a<const MR: usize>(out: &mut [f32], a: MatRef, p0: usize, kc: usize, m: usize, parallel: bool) {
    let pack = |r: usize, panel: &mut [f32]| {
        let row0 = r * MR;
        let rows = MR.min(m - row0);
        if a.cs == 1 {
            // Row-major A: MR rows are read as MR sequential streams (which the hardware
            // prefetcher follows) so that the panel is written in order; writing it at
            // stride MR instead measured several times slower.
            let src: [&[f32]; MR] = std::array::from_fn(|i| {
                let row = row0 + i.min(rows - 1);
                &a.data[row * a.rs + p0..][..kc]
            });
            for (p, out) in panel.chunks_exact_mut(MR).enumerate() {
                for (i, o) in out[..rows].iter_mut().enumerate() {
                    *o = src[i][p];
                }
            }
        } else {
            // Transposed A (rs = 1): for each p, the MR rows are contiguous.
            for p in 0..kc {
                for i in 0..rows {
                    panel[p * MR + i] = a.at(row0 + i, p0 + p);
                }
            }
        }
        if rows < MR {
            for p in 0..kc {
                panel[p * MR + rows..(p + 1) * MR].fill(0.0);
            }
        }
    };
    if parallel {
        out.par_chunks_mut(MR * kc).enumerate().for_each(|(r, panel)| pack(r, panel));
    } else {
        out.chunks_exact_mut(MR * kc).enumerate().for_each(|(r, panel)| pack(r, panel));
    }
}

/// B[p0..p0+kc, :] into micro-panels: panel q holds columns q·NR.. as `[kc][NR]`, zero-padded.
fn pack_b<const NR: usize>(out: &mut [f32], b: MatRef, p0: usize, kc: usize, n: usize, parallel: bool) {
    let pack = |q: usize, panel: &mut [f32]| {
        let col0 = q * NR;
        let cols = NR.min(n - col0);
        if b.cs == 1 {
            // Row-major B: each row of the panel is a contiguous slice.
            for (p, dst) in panel.chunks_exact_mut(NR).enumerate() {
                let src = &b.data[(p0 + p) * b.rs + col0..];
                if cols == NR {
                    // A fixed-size copy compiles to a few vector moves, not a memmove call.
                    let whole: &[f32; NR] = src[..NR].try_into().expect("NR values");
                    dst.copy_from_slice(whole);
                } else {
                    dst[..cols].copy_from_slice(&src[..cols]);
                    dst[cols..].fill(0.0);
                }
            }
        } else {
            // Transposed B (rs = 1): each column is contiguous along p; read it in order.
            for j in 0..cols {
                let src = &b.data[(col0 + j) * b.cs + p0 * b.rs..];
                for p in 0..kc {
                    panel[p * NR + j] = src[p * b.rs];
                }
            }
            for p in 0..kc {
                panel[p * NR + cols..(p + 1) * NR].fill(0.0);
            }
        }
    };
    if parallel {
        out.par_chunks_mut(NR * kc).enumerate().for_each(|(q, panel)| pack(q, panel));
    } else {
        out.chunks_exact_mut(NR * kc).enumerate().for_each(|(q, panel)| pack(q, panel));
    }
}

/// Baseline tile (no FMA, SSE2 at best): plain multiply-adds the compiler unrolls.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_generic<const MR: usize, const NR: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    overwrite: bool,
) {
    let mut acc = [[0.0f32; NR]; MR];
    for p in 0..kc {
        // SAFETY: the packed panels hold kc·NR and kc·MR values.
        let bv: [f32; NR] = unsafe { std::ptr::read_unaligned(b.add(p * NR) as *const [f32; NR]) };
        let av: [f32; MR] = unsafe { std::ptr::read_unaligned(a.add(p * MR) as *const [f32; MR]) };
        for i in 0..MR {
            for j in 0..NR {
                acc[i][j] += av[i] * bv[j];
            }
        }
    }
    let tile: &[f32] = acc.as_flattened();
    // SAFETY: forwarded from the caller.
    unsafe { store_tile::<NR>(tile, c, ldc, rows, cols, overwrite) }
}

/// Writes a finished tile (held in `tile`, row stride NR) into C: all of it, or the
/// valid `rows × cols` corner of an edge tile.
#[inline(always)]
unsafe fn store_tile<const NR: usize>(tile: &[f32], c: *mut f32, ldc: usize, rows: usize, cols: usize, overwrite: bool) {
    for i in 0..rows {
        // SAFETY: the caller guarantees rows × cols of C are in bounds at stride ldc.
        let dst = unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), cols) };
        let src = &tile[i * NR..i * NR + cols];
        if overwrite {
            dst.copy_from_slice(src);
        } else {
            dst.iter_mut().zip(src).for_each(|(d, v)| *d += v);
        }
    }
}

/// AVX-512 tile 14×32: 28 accumulator registers, two B vectors, one broadcast.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_avx512(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, rows: usize, cols: usize, ow: bool) {
    use std::arch::x86_64::*;
    const MR: usize = 14;
    // SAFETY (whole body): panels hold kc·MR and kc·32 floats; C bounds as in store_tile.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        for p in 0..kc {
            let b0 = _mm512_loadu_ps(b.add(p * 32));
            let b1 = _mm512_loadu_ps(b.add(p * 32 + 16));
            let ap = a.add(p * MR);
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(i));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
            }
        }
        if rows == MR && cols == 32 {
            for (i, row) in acc.iter().enumerate() {
                let dst = c.add(i * ldc);
                if ow {
                    _mm512_storeu_ps(dst, row[0]);
                    _mm512_storeu_ps(dst.add(16), row[1]);
                } else {
                    _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), row[0]));
                    _mm512_storeu_ps(dst.add(16), _mm512_add_ps(_mm512_loadu_ps(dst.add(16)), row[1]));
                }
            }
        } else {
            let mut tile = [0.0f32; MR * 32];
            for (i, row) in acc.iter().enumerate() {
                _mm512_storeu_ps(tile.as_mut_ptr().add(i * 32), row[0]);
                _mm512_storeu_ps(tile.as_mut_ptr().add(i * 32 + 16), row[1]);
            }
            store_tile::<32>(&tile, c, ldc, rows, cols, ow);
        }
    }
}

/// AVX2 tile 6×16: 12 accumulator registers, two B vectors, one broadcast.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_avx2(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, rows: usize, cols: usize, ow: bool) {
    use std::arch::x86_64::*;
    const MR: usize = 6;
    // SAFETY (whole body): panels hold kc·MR and kc·16 floats; C bounds as in store_tile.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        for p in 0..kc {
            let b0 = _mm256_loadu_ps(b.add(p * 16));
            let b1 = _mm256_loadu_ps(b.add(p * 16 + 8));
            let ap = a.add(p * MR);
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*ap.add(i));
                row[0] = _mm256_fmadd_ps(av, b0, row[0]);
                row[1] = _mm256_fmadd_ps(av, b1, row[1]);
            }
        }
        let mut tile = [0.0f32; MR * 16];
        for (i, row) in acc.iter().enumerate() {
            _mm256_storeu_ps(tile.as_mut_ptr().add(i * 16), row[0]);
            _mm256_storeu_ps(tile.as_mut_ptr().add(i * 16 + 8), row[1]);
        }
        store_tile::<16>(&tile, c, ldc, rows, cols, ow);
    }
}

#[cfg(not(target_arch = "x86_64"))]
use micro_scalar as micro_avx512;
#[cfg(not(target_arch = "x86_64"))]
use micro_scalar as micro_avx2;

#[allow(clippy::too_many_arguments)]
unsafe fn micro_scalar(kc: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize, rows: usize, cols: usize, ow: bool) {
    unsafe { micro_generic::<4, 8>(kc, a, b, c, ldc, rows, cols, ow) }
}
