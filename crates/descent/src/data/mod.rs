//! Datasets and readers: in-memory arrays, CSV, NumPy .npy/.npz, MNIST IDX, and the
//! synthetic "teacher" task of the benchmark workloads.

mod csv_reader;
mod idx;
mod npy;
pub mod stream;
mod teacher;
pub mod text;

pub use csv_reader::{csv_categories, read_csv, read_csv_dataset, read_csv_encoded, Categories, CsvOptions, LabelColumn};
pub use idx::read_idx;
pub use npy::{read_npy, read_npz, write_npy_f32};
pub use stream::{ArrayStream, BatchStream, CsvStream, NpyStream, Prefetch, Shard};
pub use teacher::{teacher_classification, TeacherSpec};
pub use text::{fixed_windows, tiling_windows, TextCorpus, TextWindows, Tokenizer, TokenizerKind};

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
    /// Where each sample is in the file it came from, for errors: CSV line numbers
    /// (`position_unit` "line"), or array rows; `None` while samples are in file order.
    /// Splits and shuffles carry it, so an error in the training split names the row as
    /// it is in the file, not its shuffled index.
    pub positions: Option<std::sync::Arc<Vec<usize>>>,
    pub position_unit: &'static str,
}

impl Dataset {
    pub fn new(x: Tensor, y: Tensor, name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        if x.rows() != y.rows() {
            return Err(Error::data(&name, format!("{} feature rows but {} target rows", x.rows(), y.rows())));
        }
        Ok(Dataset { x, y, name, positions: None, position_unit: "row" })
    }

    /// Sample `i` as its file has it: `line 51` of a CSV, `row 50` of an array.
    pub fn position(&self, i: usize) -> String {
        format!("{} {}", self.position_unit, self.positions.as_ref().map_or(i, |p| p[i]))
    }

    pub fn len(&self) -> usize {
        self.x.rows()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows `idx`, in order.
    pub fn select(&self, idx: &[usize], name: impl Into<String>) -> Dataset {
        let positions = idx.iter().map(|&i| self.positions.as_ref().map_or(i, |p| p[i])).collect();
        Dataset {
            x: self.x.select_rows(idx),
            y: self.y.select_rows(idx),
            name: name.into(),
            positions: Some(std::sync::Arc::new(positions)),
            position_unit: self.position_unit,
        }
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

impl Dataset {
    /// Like [`Dataset::train_test_split`], keeping each class's proportion in both parts
    /// (classes from the label column or the arg-max of one-hot targets): each class's
    /// samples are shuffled and `test_fraction` of them (rounded) held out.
    pub fn stratified_split(&self, test_fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(0.0..1.0).contains(&test_fraction) {
            return Err(Error::Config(format!("test_split = {test_fraction} is outside [0, 1)")));
        }
        let classes = self.class_labels()?;
        let k = classes.iter().max().map_or(0, |m| m + 1);
        let mut rng = rng::derive(seed, 3);
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for c in 0..k {
            let mut members: Vec<usize> = (0..self.len()).filter(|&i| classes[i] == c).collect();
            members.shuffle(&mut rng);
            let n_test = (members.len() as f64 * test_fraction).round() as usize;
            test.extend_from_slice(&members[..n_test]);
            train.extend_from_slice(&members[n_test..]);
        }
        // Shuffle across classes so neither part is ordered by class.
        train.shuffle(&mut rng);
        test.shuffle(&mut rng);
        Ok((self.select(&train, format!("{} (train)", self.name)), self.select(&test, format!("{} (test)", self.name))))
    }

    /// Class index per sample: the label column (non-negative integers) or the arg-max
    /// of one-hot rows.
    pub fn class_labels(&self) -> Result<Vec<usize>> {
        let cols = self.y.row_len().max(1);
        if let Some(classes) = self.y.classes().filter(|_| cols == 1) {
            return Ok(classes.iter().map(|c| *c as usize).collect());
        }
        (0..self.len())
            .map(|r| {
                let row = self.y.row(r);
                if cols == 1 {
                    let v = row[0];
                    if v >= 0.0 && v.fract() == 0.0 {
                        Ok(v as usize)
                    } else {
                        Err(Error::data(&self.name, format!("stratifying needs integer class labels; {} has {v}", self.position(r))))
                    }
                } else {
                    Ok(crate::tensor::kernels::reduce::argmax(row))
                }
            })
            .collect()
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
    /// Per-feature (x − min) / (max − min), with min and max of the training split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minmax: Option<MinMax>,
    /// One-hot encoded CSV columns and their categories (applied when a CSV is read).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<Categories>,
    /// A language model's tokenizer and vocabulary (text data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<text::Tokenizer>,
}

/// Which preprocessing steps to fit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PreprocessSpec {
    pub x_scale: Option<f32>,
    pub standardize: bool,
    pub minmax: bool,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MinMax {
    pub min: Vec<f32>,
    /// max − min per feature (1 for constant features, which map to 0).
    pub range: Vec<f32>,
}

impl MinMax {
    pub fn fit(x: &Tensor) -> MinMax {
        let d = x.row_len();
        let (mut lo, mut hi) = (vec![f32::INFINITY; d], vec![f32::NEG_INFINITY; d]);
        for r in 0..x.rows() {
            for (j, v) in x.row(r).iter().enumerate() {
                lo[j] = lo[j].min(*v);
                hi[j] = hi[j].max(*v);
            }
        }
        let range = lo.iter().zip(&hi).map(|(a, b)| if b > a { b - a } else { 1.0 }).collect();
        let min = lo.into_iter().map(|v| if v.is_finite() { v } else { 0.0 }).collect();
        MinMax { min, range }
    }
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
    /// Fits scaling and (optionally) standardization on training features.
    pub fn fit(x_scale: Option<f32>, standardize: bool, train_x: &Tensor) -> Preprocessing {
        Preprocessing::fit_with(&PreprocessSpec { x_scale, standardize, minmax: false }, train_x)
    }

    /// Fits the enabled steps on training features (each after `x_scale`).
    pub fn fit_with(spec: &PreprocessSpec, train_x: &Tensor) -> Preprocessing {
        let mut p = Preprocessing { x_scale: spec.x_scale, ..Default::default() };
        if spec.standardize || spec.minmax {
            let mut scaled = train_x.clone();
            p.apply(&mut scaled).expect("same width");
            if spec.standardize {
                p.standardize = Some(Standardize::fit(&scaled));
            } else {
                p.minmax = Some(MinMax::fit(&scaled));
            }
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
        if let Some(mm) = &self.minmax {
            if mm.min.len() != d {
                return Err(Error::shape("min-max scaling fitted at training", format!("{} features", mm.min.len()), d));
            }
            for row in x.chunks_exact_mut(d) {
                for ((v, lo), r) in row.iter_mut().zip(&mm.min).zip(&mm.range) {
                    *v = (*v - lo) / r;
                }
            }
        }
        Ok(())
    }

    /// Fits on a stream in one pass (per-feature mean and variance in f64, Chan's
    /// parallel update per batch), for data that does not fit in memory.
    pub fn fit_stream(spec: &PreprocessSpec, stream: &mut dyn BatchStream) -> Result<Preprocessing> {
        let mut p = Preprocessing { x_scale: spec.x_scale, ..Default::default() };
        if spec.minmax {
            return Err(Error::Config("min-max scaling of streamed data is not supported; use standardize".into()));
        }
        if !spec.standardize {
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

/// The bundled digits, split 80/20 with seed 42 and standardized on the training part
/// (the classic experiment's data), for tests across the crate.
#[cfg(test)]
pub(crate) fn digits_for_tests() -> (Dataset, Dataset) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits.csv");
    let options = CsvOptions { label_column: Some(LabelColumn::Name("label".into())), ..Default::default() };
    let (x, y) = read_csv(path, &options).unwrap();
    let data = Dataset::new(x, y.unwrap(), "digits").unwrap();
    let (mut train, mut test) = data.train_test_split(0.2, 42).unwrap();
    let prep = Preprocessing::fit(None, true, &train.x);
    prep.apply(&mut train.x).unwrap();
    prep.apply(&mut test.x).unwrap();
    (train, test)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labelled(n: usize) -> Dataset {
        // 70% class 0, 20% class 1, 10% class 2; feature = index.
        let y: Vec<f32> = (0..n).map(|i| if i % 10 < 7 { 0.0 } else if i % 10 < 9 { 1.0 } else { 2.0 }).collect();
        let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
        Dataset::new(Tensor::new(x, &[n, 1]).unwrap(), Tensor::new(y, &[n, 1]).unwrap(), "t").unwrap()
    }

    #[test]
    fn stratified_split_keeps_class_proportions() {
        let d = labelled(200);
        let (train, test) = d.stratified_split(0.25, 1).unwrap();
        assert_eq!((train.len(), test.len()), (150, 50));
        let count = |s: &Dataset, c: f32| s.y.data().iter().filter(|v| **v == c).count();
        assert_eq!((count(&test, 0.0), count(&test, 1.0), count(&test, 2.0)), (35, 10, 5));
        // Disjoint and complete.
        let mut ids: Vec<i64> = train.x.data().iter().chain(test.x.data()).map(|v| *v as i64).collect();
        ids.sort();
        assert_eq!(ids, (0..200).collect::<Vec<_>>());
        let bad = Dataset::new(Tensor::new(vec![0.0; 2], &[2, 1]).unwrap(), Tensor::new(vec![0.5, 1.0], &[2, 1]).unwrap(), "f").unwrap();
        assert!(bad.stratified_split(0.5, 1).unwrap_err().to_string().contains("integer class labels"));
    }

    #[test]
    fn minmax_is_fitted_on_training_data_only() {
        let train = Tensor::new(vec![0.0, 5.0, 10.0, 5.0, 5.0, 5.0], &[3, 2]).unwrap();
        let p = Preprocessing::fit_with(&PreprocessSpec { minmax: true, ..Default::default() }, &train);
        let mut t = train.clone();
        p.apply(&mut t).unwrap();
        // Column 0 spans [0, 10] → [0, 1]; column 1 is constant → 0.
        assert_eq!(t.data(), &[0.0, 0.0, 1.0, 0.0, 0.5, 0.0]);
        // New data keeps the training scale (may leave [0, 1]).
        let mut other = Tensor::new(vec![20.0, 6.0], &[1, 2]).unwrap();
        p.apply(&mut other).unwrap();
        assert_eq!(other.data(), &[2.0, 1.0]);
        // Saved with the model and read back.
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Preprocessing>(&json).unwrap(), p);
    }
}
