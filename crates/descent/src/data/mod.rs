//! Datasets and readers: in-memory arrays, CSV, NumPy .npy/.npz, MNIST IDX, and the
//! synthetic "teacher" task of the benchmark workloads.

mod csv_reader;
mod idx;
mod npy;
pub mod stream;
mod teacher;

pub use csv_reader::{read_csv, CsvOptions, LabelColumn};
pub use idx::read_idx;
pub use npy::{read_npy, read_npz};
pub use stream::{BatchStream, CsvStream, NpyStream, Prefetch, Shard};
pub use teacher::{teacher_classification, TeacherSpec};

use rand::seq::SliceRandom;

use crate::error::{Error, Result};
use crate::rng;
use crate::tensor::Tensor;

/// Features `x` `[samples, features…]` and targets `y` `[samples, …]`, with a name used
/// in error messages (usually the file they came from).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub x: Tensor,
    pub y: Tensor,
    pub name: String,
}

impl Dataset {
    pub fn new(x: Tensor, y: Tensor, name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if x.rows() != y.rows() {
            return Err(Error::data(&name, format!("{} feature rows but {} target rows", x.rows(), y.rows())));
        }
        Ok(Dataset { x, y, name })
    }

    pub fn len(&self) -> usize {
        self.x.rows()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows `idx`, in order.
    pub fn select(&self, idx: &[usize], name: impl Into<String>) -> Dataset {
        Dataset { x: self.x.select_rows(idx), y: self.y.select_rows(idx), name: name.into() }
    }

    /// Shuffles with `seed` and holds out `test_fraction` of the samples (rounded, at least
    /// one of each when possible). Returns (train, test).
    pub fn train_test_split(&self, test_fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(0.0..1.0).contains(&test_fraction) {
            return Err(Error::Config(format!("test_split = {test_fraction} is outside [0, 1)")));
        }
        let n = self.len();
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut rng::derive(seed, 3));
        let n_test = ((n as f64 * test_fraction).round() as usize).min(n.saturating_sub(1));
        let (test, train) = idx.split_at(n_test);
        Ok((self.select(train, format!("{} (train)", self.name)), self.select(test, format!("{} (test)", self.name))))
    }
}

/// Feature preprocessing fitted on the training split only, saved with the model and
/// applied again at evaluation and prediction.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocessing {
    /// Every feature is multiplied by this first (e.g. 1/255 for 8-bit pixels).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_scale: Option<f32>,
    /// Per-feature (x − mean) / std, with mean and std of the training split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardize: Option<Standardize>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standardize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Standardize {
    /// Mean and standard deviation of each column of `x` (computed in f64). Constant
    /// columns get std 1 so they map to 0 instead of dividing by zero.
    pub fn fit(x: &Tensor) -> Standardize {
        let (n, d) = (x.rows(), x.row_len());
        let mut mean = vec![0.0f64; d];
        for r in 0..n {
            x.row(r).iter().zip(&mut mean).for_each(|(v, m)| *m += *v as f64);
        }
        mean.iter_mut().for_each(|m| *m /= n.max(1) as f64);
        let mut var = vec![0.0f64; d];
        for r in 0..n {
            x.row(r).iter().zip(&mean).zip(&mut var).for_each(|((v, m), s)| *s += (*v as f64 - m).powi(2));
        }
        let std = var.iter().map(|s| (s / n.max(1) as f64).sqrt()).map(|s| if s > 1e-12 { s as f32 } else { 1.0 }).collect();
        Standardize { mean: mean.into_iter().map(|m| m as f32).collect(), std }
    }
}

impl Preprocessing {
    /// Fits the enabled steps on training features (after `x_scale`).
    pub fn fit(x_scale: Option<f32>, standardize: bool, train_x: &Tensor) -> Preprocessing {
        let mut p = Preprocessing { x_scale, standardize: None };
        if standardize {
            let mut scaled = train_x.clone();
            p.apply(&mut scaled).expect("same width");
            p.standardize = Some(Standardize::fit(&scaled));
        }
        p
    }

    /// Applies the fitted steps in place.
    pub fn apply(&self, x: &mut Tensor) -> Result<()> {
        let d = x.row_len();
        self.apply_rows(x.data_mut(), d)
    }

    /// Applies the fitted steps to rows of `d` values, in place.
    pub fn apply_rows(&self, x: &mut [f32], d: usize) -> Result<()> {
        if let Some(s) = self.x_scale {
            x.iter_mut().for_each(|v| *v *= s);
        }
        if let Some(st) = &self.standardize {
            if st.mean.len() != d {
                return Err(Error::shape("standardization fitted at training", format!("{} features", st.mean.len()), d));
            }
            for row in x.chunks_exact_mut(d) {
                for ((v, m), s) in row.iter_mut().zip(&st.mean).zip(&st.std) {
                    *v = (*v - m) / s;
                }
            }
        }
        Ok(())
    }

    /// Fits on a stream in one pass (per-feature mean and variance in f64, Chan's
    /// parallel update per batch), for data that does not fit in memory.
    pub fn fit_stream(x_scale: Option<f32>, standardize: bool, stream: &mut dyn BatchStream) -> Result<Preprocessing> {
        let mut p = Preprocessing { x_scale, standardize: None };
        if !standardize {
            return Ok(p);
        }
        let d = stream.features();
        let (mut n, mut mean, mut m2) = (0.0f64, vec![0.0f64; d], vec![0.0f64; d]);
        let (mut xb, mut yb) = (Vec::new(), Vec::new());
        stream.begin_epoch(0)?;
        while stream.next_batch(4096, &mut xb, &mut yb)? > 0 {
            p.apply_rows(&mut xb, d)?;
            for row in xb.chunks_exact(d) {
                n += 1.0;
                for j in 0..d {
                    let v = row[j] as f64;
                    let delta = v - mean[j];
                    mean[j] += delta / n;
                    m2[j] += delta * (v - mean[j]);
                }
            }
        }
        let std = m2.iter().map(|s| (s / n.max(1.0)).sqrt()).map(|s| if s > 1e-12 { s as f32 } else { 1.0 }).collect();
        p.standardize = Some(Standardize { mean: mean.into_iter().map(|m| m as f32).collect(), std });
        Ok(p)
    }
}
