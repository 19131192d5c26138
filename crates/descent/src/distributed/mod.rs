//! Data-parallel training's seam: what the trainer needs from a group of processes
//! (MPI ranks, `crates/descent-mpi`) that each train on their part of every batch.
//!
//! Every rank holds the same weights and takes its share of each global batch; after
//! backward the gradients are summed over ranks from the flat gradient buffer in
//! buckets ([`GradientBuckets`]), each started as soon as backward has finished
//! writing it (as PyTorch's DDP), so communication overlaps the rest of backward. Then
//! every rank runs the same optimizer step on the same gradient and the weights stay
//! identical without ever being sent.
//!
//! Sums are taken in rank order, whatever the network does: the same ranks give the
//! same bits run after run, and every rank gets the same bits.

mod buckets;
mod shard;

pub use buckets::{GradientBuckets, FIRST_BUCKET_BYTES, BUCKET_BYTES};
pub use shard::{fingerprint, share};

/// A group of processes training one model together.
pub trait Communicator {
    /// This process's place in the group, `0..size()`. Rank 0 writes the run folder.
    fn rank(&self) -> usize;
    /// Processes in the group.
    fn size(&self) -> usize;
    /// Sums `values` elementwise over all ranks, in rank order.
    fn sum(&mut self, values: &mut [f64]);
    /// Every rank's `local` bytes, in rank order (their lengths may differ).
    fn gather_all(&mut self, local: &[u8]) -> Vec<Vec<u8>>;
    /// Starts summing `data · scale` over ranks as gradient bucket `bucket`: `data` is
    /// copied and the call returns at once. Every rank starts the same buckets with the
    /// same lengths, in the same order.
    fn begin_bucket(&mut self, bucket: usize, data: &[f32], scale: f32);
    /// Lets started buckets advance; called between backward ops.
    fn progress(&mut self);
    /// Waits for bucket `bucket` and writes its sum into `out`.
    fn end_bucket(&mut self, bucket: usize, out: &mut [f32]);
    /// Sums `data · scale` over ranks into `data`, waiting for it: a bucket backward
    /// left for the end, reduced where it lies (no copies in or out).
    fn sum_in_place(&mut self, bucket: usize, data: &mut [f32], scale: f32);
    /// The sum [`Communicator::sum`] takes, as a handle the tape keeps for the fit:
    /// synchronized batch norm sums its statistics over the ranks with it, inside
    /// forward and backward. Called by every rank at the start of a fit.
    fn replica_sum(&mut self) -> Box<dyn crate::autograd::ReplicaSum>;
}

/// The data-parallel side of one fit: the group and the plan of its gradient buckets.
pub struct DataParallel<'a> {
    pub comm: &'a mut dyn Communicator,
    pub buckets: GradientBuckets,
}

impl<'a> DataParallel<'a> {
    pub fn new(comm: &'a mut dyn Communicator, store: &crate::autograd::ParamStore) -> Self {
        let buckets = GradientBuckets::plan(store, FIRST_BUCKET_BYTES, BUCKET_BYTES);
        DataParallel { comm, buckets }
    }
    pub fn rank(&self) -> usize {
        self.comm.rank()
    }
    pub fn size(&self) -> usize {
        self.comm.size()
    }
    /// One value summed over ranks.
    pub fn sum1(&mut self, v: f64) -> f64 {
        let mut a = [v];
        self.comm.sum(&mut a);
        a[0]
    }
}
