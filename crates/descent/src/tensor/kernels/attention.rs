//! Scaled dot-product attention, fused in the manner of FlashAttention: the T×T score
//! matrix is never formed. Forward walks key blocks of [`KEY_BLOCK`] columns for each
//! block of [`QUERY_BLOCK`] query rows, keeping a running maximum and sum per row (the
//! online softmax), and saves only each row's log-sum-exp; backward recomputes the
//! probabilities of one tile at a time from it (FlashAttention-2's backward:
//! Dᵢ = Σ dOᵢ·Oᵢ, dS = P ∘ (dP − D)).
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

/// Query rows per tile (their scores, maxima and sums live on the stack).
pub const QUERY_BLOCK: usize = 16;
/// Key columns per tile.
pub const KEY_BLOCK: usize = 64;
/// The widest head the stack tiles hold.
pub const MAX_HEAD_DIM: usize = 256;

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
        if self.causal { (i + 1).min(self.tk) } else { self.tk }
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

/// o = softmax(scale·q·kᵀ, masked) · v, and the log-sum-exp of each score row.
pub fn attention_forward(o: &mut [f32], lse: &mut [f32], q: &[f32], k: &[f32], v: &[f32], d: &AttentionDims) {
    assert!(d.dk <= MAX_HEAD_DIM && d.dv <= MAX_HEAD_DIM, "attention: head widths above {MAX_HEAD_DIM}");
    let (qn, kn, vn, on) = (d.tq * d.heads * d.dk, d.tk * d.heads * d.dk, d.tk * d.heads * d.dv, d.tq * d.heads * d.dv);
    let one = |b: usize, o: &mut [f32], lse: &mut [f32]| {
        forward_sample(o, lse, &q[b * qn..(b + 1) * qn], &k[b * kn..(b + 1) * kn], &v[b * vn..(b + 1) * vn], d, b)
    };
    if d.batch > 1 && rayon::current_num_threads() > 1 {
        o.par_chunks_mut(on).zip(lse.par_chunks_mut(d.heads * d.tq)).enumerate().for_each(|(b, (o, l))| one(b, o, l));
    } else {
        o.chunks_mut(on).zip(lse.chunks_mut(d.heads * d.tq)).enumerate().for_each(|(b, (o, l))| one(b, o, l));
    }
}

simd_dispatch! {
    /// One batch element: every head, query block by query block.
    fn forward_sample(o: &mut [f32], lse: &mut [f32], q: &[f32], k: &[f32], v: &[f32], d: &AttentionDims, b: usize) {
        let (h_dk, h_dv) = (d.heads * d.dk, d.heads * d.dv);
        let mut s = [0.0f32; QUERY_BLOCK * KEY_BLOCK];
        let mut acc = [0.0f32; QUERY_BLOCK * MAX_HEAD_DIM];
        let (mut m, mut l) = ([0.0f32; QUERY_BLOCK], [0.0f32; QUERY_BLOCK]);
        for h in 0..d.heads {
            let (qo, vo) = (h * d.dk, h * d.dv);
            for i0 in (0..d.tq).step_by(QUERY_BLOCK) {
                let rows = QUERY_BLOCK.min(d.tq - i0);
                m[..rows].fill(f32::NEG_INFINITY);
                l[..rows].fill(0.0);
                acc[..rows * d.dv].fill(0.0);
                let kend = d.key_end(i0 + rows - 1);
                for j0 in (0..kend).step_by(KEY_BLOCK) {
                    let cols = KEY_BLOCK.min(kend - j0);
                    for r in 0..rows {
                        let i = i0 + r;
                        let qi = &q[i * h_dk + qo..i * h_dk + qo + d.dk];
                        let seen = d.key_end(i).saturating_sub(j0).min(cols);
                        if seen == 0 {
                            continue;
                        }
                        let sr = &mut s[r * KEY_BLOCK..r * KEY_BLOCK + seen];
                        let mut row_max = f32::NEG_INFINITY;
                        for (c, sv) in sr.iter_mut().enumerate() {
                            let j = j0 + c;
                            *sv = dot(qi, &k[j * h_dk + qo..j * h_dk + qo + d.dk]) * d.scale;
                            row_max = row_max.max(*sv);
                        }
                        let m_new = m[r].max(row_max);
                        let rescale = (m[r] - m_new).exp();
                        let ar = &mut acc[r * d.dv..(r + 1) * d.dv];
                        if rescale != 1.0 {
                            l[r] *= rescale;
                            ar.iter_mut().for_each(|a| *a *= rescale);
                        }
                        let mut sum = 0.0f32;
                        for (c, sv) in sr.iter().enumerate() {
                            let j = j0 + c;
                            let p = (sv - m_new).exp();
                            sum += p;
                            let p = if d.dropout > 0.0 { p * d.keep(b, h, i, j) } else { p };
                            if p != 0.0 {
                                axpy(ar, p, &v[j * h_dv + vo..j * h_dv + vo + d.dv]);
                            }
                        }
                        l[r] += sum;
                        m[r] = m_new;
                    }
                }
                for r in 0..rows {
                    let i = i0 + r;
                    let inv = 1.0 / l[r];
                    let out = &mut o[i * h_dv + vo..i * h_dv + vo + d.dv];
                    for (y, a) in out.iter_mut().zip(&acc[r * d.dv..(r + 1) * d.dv]) {
                        *y = a * inv;
                    }
                    lse[h * d.tq + i] = m[r] + l[r].ln();
                }
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
        backward_sample(gq, gk, gv, &go[at(on)], &o[at(on)], &lse[at(ln)], &q[at(qn)], &k[at(kn)], &v[at(vn)], d, b)
    };
    if d.batch > 1 && rayon::current_num_threads() > 1 {
        gq.par_chunks_mut(qn).zip(gk.par_chunks_mut(kn)).zip(gv.par_chunks_mut(vn)).enumerate().for_each(|(b, ((gq, gk), gv))| one(b, gq, gk, gv));
    } else {
        gq.chunks_mut(qn).zip(gk.chunks_mut(kn)).zip(gv.chunks_mut(vn)).enumerate().for_each(|(b, ((gq, gk), gv))| one(b, gq, gk, gv));
    }
}

simd_dispatch! {
    /// One batch element's gradients: for each head, key block by key block, the query
    /// blocks that see it; probabilities recomputed from the log-sum-exp.
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
    ) {
        let (h_dk, h_dv) = (d.heads * d.dk, d.heads * d.dv);
        gq.fill(0.0);
        gk.fill(0.0);
        gv.fill(0.0);
        let mut delta = [0.0f32; QUERY_BLOCK];
        let mut p = [0.0f32; QUERY_BLOCK * KEY_BLOCK];
        let mut ds = [0.0f32; QUERY_BLOCK * KEY_BLOCK];
        for h in 0..d.heads {
            let (qo, vo) = (h * d.dk, h * d.dv);
            for i0 in (0..d.tq).step_by(QUERY_BLOCK) {
                let rows = QUERY_BLOCK.min(d.tq - i0);
                // Dᵢ = Σ dOᵢ·Oᵢ (= Σⱼ Pᵢⱼ·dPᵢⱼ)
                for r in 0..rows {
                    let i = i0 + r;
                    let at = i * h_dv + vo..i * h_dv + vo + d.dv;
                    delta[r] = dot(&go[at.clone()], &o[at]);
                }
                let kend = d.key_end(i0 + rows - 1);
                for j0 in (0..kend).step_by(KEY_BLOCK) {
                    let cols = KEY_BLOCK.min(kend - j0);
                    for r in 0..rows {
                        let i = i0 + r;
                        let seen = d.key_end(i).saturating_sub(j0).min(cols);
                        let qi = &q[i * h_dk + qo..i * h_dk + qo + d.dk];
                        let goi = &go[i * h_dv + vo..i * h_dv + vo + d.dv];
                        let li = lse[h * d.tq + i];
                        for c in 0..cols {
                            let (pr, dsr) = (&mut p[r * KEY_BLOCK + c], &mut ds[r * KEY_BLOCK + c]);
                            if c >= seen {
                                *pr = 0.0;
                                *dsr = 0.0;
                                continue;
                            }
                            let j = j0 + c;
                            let prob = (dot(qi, &k[j * h_dk + qo..j * h_dk + qo + d.dk]) * d.scale - li).exp();
                            let keep = if d.dropout > 0.0 { d.keep(b, h, i, j) } else { 1.0 };
                            // dP̃ = dO·vⱼ is the gradient of the dropped-out weight P·keep.
                            let dp = dot(goi, &v[j * h_dv + vo..j * h_dv + vo + d.dv]) * keep;
                            *pr = prob * keep;
                            *dsr = prob * (dp - delta[r]);
                        }
                    }
                    // dV_j += (P∘keep)ᵀ·dO ; dK_j += scale·dSᵀ·Q
                    for c in 0..cols {
                        let j = j0 + c;
                        let gvj = &mut gv[j * h_dv + vo..j * h_dv + vo + d.dv];
                        for r in 0..rows {
                            let w = p[r * KEY_BLOCK + c];
                            if w != 0.0 {
                                let i = i0 + r;
                                axpy(gvj, w, &go[i * h_dv + vo..i * h_dv + vo + d.dv]);
                            }
                        }
                        let gkj = &mut gk[j * h_dk + qo..j * h_dk + qo + d.dk];
                        for r in 0..rows {
                            let w = ds[r * KEY_BLOCK + c];
                            if w != 0.0 {
                                let i = i0 + r;
                                axpy(gkj, w * d.scale, &q[i * h_dk + qo..i * h_dk + qo + d.dk]);
                            }
                        }
                    }
                    // dQ_i += scale·dS·K
                    for r in 0..rows {
                        let i = i0 + r;
                        let gqi = &mut gq[i * h_dk + qo..i * h_dk + qo + d.dk];
                        for c in 0..cols {
                            let w = ds[r * KEY_BLOCK + c];
                            if w != 0.0 {
                                let j = j0 + c;
                                axpy(gqi, w * d.scale, &k[j * h_dk + qo..j * h_dk + qo + d.dk]);
                            }
                        }
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
            let d = AttentionDims { batch: 2, tq, tk, heads: 3, dk: 12, dv: 5, causal, scale: 1.0 / 12f32.sqrt(), dropout, seed: 7 };
            let (q, k, v) = (data(d.q_len(), 1), data(d.k_len(), 2), data(d.v_len(), 3));
            let (mut o, mut lse) = (vec![0.0; d.o_len()], vec![0.0; d.lse_len()]);
            attention_forward(&mut o, &mut lse, &q, &k, &v, &d);
            let want = reference(&q, &k, &v, &d);
            let worst = o.iter().zip(&want).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
            assert!(worst < 1e-5, "tq {tq} tk {tk} causal {causal} dropout {dropout}: worst {worst}");
        }
    }

    #[test]
    fn dropout_drops_about_its_rate_and_is_reproducible() {
        let d = AttentionDims { batch: 2, tq: 64, tk: 64, heads: 4, dk: 8, dv: 8, causal: false, scale: 1.0, dropout: 0.3, seed: 11 };
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
