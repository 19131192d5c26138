//! Fused attention: gradients of q, k and v against central finite differences (the
//! check of `gradcheck.rs`), causal or not, self- and cross-attention, across the query
//! and key tile edges, and with dropout (its mask a function of the seed, so both
//! directions of the difference see the same one).

use super::gradcheck::check;
use super::gradcheck_nd::{param, probe_nd};
use super::{AttentionSpec, ParamStore};

fn spec(heads: u16, causal: bool, dropout: f32) -> AttentionSpec {
    AttentionSpec { heads, causal, queries_last: false, scale: None, dropout, seed: 5 }
}

#[test]
fn attention_gradients_match_finite_differences() {
    // (batch, Tq, Tk, heads, dk, dv, causal, dropout)
    for (b, tq, tk, h, dk, dv, causal, dropout) in [
        (2, 5, 5, 2, 3, 2, true, 0.0),
        (2, 4, 7, 2, 3, 4, false, 0.0),
        (1, 18, 18, 1, 2, 2, true, 0.0),
        (1, 3, 66, 1, 2, 1, false, 0.0),
        (2, 6, 6, 2, 2, 3, true, 0.3),
    ] {
        let mut store = ParamStore::new();
        let q = param(&mut store, "q", &[b, tq, h * dk], 1);
        let k = param(&mut store, "k", &[b, tk, h * dk], 2);
        let v = param(&mut store, "v", &[b, tk, h * dv], 3);
        let s = spec(h as u16, causal, dropout);
        check(
            &mut store,
            &move |t, st| {
                let (q, k, v) = (t.param(st, q), t.param(st, k), t.param(st, v));
                let o = t.attention(st, q, k, v, s).unwrap();
                probe_nd(t, st, o)
            },
            &format!("attention b{b} tq{tq} tk{tk} h{h} causal {causal} dropout {dropout}"),
        );
    }
}

#[test]
fn self_attention_through_one_value_sums_its_three_gradients() {
    let mut store = ParamStore::new();
    let x = param(&mut store, "x", &[2, 5, 4], 4);
    check(
        &mut store,
        &move |t, st| {
            let x = t.param(st, x);
            let o = t.attention(st, x, x, x, spec(2, true, 0.0)).unwrap();
            probe_nd(t, st, o)
        },
        "self-attention",
    );
}

#[test]
fn attention_refuses_mismatched_operands() {
    let mut store = ParamStore::new();
    let q = param(&mut store, "q", &[2, 5, 6], 1);
    let k = param(&mut store, "k", &[2, 4, 4], 2);
    let mut t = super::Tape::new();
    let (q, k) = (t.param(&store, q), t.param(&store, k));
    let e = t.attention(&store, q, k, k, spec(2, false, 0.0)).unwrap_err().to_string();
    assert!(e.contains("attention") && e.contains("q [2, 5, 6]"), "{e}");
    let e = t.attention(&store, q, q, q, spec(4, false, 0.0)).unwrap_err().to_string();
    assert!(e.contains("4·dk"), "{e}");
}
