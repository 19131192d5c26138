//! Data larger than memory: sources that stream batches instead of holding the set.
//!
//! - [`NpyStream`]: `.npy` features and targets read through memory-mapped windows of
//!   `window_mb` megabytes. An epoch visits the windows in a shuffled order and the
//!   rows of each window in a shuffled order (block shuffling), so at most two windows
//!   are mapped at a time, whatever the file size; the page cache does the caching.
//! - [`CsvStream`]: a CSV file read row by row through a shuffle buffer of
//!   `shuffle_buffer` rows (each emitted row is a random one of the buffer, replaced
//!   by the next row read).
//! - [`Prefetch`]: runs any stream on a background thread, a few batches ahead, so the
//!   training step does not wait on I/O when the disk keeps up. Buffers circulate
//!   between the two threads; after the first batches nothing is allocated.
//!
//! Every source takes a [`Shard`] (rank, world size): it then yields only its part —
//! whole windows (npy) or every world-th row (CSV) — for data-parallel training.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use rand::seq::SliceRandom;
use rand::Rng as _;

use crate::error::{Error, Result};
use crate::rng;

/// Which part of the data this process reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub rank: usize,
    pub world: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { rank: 0, world: 1 }
    }
}

impl Shard {
    fn check(&self) -> Result<()> {
        if self.world == 0 || self.rank >= self.world {
            return Err(Error::Config(format!("shard rank {} of world size {} is out of range", self.rank, self.world)));
        }
        Ok(())
    }
}

/// A source of training batches, one epoch at a time.
pub trait BatchStream: Send {
    /// Samples per epoch (this shard's).
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Values per sample of the features and of the targets.
    fn features(&self) -> usize;
    fn target_cols(&self) -> usize;
    /// A name for messages (the file).
    fn name(&self) -> String;
    /// Starts epoch `epoch` (its shuffle is a function of the seed and the epoch).
    fn begin_epoch(&mut self, epoch: u64) -> Result<()>;
    /// Fills up to `batch` samples (row-major) into `x` and `y`, replacing their
    /// contents; returns how many (0 when the epoch is over).
    fn next_batch(&mut self, batch: usize, x: &mut Vec<f32>, y: &mut Vec<f32>) -> Result<usize>;
}

/// Element type of an `.npy` file.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Dtype {
    F32,
    F64,
    I(usize),
    U(usize),
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
            Dtype::I(n) | Dtype::U(n) => n,
        }
    }
    fn read(self, b: &[u8]) -> f32 {
        match self {
            Dtype::F32 => f32::from_le_bytes(b.try_into().expect("4 bytes")),
            Dtype::F64 => f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
            Dtype::I(1) => b[0] as i8 as f32,
            Dtype::I(2) => i16::from_le_bytes([b[0], b[1]]) as f32,
            Dtype::I(4) => i32::from_le_bytes(b.try_into().expect("4 bytes")) as f32,
            Dtype::I(_) => i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
            Dtype::U(1) => b[0] as f32,
            Dtype::U(2) => u16::from_le_bytes([b[0], b[1]]) as f32,
            Dtype::U(4) => u32::from_le_bytes(b.try_into().expect("4 bytes")) as f32,
            Dtype::U(_) => u64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
        }
    }
}

/// An `.npy` file's layout: rows of `row_len` values from byte `offset` on.
#[derive(Debug)]
struct NpyLayout {
    file: File,
    path: PathBuf,
    dtype: Dtype,
    rows: usize,
    row_len: usize,
    offset: usize,
}

/// The layout of an `.npy` file, from its header (checked by `read_npy_header`).
fn npy_layout(path: &Path) -> Result<NpyLayout> {
    let bad = |m: &str| Error::format(path, format!("not a usable .npy file: {m}"));
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let have = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let header = crate::data::npy::read_npy_header(&mut file, have).map_err(|m| bad(&m))?;
    if header.fortran_order {
        return Err(bad("Fortran-ordered arrays are not supported; save with np.ascontiguousarray"));
    }
    let descr = header.descr.as_str();
    // By characters: a hostile descr need not be ASCII (fuzzing found `'Ę8'`).
    let mut chars = descr.chars();
    let endian = chars.next().unwrap_or('?');
    let kind = chars.as_str();
    if endian == '>' {
        return Err(bad("big-endian data is not supported"));
    }
    let dtype = match kind {
        "f4" => Dtype::F32,
        "f8" => Dtype::F64,
        "i1" | "i2" | "i4" | "i8" => Dtype::I(kind[1..].parse().expect("digit")),
        "u1" | "u2" | "u4" | "u8" | "b1" => Dtype::U(kind[1..].parse().expect("digit")),
        other => return Err(bad(&format!("dtype `{other}` is not numeric"))),
    };
    let rows = *header.shape.first().ok_or_else(|| bad("a scalar, not an array"))?;
    // The whole shape's product fits (checked with the header), so its tail's does.
    let row_len = header.shape[1..].iter().product::<usize>().max(1);
    let offset = header.data_offset as usize;
    Ok(NpyLayout { file, path: path.to_path_buf(), dtype, rows, row_len, offset })
}

/// A read-only mapping of part of a file, unmapped on drop.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
    /// Where the requested range starts inside the mapping (page alignment).
    skip: usize,
}

// SAFETY: the mapping is read-only and owned by one value at a time.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(file: &File, path: &Path, offset: usize, len: usize) -> Result<Mapping> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
        let aligned = offset / page * page;
        let skip = offset - aligned;
        let total = (len + skip).max(1);
        // SAFETY: a fresh read-only private mapping of a range inside the file.
        let ptr = unsafe { libc::mmap(std::ptr::null_mut(), total, libc::PROT_READ, libc::MAP_PRIVATE, file.as_raw_fd(), aligned as libc::off_t) };
        if ptr == libc::MAP_FAILED {
            return Err(Error::io(path, std::io::Error::last_os_error()));
        }
        // Rows are read in a shuffled order inside the window.
        // SAFETY: advice on the mapping just created.
        unsafe { libc::madvise(ptr, total, libc::MADV_WILLNEED) };
        Ok(Mapping { ptr, len: total, skip })
    }
    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping holds `len` readable bytes until dropped.
        unsafe { std::slice::from_raw_parts((self.ptr as *const u8).add(self.skip), self.len - self.skip) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// Features and targets in two `.npy` files, streamed through memory-mapped windows.
pub struct NpyStream {
    x: NpyLayout,
    y: NpyLayout,
    seed: u64,
    window_rows: usize,
    /// This shard's windows, in this epoch's order.
    windows: Vec<usize>,
    next_window: usize,
    current: Option<(Mapping, Mapping, Vec<usize>, usize)>,
    shard: Shard,
    epoch: u64,
}

impl NpyStream {
    /// Opens `x` `[samples, features…]` and `y` `[samples, …]`; windows of about
    /// `window_mb` MB of features.
    pub fn open(x: impl AsRef<Path>, y: impl AsRef<Path>, window_mb: usize, seed: u64, shard: Shard) -> Result<NpyStream> {
        shard.check()?;
        let (x, y) = (npy_layout(x.as_ref())?, npy_layout(y.as_ref())?);
        if x.rows != y.rows {
            return Err(Error::data(format!("{} / {}", x.path.display(), y.path.display()), format!("{} feature rows but {} target rows", x.rows, y.rows)));
        }
        let window_rows = ((window_mb.max(1) << 20) / (x.row_len * x.dtype.size())).max(1);
        Ok(NpyStream { x, y, seed, window_rows, windows: Vec::new(), next_window: 0, current: None, shard, epoch: 0 })
    }

    fn all_windows(&self) -> usize {
        self.x.rows.div_ceil(self.window_rows)
    }

    fn window_range(&self, w: usize) -> (usize, usize) {
        let start = w * self.window_rows;
        (start, (start + self.window_rows).min(self.x.rows))
    }

    fn map_window(&self, w: usize, epoch_rng: &mut rng::Rng) -> Result<(Mapping, Mapping, Vec<usize>, usize)> {
        let (a, b) = self.window_range(w);
        let map = |l: &NpyLayout| Mapping::new(&l.file, &l.path, l.offset + a * l.row_len * l.dtype.size(), (b - a) * l.row_len * l.dtype.size());
        let mut order: Vec<usize> = (0..b - a).collect();
        order.shuffle(epoch_rng);
        Ok((map(&self.x)?, map(&self.y)?, order, 0))
    }
}

fn convert_row(l: &NpyLayout, bytes: &[u8], row: usize, out: &mut Vec<f32>, what: &str) -> Result<()> {
    let size = l.dtype.size();
    let raw = &bytes[row * l.row_len * size..(row + 1) * l.row_len * size];
    for chunk in raw.chunks_exact(size) {
        let v = l.dtype.read(chunk);
        if !v.is_finite() {
            return Err(Error::data(l.path.display().to_string(), format!("{what} value {v} in a row (NaN or inf)")));
        }
        out.push(v);
    }
    Ok(())
}

impl BatchStream for NpyStream {
    fn len(&self) -> usize {
        (0..self.all_windows()).filter(|w| w % self.shard.world == self.shard.rank).map(|w| { let (a, b) = self.window_range(w); b - a }).sum()
    }
    fn features(&self) -> usize {
        self.x.row_len
    }
    fn target_cols(&self) -> usize {
        self.y.row_len
    }
    fn name(&self) -> String {
        self.x.path.display().to_string()
    }
    fn begin_epoch(&mut self, epoch: u64) -> Result<()> {
        self.windows = (0..self.all_windows()).filter(|w| w % self.shard.world == self.shard.rank).collect();
        self.windows.shuffle(&mut rng::derive(self.seed, 0x5EED ^ epoch));
        self.next_window = 0;
        self.current = None;
        self.epoch = epoch;
        Ok(())
    }
    fn next_batch(&mut self, batch: usize, x: &mut Vec<f32>, y: &mut Vec<f32>) -> Result<usize> {
        x.clear();
        y.clear();
        let mut n = 0;
        while n < batch {
            if self.current.as_ref().is_none_or(|c| c.3 == c.2.len()) {
                if self.next_window == self.windows.len() {
                    break;
                }
                let w = self.windows[self.next_window];
                self.next_window += 1;
                // The window's row order: from the seed, the epoch and the window.
                let mut r = rng::derive(self.seed, 0xB10C ^ ((w as u64) << 24) ^ self.epoch);
                self.current = None; // unmap the previous window first
                self.current = Some(self.map_window(w, &mut r)?);
            }
            let (mx, my, order, pos) = self.current.as_mut().expect("a window");
            let row = order[*pos];
            *pos += 1;
            convert_row(&self.x, mx.bytes(), row, x, "feature")?;
            convert_row(&self.y, my.bytes(), row, y, "target")?;
            n += 1;
        }
        Ok(n)
    }
}

/// A CSV file streamed row by row through a shuffle buffer.
pub struct CsvStream {
    path: PathBuf,
    label: usize,
    columns: usize,
    has_header: bool,
    delimiter: u8,
    rows: usize,
    buffer_rows: usize,
    seed: u64,
    shard: Shard,
    reader: Option<csv::Reader<File>>,
    /// (features, target) rows waiting in the shuffle buffer.
    buffer: Vec<(Vec<f32>, f32)>,
    rng: rng::Rng,
    line: usize,
    record: csv::StringRecord,
}

impl CsvStream {
    /// Opens `path` with the label in column `label` (an index, or a header name), and a
    /// shuffle buffer of `shuffle_buffer` rows. Counts the rows once up front.
    pub fn open(path: impl AsRef<Path>, label: &crate::data::LabelColumn, has_header: bool, delimiter: u8, shuffle_buffer: usize, seed: u64, shard: Shard) -> Result<CsvStream> {
        shard.check()?;
        let path = path.as_ref().to_path_buf();
        let mut reader = csv::ReaderBuilder::new().has_headers(has_header).delimiter(delimiter).from_path(&path).map_err(|e| Error::format(&path, e.to_string()))?;
        let headers: Vec<String> = if has_header { reader.headers().map_err(|e| Error::format(&path, e.to_string()))?.iter().map(str::to_string).collect() } else { Vec::new() };
        if crate::data::csv_reader::is_blank(&path) {
            return Err(Error::format(&path, "the file is empty"));
        }
        crate::data::csv_reader::check_header(&path, &headers)?;
        let mut rows = 0;
        let mut columns = headers.len();
        let mut record = csv::StringRecord::new();
        while reader.read_record(&mut record).map_err(|e| Error::format(&path, e.to_string()))? {
            if rows == 0 && columns == 0 {
                columns = record.len();
            }
            rows += 1;
        }
        if rows == 0 {
            return Err(Error::format(&path, "no data rows (the first line is read as the header)"));
        }
        let label = match label {
            crate::data::LabelColumn::Index(i) => *i,
            crate::data::LabelColumn::Name(n) => headers.iter().position(|h| h == n).ok_or_else(|| Error::format(&path, format!("no column named `{n}`")))?,
        };
        if label >= columns {
            return Err(Error::format(&path, format!("label column {label} is past the {columns} columns")));
        }
        let mine = (0..rows).filter(|r| r % shard.world == shard.rank).count();
        Ok(CsvStream {
            path,
            label,
            columns,
            has_header,
            delimiter,
            rows: mine,
            buffer_rows: shuffle_buffer.max(1),
            seed,
            shard,
            reader: None,
            buffer: Vec::new(),
            rng: rng::seeded(seed),
            line: 0,
            record,
        })
    }

    /// The next row of this shard from the file, parsed.
    fn read_row(&mut self) -> Result<Option<(Vec<f32>, f32)>> {
        let Some(reader) = self.reader.as_mut() else { return Ok(None) };
        loop {
            if !reader.read_record(&mut self.record).map_err(|e| Error::format(&self.path, e.to_string()))? {
                self.reader = None;
                return Ok(None);
            }
            let row = self.line;
            self.line += 1;
            if row % self.shard.world != self.shard.rank {
                continue;
            }
            let line = row + 1 + self.has_header as usize;
            if self.record.len() != self.columns {
                return Err(Error::data(self.path.display().to_string(), format!("line {line} has {} fields, expected {}", self.record.len(), self.columns)));
            }
            let mut x = Vec::with_capacity(self.columns - 1);
            let mut y = 0.0;
            for (c, field) in self.record.iter().enumerate() {
                let v: f32 = field.trim().parse().map_err(|_| Error::data(self.path.display().to_string(), format!("line {line}, column {}: `{field}` is not a number", c + 1)))?;
                if !v.is_finite() {
                    return Err(Error::data(self.path.display().to_string(), format!("line {line}, column {}: {v}", c + 1)));
                }
                if c == self.label { y = v } else { x.push(v) }
            }
            return Ok(Some((x, y)));
        }
    }
}

impl BatchStream for CsvStream {
    fn len(&self) -> usize {
        self.rows
    }
    fn features(&self) -> usize {
        self.columns - 1
    }
    fn target_cols(&self) -> usize {
        1
    }
    fn name(&self) -> String {
        self.path.display().to_string()
    }
    fn begin_epoch(&mut self, epoch: u64) -> Result<()> {
        let reader = csv::ReaderBuilder::new().has_headers(self.has_header).delimiter(self.delimiter).from_path(&self.path).map_err(|e| Error::format(&self.path, e.to_string()))?;
        self.reader = Some(reader);
        self.buffer.clear();
        self.line = 0;
        self.rng = rng::derive(self.seed, 0xC5F ^ epoch);
        Ok(())
    }
    fn next_batch(&mut self, batch: usize, x: &mut Vec<f32>, y: &mut Vec<f32>) -> Result<usize> {
        x.clear();
        y.clear();
        let mut n = 0;
        while n < batch {
            while self.buffer.len() < self.buffer_rows {
                match self.read_row()? {
                    Some(r) => self.buffer.push(r),
                    None => break,
                }
            }
            if self.buffer.is_empty() {
                break;
            }
            let i = self.rng.random_range(0..self.buffer.len());
            let (fx, fy) = self.buffer.swap_remove(i);
            x.extend_from_slice(&fx);
            y.push(fy);
            n += 1;
        }
        Ok(n)
    }
}

/// An in-memory data set behind the stream interface (shuffled per epoch, sharded by
/// row), so code written for streams also takes arrays.
pub struct ArrayStream {
    data: crate::data::Dataset,
    rows: Vec<usize>,
    pos: usize,
    seed: u64,
}

impl ArrayStream {
    pub fn new(data: crate::data::Dataset, seed: u64, shard: Shard) -> Result<ArrayStream> {
        shard.check()?;
        let rows = (0..data.len()).filter(|r| r % shard.world == shard.rank).collect();
        Ok(ArrayStream { data, rows, pos: 0, seed })
    }
}

impl BatchStream for ArrayStream {
    fn len(&self) -> usize {
        self.rows.len()
    }
    fn features(&self) -> usize {
        self.data.x.row_len()
    }
    fn target_cols(&self) -> usize {
        self.data.y.row_len().max(1)
    }
    fn name(&self) -> String {
        self.data.name.clone()
    }
    fn begin_epoch(&mut self, epoch: u64) -> Result<()> {
        self.rows.sort_unstable();
        self.rows.shuffle(&mut rng::derive(self.seed, 0xA77 ^ epoch));
        self.pos = 0;
        Ok(())
    }
    fn next_batch(&mut self, batch: usize, x: &mut Vec<f32>, y: &mut Vec<f32>) -> Result<usize> {
        x.clear();
        y.clear();
        let end = (self.pos + batch).min(self.rows.len());
        for &r in &self.rows[self.pos..end] {
            x.extend_from_slice(self.data.x.row(r));
            y.extend_from_slice(self.data.y.row(r));
        }
        let n = end - self.pos;
        self.pos = end;
        Ok(n)
    }
}

/// A stream with the preprocessing fitted on the training data applied to its features.
pub struct Transformed<S: BatchStream> {
    pub inner: S,
    pub prep: crate::data::Preprocessing,
}

impl<S: BatchStream> BatchStream for Transformed<S> {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn features(&self) -> usize {
        self.inner.features()
    }
    fn target_cols(&self) -> usize {
        self.inner.target_cols()
    }
    fn name(&self) -> String {
        self.inner.name()
    }
    fn begin_epoch(&mut self, epoch: u64) -> Result<()> {
        self.inner.begin_epoch(epoch)
    }
    fn next_batch(&mut self, batch: usize, x: &mut Vec<f32>, y: &mut Vec<f32>) -> Result<usize> {
        let n = self.inner.next_batch(batch, x, y)?;
        self.prep.apply_rows(x, self.inner.features())?;
        Ok(n)
    }
}

/// One batch travelling between the threads of a [`Prefetch`].
type Batch = (Vec<f32>, Vec<f32>, usize);

/// Runs a stream on a background thread, `depth` batches ahead.
pub struct Prefetch {
    len: usize,
    features: usize,
    target_cols: usize,
    name: String,
    requests: SyncSender<Option<(u64, usize)>>,
    ready: Option<Receiver<Result<Batch>>>,
    recycle: SyncSender<(Vec<f32>, Vec<f32>)>,
    worker: Option<std::thread::JoinHandle<()>>,
    /// An epoch was started and its end not yet received.
    in_epoch: bool,
}

impl Prefetch {
    pub fn new(mut stream: Box<dyn BatchStream>, depth: usize) -> Prefetch {
        let (len, features, target_cols, name) = (stream.len(), stream.features(), stream.target_cols(), stream.name());
        let (requests, request_rx) = sync_channel::<Option<(u64, usize)>>(1);
        let depth = depth.max(1);
        let (ready_tx, ready) = sync_channel::<Result<Batch>>(depth);
        let (recycle, recycle_rx) = sync_channel::<(Vec<f32>, Vec<f32>)>(depth + 2);
        let worker = std::thread::spawn(move || {
            // Each request starts an epoch and streams all of it, then an empty batch.
            while let Ok(Some((epoch, batch))) = request_rx.recv() {
                if let Err(e) = stream.begin_epoch(epoch) {
                    let _ = ready_tx.send(Err(e));
                    continue;
                }
                loop {
                    let (mut x, mut y) = recycle_rx.try_recv().unwrap_or_default();
                    let r = stream.next_batch(batch, &mut x, &mut y);
                    let done = !matches!(r, Ok(n) if n > 0);
                    if ready_tx.send(r.map(|n| (x, y, n))).is_err() {
                        return;
                    }
                    if done {
                        break;
                    }
                }
            }
        });
        Prefetch { len, features, target_cols, name, requests, ready: Some(ready), recycle, worker: Some(worker), in_epoch: false }
    }

    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn features(&self) -> usize {
        self.features
    }
    pub fn target_cols(&self) -> usize {
        self.target_cols
    }
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts streaming epoch `epoch` in batches of `batch`.
    /// The rest of an epoch left unread (training stopped early) is drained first.
    pub fn begin_epoch(&mut self, epoch: u64, batch: usize) -> Result<()> {
        while self.in_epoch {
            let (x, y, n) = self.next()?;
            self.recycle(x, y);
            if n == 0 {
                break;
            }
        }
        self.requests.send(Some((epoch, batch))).map_err(|_| Error::State("the prefetch thread stopped".into()))?;
        self.in_epoch = true;
        Ok(())
    }

    /// The next batch `(x, y, rows)`; `rows == 0` ends the epoch. Give the buffers
    /// back with [`Prefetch::recycle`] to avoid allocating new ones. (Not an `Iterator`:
    /// it can fail, and the caller must recycle each batch before the next.)
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Batch> {
        let ready = self.ready.as_ref().expect("receiver lives until drop");
        let batch = ready.recv().map_err(|_| Error::State("the prefetch thread stopped".into()))?;
        if !matches!(batch, Ok((_, _, n)) if n > 0) {
            self.in_epoch = false;
        }
        batch
    }

    pub fn recycle(&self, x: Vec<f32>, y: Vec<f32>) {
        let _ = self.recycle.try_send((x, y));
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Ask the worker to stop, and close the batch channel so a worker blocked on
        // sending finds no receiver and returns.
        let _ = self.requests.try_send(None);
        drop(self.ready.take());
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes `data` (row-major, `shape`) as an f32 `.npy` file.
    pub(crate) fn write_npy(path: &Path, shape: &[usize], data: &[f32]) {
        let cols: usize = shape.iter().skip(1).product::<usize>().max(1);
        crate::data::write_npy_f32(path, shape, |r, c| data[r * cols + c]).unwrap();
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("descent-stream-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Every sample exactly once per epoch, in a different order each epoch; shards split
    /// the samples between them.
    fn check_epochs(mut make: impl FnMut(Shard) -> Box<dyn BatchStream>, n: usize) {
        let collect = |s: &mut Box<dyn BatchStream>, epoch: u64| {
            s.begin_epoch(epoch).unwrap();
            let (mut x, mut y, mut seen) = (Vec::new(), Vec::new(), Vec::new());
            while s.next_batch(7, &mut x, &mut y).unwrap() > 0 {
                // Feature 0 holds the sample id, the target its double.
                for (r, t) in x.chunks_exact(s.features()).zip(&y) {
                    assert_eq!(*t, 2.0 * r[0]);
                    seen.push(r[0] as usize);
                }
            }
            seen
        };
        let mut s = make(Shard::default());
        assert_eq!(s.len(), n);
        let e0 = collect(&mut s, 0);
        let e1 = collect(&mut s, 1);
        let mut sorted = e0.clone();
        sorted.sort();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>());
        assert_ne!(e0, e1, "each epoch reshuffles");
        let mut both: Vec<usize> = (0..2).flat_map(|rank| { let mut s = make(Shard { rank, world: 2 }); collect(&mut s, 0) }).collect();
        both.sort();
        assert_eq!(both, (0..n).collect::<Vec<_>>(), "two shards cover the data once");
    }

    #[test]
    fn npy_stream_visits_every_sample_once_per_epoch() {
        let dir = tmp("npy");
        let n = 1000;
        let x: Vec<f32> = (0..n).flat_map(|i| [i as f32, 0.5, -1.0]).collect();
        let y: Vec<f32> = (0..n).map(|i| 2.0 * i as f32).collect();
        write_npy(&dir.join("x.npy"), &[n, 3], &x);
        write_npy(&dir.join("y.npy"), &[n], &y);
        // Windows of 1 MB hold all 1000 rows; force small windows through a tiny file size:
        // 12 bytes per row → window_rows = 87381 for 1 MB, so test the multi-window path
        // with a 3 MB file below instead.
        check_epochs(|shard| Box::new(NpyStream::open(dir.join("x.npy"), dir.join("y.npy"), 1, 3, shard).unwrap()), n);
        let big = 300_000;
        let xb: Vec<f32> = (0..big).flat_map(|i| [i as f32, 1.0, 2.0]).collect();
        let yb: Vec<f32> = (0..big).map(|i| 2.0 * i as f32).collect();
        write_npy(&dir.join("xb.npy"), &[big, 3], &xb);
        write_npy(&dir.join("yb.npy"), &[big, 1], &yb);
        let s = NpyStream::open(dir.join("xb.npy"), dir.join("yb.npy"), 1, 3, Shard::default()).unwrap();
        assert_eq!(s.all_windows(), 4, "3.6 MB in 1 MB windows");
        check_epochs(|shard| Box::new(NpyStream::open(dir.join("xb.npy"), dir.join("yb.npy"), 1, 3, shard).unwrap()), big);
        // Errors name the file.
        std::fs::write(dir.join("bad.npy"), b"this is not a numpy file").unwrap();
        let e = NpyStream::open(dir.join("bad.npy"), dir.join("y.npy"), 1, 3, Shard::default()).err().unwrap().to_string();
        assert!(e.contains("bad.npy") && e.contains("magic"), "{e}");
        let bytes = std::fs::read(dir.join("x.npy")).unwrap();
        std::fs::write(dir.join("cut.npy"), &bytes[..bytes.len() - 100]).unwrap();
        let e = NpyStream::open(dir.join("cut.npy"), dir.join("y.npy"), 1, 3, Shard::default()).err().unwrap().to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn array_stream_behaves_like_the_file_streams() {
        let n = 300;
        let x: Vec<f32> = (0..n).flat_map(|i| [i as f32, 1.0]).collect();
        let y: Vec<f32> = (0..n).map(|i| 2.0 * i as f32).collect();
        let data = crate::data::Dataset::new(crate::tensor::Tensor::new(x, &[n, 2]).unwrap(), crate::tensor::Tensor::new(y, &[n, 1]).unwrap(), "mem").unwrap();
        check_epochs(|shard| Box::new(ArrayStream::new(data.clone(), 5, shard).unwrap()), n);
    }

    #[test]
    fn csv_stream_and_prefetch() {
        let dir = tmp("csv");
        let n = 500;
        let mut text = String::from("id,a,label\n");
        for i in 0..n {
            text += &format!("{i},0.5,{}\n", 2 * i);
        }
        std::fs::write(dir.join("d.csv"), text).unwrap();
        let label = crate::data::LabelColumn::Name("label".into());
        check_epochs(|shard| Box::new(CsvStream::open(dir.join("d.csv"), &label, true, b',', 64, 9, shard).unwrap()), n);
        // Through the prefetch thread: the same samples, the same order.
        let direct = {
            let mut s = CsvStream::open(dir.join("d.csv"), &label, true, b',', 64, 9, Shard::default()).unwrap();
            s.begin_epoch(4).unwrap();
            let (mut x, mut y, mut all) = (Vec::new(), Vec::new(), Vec::new());
            while s.next_batch(16, &mut x, &mut y).unwrap() > 0 {
                all.extend_from_slice(&y);
            }
            all
        };
        let mut p = Prefetch::new(Box::new(CsvStream::open(dir.join("d.csv"), &label, true, b',', 64, 9, Shard::default()).unwrap()), 3);
        p.begin_epoch(4, 16).unwrap();
        let mut all = Vec::new();
        loop {
            let (x, y, rows) = p.next().unwrap();
            if rows == 0 {
                break;
            }
            all.extend_from_slice(&y);
            p.recycle(x, y);
        }
        assert_eq!(all, direct);
        // A bad cell is an error naming the line.
        std::fs::write(dir.join("bad.csv"), "a,label\n1,2\nx,3\n").unwrap();
        let mut s = CsvStream::open(dir.join("bad.csv"), &label, true, b',', 4, 1, Shard::default()).unwrap();
        s.begin_epoch(0).unwrap();
        let e = s.next_batch(8, &mut Vec::new(), &mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("`x`"), "{e}");
        // An empty file, or a header alone, says so (as the in-memory reader does).
        for (text, says) in [("", "empty.csv: the file is empty"), ("  \n\n", "empty.csv: the file is empty"), ("a,label\n", "empty.csv: no data rows (the first line is read as the header)")] {
            std::fs::write(dir.join("empty.csv"), text).unwrap();
            let e = CsvStream::open(dir.join("empty.csv"), &label, true, b',', 4, 1, Shard::default()).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
