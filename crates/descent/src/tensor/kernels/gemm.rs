//! descent's own single-precision GEMM, BLIS-style:
//!
//!   for each chunk of at most A_BUDGET bytes of rows of A:
//!   for each slice p (at most KC deep, all equal) of the shared dimension:
//!     pack A[:, p] into MR-row micro-panels (shared by all threads)
//!     for each MC×NCB block of C (blocks split over threads, column-block-major):
//!       pack B[p, block columns] into NR-column micro-panels (per thread, kept in L2)
//!       for each MR×NR tile of the block:
//!         C_tile (+)= Σ_p A_panel[p] ⊗ B_panel[p]    (register-tiled microkernel)
//!
//! Why not the `gemm` crate (DESIGN.md suggested it): it allocates its packing buffers
//! and a bookkeeping Vec on every call and has no API for caller-provided scratch, so a
//! training step could never be allocation-free, and large products would pay page
//! faults. Here packing buffers live in per-thread scratch that grows once and is reused.
//!
//! The microkernel is one generic loop compiled per instruction set (AVX-512: 14×32
//! tile, AVX2: 6×16, baseline: 4×8) and chosen at run time; edge tiles get copies
//! specialised to their rows and column vectors. Work is split over M and N
//! only, never over K, so every element of C is summed in the same order whatever the
//! thread count.
//!
//! What the blocking is for (measured on the 2-core Zen 4 with `examples/gemm_compare.rs`
//! against the `gemm` crate): the arithmetic of the microkernel was never the limit;
//! the passes around it were. Deep slices (KC = 1024) pass over C and fork-join once per
//! 1024 of depth rather than per 256; B is packed by the thread that uses it, into a
//! buffer that stays in its L2, instead of all of B into one large buffer first; and
//! panels are transposed a cache line of each row at a time (in AVX-512 registers where
//! available). Together: W2's forward products went from 0.79–0.85× to 0.93–1.0× the
//! `gemm` crate, and 2048³ from 0.89× to 0.95–1.03×.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::simd::{prefetch, simd_level, SimdLevel};

/// Greatest depth of one packed slice. A slice costs a read and write of C, a packing
/// pass over A and a fork-join; 1024 measured faster than 256 and 512 on every workload
/// shape (2048³: 211 vs 188 GFLOP/s), and no slower than 2048.
const KC: usize = 1024;
/// Rows of C per parallel task, in micro-panels (19 × 14 = 266 rows with AVX-512 tiles).
/// 10 and 38 measured the same within noise.
const MC_PANELS: usize = 19;
/// Columns of C per parallel task (a multiple of every NR): its packed B block
/// (64 × KC floats = 256 KiB) stays in the thread's L2 while the A panels stream past it.
const NCB: usize = 64;

/// Most bytes of packed A at once; taller products are done in chunks of rows. (Unit
/// tests use a small budget so that their modest shapes go through several chunks.)
const A_BUDGET: usize = if cfg!(test) { 64 << 10 } else { 8 << 20 };

/// Largest B (in floats) that sequential products read in place instead of packing.
const DIRECT_B_MAX: usize = 16 << 10;

/// Floats in a 64-byte cache line.
const LINE: usize = 64 / std::mem::size_of::<f32>();

/// Numbers GEMM calls, so a thread can tell whether its packed B block is still current.
static CALLS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Packing scratch for A, grown on demand and reused by later calls.
    static A_SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// The B block this thread packed last, tagged with what it holds.
    static B_BLOCK: RefCell<(Option<BlockTag>, Vec<f32>)> = const { RefCell::new((None, Vec::new())) };
}

/// Which B block a buffer holds: (call number, slice start, column block).
type BlockTag = (u64, usize, usize);

/// A matrix operand: base slice and strides (in elements) between rows and columns.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

/// `c[m×n] (+)= a[m×k]·b[k×n]` with `c` row-major and contiguous.
///
/// Each operand is row-major or transposed (`cs == 1` or `rs == 1`), as `matmul` gives.
pub fn gemm(c: &mut [f32], a: MatRef, b: MatRef, m: usize, k: usize, n: usize, accumulate: bool, parallel: bool) {
    debug_assert_eq!(c.len(), m * n);
    assert!((a.cs == 1 || a.rs == 1) && (b.cs == 1 || b.rs == 1), "gemm: one stride of each operand must be 1");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let product = Product { a, b, m, k, n, accumulate, parallel };
    match simd_level() {
        SimdLevel::Avx512 => driver::<14, 32>(c, &product, tile_avx512),
        SimdLevel::Avx2 => driver::<6, 16>(c, &product, tile_avx2),
        SimdLevel::Scalar => driver::<4, 8>(c, &product, |_, _| micro_scalar),
    }
}

/// One call's operands and options: `c[m×n] (+)= a[m×k]·b[k×n]`.
#[derive(Clone, Copy)]
struct Product<'a> {
    a: MatRef<'a>,
    b: MatRef<'a>,
    m: usize,
    k: usize,
    n: usize,
    accumulate: bool,
    parallel: bool,
}

/// A microkernel: `kc`, packed A panel, B panel and its row stride (NR when packed),
/// C tile pointer, C row stride, valid rows, valid columns, overwrite (else accumulate).
type Micro = unsafe fn(usize, *const f32, *const f32, usize, *mut f32, usize, usize, usize, bool);

/// The microkernel for a tile with the given valid rows and columns: edge tiles get one
/// that computes only their rows (and one vector of columns when that covers them), so
/// W1's 32-row products do 14 + 14 + 4 rows of work, not 3 × 14.
type TileKernel = fn(usize, usize) -> Micro;

/// Raw pointer to C that tasks share; each task writes a disjoint set of tiles.
#[derive(Clone, Copy)]
struct CPtr(*mut f32);
// SAFETY: tasks write disjoint tiles of C (see `driver`), so sharing the pointer is sound.
unsafe impl Send for CPtr {}
unsafe impl Sync for CPtr {}

fn driver<const MR: usize, const NR: usize>(c: &mut [f32], product: &Product, kernel: TileKernel) {
    // Tall products go through in chunks of whole row blocks, so that packed A stays
    // within A_BUDGET instead of becoming a full copy of A (a 70,000-row A would take
    // 219 MB); B is packed again per chunk, which costs 1/rows of the arithmetic.
    let Product { a, m, k, n, .. } = *product;
    let mc = MC_PANELS * MR;
    let chunk = (A_BUDGET / (slice_depth(k) * std::mem::size_of::<f32>()) / mc).max(1) * mc;
    for r0 in (0..m).step_by(chunk) {
        let rows = chunk.min(m - r0);
        let part = Product { a: MatRef { data: &a.data[r0 * a.rs..], ..a }, m: rows, ..*product };
        driver_rows::<MR, NR>(&mut c[r0 * n..(r0 + rows) * n], &part, kernel);
    }
}

/// The product for one chunk of rows (see `driver`).
fn driver_rows<const MR: usize, const NR: usize>(c: &mut [f32], product: &Product, kernel: TileKernel) {
    let Product { a, b, m, k, n, accumulate, parallel } = *product;
    let m_pad = m.div_ceil(MR) * MR;
    let kc_max = slice_depth(k);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    // Take the scratch out for the duration: a nested call on this thread (rayon work
    // stealing) then finds it empty and uses its own, instead of a double borrow.
    let mut a_scratch = A_SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
    let a_packed = aligned(&mut a_scratch, m_pad * kc_max);
    let cptr = CPtr(c.as_mut_ptr());
    // Row blocks start on micro-panel boundaries: a whole number of MR-row panels.
    let mc = MC_PANELS * MR;
    let row_blocks = m.div_ceil(mc);
    let tasks = row_blocks * n.div_ceil(NCB);
    let direct_b = !parallel && b.cs == 1 && k * n <= DIRECT_B_MAX && b.rs % 1024 != 0;
    let mut p0 = 0;
    while p0 < k {
        let kc = kc_max.min(k - p0);
        pack_a::<MR>(&mut a_packed[..m_pad * kc], a, p0, kc, m, parallel);
        let overwrite = p0 == 0 && !accumulate;
        let ap = &a_packed[..m_pad * kc];
        // Tasks are numbered column-block-major, so the consecutive tasks a thread takes
        // mostly share one column block and it packs that block of B once.
        let run = |task: usize| {
            let (cb, rb) = (task / row_blocks, task % row_blocks);
            let (r0, c0) = (rb * mc, cb * NCB);
            let (r_end, c_end) = ((r0 + mc).min(m), (c0 + NCB).min(n));
            // Small row-major products read whole panels of B where they lie: packing a
            // 100 × 64 weight matrix cost an eighth of W1's product. (Not for large or
            // 4 KiB-strided B, whose rows would fight over L1 sets; edge panels are packed.)
            if direct_b && (c_end - c0) % NR == 0 {
                for jr in (c0..c_end).step_by(NR) {
                    let b_panel = b.data[p0 * b.rs + jr..][..(kc - 1) * b.rs + NR].as_ptr();
                    for ir in (r0..r_end).step_by(MR) {
                        let rows = MR.min(m - ir);
                        let a_panel = ap[ir * kc..].as_ptr();
                        // SAFETY: as below; the B rows p0..p0+kc hold NR values from jr.
                        unsafe {
                            let c_tile = { cptr }.0.add(ir * n + jr);
                            kernel(rows, NR)(kc, a_panel, b_panel, b.rs, c_tile, n, rows, NR, overwrite);
                        }
                    }
                }
                return;
            }
            B_BLOCK.with(|cell| {
                let mut cell = cell.borrow_mut();
                let (tag, scratch) = &mut *cell;
                let len = (c_end - c0).div_ceil(NR) * NR * kc;
                if scratch.len() < len + LINE {
                    *tag = None; // regrowing may move the aligned start
                }
                let bp = aligned(scratch, len);
                if *tag != Some((call, p0, cb)) {
                    pack_b_block::<NR>(bp, b, p0, kc, c0, c_end);
                    *tag = Some((call, p0, cb));
                }
                for jr in (c0..c_end).step_by(NR) {
                    let cols = NR.min(n - jr);
                    for ir in (r0..r_end).step_by(MR) {
                        let rows = MR.min(m - ir);
                        let a_panel = ap[ir * kc..].as_ptr();
                        let b_panel = bp[(jr - c0) * kc..].as_ptr();
                        // SAFETY: the tile [ir, ir+rows) × [jr, jr+cols) lies inside C and
                        // belongs to this task alone; panels hold kc·MR and kc·NR values.
                        unsafe {
                            let c_tile = { cptr }.0.add(ir * n + jr);
                            kernel(rows, cols)(kc, a_panel, b_panel, NR, c_tile, n, rows, cols, overwrite);
                        }
                    }
                }
            });
        };
        if parallel && tasks > 1 {
            (0..tasks).into_par_iter().for_each(run);
        } else {
            (0..tasks).for_each(run);
        }
        p0 += kc;
    }
    A_SCRATCH.with(|s| *s.borrow_mut() = a_scratch);
}

/// Depth of the K slices for a product of depth `k`: at most KC, and all slices equal
/// (1100 = 2 × 550 rather than 1024 + 76), since a shallow last slice pays a full pass
/// over C, a packing pass and a fork-join for little arithmetic.
fn slice_depth(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC))
}

/// The first `len` values of `buf` from a 64-byte boundary (grown as needed), so that
/// panel loads never straddle two cache lines.
fn aligned(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len + LINE {
        buf.resize(len + LINE, 0.0);
    }
    let skip = buf.as_ptr().align_offset(64).min(LINE);
    &mut buf[skip..skip + len]
}

/// A[:, p0..p0+kc] into micro-panels: panel r holds rows r·MR.. as `[kc][MR]`, zero-padded.
fn pack_a<const MR: usize>(out: &mut [f32], a: MatRef, p0: usize, kc: usize, m: usize, parallel: bool) {
    let pack = |r: usize, panel: &mut [f32]| {
        let row0 = r * MR;
        let rows = MR.min(m - row0);
        if a.cs == 1 {
            // Row-major A: each of the panel's rows is a run along p.
            pack_runs::<MR>(panel, a.data, row0 * a.rs + p0, a.rs, rows, kc);
        } else {
            // Transposed A (rs = 1): for each p, the panel's MR values are contiguous.
            pack_rows::<MR>(panel, a.data, p0 * a.cs + row0, a.cs, rows, kc);
        }
    };
    if parallel {
        out.par_chunks_mut(MR * kc).enumerate().for_each(|(r, panel)| pack(r, panel));
    } else {
        out.chunks_exact_mut(MR * kc).enumerate().for_each(|(r, panel)| pack(r, panel));
    }
}

/// B[p0..p0+kc, c0..c_end] into consecutive NR-column micro-panels `[kc][NR]`, zero-padded.
fn pack_b_block<const NR: usize>(out: &mut [f32], b: MatRef, p0: usize, kc: usize, c0: usize, c_end: usize) {
    if b.cs == 1 {
        // Row-major B: each row of the block is read once, left to right, into all the
        // block's panels (one pass per panel measured slower on 2048³).
        for p in 0..kc {
            let row = (p0 + p) * b.rs;
            if p + AHEAD < kc {
                for col in (c0..c_end).step_by(16) {
                    prefetch(b.data, row + AHEAD * b.rs + col);
                }
            }
            for (q, panel) in out.chunks_exact_mut(kc * NR).enumerate() {
                let col0 = c0 + q * NR;
                copy_padded::<NR>(&mut panel[p * NR..(p + 1) * NR], &b.data[row + col0..], NR.min(c_end - col0));
            }
        }
    } else {
        // Transposed B (rs = 1): each of a panel's columns is a run along p.
        for (q, panel) in out.chunks_exact_mut(kc * NR).enumerate() {
            let col0 = c0 + q * NR;
            pack_runs::<NR>(panel, b.data, col0 * b.cs + p0, b.cs, NR.min(c_end - col0), kc);
        }
    }
}

/// How many rows ahead packing asks for: consecutive rows lie a whole matrix row apart,
/// too far for the hardware prefetcher to follow.
const AHEAD: usize = 8;

/// `dst[..width] = src[..width]`, zeros after.
#[inline(always)]
fn copy_padded<const W: usize>(dst: &mut [f32], src: &[f32], width: usize) {
    if width == W {
        // A fixed-size copy compiles to a few vector moves, not a memmove call.
        let whole: &[f32; W] = src[..W].try_into().expect("W values");
        dst.copy_from_slice(whole);
    } else {
        dst[..width].copy_from_slice(&src[..width]);
        dst[width..].fill(0.0);
    }
}

/// `panel[p][i] = data[start + p·stride + i]` for p < kc, i < width (W − width zeros
/// after): W contiguous values per step of the shared dimension, a plain copy.
fn pack_rows<const W: usize>(panel: &mut [f32], data: &[f32], start: usize, stride: usize, width: usize, kc: usize) {
    for (p, dst) in panel.chunks_exact_mut(W).enumerate() {
        let at = start + p * stride;
        if p + AHEAD < kc {
            prefetch(data, at + AHEAD * stride);
        }
        copy_padded::<W>(dst, &data[at..], width);
    }
}

/// `panel[p][i] = data[start + i·stride + p]` for p < kc, i < width (W − width zeros
/// after): W runs along the shared dimension, transposed into the panel.
///
/// A cache line (16 values) of every run is taken at once and then written out, rather
/// than walking all W runs for each p: with a stride that is a multiple of 4 KiB
/// (k = 1024) all W runs fall in one L1 set and thrash it, and walking one run at a time
/// instead scatters writes over the whole panel.
fn pack_runs<const W: usize>(panel: &mut [f32], data: &[f32], start: usize, stride: usize, width: usize, kc: usize) {
    let mut p = 0;
    #[cfg(target_arch = "x86_64")]
    if simd_level() == SimdLevel::Avx512 {
        // SAFETY: AVX-512 is present; the call reads and writes only within the slices.
        p = unsafe { pack_runs_avx512::<W>(panel, data, start, stride, width, kc) };
    }
    let mut block = [[0.0f32; LINE]; W];
    while p < kc {
        let len = LINE.min(kc - p);
        for (i, run) in block.iter_mut().enumerate().take(width) {
            let at = start + i * stride + p;
            prefetch(data, at + 4 * LINE);
            if len == LINE {
                let whole: &[f32; LINE] = data[at..at + LINE].try_into().expect("a line");
                *run = *whole;
            } else {
                run[..len].copy_from_slice(&data[at..at + len]);
            }
        }
        for (q, dst) in panel[p * W..(p + len) * W].chunks_exact_mut(W).enumerate() {
            for (o, run) in dst.iter_mut().zip(&block).take(width) {
                *o = run[q];
            }
            dst[width..].fill(0.0);
        }
        p += len;
    }
}

/// [`pack_runs`] for whole 16-step blocks with AVX-512: 16 runs at a time are loaded as
/// 16 vectors and transposed in registers (64 shuffles for 256 values, against a scalar
/// load and store each). Returns how many steps it packed (the rest is left to the caller).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pack_runs_avx512<const W: usize>(panel: &mut [f32], data: &[f32], start: usize, stride: usize, width: usize, kc: usize) -> usize {
    use std::arch::x86_64::*;
    let whole = kc / 16 * 16;
    assert!(panel.len() >= kc * W && width <= W);
    for p in (0..whole).step_by(16) {
        for g in (0..W).step_by(16) {
            let rows: [__m512; 16] = std::array::from_fn(|r| {
                let i = g + r;
                if i < width {
                    let at = start + i * stride + p;
                    prefetch(data, at + 64);
                    let line = &data[at..at + 16];
                    // SAFETY: `line` holds 16 floats.
                    unsafe { _mm512_loadu_ps(line.as_ptr()) }
                } else {
                    _mm512_setzero_ps()
                }
            });
            let columns = transpose_16x16(rows);
            let lanes = (W - g).min(16);
            let mask: __mmask16 = if lanes == 16 { 0xffff } else { (1u16 << lanes) - 1 };
            for (q, column) in columns.iter().enumerate() {
                // SAFETY: (p + q)·W + g + lanes ≤ kc·W ≤ panel.len().
                unsafe { _mm512_mask_storeu_ps(panel.as_mut_ptr().add((p + q) * W + g), mask, *column) };
            }
        }
    }
    whole
}

/// Transposes a 16×16 block held as 16 row vectors: 32-bit, then 64-bit interleaves
/// within 128-bit lanes, then two rounds of 128-bit lane shuffles.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose_16x16(r: [std::arch::x86_64::__m512; 16]) -> [std::arch::x86_64::__m512; 16] {
    use std::arch::x86_64::*;
    // t[2j], t[2j+1]: rows 2j and 2j+1 interleaved (lane L: a0 b0 a1 b1 | a2 b2 a3 b3).
    let t: [__m512; 16] = std::array::from_fn(|i| {
        let (a, b) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 { _mm512_unpacklo_ps(a, b) } else { _mm512_unpackhi_ps(a, b) }
    });
    // u[4g + j], lane L: column 4L + j of rows 4g..4g+4.
    let u: [__m512; 16] = std::array::from_fn(|i| {
        let (g, j) = (i / 4, i % 4);
        let (a, b) = (_mm512_castps_pd(t[4 * g + j / 2]), _mm512_castps_pd(t[4 * g + 2 + j / 2]));
        _mm512_castpd_ps(if j % 2 == 0 { _mm512_unpacklo_pd(a, b) } else { _mm512_unpackhi_pd(a, b) })
    });
    let mut out = [_mm512_setzero_ps(); 16];
    for j in 0..4 {
        // Lanes 0 and 2 (v) and 1 and 3 (w) of row groups 0, 1 (…01) and 2, 3 (…23).
        let v01 = _mm512_shuffle_f32x4::<0x88>(u[j], u[4 + j]);
        let w01 = _mm512_shuffle_f32x4::<0xDD>(u[j], u[4 + j]);
        let v23 = _mm512_shuffle_f32x4::<0x88>(u[8 + j], u[12 + j]);
        let w23 = _mm512_shuffle_f32x4::<0xDD>(u[8 + j], u[12 + j]);
        out[j] = _mm512_shuffle_f32x4::<0x88>(v01, v23);
        out[8 + j] = _mm512_shuffle_f32x4::<0xDD>(v01, v23);
        out[4 + j] = _mm512_shuffle_f32x4::<0x88>(w01, w23);
        out[12 + j] = _mm512_shuffle_f32x4::<0xDD>(w01, w23);
    }
    out
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

/// Picks `micro_avx512::<R, V>` for a tile: R = valid rows, V = vectors of 16 columns.
#[cfg(target_arch = "x86_64")]
fn tile_avx512(rows: usize, cols: usize) -> Micro {
    macro_rules! pick {
        ($($r:literal)*) => {
            match (rows, cols <= 16) {
                $(($r, true) => micro_avx512::<$r, 1>, ($r, false) => micro_avx512::<$r, 2>,)*
                _ => unreachable!("a tile has 1 to 14 rows"),
            }
        };
    }
    pick!(1 2 3 4 5 6 7 8 9 10 11 12 13 14)
}

/// Picks `micro_avx2::<R, V>` for a tile: R = valid rows, V = vectors of 8 columns.
#[cfg(target_arch = "x86_64")]
fn tile_avx2(rows: usize, cols: usize) -> Micro {
    macro_rules! pick {
        ($($r:literal)*) => {
            match (rows, cols <= 8) {
                $(($r, true) => micro_avx2::<$r, 1>, ($r, false) => micro_avx2::<$r, 2>,)*
                _ => unreachable!("a tile has 1 to 6 rows"),
            }
        };
    }
    pick!(1 2 3 4 5 6)
}

/// The vector operations a microkernel needs, for one register width.
trait Lanes {
    type V: Copy;
    const WIDTH: usize;
    unsafe fn zero() -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn splat(p: *const f32) -> Self::V;
    unsafe fn fma(a: Self::V, b: Self::V, acc: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
}

/// One lane in a scalar register: the baseline (no FMA: multiply, then add, so the
/// compiler may vectorize with SSE2 without changing results).
struct Scalar;

impl Lanes for Scalar {
    type V = f32;
    const WIDTH: usize = 1;
    unsafe fn zero() -> f32 {
        0.0
    }
    unsafe fn load(p: *const f32) -> f32 {
        unsafe { *p }
    }
    unsafe fn splat(p: *const f32) -> f32 {
        unsafe { *p }
    }
    unsafe fn fma(a: f32, b: f32, acc: f32) -> f32 {
        acc + a * b
    }
    unsafe fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    unsafe fn store(p: *mut f32, v: f32) {
        unsafe { *p = v }
    }
}

/// Implements [`Lanes`] for one register type from its intrinsics.
#[cfg(target_arch = "x86_64")]
macro_rules! lanes {
    ($(#[$doc:meta])* $name:ident: $v:ident, $width:literal, $features:literal,
     $zero:ident, $load:ident, $set1:ident, $fma:ident, $add:ident, $store:ident) => {
        $(#[$doc])*
        struct $name;

        impl Lanes for $name {
            type V = std::arch::x86_64::$v;
            const WIDTH: usize = $width;
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn zero() -> Self::V {
                std::arch::x86_64::$zero()
            }
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn load(p: *const f32) -> Self::V {
                unsafe { std::arch::x86_64::$load(p) }
            }
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn splat(p: *const f32) -> Self::V {
                unsafe { std::arch::x86_64::$set1(*p) }
            }
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn fma(a: Self::V, b: Self::V, acc: Self::V) -> Self::V {
                std::arch::x86_64::$fma(a, b, acc)
            }
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn add(a: Self::V, b: Self::V) -> Self::V {
                std::arch::x86_64::$add(a, b)
            }
            #[inline]
            #[target_feature(enable = $features)]
            unsafe fn store(p: *mut f32, v: Self::V) {
                unsafe { std::arch::x86_64::$store(p, v) }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
lanes!(
    /// 16 lanes in a zmm register.
    Zmm: __m512, 16, "avx512f",
    _mm512_setzero_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps
);
#[cfg(target_arch = "x86_64")]
lanes!(
    /// 8 lanes in a ymm register.
    Ymm: __m256, 8, "avx2,fma",
    _mm256_setzero_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps
);

/// The microkernel, written once: a tile of R ≤ MR rows × V vectors of columns from
/// MR-row, NR-column panels, accumulated in R·V registers over the slice depth. Inlined
/// into the `#[target_feature]` wrappers below, which compile it per instruction set.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_body<L: Lanes, const MR: usize, const NR: usize, const R: usize, const V: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    cols: usize,
    ow: bool,
) {
    // SAFETY (whole body): A holds kc·MR floats, B kc rows of NR at stride ldb; C bounds
    // as in store_tile;
    // the wrappers enable the instruction set L needs.
    unsafe {
        let mut acc = [[L::zero(); V]; R];
        for p in 0..kc {
            let bv: [L::V; V] = std::array::from_fn(|v| L::load(b.add(p * ldb + v * L::WIDTH)));
            let ap = a.add(p * MR);
            for (i, row) in acc.iter_mut().enumerate() {
                let av = L::splat(ap.add(i));
                for (acc, bv) in row.iter_mut().zip(&bv) {
                    *acc = L::fma(av, *bv, *acc);
                }
            }
        }
        if rows == R && cols == V * L::WIDTH {
            for (i, row) in acc.iter().enumerate() {
                for (v, acc) in row.iter().enumerate() {
                    let dst = c.add(i * ldc + v * L::WIDTH);
                    L::store(dst, if ow { *acc } else { L::add(L::load(dst), *acc) });
                }
            }
        } else {
            let mut tile = [0.0f32; 14 * 32]; // the largest MR × NR
            for (i, row) in acc.iter().enumerate() {
                for (v, acc) in row.iter().enumerate() {
                    L::store(tile.as_mut_ptr().add(i * NR + v * L::WIDTH), *acc);
                }
            }
            store_tile::<NR>(&tile, c, ldc, rows, cols, ow);
        }
    }
}

/// AVX-512 tile: 14×32 in full (28 accumulators, two B vectors, one broadcast).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_avx512<const R: usize, const V: usize>(kc: usize, a: *const f32, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, rows: usize, cols: usize, ow: bool) {
    unsafe { micro_body::<Zmm, 14, 32, R, V>(kc, a, b, ldb, c, ldc, rows, cols, ow) }
}

/// AVX2 tile: 6×16 in full (12 accumulators).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn micro_avx2<const R: usize, const V: usize>(kc: usize, a: *const f32, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, rows: usize, cols: usize, ow: bool) {
    unsafe { micro_body::<Ymm, 6, 16, R, V>(kc, a, b, ldb, c, ldc, rows, cols, ow) }
}

#[cfg(not(target_arch = "x86_64"))]
fn tile_avx512(_: usize, _: usize) -> Micro {
    micro_scalar
}
#[cfg(not(target_arch = "x86_64"))]
fn tile_avx2(_: usize, _: usize) -> Micro {
    micro_scalar
}

#[allow(clippy::too_many_arguments)]
unsafe fn micro_scalar(kc: usize, a: *const f32, b: *const f32, ldb: usize, c: *mut f32, ldc: usize, rows: usize, cols: usize, ow: bool) {
    // SAFETY: forwarded from the caller.
    unsafe { micro_body::<Scalar, 4, 8, 4, 8>(kc, a, b, ldb, c, ldc, rows, cols, ow) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pack_runs` (whichever instruction set runs it) against its definition.
    fn check_pack_runs<const W: usize>() {
        let stride = 53;
        let data: Vec<f32> = (0..stride * W + 64).map(|i| i as f32).collect();
        for width in [W, W - 1, 3, 1] {
            for kc in [1, 15, 16, 17, 40] {
                let mut panel = vec![f32::NAN; kc * W];
                pack_runs::<W>(&mut panel, &data, 5, stride, width, kc);
                for p in 0..kc {
                    for i in 0..W {
                        let want = if i < width { data[5 + i * stride + p] } else { 0.0 };
                        assert_eq!(panel[p * W + i], want, "W {W} width {width} kc {kc}: p {p} i {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn pack_runs_transposes_every_width_and_depth() {
        check_pack_runs::<14>();
        check_pack_runs::<32>();
        check_pack_runs::<6>();
        check_pack_runs::<16>();
    }
}
