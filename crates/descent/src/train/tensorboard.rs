//! Keras's `TensorBoard` callback: event files that TensorBoard reads.
//!
//! An event file is a sequence of TFRecords — `u64 length`, `u32 masked CRC32C of the
//! length`, the bytes, `u32 masked CRC32C of the bytes` (little-endian; mask:
//! rotate right by 15, add 0xa282ead8) — each holding one `Event` protocol buffer:
//!
//!   Event { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//!   Summary { repeated Value value = 1; }
//!   Value { string tag = 1; float simple_value = 2; HistogramProto histo = 5; }
//!   HistogramProto { double min = 1, max = 2, num = 3, sum = 4, sum_squares = 5;
//!                    repeated double bucket_limit = 6 [packed]; repeated double bucket = 7 [packed]; }
//!
//! As Keras, training values go to `<log_dir>/train`, validation ones (without the
//! `val_` prefix) to `<log_dir>/validation`, as `epoch_<metric>` per epoch and
//! `batch_<metric>` every `update_freq` steps; every `histogram_freq` epochs, each
//! parameter's values (`<name>`) and last gradient (`<name>/gradient`) as histograms.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::callbacks::{Callback, Logs, TrainContext};
use crate::error::{Error, Result};

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}
fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, ((field as u64) << 3) | wire as u64);
}
fn f64_field(out: &mut Vec<u8>, field: u32, v: f64) {
    key(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}
fn bytes_field(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    key(out, field, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A summary value: a scalar or a histogram.
pub enum SummaryValue<'a> {
    Scalar(f32),
    Histogram(&'a [f32]),
}

fn histogram(values: &[f32]) -> Vec<u8> {
    let finite: Vec<f64> = values.iter().map(|v| *v as f64).filter(|v| v.is_finite()).collect();
    let (min, max) = finite.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(*v), b.max(*v)));
    let (min, max) = if finite.is_empty() { (0.0, 0.0) } else { (min, max) };
    // 30 equal buckets over [min, max] (one when all values are equal); bucket i counts
    // values in (limit[i−1], limit[i]].
    let buckets = if max > min { 30 } else { 1 };
    let width = (max - min) / buckets as f64;
    let limits: Vec<f64> = (1..=buckets).map(|i| if i == buckets { max } else { min + width * i as f64 }).collect();
    let mut counts = vec![0.0f64; buckets];
    for v in &finite {
        let i = if width > 0.0 { (((v - min) / width).ceil() as usize).saturating_sub(1).min(buckets - 1) } else { 0 };
        counts[i] += 1.0;
    }
    let mut h = Vec::new();
    f64_field(&mut h, 1, min);
    f64_field(&mut h, 2, max);
    f64_field(&mut h, 3, finite.len() as f64);
    f64_field(&mut h, 4, finite.iter().sum());
    f64_field(&mut h, 5, finite.iter().map(|v| v * v).sum());
    let packed = |xs: &[f64]| xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    bytes_field(&mut h, 6, &packed(&limits));
    bytes_field(&mut h, 7, &packed(&counts));
    h
}

/// The `Event` bytes of one summary value.
fn summary_event(wall_time: f64, step: i64, tag: &str, value: &SummaryValue) -> Vec<u8> {
    let mut v = Vec::new();
    bytes_field(&mut v, 1, tag.as_bytes());
    match value {
        SummaryValue::Scalar(x) => {
            key(&mut v, 2, 5);
            v.extend_from_slice(&x.to_le_bytes());
        }
        SummaryValue::Histogram(xs) => bytes_field(&mut v, 5, &histogram(xs)),
    }
    let mut summary = Vec::new();
    bytes_field(&mut summary, 1, &v);
    let mut e = Vec::new();
    f64_field(&mut e, 1, wall_time);
    key(&mut e, 2, 0);
    varint(&mut e, step as u64);
    bytes_field(&mut e, 5, &summary);
    e
}

fn masked_crc(b: &[u8]) -> u32 {
    let c = crc32c::crc32c(b);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// Appends events to one `events.out.tfevents.*` file.
pub struct EventWriter {
    out: BufWriter<File>,
    pub path: PathBuf,
}

impl EventWriter {
    /// Creates `dir` and a new event file in it, starting with the version event.
    pub fn create(dir: &Path) -> Result<EventWriter> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "localhost".into());
        let path = dir.join(format!("events.out.tfevents.{}.{host}.{}.descent", now() as u64, std::process::id()));
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        let mut w = EventWriter { out: BufWriter::new(file), path };
        let mut e = Vec::new();
        f64_field(&mut e, 1, now());
        bytes_field(&mut e, 3, b"brain.Event:2");
        w.record(&e)?;
        Ok(w)
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let len = (data.len() as u64).to_le_bytes();
        let io = |e| Error::io(&self.path, e);
        self.out.write_all(&len).map_err(io)?;
        self.out.write_all(&masked_crc(&len).to_le_bytes()).map_err(io)?;
        self.out.write_all(data).map_err(io)?;
        self.out.write_all(&masked_crc(data).to_le_bytes()).map_err(io)
    }

    pub fn write(&mut self, step: i64, tag: &str, value: SummaryValue) -> Result<()> {
        self.record(&summary_event(now(), step, tag, &value))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }
}

/// Keras's `TensorBoard` callback (scalars per epoch and every `update_freq` batches,
/// weight and gradient histograms every `histogram_freq` epochs).
pub struct TensorBoard {
    pub log_dir: PathBuf,
    /// Write `batch_*` scalars every this many steps (0: per epoch only).
    pub update_freq: usize,
    /// Histograms every this many epochs (0: none).
    pub histogram_freq: usize,
    train: Option<EventWriter>,
    validation: Option<EventWriter>,
    step: i64,
    /// The first I/O error, reported once (training goes on).
    failed: bool,
}

impl TensorBoard {
    pub fn new(log_dir: impl Into<PathBuf>) -> Self {
        TensorBoard { log_dir: log_dir.into(), update_freq: 0, histogram_freq: 0, train: None, validation: None, step: 0, failed: false }
    }
    pub fn update_freq(mut self, steps: usize) -> Self {
        self.update_freq = steps;
        self
    }
    pub fn histogram_freq(mut self, epochs: usize) -> Self {
        self.histogram_freq = epochs;
        self
    }

    fn report(&mut self, r: Result<()>) {
        if let Err(e) = r {
            if !self.failed {
                eprintln!("warning: TensorBoard: {e}");
                self.failed = true;
            }
        }
    }
}

impl Callback for TensorBoard {
    fn on_train_begin(&mut self, _ctx: &mut TrainContext) {
        let train = EventWriter::create(&self.log_dir.join("train"));
        let validation = EventWriter::create(&self.log_dir.join("validation"));
        match (train, validation) {
            (Ok(t), Ok(v)) => (self.train, self.validation) = (Some(t), Some(v)),
            (Err(e), _) | (_, Err(e)) => self.report(Err(e)),
        }
        self.step = 0;
    }

    fn on_batch_end(&mut self, _batch: usize, logs: &Logs, _ctx: &mut TrainContext) {
        self.step += 1;
        if self.update_freq == 0 || self.step % self.update_freq as i64 != 0 {
            return;
        }
        let step = self.step;
        let Some(w) = self.train.as_mut() else { return };
        // The batch logs still hold the previous epoch's validation values: skip them.
        let r = logs
            .iter()
            .filter(|(name, _)| !name.starts_with("val_"))
            .try_for_each(|(name, v)| w.write(step, &format!("batch_{name}"), SummaryValue::Scalar(v as f32)));
        self.report(r);
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, ctx: &mut TrainContext) {
        let (Some(train), Some(val)) = (self.train.as_mut(), self.validation.as_mut()) else { return };
        let step = epoch as i64;
        let mut r = Ok(());
        for (name, v) in logs.iter() {
            r = r.and_then(|_| match name.strip_prefix("val_") {
                Some(base) => val.write(step, &format!("epoch_{base}"), SummaryValue::Scalar(v as f32)),
                None => train.write(step, &format!("epoch_{name}"), SummaryValue::Scalar(v as f32)),
            });
        }
        r = r.and_then(|_| train.write(step, "epoch_learning_rate", SummaryValue::Scalar(ctx.optimizer.learning_rate())));
        if self.histogram_freq > 0 && (epoch + 1).is_multiple_of(self.histogram_freq) {
            let store = &*ctx.params;
            for id in store.ids() {
                let name = &store.entry(id).name;
                r = r.and_then(|_| train.write(step, name, SummaryValue::Histogram(store.value(id))));
                r = r.and_then(|_| train.write(step, &format!("{name}/gradient"), SummaryValue::Histogram(store.grad(id))));
            }
        }
        r = r.and_then(|_| train.flush()).and_then(|_| val.flush());
        self.report(r);
    }

    fn on_train_end(&mut self, _logs: &Logs, _ctx: &mut TrainContext) {
        let r = self.train.as_mut().map_or(Ok(()), EventWriter::flush).and_then(|_| self.validation.as_mut().map_or(Ok(()), EventWriter::flush));
        self.report(r);
    }
}

/// Reading event files back (for tests and tools): every record's CRCs are checked.
pub mod read {
    use super::*;

    /// One decoded event.
    #[derive(Clone, Debug, PartialEq)]
    pub struct Event {
        pub wall_time: f64,
        pub step: i64,
        pub file_version: Option<String>,
        /// (tag, scalar) values.
        pub scalars: Vec<(String, f32)>,
        /// (tag, number of values, sum) of histogram values.
        pub histograms: Vec<(String, f64, f64)>,
    }

    fn read_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*pos)?;
            *pos += 1;
            v |= ((byte & 0x7f) as u64) << shift;
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }

    /// (field number, wire type, length-delimited payload, varint value) of one field.
    type Field<'a> = (u32, u8, &'a [u8], u64);

    /// (field, wire type, payload) of each field of a message.
    fn fields(b: &[u8]) -> Option<Vec<Field<'_>>> {
        let mut pos = 0;
        let mut out = Vec::new();
        while pos < b.len() {
            let k = read_varint(b, &mut pos)?;
            let (field, wire) = ((k >> 3) as u32, (k & 7) as u8);
            match wire {
                0 => out.push((field, wire, &b[0..0], read_varint(b, &mut pos)?)),
                1 => {
                    out.push((field, wire, b.get(pos..pos + 8)?, 0));
                    pos += 8;
                }
                2 => {
                    let len = read_varint(b, &mut pos)? as usize;
                    out.push((field, wire, b.get(pos..pos + len)?, 0));
                    pos += len;
                }
                5 => {
                    out.push((field, wire, b.get(pos..pos + 4)?, 0));
                    pos += 4;
                }
                _ => return None,
            }
        }
        Some(out)
    }

    fn f64_of(b: &[u8]) -> f64 {
        f64::from_le_bytes(b.try_into().expect("8 bytes"))
    }

    fn event(b: &[u8]) -> Option<Event> {
        let mut e = Event { wall_time: 0.0, step: 0, file_version: None, scalars: Vec::new(), histograms: Vec::new() };
        for (field, _, payload, int) in fields(b)? {
            match field {
                1 => e.wall_time = f64_of(payload),
                2 => e.step = int as i64,
                3 => e.file_version = Some(String::from_utf8_lossy(payload).into_owned()),
                5 => {
                    for (_, _, value, _) in fields(payload)?.into_iter().filter(|f| f.0 == 1) {
                        let mut tag = String::new();
                        let (mut scalar, mut histo) = (None, None);
                        for (f, _, p, _) in fields(value)? {
                            match f {
                                1 => tag = String::from_utf8_lossy(p).into_owned(),
                                2 => scalar = Some(f32::from_le_bytes(p.try_into().ok()?)),
                                5 => {
                                    let h = fields(p)?;
                                    let get = |n: u32| h.iter().find(|x| x.0 == n).map_or(0.0, |x| f64_of(x.2));
                                    histo = Some((get(3), get(4)));
                                }
                                _ => {}
                            }
                        }
                        if let Some(s) = scalar {
                            e.scalars.push((tag.clone(), s));
                        }
                        if let Some((n, sum)) = histo {
                            e.histograms.push((tag, n, sum));
                        }
                    }
                }
                _ => {}
            }
        }
        Some(e)
    }

    /// All events of a file; a CRC mismatch or truncated record is an error.
    pub fn events(path: &Path) -> Result<Vec<Event>> {
        let b = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |m: &str| Error::format(path, m.to_string());
        let mut pos = 0;
        let mut out = Vec::new();
        while pos < b.len() {
            let header = b.get(pos..pos + 12).ok_or_else(|| bad("truncated record header"))?;
            let len_bytes = &header[..8];
            if masked_crc(len_bytes) != u32::from_le_bytes(header[8..12].try_into().expect("4")) {
                return Err(bad("length CRC mismatch"));
            }
            let len = u64::from_le_bytes(len_bytes.try_into().expect("8")) as usize;
            let data = b.get(pos + 12..pos + 12 + len).ok_or_else(|| bad("truncated record"))?;
            let crc = b.get(pos + 12 + len..pos + 16 + len).ok_or_else(|| bad("truncated record CRC"))?;
            if masked_crc(data) != u32::from_le_bytes(crc.try_into().expect("4")) {
                return Err(bad("data CRC mismatch"));
            }
            out.push(event(data).ok_or_else(|| bad("malformed Event protocol buffer"))?);
            pos += 16 + len;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_masking_match_the_reference_values() {
        // CRC-32C check value of "123456789" (RFC 3720), and TensorFlow's mask of 0.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(0u32.rotate_right(15).wrapping_add(0xa282_ead8), 0xa282_ead8);
    }

    #[test]
    fn events_round_trip() {
        let dir = std::env::temp_dir().join(format!("descent-tb-{}", std::process::id()));
        let mut w = EventWriter::create(&dir).unwrap();
        w.write(3, "epoch_loss", SummaryValue::Scalar(0.25)).unwrap();
        w.write(3, "dense.kernel", SummaryValue::Histogram(&[1.0, 2.0, 3.0, -1.0])).unwrap();
        w.flush().unwrap();
        let events = read::events(&w.path).unwrap();
        assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
        assert_eq!(events[1].scalars, vec![("epoch_loss".to_string(), 0.25)]);
        assert_eq!(events[1].step, 3);
        assert_eq!(events[2].histograms, vec![("dense.kernel".to_string(), 4.0, 5.0)]);
        // A flipped byte is caught by the CRC.
        let mut bytes = std::fs::read(&w.path).unwrap();
        let n = bytes.len();
        bytes[n - 6] ^= 1;
        std::fs::write(&w.path, bytes).unwrap();
        assert!(read::events(&w.path).unwrap_err().to_string().contains("CRC"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
