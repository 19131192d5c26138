//! `mpirun -np N descent …`: the data-parallel group over MPI (feature `mpi`, on the
//! `mpi` crate over the system's MPI, e.g. Debian's OpenMPI).
//!
//! A gradient bucket is summed in two exchanges, both started without waiting and
//! advanced between backward ops (MPI moves messages along only inside MPI calls;
//! `progress` is that call):
//!
//!   1. scatter: the bucket cut into N chunks, rank r receives every rank's chunk r
//!      and adds them up in rank order;
//!   2. gather: every rank receives every summed chunk.
//!
//! That moves 2(N−1)/N of the bucket per rank, what a ring all-reduce moves, but the
//! order of the additions is fixed by rank, not by the network or the MPI library's
//! choice of algorithm: the same N gives the same bits run after run, on every rank.
//! The exchanges are point-to-point messages on a communicator of their own, tagged by
//! bucket and phase: buckets finish in whatever order they finish on each rank without
//! the same-order rule that collectives (even non-blocking ones) impose.

use std::os::raw::c_void;
use std::time::Instant;

use descent::distributed::Communicator;
use mpi::ffi;
use mpi::raw::AsRaw;
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::traits::*;

/// Whether this process was started by an MPI launcher (`mpirun`, `srun`): only then is
/// MPI initialized, so the ordinary command stays an ordinary process.
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"].iter().any(|v| std::env::var_os(v).is_some())
}

/// One bucket's all-reduce over a buffer of floats, and where it stands. The buffer is
/// either the bucket's own copy (a reduction started during backward, which keeps
/// running while backward goes on writing gradients) or the caller's slice (a bucket
/// summed in place once backward is over). The scratch is kept between steps, so
/// steady-state steps allocate nothing.
struct Reduction {
    /// The buffer being reduced: `copy`, or the caller's slice during `sum_in_place`.
    base: *mut f32,
    len: usize,
    /// The bucket's copy, for reductions that overlap backward.
    copy: Vec<f32>,
    /// Every rank's part of this rank's chunk, rank r's in slot r.
    received: Vec<f32>,
    /// This rank's chunk summed in rank order.
    sum: Vec<f32>,
    phase: Phase,
    /// The messages in flight: 2(N − 1), sends then receives.
    requests: Vec<ffi::MPI_Request>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Idle,
    Scattering,
    Gathering,
    Done,
}

/// `MPI_COMM_WORLD` as a [`Communicator`].
pub struct MpiGroup {
    world: SimpleCommunicator,
    /// A copy of the world for the gradient buckets alone, so their non-blocking
    /// traffic never meets the blocking collectives' (sums, gathers, barriers).
    gradients: SimpleCommunicator,
    rank: usize,
    size: usize,
    /// Per bucket.
    reductions: Vec<Reduction>,
    /// Scratch of `sum` (every rank's values), kept between calls.
    gathered: Vec<f64>,
    /// Seconds spent inside this group's calls (what training waited on communication,
    /// beyond what overlapped backward): the benchmark's compute/communication split.
    pub seconds: f64,
    // Last: MPI is finalized when the universe drops, after everything above.
    _universe: mpi::environment::Universe,
}

impl MpiGroup {
    /// Initializes MPI (once per process). Only the main thread calls MPI.
    pub fn init() -> Option<MpiGroup> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let gradients = world.duplicate();
        Some(MpiGroup { world, gradients, rank, size, reductions: Vec::new(), gathered: Vec::new(), seconds: 0.0, _universe: universe })
    }

    /// Ends every rank's process with `code` (what a rank that failed must do, so the
    /// others do not wait for it in a collective).
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    /// `MPI_Allreduce` (sum) of `data` into `out`: the yardstick of the benchmark.
    pub fn raw_all_reduce(&self, data: &[f32], out: &mut [f32]) {
        self.world.all_reduce_into(data, out, mpi::collective::SystemOperation::sum());
    }

    /// Blocks until every rank has called it.
    pub fn barrier(&self) {
        self.world.barrier();
    }

    /// Bucket `bucket`'s reduction, its scratch sized for a buffer of `len` floats at
    /// `base`.
    fn prepare(&mut self, bucket: usize, base: *mut f32, len: usize) -> &mut Reduction {
        let (rank, size) = (self.rank, self.size);
        while self.reductions.len() <= bucket {
            self.reductions.push(Reduction {
                base: std::ptr::null_mut(), len: 0, copy: Vec::new(), received: Vec::new(), sum: Vec::new(), phase: Phase::Idle, requests: Vec::with_capacity(2 * size),
            });
        }
        let r = &mut self.reductions[bucket];
        assert_eq!(r.phase, Phase::Idle, "bucket {bucket} started twice");
        let mine = descent::distributed::share(len, rank, size).len();
        r.received.resize(size * mine, 0.0);
        r.sum.resize(mine, 0.0);
        (r.base, r.len) = (base, len);
        r
    }

    /// Posts the messages of one phase of `bucket`'s reduction. Rank j's chunk is
    /// `share(len, j, N)`. Scatter: chunk j to rank j, and every other rank's part of
    /// this rank's chunk into its slot of `received`. Gather: this rank's summed chunk
    /// to every rank, and every other chunk from its rank into its place in the buffer.
    fn post(&mut self, bucket: usize, phase: Phase) {
        let (rank, size) = (self.rank, self.size);
        let comm = self.gradients.as_raw();
        let r = &mut self.reductions[bucket];
        let part = |j: usize| descent::distributed::share(r.len, j, size);
        let n = part(rank).len();
        let tag = (bucket * 2 + (phase == Phase::Gathering) as usize) as i32;
        r.requests.clear();
        // SAFETY (every call below): the buffer at `base` (the bucket's copy, or the
        // slice `sum_in_place` holds borrowed until its reduction is done) and
        // `received` are neither moved nor resized while these requests are active
        // (`end_bucket` and `sum_in_place` wait for them); every pointer stays inside
        // its buffer, and no two active requests write the same floats.
        for j in (0..size).filter(|&j| j != rank) {
            let from = if phase == Phase::Scattering { part(j) } else { part(rank) };
            let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
            unsafe { ffi::MPI_Isend(r.base.add(from.start) as *const c_void, from.len() as i32, ffi::RSMPI_FLOAT, j as i32, tag, comm, &mut req) };
            r.requests.push(req);
        }
        for j in (0..size).filter(|&j| j != rank) {
            let (into, count) = match phase {
                Phase::Scattering => (unsafe { r.received.as_mut_ptr().add(j * n) }, n),
                _ => (unsafe { r.base.add(part(j).start) }, part(j).len()),
            };
            let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
            unsafe { ffi::MPI_Irecv(into as *mut c_void, count as i32, ffi::RSMPI_FLOAT, j as i32, tag, comm, &mut req) };
            r.requests.push(req);
        }
        r.phase = phase;
    }

    /// Moves bucket `bucket`'s reduction on: `wait` blocks until its current phase is
    /// done. Between the phases, this rank's chunk is summed over ranks in rank order.
    fn advance(&mut self, bucket: usize, wait: bool) {
        let (rank, size) = (self.rank, self.size);
        let r = &mut self.reductions[bucket];
        if !matches!(r.phase, Phase::Scattering | Phase::Gathering) {
            return;
        }
        let mut done = 0;
        let count = r.requests.len() as i32;
        // SAFETY: `requests` are this reduction's active (or completed, then null) requests.
        unsafe {
            if wait {
                ffi::MPI_Waitall(count, r.requests.as_mut_ptr(), ffi::RSMPI_STATUSES_IGNORE);
                done = 1;
            } else {
                ffi::MPI_Testall(count, r.requests.as_mut_ptr(), &mut done, ffi::RSMPI_STATUSES_IGNORE);
            }
        }
        if done == 0 {
            return;
        }
        if r.phase == Phase::Gathering {
            r.phase = Phase::Done;
            return;
        }
        let mine = descent::distributed::share(r.len, rank, size);
        let n = mine.len();
        // SAFETY: the scatter is over, so nothing writes the buffer; this rank's chunk
        // lies inside it.
        let own = unsafe { std::slice::from_raw_parts_mut(r.base.add(mine.start), n) };
        for j in 0..size {
            let part: &[f32] = if j == rank { own } else { &r.received[j * n..(j + 1) * n] };
            if j == 0 {
                r.sum.copy_from_slice(part);
            } else {
                r.sum.iter_mut().zip(part).for_each(|(s, v)| *s += *v);
            }
        }
        own.copy_from_slice(&r.sum);
        self.post(bucket, Phase::Gathering);
    }
}

/// Sums `values` over the ranks of `comm`: every rank's values gathered, then added up
/// rank by rank, so every rank gets the same bits every time (`MPI_Allreduce`
/// promises neither). `gathered` is scratch, kept between calls.
fn sum_in_rank_order(comm: &SimpleCommunicator, size: usize, values: &mut [f64], gathered: &mut Vec<f64>) {
    let n = values.len();
    gathered.resize(n * size, 0.0);
    comm.all_gather_into(&*values, &mut gathered[..]);
    values.copy_from_slice(&gathered[..n]);
    for r in 1..size {
        for (v, g) in values.iter_mut().zip(&gathered[r * n..(r + 1) * n]) {
            *v += *g;
        }
    }
}

/// Synchronized batch norm's sums over the ranks, on the world communicator: they run
/// inside forward and backward, where no other blocking collective does, so every rank
/// issues the world's collectives in the same order (a rank without rows in a step
/// replays them with zeros).
struct ReplicaStats {
    world: SimpleCommunicator,
    size: usize,
    gathered: Vec<f64>,
}

// SAFETY: an MPI communicator handle is an identifier valid on any thread. MPI runs
// with MPI_THREAD_FUNNELED: only the main thread calls it, and the tape holding this
// runs every training step, where these sums are taken, on the main thread.
unsafe impl Send for ReplicaStats {}

impl descent::autograd::ReplicaSum for ReplicaStats {
    fn sum(&mut self, values: &mut [f64]) {
        sum_in_rank_order(&self.world, self.size, values, &mut self.gathered);
    }
}

impl Communicator for MpiGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }

    fn sum(&mut self, values: &mut [f64]) {
        let t = Instant::now();
        sum_in_rank_order(&self.world, self.size, values, &mut self.gathered);
        self.seconds += t.elapsed().as_secs_f64();
    }

    fn replica_sum(&mut self) -> Box<dyn descent::autograd::ReplicaSum> {
        Box::new(ReplicaStats { world: SimpleCommunicator::world(), size: self.size, gathered: Vec::new() })
    }

    fn gather_all(&mut self, local: &[u8]) -> Vec<Vec<u8>> {
        let mut lens = vec![0i32; self.size];
        self.world.all_gather_into(&(local.len() as i32), &mut lens[..]);
        let displs: Vec<i32> = lens.iter().scan(0, |at, &l| {
            let d = *at;
            *at += l;
            Some(d)
        }).collect();
        let mut all = vec![0u8; lens.iter().map(|&l| l as usize).sum()];
        {
            let mut partition = mpi::datatype::PartitionMut::new(&mut all[..], &lens[..], &displs[..]);
            self.world.all_gather_varcount_into(local, &mut partition);
        }
        lens.iter().zip(&displs).map(|(&l, &d)| all[d as usize..(d + l) as usize].to_vec()).collect()
    }

    fn begin_bucket(&mut self, bucket: usize, data: &[f32], scale: f32) {
        let t = Instant::now();
        let r = self.prepare(bucket, std::ptr::null_mut(), data.len());
        if r.copy.len() != data.len() {
            r.copy = vec![0.0; data.len()];
        }
        if scale == 1.0 {
            r.copy.copy_from_slice(data);
        } else {
            r.copy.iter_mut().zip(data).for_each(|(c, v)| *c = v * scale);
        }
        r.base = r.copy.as_mut_ptr();
        self.post(bucket, Phase::Scattering);
        self.seconds += t.elapsed().as_secs_f64();
    }

    fn progress(&mut self) {
        let t = Instant::now();
        for bucket in 0..self.reductions.len() {
            self.advance(bucket, false);
        }
        self.seconds += t.elapsed().as_secs_f64();
    }

    fn sum_in_place(&mut self, bucket: usize, data: &mut [f32], scale: f32) {
        let t = Instant::now();
        if scale != 1.0 {
            data.iter_mut().for_each(|v| *v *= scale);
        }
        self.prepare(bucket, data.as_mut_ptr(), data.len());
        self.post(bucket, Phase::Scattering);
        while self.reductions[bucket].phase != Phase::Done {
            self.advance(bucket, true);
        }
        let r = &mut self.reductions[bucket];
        (r.phase, r.base) = (Phase::Idle, std::ptr::null_mut());
        self.seconds += t.elapsed().as_secs_f64();
    }

    fn end_bucket(&mut self, bucket: usize, out: &mut [f32]) {
        let t = Instant::now();
        while self.reductions[bucket].phase != Phase::Done {
            assert_ne!(self.reductions[bucket].phase, Phase::Idle, "bucket {bucket} ended without being started");
            self.advance(bucket, true);
        }
        let r = &mut self.reductions[bucket];
        out.copy_from_slice(&r.copy[..r.len]);
        r.phase = Phase::Idle;
        self.seconds += t.elapsed().as_secs_f64();
    }
}
