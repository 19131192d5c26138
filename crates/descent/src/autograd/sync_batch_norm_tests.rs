//! Synchronized batch norm: replicas holding parts of a batch, summing their statistics
//! over each other (here threads, as MPI ranks would), compute what one tape computes
//! on the whole batch: the output, each replica's input gradient (of its own mean
//! loss, weighted by its share) and the affine parameters' gradients, weighted and
//! summed as the all-reduce sums them.

use std::sync::{Arc, Barrier, Mutex};

use super::gradcheck::{probe, pseudo};
use super::{ParamStore, ReplicaSum, Tape};
use crate::tensor::Shape;

/// Replicas as threads: each sum waits for every replica's values, then adds them in
/// replica order.
struct ThreadSum {
    rank: usize,
    slots: Arc<Mutex<Vec<Vec<f64>>>>,
    barrier: Arc<Barrier>,
}

impl ReplicaSum for ThreadSum {
    fn sum(&mut self, values: &mut [f64]) {
        self.slots.lock().unwrap()[self.rank] = values.to_vec();
        self.barrier.wait();
        {
            let slots = self.slots.lock().unwrap();
            values.iter_mut().enumerate().for_each(|(j, v)| *v = slots.iter().map(|s| s[j]).sum());
        }
        self.barrier.wait();
    }
}

const N: usize = 4;

/// A pass's output and the gradients of x, γ and β.
type Pass = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

/// One pass over `rows` of `x` `[_, N]`: the output and the gradients of x, γ and β
/// (of the mean probe loss over these rows). With `group`, the norm is synchronized
/// over it and this replica weighs `weight`.
fn pass(x: &[f32], group: Option<(ThreadSum, f64)>, synchronized: bool) -> Pass {
    let rows = x.len() / N;
    let mut store = ParamStore::new();
    let xp = store.add("x", Shape::matrix(rows, N), |b| b.copy_from_slice(x));
    let gamma = store.add("gamma", Shape::matrix(1, N), |b| b.copy_from_slice(&pseudo(32, N, 0.5, 1.5)));
    let beta = store.add("beta", Shape::matrix(1, N), |b| b.copy_from_slice(&pseudo(33, N, -0.5, 0.5)));
    let mut tape = Tape::new();
    if let Some((g, w)) = group {
        tape.set_replicas(Some(Box::new(g)));
        tape.set_replica_weight(w);
    }
    let (xv, g, b) = (tape.param(&store, xp), tape.param(&store, gamma), tape.param(&store, beta));
    let y = if synchronized { tape.synchronized_batch_norm(&store, xv, g, b, 1e-3).unwrap() } else { tape.batch_norm(&store, xv, g, b, 1e-3, None).unwrap() };
    let out = tape.value(&store, y).to_vec();
    let loss = probe(&mut tape, &store, y);
    store.zero_grads();
    tape.backward(loss, &mut store).unwrap();
    let grad = |id| store.grads()[store.entry(id).range()].to_vec();
    (out, grad(xp), grad(gamma), grad(beta))
}

fn relative(a: &[f32], b: &[f32]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(p, q)| (*p as f64 - *q as f64).powi(2)).sum();
    let n: f64 = b.iter().map(|q| (*q as f64).powi(2)).sum();
    (d / n.max(1e-30)).sqrt()
}

/// Runs replicas on threads, replica r on rows `parts[r]` of `x`; returns each one's
/// pass.
fn replicas(x: &[f32], parts: &[std::ops::Range<usize>], synchronized: bool) -> Vec<Pass> {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let slots = Arc::new(Mutex::new(vec![Vec::new(); parts.len()]));
    let barrier = Arc::new(Barrier::new(parts.len()));
    let handles: Vec<_> = parts
        .iter()
        .enumerate()
        .map(|(rank, p)| {
            let mine = x[p.start * N..p.end * N].to_vec();
            let group = ThreadSum { rank, slots: slots.clone(), barrier: barrier.clone() };
            let weight = p.len() as f64 / total as f64;
            std::thread::spawn(move || pass(&mine, Some((group, weight)), synchronized))
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn replicas_sharing_a_batch_normalize_and_differentiate_as_one_tape_on_the_whole_batch() {
    let x = pseudo(31, 10 * N, -2.0, 3.0);
    let (y1, gx1, gg1, gb1) = pass(&x, None, false);
    // Uneven shares (4 and 6 rows), as a last partial batch splits.
    let parts = [0..4, 4..10];
    let got = replicas(&x, &parts, true);
    let mut gg = vec![0.0f32; N];
    let mut gb = vec![0.0f32; N];
    for ((y, gx, g, b), p) in got.iter().zip(&parts) {
        let w = p.len() as f32 / 10.0;
        let d = relative(y, &y1[p.start * N..p.end * N]);
        assert!(d <= 1e-6, "output rows {p:?}: {d:.2e}");
        let gx_w: Vec<f32> = gx.iter().map(|v| v * w).collect();
        let d = relative(&gx_w, &gx1[p.start * N..p.end * N]);
        assert!(d <= 1e-6, "input gradient rows {p:?}: {d:.2e}");
        gg.iter_mut().zip(g).for_each(|(a, v)| *a += w * v);
        gb.iter_mut().zip(b).for_each(|(a, v)| *a += w * v);
    }
    assert!(relative(&gg, &gg1) <= 1e-6, "γ gradient {gg:?} against {gg1:?}");
    assert!(relative(&gb, &gb1) <= 1e-6, "β gradient {gb:?} against {gb1:?}");

    // Unsynchronized, each replica normalizes with its own rows: visibly different.
    let alone = replicas(&x, &parts, false);
    let d = relative(&alone[0].0, &y1[..4 * N]);
    assert!(d > 1e-2, "per-replica statistics should differ from the batch's: {d:.2e}");
}

#[test]
fn a_replica_without_rows_takes_part_in_the_sums_with_zeros() {
    // Step 1: both replicas have rows. Step 2: replica 1 has none and replays step 1's
    // sums as zeros, so replica 0 normalizes its rows alone, as one tape would.
    let x = pseudo(41, 6 * N, -1.0, 2.0);
    let slots = Arc::new(Mutex::new(vec![Vec::new(); 2]));
    let barrier = Arc::new(Barrier::new(2));
    let shared = |rank| ThreadSum { rank, slots: slots.clone(), barrier: barrier.clone() };
    let (first, second) = (shared(0), shared(1));
    let x0 = x[..3 * N].to_vec();
    let x1 = x[3 * N..].to_vec();
    let idle = std::thread::spawn(move || {
        let mut store = ParamStore::new();
        let xp = store.add("x", Shape::matrix(3, N), |b| b.copy_from_slice(&x1));
        let gamma = store.add("gamma", Shape::matrix(1, N), |b| b.copy_from_slice(&pseudo(32, N, 0.5, 1.5)));
        let beta = store.add("beta", Shape::matrix(1, N), |b| b.copy_from_slice(&pseudo(33, N, -0.5, 0.5)));
        let mut tape = Tape::new();
        tape.set_replicas(Some(Box::new(second)));
        tape.set_replica_weight(0.5);
        let (xv, g, b) = (tape.param(&store, xp), tape.param(&store, gamma), tape.param(&store, beta));
        let y = tape.synchronized_batch_norm(&store, xv, g, b, 1e-3).unwrap();
        let loss = probe(&mut tape, &store, y);
        tape.backward(loss, &mut store).unwrap();
        // An evaluation pass between takes no sums and leaves the record alone.
        tape.reset();
        tape.replay_replica_sums()
    });
    let mut store = ParamStore::new();
    let xp = store.add("x", Shape::matrix(3, N), |b| b.copy_from_slice(&x0));
    let gamma = store.add("gamma", Shape::matrix(1, N), |b| b.copy_from_slice(&pseudo(32, N, 0.5, 1.5)));
    let beta = store.add("beta", Shape::matrix(1, N), |b| b.copy_from_slice(&pseudo(33, N, -0.5, 0.5)));
    let mut tape = Tape::new();
    tape.set_replicas(Some(Box::new(first)));
    for (step, weight) in [(1, 0.5), (2, 1.0)] {
        tape.reset();
        tape.set_replica_weight(weight);
        let (xv, g, b) = (tape.param(&store, xp), tape.param(&store, gamma), tape.param(&store, beta));
        let y = tape.synchronized_batch_norm(&store, xv, g, b, 1e-3).unwrap();
        let loss = probe(&mut tape, &store, y);
        store.zero_grads();
        tape.backward(loss, &mut store).unwrap();
        if step == 2 {
            let (y_alone, gx_alone, _, _) = pass(&x0, None, false);
            assert!(relative(tape.value(&store, y), &y_alone) <= 1e-6);
            assert!(relative(&store.grads()[store.entry(xp).range()], &gx_alone) <= 1e-6);
        }
    }
    // Forward's two sums and backward's one.
    assert_eq!(idle.join().unwrap(), 3);
}
