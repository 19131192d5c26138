//! Batches of in-memory data: which rows a batch takes, gathering them (and their
//! per-sample weights) into the tape's reused buffers.

use crate::tensor::Tensor;

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
                let t = y.row(r);
                let class = if self.sparse { t[0] as usize } else if t.len() == 1 { (t[0] > 0.5) as usize } else { crate::tensor::kernels::reduce::argmax(t) };
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

    /// The rows of `t` when they are contiguous.
    fn slice<'t>(&self, t: &'t Tensor) -> Option<&'t [f32]> {
        let n = t.row_len();
        match *self {
            Rows::All => Some(t.data()),
            Rows::Span(a, b) => Some(&t.data()[a * n..b * n]),
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

/// Copies the chosen rows of `t` (each `row_len` values) into `out`, in order.
pub(crate) fn gather(out: &mut Vec<f32>, t: &Tensor, rows: Rows) {
    match (rows.slice(t), rows) {
        (Some(s), _) => out.extend_from_slice(s),
        (None, Rows::Pick(idx)) => idx.iter().for_each(|&i| out.extend_from_slice(t.row(i))),
        (None, _) => unreachable!("contiguous rows have a slice"),
    }
}

/// The classes of the chosen rows of a one-column label tensor, as integers (the data
/// layer checked that every label is a whole number in range).
pub(crate) fn gather_classes(out: &mut Vec<u32>, t: &Tensor, rows: Rows) {
    let class = |v: &f32| *v as u32;
    match (rows.slice(t), rows) {
        (Some(s), _) => out.extend(s.iter().map(class)),
        (None, Rows::Pick(idx)) => out.extend(idx.iter().map(|&i| class(&t.row(i)[0]))),
        (None, _) => unreachable!("contiguous rows have a slice"),
    }
}

pub(crate) fn gather_into(out: &mut [f32], t: &Tensor, rows: Rows) {
    match (rows.slice(t), rows) {
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
