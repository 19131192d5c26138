//! Batched matrix product over leading axes: `a: [..., m, k]` · `b: [..., k, n]` with the
//! same leading axes, or `b: [k, n]` shared by every batch (attention's Q·Kᵀ and P·V,
//! a projection of every position). One GEMM per batch element, forward and backward.

use super::{value_of, Backward, Op};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::tensor::{Backend, Shape, B};

/// (batches, m, k, n, whether b is shared) of a valid product.
fn dims(sa: Shape, sb: Shape) -> Option<(usize, usize, usize, usize, bool)> {
    let (ra, rb) = (sa.rank(), sb.rank());
    if ra < 2 || rb < 2 {
        return None;
    }
    let (m, k) = (sa.dims()[ra - 2], sa.dims()[ra - 1]);
    let (k2, n) = (sb.dims()[rb - 2], sb.dims()[rb - 1]);
    let shared = rb == 2;
    if k != k2 || (!shared && sa.dims()[..ra - 2] != sb.dims()[..rb - 2]) {
        return None;
    }
    Some((sa.dims()[..ra - 2].iter().product(), m, k, n, shared))
}

impl Tape {
    /// `a · b` over the last two axes, batched over the leading ones.
    pub fn batched_matmul(&mut self, store: &ParamStore, a: Var, b: Var) -> Result<Var> {
        let (sa, sb) = (self.shape(a), self.shape(b));
        let (batches, m, k, n, shared) =
            dims(sa, sb).ok_or_else(|| Error::shape("batched matmul", format!("[..., m, k]·[..., k, n] with the left {sa}"), sb))?;
        let mut out_dims = sa.dims().to_vec();
        *out_dims.last_mut().expect("rank ≥ 2") = n;
        let rg = self.requires_grad(a) || self.requires_grad(b);
        let out = self.push(Shape::new(&out_dims)?, Op::BatchedMatMul { a, b }, rg);
        self.compute(store, out, |nodes, params, y, _| {
            let (av, bv) = (value_of(nodes, params, a), value_of(nodes, params, b));
            for t in 0..batches {
                let bt = if shared { bv } else { B::range(bv, t * k * n..(t + 1) * k * n) };
                B::matmul(B::range_mut(y, t * m * n..(t + 1) * m * n), B::range(av, t * m * k..(t + 1) * m * k), bt, m, k, n, false, false, false);
            }
        });
        Ok(out)
    }
}

pub(super) fn backward(ctx: &mut Backward, i: usize, a: Var, b: Var) {
    let (sa, sb) = (ctx.nodes[a.idx()].shape, ctx.nodes[b.idx()].shape);
    let (batches, m, k, n, shared) = dims(sa, sb).expect("checked in forward");
    ctx.with_own(i, |ctx, g, _| {
        // ∂a_t = ∂y_t · b_tᵀ; ∂b_t = a_tᵀ · ∂y_t (summed over t when b is shared).
        if ctx.requires_grad(a) {
            ctx.with_grad(a, |nodes, pvals, ga| {
                let bv = value_of(nodes, pvals, b);
                for t in 0..batches {
                    let bt = if shared { bv } else { B::range(bv, t * k * n..(t + 1) * k * n) };
                    B::matmul(B::range_mut(ga, t * m * k..(t + 1) * m * k), B::range(g, t * m * n..(t + 1) * m * n), bt, m, n, k, false, true, true);
                }
            });
        }
        if ctx.requires_grad(b) {
            ctx.with_grad(b, |nodes, pvals, gb| {
                let av = value_of(nodes, pvals, a);
                for t in 0..batches {
                    let gbt = if shared { &mut *gb } else { B::range_mut(gb, t * k * n..(t + 1) * k * n) };
                    B::matmul(gbt, B::range(av, t * m * k..(t + 1) * m * k), B::range(g, t * m * n..(t + 1) * m * n), k, m, n, true, false, true);
                }
            });
        }
    });
}
