//! Splitting elementwise work over threads without allocating.

/// Work below this many elements runs on the calling thread: a rayon fork costs a few
/// microseconds, more than the whole pass over a small buffer.
pub const MIN_PARALLEL_LEN: usize = 1 << 16;

/// Calls `f` on matching pieces of `out` and `ins` (all the same length), in parallel
/// when large. Pieces are split at multiples of 64 elements; the result is identical for
/// any thread count because each element is computed independently.
pub fn for_each_split<const K: usize, const M: usize, F>(mut outs: [&mut [f32]; K], ins: [&[f32]; M], f: &F)
where
    F: Fn([&mut [f32]; K], [&[f32]; M]) + Sync,
{
    let len = outs.first().map(|s| s.len()).or(ins.first().map(|s| s.len())).unwrap_or(0);
    debug_assert!(outs.iter().all(|s| s.len() == len) && ins.iter().all(|s| s.len() == len));
    if len < MIN_PARALLEL_LEN || rayon::current_num_threads() == 1 {
        f(outs, ins);
        return;
    }
    let mid = (len / 2 + 63) & !63;
    let mut rights: [Option<&mut [f32]>; K] = std::array::from_fn(|_| None);
    let lefts: [&mut [f32]; K] = std::array::from_fn(|i| {
        let s = std::mem::take(&mut outs[i]);
        let (l, r) = s.split_at_mut(mid);
        rights[i] = Some(r);
        l
    });
    let rights: [&mut [f32]; K] = rights.map(|r| r.expect("split"));
    let in_l: [&[f32]; M] = std::array::from_fn(|i| &ins[i][..mid]);
    let in_r: [&[f32]; M] = std::array::from_fn(|i| &ins[i][mid..]);
    rayon::join(|| for_each_split(lefts, in_l, f), || for_each_split(rights, in_r, f));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cover_every_element_once() {
        let n = 300_001;
        let mut a = vec![0.0f32; n];
        let mut b = vec![0.0f32; n];
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        for_each_split([&mut a, &mut b], [&x], &|[a, b], [x]| {
            for i in 0..a.len() {
                a[i] += x[i] + 1.0;
                b[i] += 1.0;
            }
        });
        assert!(a.iter().enumerate().all(|(i, v)| *v == i as f32 + 1.0));
        assert!(b.iter().all(|v| *v == 1.0));
    }
}
