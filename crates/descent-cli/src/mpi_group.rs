//! `mpirun -np N descent …`: the data-parallel group over MPI (feature `mpi`, on the
//! `mpi` crate over the system's MPI, e.g. Debian's OpenMPI).
//!
//! A gradient bucket is summed in two collectives, both started without waiting and
//! advanced between backward ops (MPI moves non-blocking collectives along only inside
//! MPI calls; `progress` is that call):
//!
//!   1. all-to-all: the bucket cut into N chunks, rank r receives every rank's chunk r
//!      and adds them up in rank order;
//!   2. all-gather: every rank receives every summed chunk.
//!
//! That moves 2(N−1)/N of the bucket per rank, what a ring all-reduce moves, but the
//! order of the additions is fixed by rank, not by the network or the MPI library's
//! choice of algorithm: the same N gives the same bits run after run, on every rank.

use std::os::raw::c_void;

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

/// One bucket's buffers (kept between steps, so steady-state steps allocate nothing)
/// and where its two collectives stand.
struct Bucket {
    len: usize,
    /// Elements per rank's chunk (the bucket padded to `chunk · N`).
    chunk: usize,
    send: Vec<f32>,
    received: Vec<f32>,
    summed: Vec<f32>,
    gathered: Vec<f32>,
    phase: Phase,
    request: ffi::MPI_Request,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Idle,
    Exchanging,
    Gathering,
    Done,
}

/// `MPI_COMM_WORLD` as a [`Communicator`].
pub struct MpiGroup {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    buckets: Vec<Bucket>,
    /// Scratch of `sum` (every rank's values), kept between calls.
    gathered: Vec<f64>,
    // Last: MPI is finalized when the universe drops, after everything above.
    _universe: mpi::environment::Universe,
}

impl MpiGroup {
    /// Initializes MPI (once per process). Only the main thread calls MPI.
    pub fn init() -> Option<MpiGroup> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)?;
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Some(MpiGroup { world, rank, size, buckets: Vec::new(), gathered: Vec::new(), _universe: universe })
    }

    /// Ends every rank's process with `code` (what a rank that failed must do, so the
    /// others do not wait for it in a collective).
    pub fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }

    /// Sums rank `r`'s chunk of `b` from every rank's part, in rank order.
    fn add_up(b: &mut Bucket, size: usize) {
        let c = b.chunk;
        b.summed.copy_from_slice(&b.received[..c]);
        for r in 1..size {
            for (s, v) in b.summed.iter_mut().zip(&b.received[r * c..(r + 1) * c]) {
                *s += *v;
            }
        }
    }

    fn start_gather(&mut self, bucket: usize) {
        let comm = self.world.as_raw();
        let b = &mut self.buckets[bucket];
        // SAFETY: the buffers belong to the bucket and are neither moved nor resized
        // until the request completes (end_bucket waits for it).
        unsafe {
            ffi::MPI_Iallgather(
                b.summed.as_ptr() as *const c_void,
                b.chunk as i32,
                ffi::RSMPI_FLOAT,
                b.gathered.as_mut_ptr() as *mut c_void,
                b.chunk as i32,
                ffi::RSMPI_FLOAT,
                comm,
                &mut b.request,
            );
        }
        b.phase = Phase::Gathering;
    }

    /// Moves bucket `bucket` on: `wait` blocks until its current collective is done.
    fn advance(&mut self, bucket: usize, wait: bool) {
        let size = self.size;
        let b = &mut self.buckets[bucket];
        if !matches!(b.phase, Phase::Exchanging | Phase::Gathering) {
            return;
        }
        let mut done = 0;
        // SAFETY: `request` is an active request of this bucket.
        unsafe {
            if wait {
                ffi::MPI_Wait(&mut b.request, ffi::RSMPI_STATUS_IGNORE);
                done = 1;
            } else {
                ffi::MPI_Test(&mut b.request, &mut done, ffi::RSMPI_STATUS_IGNORE);
            }
        }
        if done == 0 {
            return;
        }
        if b.phase == Phase::Exchanging {
            Self::add_up(b, size);
            self.start_gather(bucket);
        } else {
            b.phase = Phase::Done;
        }
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
        let n = values.len();
        self.gathered.resize(n * self.size, 0.0);
        self.world.all_gather_into(&*values, &mut self.gathered[..]);
        values.copy_from_slice(&self.gathered[..n]);
        for r in 1..self.size {
            for (v, g) in values.iter_mut().zip(&self.gathered[r * n..(r + 1) * n]) {
                *v += *g;
            }
        }
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
        let size = self.size;
        while self.buckets.len() <= bucket {
            self.buckets.push(Bucket { len: 0, chunk: 0, send: Vec::new(), received: Vec::new(), summed: Vec::new(), gathered: Vec::new(), phase: Phase::Idle, request: unsafe { ffi::RSMPI_REQUEST_NULL } });
        }
        let b = &mut self.buckets[bucket];
        debug_assert_eq!(b.phase, Phase::Idle, "bucket {bucket} started twice");
        if b.len != data.len() {
            b.len = data.len();
            b.chunk = data.len().div_ceil(size).max(1);
            let padded = b.chunk * size;
            (b.send, b.received, b.gathered) = (vec![0.0; padded], vec![0.0; padded], vec![0.0; padded]);
            b.summed = vec![0.0; b.chunk];
        }
        if scale == 1.0 {
            b.send[..data.len()].copy_from_slice(data);
        } else {
            b.send.iter_mut().zip(data).for_each(|(s, v)| *s = v * scale);
        }
        let comm = self.world.as_raw();
        // SAFETY: as in start_gather.
        unsafe {
            ffi::MPI_Ialltoall(
                b.send.as_ptr() as *const c_void,
                b.chunk as i32,
                ffi::RSMPI_FLOAT,
                b.received.as_mut_ptr() as *mut c_void,
                b.chunk as i32,
                ffi::RSMPI_FLOAT,
                comm,
                &mut b.request,
            );
        }
        b.phase = Phase::Exchanging;
    }

    fn progress(&mut self) {
        for bucket in 0..self.buckets.len() {
            self.advance(bucket, false);
        }
    }

    fn end_bucket(&mut self, bucket: usize, out: &mut [f32]) {
        while self.buckets[bucket].phase != Phase::Done {
            assert_ne!(self.buckets[bucket].phase, Phase::Idle, "bucket {bucket} ended without being started");
            self.advance(bucket, true);
        }
        let b = &mut self.buckets[bucket];
        out.copy_from_slice(&b.gathered[..b.len]);
        b.phase = Phase::Idle;
    }
}
