//! Gradient buckets: the flat gradient buffer cut, at parameter boundaries, into
//! pieces summed over ranks one at a time, each as soon as backward is done with it.
//!
//! As PyTorch's DDP: buckets run from the last parameters to the first (the order
//! backward produces them), the first one small (1 MiB) so communication starts early,
//! the others about 25 MiB (`bucket_cap_mb`), large enough that each message runs near
//! the network's bandwidth. Buckets are started strictly in order, so every rank issues
//! the same collectives in the same order whatever its batch (or lack of one) did.

use std::ops::Range;

use super::Communicator;
use crate::autograd::ParamStore;

/// Bytes of the first bucket (DDP: 1 MiB).
pub const FIRST_BUCKET_BYTES: usize = 1 << 20;
/// Bytes of the other buckets (DDP's default `bucket_cap_mb` = 25).
pub const BUCKET_BYTES: usize = 25 << 20;

/// The bucket plan of one model, and the progress of the current backward pass.
pub struct GradientBuckets {
    /// Ranges of the flat gradient buffer; together they cover it. Bucket 0 holds the
    /// last parameters.
    ranges: Vec<Range<usize>>,
    /// Per bucket: the lowest tape node reading one of its parameters. Backward visits
    /// nodes from the last down, so once it has passed that node the bucket is final.
    ready_at: Vec<usize>,
    /// Buckets started in this pass (the next to start is `started`).
    started: usize,
    /// Weight of this rank's gradient in the sum (its share of the batch's rows).
    scale: f32,
    /// The last node backward processes: buckets not started by then are summed in
    /// place by `finish` (with nothing left to overlap, copying would only cost).
    last_node: usize,
}

impl GradientBuckets {
    /// Cuts `store`'s flat buffer into buckets: the first of at most `first_bytes`,
    /// the others of at most `bytes` (a parameter larger than that is a bucket of its
    /// own), walking from the last parameter to the first.
    pub fn plan(store: &ParamStore, first_bytes: usize, bytes: usize) -> Self {
        let len = store.len();
        let mut starts: Vec<usize> = store.entries().iter().map(|e| e.offset).collect();
        starts.sort_unstable();
        let mut ranges = Vec::new();
        let (mut end, mut low) = (len, len);
        let mut cap = first_bytes / 4;
        // Each parameter's start is a place the buffer may be cut (padding goes with the
        // parameter before it); `low..end` is the bucket being filled.
        for &start in starts.iter().rev() {
            if end - start > cap && low < end {
                ranges.push(low..end);
                end = low;
                cap = bytes / 4;
            }
            low = start;
        }
        if end > 0 {
            ranges.push(0..end);
        }
        let n = ranges.len();
        GradientBuckets { ranges, ready_at: vec![usize::MAX; n], started: 0, scale: 1.0, last_node: 0 }
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
    pub fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    /// Prepares a backward pass whose parameter leaves are `params` (tape node index,
    /// range of the flat buffer) and whose last op is node `last_node`, this rank's
    /// gradient weighing `scale` in the sum.
    pub fn begin_pass(&mut self, params: impl Iterator<Item = (usize, Range<usize>)>, last_node: usize, scale: f32) {
        self.ready_at.iter_mut().for_each(|r| *r = usize::MAX);
        for (node, range) in params {
            // Buckets are in descending order of offset.
            let first = self.ranges.partition_point(|b| b.start >= range.end);
            for b in first..self.ranges.len() {
                if self.ranges[b].end <= range.start {
                    break;
                }
                self.ready_at[b] = self.ready_at[b].min(node);
            }
        }
        self.started = 0;
        self.scale = scale;
        self.last_node = last_node;
    }

    /// Backward has just processed tape node `node` (and everything above it): starts
    /// every bucket, in order, that is now final, and lets those in flight advance.
    pub fn after_node(&mut self, node: usize, grads: &[f32], comm: &mut dyn Communicator) {
        if node <= self.last_node {
            return;
        }
        let before = self.started;
        while self.started < self.ranges.len() && self.ready_at[self.started] >= node {
            let r = self.ranges[self.started].clone();
            comm.begin_bucket(self.started, &grads[r], self.scale);
            self.started += 1;
        }
        if before > 0 || self.started > 0 {
            comm.progress();
        }
    }

    /// Waits for the buckets started during backward and writes their sums into
    /// `grads`, then sums whatever backward left (all of it, for a rank with no rows
    /// this step) in place: nothing is left to overlap with, so nothing is copied.
    pub fn finish(&mut self, grads: &mut [f32], comm: &mut dyn Communicator) {
        for (b, r) in self.ranges.iter().enumerate() {
            if b < self.started {
                comm.end_bucket(b, &mut grads[r.clone()]);
            } else {
                comm.sum_in_place(b, &mut grads[r.clone()], self.scale);
            }
        }
        self.started = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Shape;

    fn store(sizes: &[usize]) -> ParamStore {
        let mut s = ParamStore::new();
        for (i, n) in sizes.iter().enumerate() {
            s.add(format!("p{i}"), Shape::new(&[*n]).unwrap(), |v| v.fill(0.0));
        }
        s
    }

    #[test]
    fn buckets_cover_the_buffer_from_the_last_parameter_cut_at_parameter_starts() {
        // Offsets: 0, 1008 (1000 → 1008 aligned), 3008, 3024.
        let s = store(&[1000, 2000, 10, 5000]);
        let b = GradientBuckets::plan(&s, 4 * 100, 4 * 2500);
        let starts: Vec<usize> = s.entries().iter().map(|e| e.offset).collect();
        assert_eq!(starts, [0, 1008, 3008, 3024]);
        // First bucket: the last parameter alone (≥ 100 floats). Then up to 2500:
        // p2 (16 with padding) + p1 (2000) = 2016, adding p0 would pass 2500.
        assert_eq!(b.ranges(), &[3024..8024, 1008..3024, 0..1008]);
        let mut covered: Vec<_> = b.ranges().to_vec();
        covered.sort_by_key(|r| r.start);
        assert!(covered.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!((covered[0].start, covered.last().unwrap().end), (0, s.len()));
    }

    #[test]
    fn one_small_model_is_one_bucket() {
        let s = store(&[6400, 64, 640, 10]);
        let b = GradientBuckets::plan(&s, FIRST_BUCKET_BYTES, BUCKET_BYTES);
        assert_eq!(b.ranges(), &[0..s.len()]);
    }

    /// Records what a pass starts.
    struct Recorder(Vec<(usize, usize, f32)>);
    impl Communicator for Recorder {
        fn rank(&self) -> usize {
            0
        }
        fn size(&self) -> usize {
            2
        }
        fn sum(&mut self, _: &mut [f64]) {}
        fn gather_all(&mut self, local: &[u8]) -> Vec<Vec<u8>> {
            vec![local.to_vec()]
        }
        fn begin_bucket(&mut self, bucket: usize, data: &[f32], scale: f32) {
            self.0.push((bucket, data.len(), scale));
        }
        fn progress(&mut self) {}
        fn end_bucket(&mut self, _: usize, out: &mut [f32]) {
            out.iter_mut().for_each(|v| *v *= 2.0);
        }
        fn sum_in_place(&mut self, bucket: usize, data: &mut [f32], scale: f32) {
            self.0.push((bucket, data.len(), scale));
            data.iter_mut().for_each(|v| *v *= 2.0);
        }
        fn replica_sum(&mut self) -> Box<dyn crate::autograd::ReplicaSum> {
            struct Alone;
            impl crate::autograd::ReplicaSum for Alone {
                fn sum(&mut self, _: &mut [f64]) {}
            }
            Box::new(Alone)
        }
    }

    #[test]
    fn buckets_start_in_order_once_backward_passes_their_lowest_reader() {
        let s = store(&[1000, 2000, 10, 5000]);
        let mut b = GradientBuckets::plan(&s, 4 * 100, 4 * 2500);
        let e = s.entries();
        // Tape: 0 input, 1 p0, 2 op, 3 p3 (tied: read a second time), 4 op, 5 p1, 6 p2,
        // 7 op, 8 p3, 9 op (the loss). Backward's last op is node 2.
        let leaves = [(1, e[0].range()), (3, e[3].range()), (5, e[1].range()), (6, e[2].range()), (8, e[3].range())];
        b.begin_pass(leaves.into_iter(), 2, 0.5);
        let mut comm = Recorder(Vec::new());
        let mut grads = vec![1.0f32; s.len()];
        for node in (4..=9).rev() {
            b.after_node(node, &grads, &mut comm);
        }
        // Bucket 1 (p1, p2) is final below node 5, but bucket 0 (p3, read again at
        // node 3) is not yet: nothing may start out of order.
        assert!(comm.0.is_empty());
        b.after_node(3, &grads, &mut comm);
        assert_eq!(comm.0, [(0, 5000, 0.5), (1, 2016, 0.5)]);
        // Bucket 2 (p0) is final only once backward is over: summed in place at the end.
        b.after_node(2, &grads, &mut comm);
        b.after_node(1, &grads, &mut comm);
        assert_eq!(comm.0.len(), 2);
        b.finish(&mut grads, &mut comm);
        assert_eq!(comm.0, [(0, 5000, 0.5), (1, 2016, 0.5), (2, 1008, 0.5)]);
        assert!(grads.iter().all(|g| *g == 2.0));
    }
}
