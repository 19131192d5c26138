//! Scaled dot-product attention as one op: `o = softmax(scale·q·kᵀ + mask)·v` per head,
//! with `q: [batch, Tq, heads·dk]`, `k: [batch, Tk, heads·dk]`, `v: [batch, Tk,
//! heads·dv]` → `o: [batch, Tq, heads·dv]` (the layout Keras's projections produce, so
//! no transposes around it). Forward and backward are the fused tile kernels of
//! `tensor/kernels/attention.rs`: the T×T scores are never stored, only each row's
//! log-sum-exp, and backward recomputes them tile by tile.

use super::{value_of, Backward, Op, Saved};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::{AttentionDims, Backend, DeviceSlice, DeviceVec, Shape, B, MAX_HEAD_DIM};

/// The options of an attention node (its sizes come from the operands' shapes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionSpec {
    pub heads: u16,
    pub causal: bool,
    /// Causal: the queries are the last Tq of Tk positions (decoding with cached keys),
    /// instead of Keras's top-left mask.
    pub queries_last: bool,
    /// Factor on q·k; `None`: 1/√dk.
    pub scale: Option<f32>,
    /// Probability of dropping each attention weight (training only; 0: none).
    pub dropout: f32,
    /// Seeds the dropout mask (a new seed each step).
    pub seed: u64,
}

/// What backward reads: each score row's log-sum-exp `[batch, heads, Tq]`, and a
/// working buffer for the three input gradients.
struct AttentionSaved<'a> {
    lse: &'a DeviceSlice,
    grads: &'a mut DeviceVec,
}

impl<'a> AttentionSaved<'a> {
    fn of(saved: &'a mut Saved) -> Self {
        let [lse, grads, _] = saved;
        AttentionSaved { lse, grads }
    }
}

impl Tape {
    fn attention_dims(&self, q: Var, k: Var, v: Var, spec: AttentionSpec) -> Result<AttentionDims> {
        let (qs, ks, vs) = (self.shape(q), self.shape(k), self.shape(v));
        let heads = spec.heads as usize;
        let want = || format!("q [batch, Tq, {heads}·dk], k [batch, Tk, {heads}·dk] and v [batch, Tk, {heads}·dv]");
        if qs.rank() != 3 || ks.rank() != 3 || vs.rank() != 3 || heads == 0 {
            return Err(Error::shape("attention", want(), format!("q {qs}, k {ks}, v {vs}")));
        }
        let ([b, tq, qw], [kb, tk, kw], [vb, vt, vw]) = (
            [qs.dims()[0], qs.dims()[1], qs.dims()[2]],
            [ks.dims()[0], ks.dims()[1], ks.dims()[2]],
            [vs.dims()[0], vs.dims()[1], vs.dims()[2]],
        );
        if kb != b || vb != b || vt != tk || kw != qw || qw % heads != 0 || vw % heads != 0 || tk == 0 || tq == 0 {
            return Err(Error::shape("attention", want(), format!("q {qs}, k {ks}, v {vs}")));
        }
        let (dk, dv) = (qw / heads, vw / heads);
        if dk > MAX_HEAD_DIM || dv > MAX_HEAD_DIM {
            return Err(Error::shape("attention", format!("heads at most {MAX_HEAD_DIM} wide"), format!("dk {dk}, dv {dv}")));
        }
        if !(0.0..1.0).contains(&spec.dropout) {
            return Err(Error::Config(format!("attention: dropout {} is outside [0, 1)", spec.dropout)));
        }
        if spec.queries_last && tq > tk {
            return Err(Error::shape("attention", "no more queries than keys when the queries are the last positions", format!("q {qs}, k {ks}")));
        }
        Ok(dims_of(qs, ks, vs, spec))
    }

    /// Multi-head scaled dot-product attention of `q` over `k`/`v` (see the module docs).
    pub fn attention(&mut self, store: &ParamStore, q: Var, k: Var, v: Var, spec: AttentionSpec) -> Result<Var> {
        let d = self.attention_dims(q, k, v, spec)?;
        let rg = self.requires_grad(q) || self.requires_grad(k) || self.requires_grad(v);
        let shape = Shape::new(&[d.batch, d.tq, d.heads * d.dv])?;
        let out = self.push(shape, Op::Attention { q, k, v, spec }, rg);
        self.compute(store, out, |nodes, params, o, saved| {
            B::resize(&mut saved[0], d.lse_len());
            B::attention(o, &mut saved[0], value_of(nodes, params, q), value_of(nodes, params, k), value_of(nodes, params, v), &d);
        });
        Ok(out)
    }
}

/// The kernel's sizes for operands of (already checked) shapes `q [B, Tq, H·dk]`,
/// `k [B, Tk, H·dk]`, `v [B, Tk, H·dv]`: forward computes them once checked, backward
/// again from the node's shapes.
fn dims_of(qs: Shape, ks: Shape, vs: Shape, spec: AttentionSpec) -> AttentionDims {
    let heads = spec.heads as usize;
    let (dk, dv) = (qs.dims()[2] / heads, vs.dims()[2] / heads);
    let (tq, tk) = (qs.dims()[1], ks.dims()[1]);
    AttentionDims {
        batch: qs.dims()[0],
        tq,
        tk,
        heads,
        dk,
        dv,
        causal: spec.causal,
        key_offset: if spec.queries_last { tk - tq } else { 0 },
        scale: spec.scale.unwrap_or(1.0 / (dk as f32).sqrt()),
        dropout: spec.dropout,
        seed: spec.seed,
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, (q, k, v): (Var, Var, Var), spec: AttentionSpec) {
    let shape = |x: Var| ctx.nodes[x.idx()].shape;
    let d = dims_of(shape(q), shape(k), shape(v), spec);
    let (nq, nk, nv) = (d.q_len(), d.k_len(), d.v_len());
    ctx.with_own(i, |ctx, go, saved| {
        let AttentionSaved { lse, grads } = AttentionSaved::of(saved);
        B::resize(grads, nq + nk + nv);
        {
            let (gq, rest) = B::split_at_mut(grads, nq);
            let (gk, gv) = B::split_at_mut(rest, nk);
            let val = |x: Var| value_of(ctx.nodes, ctx.pvals, x);
            B::attention_backward(gq, gk, gv, go, &ctx.nodes[i].value, lse, val(q), val(k), val(v), &d);
        }
        ctx.accumulate(q, B::range(grads, 0..nq));
        ctx.accumulate(k, B::range(grads, nq..nq + nk));
        ctx.accumulate(v, B::range(grads, nq + nk..nq + nk + nv));
    });
}
