//! Statistics summed over the replicas of data-parallel training: what synchronized
//! batch normalization needs from the group of processes (the group itself lives a
//! layer up, in `crate::distributed`, and hands the tape a [`ReplicaSum`]).

/// Sums over the processes that train one model together, each on its share of every
/// batch.
pub trait ReplicaSum: Send {
    /// Sums `values` elementwise over every replica, in a fixed (rank) order, so every
    /// replica gets the same bits.
    fn sum(&mut self, values: &mut [f64]);
}

/// The tape's link to the other replicas.
pub(crate) struct Replicas {
    group: Box<dyn ReplicaSum>,
    /// This replica's weight in the step's gradient: its rows over the step's rows (the
    /// gradients backward receives are of this replica's mean loss).
    pub(crate) weight: f64,
    /// Lengths of the sums of the last pass that took any, in order: a replica with no
    /// rows in a step replays them as zeros so every replica makes the same calls (an
    /// evaluation pass between, which takes none, leaves them).
    lengths: Vec<usize>,
    /// A pass has begun and has taken no sum yet.
    fresh: bool,
    /// Where the sums are taken (kept, so a steady-state step allocates nothing).
    pub(crate) scratch: Vec<f64>,
}

impl Replicas {
    pub(crate) fn new(group: Box<dyn ReplicaSum>) -> Self {
        Replicas { group, weight: 1.0, lengths: Vec::new(), fresh: true, scratch: Vec::new() }
    }

    /// Makes `scratch` at least `len` long.
    pub(crate) fn reserve(&mut self, len: usize) {
        if self.scratch.len() < len {
            self.scratch.resize(len, 0.0);
        }
    }

    /// Sums `scratch[range]` over the replicas.
    pub(crate) fn sum(&mut self, range: std::ops::Range<usize>) {
        if std::mem::take(&mut self.fresh) {
            self.lengths.clear();
        }
        self.lengths.push(range.len());
        self.group.sum(&mut self.scratch[range]);
    }

    /// A new pass begins.
    pub(crate) fn reset(&mut self) {
        self.fresh = true;
    }

    /// Takes part, adding nothing, in every sum the last pass made: for a step in which
    /// this replica has no rows. Returns how many sums that was.
    pub(crate) fn replay_as_zeros(&mut self) -> usize {
        for i in 0..self.lengths.len() {
            let len = self.lengths[i];
            self.reserve(len);
            self.scratch[..len].iter_mut().for_each(|v| *v = 0.0);
            self.group.sum(&mut self.scratch[..len]);
        }
        self.lengths.len()
    }
}
