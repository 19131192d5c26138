//! Scaled dot-product attention, fused in the manner of FlashAttention: the T×T score
//! matrix is never formed. Forward walks key blocks of [`KEY_BLOCK`] columns (packed
//! transposed, so a query's scores against a block are axpys along the keys), keeping a
//! running maximum and sum per query row (the online softmax), and saves only each row's
//! log-sum-exp; backward recomputes one row of a block's probabilities at a time from it
//! (FlashAttention-2's backward: Dᵢ = Σ dOᵢ·Oᵢ, dS = P ∘ (dP − D)).
//!
//! Layout (channels-last, as Keras's projections give them): q `[B, Tq, H·dk]`,
//! k `[B, Tk, H·dk]`, v `[B, Tk, H·dv]`, o `[B, Tq, H·dv]`, log-sum-exp `[B, H, Tq]`:
//! head h of token t is the slice `h·d .. (h+1)·d` of row t, so no transposes are needed
//! around the op. Work is split over batch elements (each one's rows are contiguous),
//! each computed the same way whatever the thread count.
//!
//! The causal mask is Keras's `use_causal_mask`: query i sees keys j ≤ i (the lower
//! triangle of the [Tq, Tk] matrix). Dropout on the attention probabilities (Keras's
//! `dropout`) draws its mask from a counter-based hash of (seed, b, h, i, j), so
//! backward regenerates it instead of storing it.

use rayon::prelude::*;

use super::simd::fast_exp;

/// Key columns per tile: a query row's scores against one block are the only scores
/// held at a time (per thread).
pub const KEY_BLOCK: usize = 64;
/// The widest head accepted (the working space per thread grows with it).
pub const MAX_HEAD_DIM: usize = 1024;

/// The sizes and options of one attention call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionDims {
    pub batch: usize,
    pub tq: usize,
    pub tk: usize,
    pub heads: usize,
    /// Query/key width per head.
    pub dk: usize,
    /// Value width per head.
    pub dv: usize,
    pub causal: bool,
    /// Causal only: query i sees keys j ≤ i + key_offset (0: Keras's mask, the lower
    /// triangle from the top-left; Tk − Tq: the queries are the last positions, as when
    /// decoding with a cache of earlier keys).
    pub key_offset: usize,
    /// The factor on q·k (1/√dk by default).
    pub scale: f32,
    /// Probability of dropping an attention weight (0: none).
    pub dropout: f32,
    pub seed: u64,
}

impl AttentionDims {
    pub fn q_len(&self) -> usize {
        self.batch * self.tq * self.heads * self.dk
    }
    pub fn k_len(&self) -> usize {
        self.batch * self.tk * self.heads * self.dk
    }
    pub fn v_len(&self) -> usize {
        self.batch * self.tk * self.heads * self.dv
    }
    pub fn o_len(&self) -> usize {
        self.batch * self.tq * self.heads * self.dv
    }
    pub fn lse_len(&self) -> usize {
        self.batch * self.heads * self.tq
    }
    /// The keys query `i` sees: `0..key_end(i)`.
    #[inline(always)]
    fn key_end(&self, i: usize) -> usize {
        if self.causal { (i + 1 + self.key_offset).min(self.tk) } else { self.tk }
    }
    /// The dropout factor of weight (b, h, i, j): 0 (dropped) or 1/(1 − p).
    #[inline(always)]
    fn keep(&self, b: usize, h: usize, i: usize, j: usize) -> f32 {
        let index = (((b * self.heads + h) * self.tq + i) * self.tk + j) as u64;
        let u = (splitmix64(self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 40) as f32 * (1.0 / (1u64 << 24) as f32);
        if u < self.dropout { 0.0 } else { 1.0 / (1.0 - self.dropout) }
    }
}

#[inline(always)]
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Σ a·b with eight running sums (a fixed association, so every SIMD level agrees).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ar.iter().zip(br) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// y += a·x
#[inline(always)]
fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

/// Per-thread working space of the kernels (grown once, then reused: a steady-state
/// step allocates nothing).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// `dst[d·KEY_BLOCK + c] = rows[(j0 + c)·stride + offset + d]`: a key block of one head,
/// transposed so that a query's scores against it are axpys along the keys.
#[inline(always)]
fn pack_transposed(dst: &mut [f32], rows: &[f32], j0: usize, cols: usize, stride: usize, offset: usize, width: usize) {
    if cols < KEY_BLOCK {
        // Columns past the keys read as zeros (scores are computed LANES at a time).
        dst.fill(0.0);
    }
    for c in 0..cols {
        let row = &rows[(j0 + c) * stride + offset..(j0 + c) * stride + offset + width];
        for (d, v) in row.iter().enumerate() {
            dst[d * KEY_BLOCK + c] = *v;
        }
    }
}

/// Scores are computed 16 keys at a time, held in registers across the head's width.
const LANES: usize = 16;

/// `s[c] = Σ_d x[d] · t[d·KEY_BLOCK + c]` for `c < s.len()` (one row against a packed
/// block). Whole groups of [`LANES`] columns are computed (the packed block is that
/// wide), only `s.len()` written.
#[inline(always)]
fn row_times_block(s: &mut [f32], x: &[f32], t: &[f32]) {
    let n = s.len();
    for c0 in (0..n).step_by(LANES) {
        let mut acc = [0.0f32; LANES];
        for (d, xd) in x.iter().enumerate() {
            let col: &[f32; LANES] = t[d * KEY_BLOCK + c0..d * KEY_BLOCK + c0 + LANES].try_into().expect("LANES wide");
            for l in 0..LANES {
                acc[l] += xd * col[l];
            }
        }
        let w = LANES.min(n - c0);
        s[c0..c0 + w].copy_from_slice(&acc[..w]);
    }
}

/// max over `s` (8 running maxima; never empty).
#[inline(always)]
fn max_of(s: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; 8];
    let chunks = s.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            m[l] = m[l].max(c[l]);
        }
    }
    let mut best = tail.iter().fold(f32::NEG_INFINITY, |a, b| a.max(*b));
    for v in m {
        best = best.max(v);
    }
    best
}

/// Σ s with eight running sums.
#[inline(always)]
fn sum_of(s: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = s.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// o = softmax(scale·q·kᵀ, masked) · v, and the log-sum-exp of each score row.
pub fn attention_forward(o: &mut [f32], lse: &mut [f32], q: &[f32], k: &[f32], v: &[f32], d: &AttentionDims) {
    let (qn, kn, vn, on) = (d.tq * d.heads * d.dk, d.tk * d.heads * d.dk, d.tk * d.heads * d.dv, d.tq * d.heads * d.dv);
    let one = |b: usize, o: &mut [f32], lse: &mut [f32]| {
        // running max and sum per query row, the packed key block, one score row
        let len = 2 * d.tq + d.dk * KEY_BLOCK + KEY_BLOCK;
        with_scratch(len, |scratch| forward_sample(o, lse, &q[b * qn..(b + 1) * qn], &k[b * kn..(b + 1) * kn], &v[b * vn..(b + 1) * vn], d, b, scratch))
    };
    if d.batch > 1 && rayon::current_num_threads() > 1 {
        o.par_chunks_mut(on).zip(lse.par_chunks_mut(d.heads * d.tq)).enumerate().for_each(|(b, (o, l))| one(b, o, l));
    } else {
        o.chunks_mut(on).zip(lse.chunks_mut(d.heads * d.tq)).enumerate().for_each(|(b, (o, l))| one(b, o, l));
    }
}

simd_dispatch! {
    /// One batch element: for each head, key block by key block (packed transposed once),
    /// every query row that sees it updates its running max, sum and output (the
    /// output rows themselves accumulate, rescaled as the max grows).
    #[allow(clippy::too_many_arguments)]
    fn forward_sample(o: &mut [f32], lse: &mut [f32], q: &[f32], k: &[f32], v: &[f32], d: &AttentionDims, b: usize, scratch: &mut [f32]) {
        let (h_dk, h_dv) = (d.heads * d.dk, d.heads * d.dv);
        let (m, rest) = scratch.split_at_mut(d.tq);
        let (l, rest) = rest.split_at_mut(d.tq);
        let (kt, s) = rest.split_at_mut(d.dk * KEY_BLOCK);
        for h in 0..d.heads {
            let (qo, vo) = (h * d.dk, h * d.dv);
            m.fill(f32::NEG_INFINITY);
            l.fill(0.0);
            for i in 0..d.tq {
                o[i * h_dv + vo..i * h_dv + vo + d.dv].fill(0.0);
            }
            for j0 in (0..d.tk).step_by(KEY_BLOCK) {
                let cols = KEY_BLOCK.min(d.tk - j0);
                // Causal: rows before j0 see none of this block.
                let first = if d.causal { j0.saturating_sub(d.key_offset) } else { 0 };
                if first >= d.tq {
                    break;
                }
                pack_transposed(kt, k, j0, cols, h_dk, qo, d.dk);
                for i in first..d.tq {
                    let seen = d.key_end(i).saturating_sub(j0).min(cols);
                    let sr = &mut s[..seen];
                    row_times_block(sr, &q[i * h_dk + qo..i * h_dk + qo + d.dk], kt);
                    sr.iter_mut().for_each(|sv| *sv *= d.scale);
                    let m_new = m[i].max(max_of(sr));
                    let rescale = fast_exp(m[i] - m_new);
                    let out = &mut o[i * h_dv + vo..i * h_dv + vo + d.dv];
                    if rescale != 1.0 {
                        l[i] *= rescale;
                        out.iter_mut().for_each(|a| *a *= rescale);
                    }
                    sr.iter_mut().for_each(|sv| *sv = fast_exp(*sv - m_new));
                    l[i] += sum_of(sr);
                    m[i] = m_new;
                    for (c, p) in sr.iter().enumerate() {
                        let j = j0 + c;
                        let p = if d.dropout > 0.0 { p * d.keep(b, h, i, j) } else { *p };
                        axpy(out, p, &v[j * h_dv + vo..j * h_dv + vo + d.dv]);
                    }
                }
            }
            for i in 0..d.tq {
                let inv = 1.0 / l[i];
                o[i * h_dv + vo..i * h_dv + vo + d.dv].iter_mut().for_each(|y| *y *= inv);
                lse[h * d.tq + i] = m[i] + l[i].ln();
            }
        }
    }
}

/// The gradients of q, k and v (overwritten) from the output's gradient `go`, the
/// output `o` and the saved log-sum-exp.
#[allow(clippy::too_many_arguments)]
pub fn attention_backward(
    gq: &mut [f32],
    gk: &mut [f32],
    gv: &mut [f32],
    go: &[f32],
    o: &[f32],
    lse: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d: &AttentionDims,
) {
    let (qn, kn, vn, on) = (d.tq * d.heads * d.dk, d.tk * d.heads * d.dk, d.tk * d.heads * d.dv, d.tq * d.heads * d.dv);
    let ln = d.heads * d.tq;
    let one = |b: usize, gq: &mut [f32], gk: &mut [f32], gv: &mut [f32]| {
        let at = |n: usize| b * n..(b + 1) * n;
        // D per query row; packed kᵀ, vᵀ and the block's ∂kᵀ, ∂vᵀ; the rows P, dS
        let len = d.tq + 2 * (d.dk + d.dv) * KEY_BLOCK + 2 * KEY_BLOCK;
        with_scratch(len, |scratch| {
            backward_sample(gq, gk, gv, &go[at(on)], &o[at(on)], &lse[at(ln)], &q[at(qn)], &k[at(kn)], &v[at(vn)], d, b, scratch)
        })
    };
    if d.batch > 1 && rayon::current_num_threads() > 1 {
        gq.par_chunks_mut(qn).zip(gk.par_chunks_mut(kn)).zip(gv.par_chunks_mut(vn)).enumerate().for_each(|(b, ((gq, gk), gv))| one(b, gq, gk, gv));
    } else {
        gq.chunks_mut(qn).zip(gk.chunks_mut(kn)).zip(gv.chunks_mut(vn)).enumerate().for_each(|(b, ((gq, gk), gv))| one(b, gq, gk, gv));
    }
}

simd_dispatch! {
    /// One batch element's gradients: for each head, key block by key block, every query
    /// row that sees it recomputes its probabilities from the log-sum-exp; ∂k and ∂v of
    /// the block accumulate transposed (axpys along the keys), ∂q row by row.
    #[allow(clippy::too_many_arguments)]
    fn backward_sample(
        gq: &mut [f32],
        gk: &mut [f32],
        gv: &mut [f32],
        go: &[f32],
        o: &[f32],
        lse: &[f32],
        q: &[f32],
        k: &[f32],
        v: &[f32],
        d: &AttentionDims,
        b: usize,
        scratch: &mut [f32],
    ) {
        let (h_dk, h_dv) = (d.heads * d.dk, d.heads * d.dv);
        gq.fill(0.0);
        let (delta, rest) = scratch.split_at_mut(d.tq);
        let (kt, rest) = rest.split_at_mut(d.dk * KEY_BLOCK);
        let (vt, rest) = rest.split_at_mut(d.dv * KEY_BLOCK);
        let (gkt, rest) = rest.split_at_mut(d.dk * KEY_BLOCK);
        let (gvt, rest) = rest.split_at_mut(d.dv * KEY_BLOCK);
        let (p, ds) = rest.split_at_mut(KEY_BLOCK);
        for h in 0..d.heads {
            let (qo, vo) = (h * d.dk, h * d.dv);
            // Dᵢ = Σ dOᵢ·Oᵢ (= Σⱼ Pᵢⱼ·dPᵢⱼ)
            for (i, di) in delta.iter_mut().enumerate() {
                let at = i * h_dv + vo..i * h_dv + vo + d.dv;
                *di = dot(&go[at.clone()], &o[at]);
            }
            for j0 in (0..d.tk).step_by(KEY_BLOCK) {
                let cols = KEY_BLOCK.min(d.tk - j0);
                let first = if d.causal { j0.saturating_sub(d.key_offset).min(d.tq) } else { 0 };
                pack_transposed(kt, k, j0, cols, h_dk, qo, d.dk);
                pack_transposed(vt, v, j0, cols, h_dv, vo, d.dv);
                gkt.fill(0.0);
                gvt.fill(0.0);
                for i in first..d.tq {
                    let seen = d.key_end(i).saturating_sub(j0).min(cols);
                    let (pr, dsr) = (&mut p[..seen], &mut ds[..seen]);
                    let qi = &q[i * h_dk + qo..i * h_dk + qo + d.dk];
                    let goi = &go[i * h_dv + vo..i * h_dv + vo + d.dv];
                    let li = lse[h * d.tq + i];
                    row_times_block(pr, qi, kt);
                    for pv in pr.iter_mut() {
                        *pv = fast_exp(*pv * d.scale - li);
                    }
                    // dP̃ = dO·vⱼ is the gradient of the kept weight P·keep.
                    row_times_block(dsr, goi, vt);
                    if d.dropout > 0.0 {
                        for (c, (pv, dv)) in pr.iter_mut().zip(dsr.iter_mut()).enumerate() {
                            let keep = d.keep(b, h, i, j0 + c);
                            *dv = *pv * (*dv * keep - delta[i]);
                            *pv *= keep;
                        }
                    } else {
                        for (pv, dv) in pr.iter().zip(dsr.iter_mut()) {
                            *dv = pv * (*dv - delta[i]);
                        }
                    }
                    // ∂vⱼᵀ += dOᵢ ⊗ (P∘keep)ᵢ ; ∂kⱼᵀ += scale·qᵢ ⊗ dSᵢ
                    for (e, g) in goi.iter().enumerate() {
                        axpy(&mut gvt[e * KEY_BLOCK..e * KEY_BLOCK + seen], *g, pr);
                    }
                    for (e, x) in qi.iter().enumerate() {
                        axpy(&mut gkt[e * KEY_BLOCK..e * KEY_BLOCK + seen], *x * d.scale, dsr);
                    }
                    // ∂qᵢ += scale·Σⱼ dSᵢⱼ·kⱼ
                    let gqi = &mut gq[i * h_dk + qo..i * h_dk + qo + d.dk];
                    for (c, w) in dsr.iter().enumerate() {
                        let j = j0 + c;
                        axpy(gqi, w * d.scale, &k[j * h_dk + qo..j * h_dk + qo + d.dk]);
                    }
                }
                // Back to rows: gk[j, head] = ∂kᵀ[:, j − j0] (written whole: each block once).
                for c in 0..cols {
                    let j = j0 + c;
                    for (e, g) in gk[j * h_dk + qo..j * h_dk + qo + d.dk].iter_mut().enumerate() {
                        *g = gkt[e * KEY_BLOCK + c];
                    }
                    for (e, g) in gv[j * h_dv + vo..j * h_dv + vo + d.dv].iter_mut().enumerate() {
                        *g = gvt[e * KEY_BLOCK + c];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain formula in f64: S = scale·q·kᵀ, masked, P = softmax(S)·keep, o = P·v.
    fn reference(q: &[f32], k: &[f32], v: &[f32], d: &AttentionDims) -> Vec<f64> {
        let mut o = vec![0.0f64; d.o_len()];
        for b in 0..d.batch {
            for h in 0..d.heads {
                for i in 0..d.tq {
                    let qi = |c: usize| q[(b * d.tq + i) * d.heads * d.dk + h * d.dk + c] as f64;
                    let end = d.key_end(i);
                    let s: Vec<f64> = (0..end)
                        .map(|j| (0..d.dk).map(|c| qi(c) * k[(b * d.tk + j) * d.heads * d.dk + h * d.dk + c] as f64).sum::<f64>() * d.scale as f64)
                        .collect();
                    let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = s.iter().map(|x| (x - mx).exp()).sum();
                    for (j, sj) in s.iter().enumerate() {
                        let p = (sj - mx).exp() / z * d.keep(b, h, i, j) as f64;
                        for c in 0..d.dv {
                            o[(b * d.tq + i) * d.heads * d.dv + h * d.dv + c] += p * v[(b * d.tk + j) * d.heads * d.dv + h * d.dv + c] as f64;
                        }
                    }
                }
            }
        }
        o
    }

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0).collect()
    }

    #[test]
    fn forward_equals_the_plain_formula_across_tiles() {
        // Sizes that cross the query and key block edges, causal and not, with dropout.
        for (tq, tk, causal, dropout) in [(5, 5, true, 0.0), (37, 37, true, 0.0), (20, 131, false, 0.0), (70, 70, true, 0.25), (3, 80, false, 0.5)] {
            let d = AttentionDims { batch: 2, tq, tk, heads: 3, dk: 12, dv: 5, causal, key_offset: 0, scale: 1.0 / 12f32.sqrt(), dropout, seed: 7 };
            let (q, k, v) = (data(d.q_len(), 1), data(d.k_len(), 2), data(d.v_len(), 3));
            let (mut o, mut lse) = (vec![0.0; d.o_len()], vec![0.0; d.lse_len()]);
            attention_forward(&mut o, &mut lse, &q, &k, &v, &d);
            let want = reference(&q, &k, &v, &d);
            let worst = o.iter().zip(&want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-5, "tq {tq} tk {tk} causal {causal} dropout {dropout}: worst {worst}");
        }
        // The last rows of a causal attention, computed alone against every key (decoding
        // with a cache), equal those rows of the whole.
        let d = AttentionDims { batch: 1, tq: 70, tk: 70, heads: 2, dk: 8, dv: 8, causal: true, key_offset: 0, scale: 0.3, dropout: 0.0, seed: 0 };
        let (q, k, v) = (data(d.q_len(), 4), data(d.k_len(), 5), data(d.v_len(), 6));
        let (mut o, mut lse) = (vec![0.0; d.o_len()], vec![0.0; d.lse_len()]);
        attention_forward(&mut o, &mut lse, &q, &k, &v, &d);
        let tail = AttentionDims { tq: 3, key_offset: 67, ..d };
        let (mut ot, mut lt) = (vec![0.0; tail.o_len()], vec![0.0; tail.lse_len()]);
        attention_forward(&mut ot, &mut lt, &q[67 * 16..], &k, &v, &tail);
        let worst = ot.iter().zip(&o[67 * 16..]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(worst < 1e-6, "decoding rows differ by {worst}");
    }

    #[test]
    fn dropout_drops_about_its_rate_and_is_reproducible() {
        let d = AttentionDims { batch: 2, tq: 64, tk: 64, heads: 4, dk: 8, dv: 8, causal: false, key_offset: 0, scale: 1.0, dropout: 0.3, seed: 11 };
        let kept = (0..d.batch * d.heads * d.tq * d.tk)
            .filter(|&n| {
                let (j, i, h, b) = (n % d.tk, (n / d.tk) % d.tq, (n / d.tk / d.tq) % d.heads, n / d.tk / d.tq / d.heads);
                d.keep(b, h, i, j) != 0.0
            })
            .count() as f64
            / (d.batch * d.heads * d.tq * d.tk) as f64;
        assert!((kept - 0.7).abs() < 0.01, "kept {kept}");
        assert_eq!(d.keep(1, 2, 3, 4), d.keep(1, 2, 3, 4));
    }
}
