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

/// One bucket's buffers (kept between steps, so steady-state steps allocate nothing)
/// and where its two exchanges stand.
struct Bucket {
    len: usize,
    /// Elements per rank's chunk (the bucket padded to `chunk · N`).
    chunk: usize,
    send: Vec<f32>,
    received: Vec<f32>,
    gathered: Vec<f32>,
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
    buckets: Vec<Bucket>,
    /// Scratch of the in-place sums, per bucket: every other rank's part of this rank's
    /// chunk, the chunk's sum, and the requests.
    in_place: Vec<(Vec<f32>, Vec<f32>, Vec<ffi::MPI_Request>)>,
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
        Some(MpiGroup { world, gradients, rank, size, buckets: Vec::new(), in_place: Vec::new(), gathered: Vec::new(), seconds: 0.0, _universe: universe })
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

    /// Posts the messages of one phase of `bucket`: to every other rank j, chunk j of
    /// `send` (scatter) or this rank's summed chunk (gather); from every other rank j,
    /// into its place j of the receiving buffer.
    fn post(&mut self, bucket: usize, phase: Phase) {
        let (rank, size) = (self.rank, self.size);
        let comm = self.gradients.as_raw();
        let b = &mut self.buckets[bucket];
        let c = b.chunk;
        let tag = (bucket * 2 + (phase == Phase::Gathering) as usize) as i32;
        let (out, into): (*const f32, *mut f32) = match phase {
            Phase::Scattering => (b.send.as_ptr(), b.received.as_mut_ptr()),
            _ => (b.gathered.as_ptr().wrapping_add(rank * c), b.gathered.as_mut_ptr()),
        };
        b.requests.clear();
        for j in (0..size).filter(|&j| j != rank) {
            let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
            // What goes to rank j: its chunk (scatter), or this rank's sum (gather).
            let from = if phase == Phase::Scattering { out.wrapping_add(j * c) } else { out };
            // SAFETY: the buffers belong to the bucket and are neither moved nor resized
            // until these requests complete (end_bucket waits for them); the pointers
            // stay inside them (chunk j of a buffer of chunk · N floats).
            unsafe {
                ffi::MPI_Isend(from as *const c_void, c as i32, ffi::RSMPI_FLOAT, j as i32, tag, comm, &mut req);
            }
            b.requests.push(req);
        }
        for j in (0..size).filter(|&j| j != rank) {
            let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
            // SAFETY: as above.
            unsafe {
                ffi::MPI_Irecv(into.wrapping_add(j * c) as *mut c_void, c as i32, ffi::RSMPI_FLOAT, j as i32, tag, comm, &mut req);
            }
            b.requests.push(req);
        }
        b.phase = phase;
    }

    /// Rank `r`'s chunk of bucket `b` summed from every rank's part, in rank order, into
    /// its place in `gathered`.
    fn add_up(b: &mut Bucket, rank: usize, size: usize) {
        let c = b.chunk;
        // The own part never travelled: it is in `send`.
        b.received[rank * c..(rank + 1) * c].copy_from_slice(&b.send[rank * c..(rank + 1) * c]);
        let (received, gathered) = (&b.received, &mut b.gathered[rank * c..(rank + 1) * c]);
        gathered.copy_from_slice(&received[..c]);
        for r in 1..size {
            for (s, v) in gathered.iter_mut().zip(&received[r * c..(r + 1) * c]) {
                *s += *v;
            }
        }
    }

    /// Moves bucket `bucket` on: `wait` blocks until its current phase is done.
    fn advance(&mut self, bucket: usize, wait: bool) {
        let (rank, size) = (self.rank, self.size);
        let b = &mut self.buckets[bucket];
        if !matches!(b.phase, Phase::Scattering | Phase::Gathering) {
            return;
        }
        let mut done = 0;
        let n = b.requests.len() as i32;
        // SAFETY: `requests` are this bucket's active (or completed, then null) requests.
        unsafe {
            if wait {
                ffi::MPI_Waitall(n, b.requests.as_mut_ptr(), ffi::RSMPI_STATUSES_IGNORE);
                done = 1;
            } else {
                ffi::MPI_Testall(n, b.requests.as_mut_ptr(), &mut done, ffi::RSMPI_STATUSES_IGNORE);
            }
        }
        if done == 0 {
            return;
        }
        if b.phase == Phase::Scattering {
            Self::add_up(b, rank, size);
            self.post(bucket, Phase::Gathering);
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
        let t = Instant::now();
        let n = values.len();
        self.gathered.resize(n * self.size, 0.0);
        self.world.all_gather_into(&*values, &mut self.gathered[..]);
        values.copy_from_slice(&self.gathered[..n]);
        for r in 1..self.size {
            for (v, g) in values.iter_mut().zip(&self.gathered[r * n..(r + 1) * n]) {
                *v += *g;
            }
        }
        self.seconds += t.elapsed().as_secs_f64();
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
        let size = self.size;
        while self.buckets.len() <= bucket {
            self.buckets.push(Bucket { len: 0, chunk: 0, send: Vec::new(), received: Vec::new(), gathered: Vec::new(), phase: Phase::Idle, requests: Vec::with_capacity(2 * size) });
        }
        let b = &mut self.buckets[bucket];
        debug_assert_eq!(b.phase, Phase::Idle, "bucket {bucket} started twice");
        if b.len != data.len() {
            b.len = data.len();
            b.chunk = data.len().div_ceil(size).max(1);
            let padded = b.chunk * size;
            (b.send, b.received, b.gathered) = (vec![0.0; padded], vec![0.0; padded], vec![0.0; padded]);
        }
        if scale == 1.0 {
            b.send[..data.len()].copy_from_slice(data);
        } else {
            b.send.iter_mut().zip(data).for_each(|(s, v)| *s = v * scale);
        }
        self.post(bucket, Phase::Scattering);
        self.seconds += t.elapsed().as_secs_f64();
    }

    fn progress(&mut self) {
        let t = Instant::now();
        for bucket in 0..self.buckets.len() {
            self.advance(bucket, false);
        }
        self.seconds += t.elapsed().as_secs_f64();
    }

    fn sum_in_place(&mut self, bucket: usize, data: &mut [f32], scale: f32) {
        let t = Instant::now();
        let (rank, size) = (self.rank, self.size);
        let comm = self.gradients.as_raw();
        while self.in_place.len() <= bucket {
            self.in_place.push((Vec::new(), Vec::new(), Vec::with_capacity(2 * size)));
        }
        let (received, acc, requests) = &mut self.in_place[bucket];
        // Rank j's chunk of the bucket: the same cut as `share`.
        let len = data.len();
        let part = |j: usize| descent::distributed::share(len, j, size);
        let mine = part(rank);
        received.resize(size * mine.len(), 0.0);
        acc.resize(mine.len(), 0.0);
        if scale != 1.0 {
            data.iter_mut().for_each(|v| *v *= scale);
        }
        let tag = (bucket * 2) as i32;
        let base = data.as_mut_ptr();
        // Scatter: chunk j to rank j; every rank's part of this rank's chunk into slot j.
        requests.clear();
        for j in (0..size).filter(|&j| j != rank) {
            let (p, mut req) = (part(j), unsafe { ffi::RSMPI_REQUEST_NULL });
            // SAFETY: `data` is borrowed for this whole call, which waits for every
            // request; sends read disjoint chunks of it, receives write `received`.
            unsafe {
                ffi::MPI_Isend(base.add(p.start) as *const c_void, p.len() as i32, ffi::RSMPI_FLOAT, j as i32, tag, comm, &mut req);
            }
            requests.push(req);
        }
        for j in (0..size).filter(|&j| j != rank) {
            let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
            unsafe {
                ffi::MPI_Irecv(received.as_mut_ptr().add(j * mine.len()) as *mut c_void, mine.len() as i32, ffi::RSMPI_FLOAT, j as i32, tag, comm, &mut req);
                requests.push(req);
            }
        }
        unsafe { ffi::MPI_Waitall(requests.len() as i32, requests.as_mut_ptr(), ffi::RSMPI_STATUSES_IGNORE) };
        // This rank's chunk, summed in rank order.
        let n = mine.len();
        for r in 0..size {
            let src: &[f32] = if r == rank { &data[mine.clone()] } else { &received[r * n..(r + 1) * n] };
            if r == 0 {
                acc.copy_from_slice(src);
            } else {
                acc.iter_mut().zip(src).for_each(|(a, v)| *a += *v);
            }
        }
        data[mine.clone()].copy_from_slice(acc);
        // Gather: this rank's sum to every rank; every other chunk from its rank.
        let base = data.as_mut_ptr();
        requests.clear();
        for j in (0..size).filter(|&j| j != rank) {
            let mut req = unsafe { ffi::RSMPI_REQUEST_NULL };
            // SAFETY: as above; the send reads this rank's chunk, receives write the others.
            unsafe {
                ffi::MPI_Isend(base.add(mine.start) as *const c_void, n as i32, ffi::RSMPI_FLOAT, j as i32, tag + 1, comm, &mut req);
            }
            requests.push(req);
        }
        for j in (0..size).filter(|&j| j != rank) {
            let (p, mut req) = (part(j), unsafe { ffi::RSMPI_REQUEST_NULL });
            unsafe {
                ffi::MPI_Irecv(base.add(p.start) as *mut c_void, p.len() as i32, ffi::RSMPI_FLOAT, j as i32, tag + 1, comm, &mut req);
            }
            requests.push(req);
        }
        unsafe { ffi::MPI_Waitall(requests.len() as i32, requests.as_mut_ptr(), ffi::RSMPI_STATUSES_IGNORE) };
        self.seconds += t.elapsed().as_secs_f64();
    }

    fn end_bucket(&mut self, bucket: usize, out: &mut [f32]) {
        let t = Instant::now();
        while self.buckets[bucket].phase != Phase::Done {
            assert_ne!(self.buckets[bucket].phase, Phase::Idle, "bucket {bucket} ended without being started");
            self.advance(bucket, true);
        }
        let b = &mut self.buckets[bucket];
        out.copy_from_slice(&b.gathered[..b.len]);
        b.phase = Phase::Idle;
        self.seconds += t.elapsed().as_secs_f64();
    }
}
