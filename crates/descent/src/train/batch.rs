//! Batches of in-memory data: which rows a batch takes, gathering them (and their
//! per-sample weights) into the tape's reused buffers.

use crate::tensor::{Targets, Tensor};

/// The features of a batch source: one tensor per model input, all with the same rows.
#[derive(Clone, Copy)]
pub(crate) enum Inputs<'a> {
    One(&'a Tensor),
    Many(&'a [&'a Tensor]),
}

impl<'a> Inputs<'a> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Inputs::One(_) => 1,
            Inputs::Many(xs) => xs.len(),
        }
    }
    pub(crate) fn get(&self, i: usize) -> &'a Tensor {
        match self {
            Inputs::One(x) => x,
            Inputs::Many(xs) => xs[i],
        }
    }
    /// Samples (rows of the first input; every input has as many).
    pub(crate) fn rows(&self) -> usize {
        self.get(0).rows()
    }
}

/// Per-sample weights of a fit, from `sample_weight` and `class_weight`.
pub(crate) struct SampleWeights<'a> {
    pub(crate) per_sample: Option<&'a [f32]>,
    pub(crate) per_class: Vec<f32>,
    pub(crate) sparse: bool,
}

impl SampleWeights<'_> {
    /// Fills `out` with the weights of `rows` (targets `y` as the loss takes them).
    pub(crate) fn fill(&self, out: &mut Vec<f32>, y: &Tensor, rows: Rows) {
        let n = rows.len(y.rows());
        out.clear();
        for k in 0..n {
            let r = match rows {
                Rows::All => k,
                Rows::Span(a, _) => a + k,
                Rows::Pick(idx) => idx[k],
            };
            let mut w = self.per_sample.map_or(1.0, |s| s[r]);
            if !self.per_class.is_empty() {
                let class = match y.targets() {
                    Targets::Classes(c) => c[r] as usize,
                    Targets::Values(t) => {
                        let t = &t[r * y.row_len()..(r + 1) * y.row_len()];
                        if self.sparse { t[0] as usize } else if t.len() == 1 { (t[0] > 0.5) as usize } else { crate::tensor::kernels::reduce::argmax(t) }
                    }
                };
                w *= self.per_class.get(class).copied().unwrap_or(1.0);
            }
            out.push(w);
        }
    }
}

/// Which rows of a dataset a batch takes.
#[derive(Clone, Copy)]
pub(crate) enum Rows<'a> {
    All,
    /// Consecutive rows `start..end`.
    Span(usize, usize),
    Pick(&'a [usize]),
}

impl Rows<'_> {
    pub(crate) fn len(&self, total: usize) -> usize {
        match self {
            Rows::All => total,
            Rows::Span(a, b) => b - a,
            Rows::Pick(idx) => idx.len(),
        }
    }

    /// The rows of `data` (`n` elements a row) when they are contiguous.
    fn slice<'t, T>(&self, data: &'t [T], n: usize) -> Option<&'t [T]> {
        match *self {
            Rows::All => Some(data),
            Rows::Span(a, b) => Some(&data[a * n..b * n]),
            Rows::Pick(_) => None,
        }
    }
}

/// Batches of at most `batch` rows covering `rows`, in order.
pub(crate) fn batches<'a>(rows: Rows<'a>, total: usize, batch: usize) -> impl Iterator<Item = Rows<'a>> {
    let n = rows.len(total);
    let (picks, start) = match rows {
        Rows::Pick(idx) => (Some(idx), 0),
        Rows::Span(a, _) => (None, a),
        Rows::All => (None, 0),
    };
    (0..n).step_by(batch.max(1)).map(move |i| {
        let j = (i + batch).min(n);
        match picks {
            Some(idx) => Rows::Pick(&idx[i..j]),
            None => Rows::Span(start + i, start + j),
        }
    })
}

/// Appends the chosen rows of `data` (`n` elements a row) to `out`, converted by `f`.
fn gather_rows<T: Copy, U>(out: &mut Vec<U>, data: &[T], n: usize, rows: Rows, f: impl Fn(T) -> U) {
    match (rows.slice(data, n), rows) {
        (Some(s), _) => out.extend(s.iter().map(|v| f(*v))),
        (None, Rows::Pick(idx)) => idx.iter().for_each(|&i| out.extend(data[i * n..(i + 1) * n].iter().map(|v| f(*v)))),
        (None, _) => unreachable!("contiguous rows have a slice"),
    }
}

/// Copies the chosen rows of target values `t` into `out`, in order (classes given as a
/// class tensor become their indices, e.g. counts regressed with MSE).
pub(crate) fn gather(out: &mut Vec<f32>, t: &Tensor, rows: Rows) {
    match t.targets() {
        Targets::Values(v) => gather_rows(out, v, t.row_len(), rows, |x| x),
        Targets::Classes(c) => gather_rows(out, c, t.row_len(), rows, |c| c as f32),
    }
}

/// The classes of the chosen rows of a one-column label tensor, as integers: copied
/// from a class tensor, converted from whole-number values (`check_targets` checked them).
pub(crate) fn gather_classes(out: &mut Vec<u32>, t: &Tensor, rows: Rows) {
    match t.targets() {
        Targets::Classes(c) => gather_rows(out, c, t.row_len().max(1), rows, |c| c),
        Targets::Values(v) => gather_rows(out, v, t.row_len().max(1), rows, |x| x as u32),
    }
}

pub(crate) fn gather_into(out: &mut [f32], t: &Tensor, rows: Rows) {
    match (rows.slice(t.data(), t.row_len()), rows) {
        (Some(s), _) => out.copy_from_slice(s),
        (None, Rows::Span(..) | Rows::All) => unreachable!("contiguous rows have a slice"),
        (None, Rows::Pick(idx)) => {
            let n = t.row_len();
            for (dst, &i) in out.chunks_exact_mut(n).zip(idx) {
                dst.copy_from_slice(t.row(i));
            }
        }
    }
}
