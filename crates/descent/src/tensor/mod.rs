//! Tensors: shapes and layouts, the backend seam (`backend`: the trait every kernel is
//! reached through, and its buffers) and the CPU kernels behind it (`kernels`).
//! [`Tensor`] is the user's host-side value (inputs, targets, predictions).

#[macro_use]
pub mod kernels;
pub mod alloc;
pub mod backend;
pub mod conv;
mod layout;
mod shape;
mod targets;

pub use backend::{Backend, DeviceInts, DeviceSlice, DeviceVec, HostMut, HostRef, B};
pub use conv::{image_dims, remap_source, ConvGeometry, FillMode, REMAP_FIELDS, Padding, PoolKind, Window2d, WindowArgs, WindowAxis, WindowSpec};
pub use kernels::attention::{AttentionDims, MAX_HEAD_DIM};
pub use layout::{contiguous_strides, Layout};
pub use shape::Shape;
pub use targets::{Targets, TargetsMut};

use crate::error::{Error, Result};

/// Where a tensor's storage lives. Only the CPU exists today; CUDA plugs in behind
/// the same kernel boundary later without changing autograd, layers or optimizers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
}

/// A dense, row-major tensor owned by the user: model inputs, targets, predictions.
/// A tensor of classes (class labels, token ids; [`Tensor::from_classes`], and what
/// readers give label columns of whole numbers) holds them as u32, which is what losses
/// and embeddings read; its f32 view (`data`) is kept beside them for convenience.
/// (Inside a training step the autograd tape uses its own reused buffers instead.)
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Shape,
    data: Vec<f32>,
    /// The elements as integer classes, for a class tensor (same values as `data`).
    classes: Option<Vec<u32>>,
}

impl Tensor {
    /// Builds a tensor, checking that `data` holds exactly `shape`'s element count.
    pub fn new(data: Vec<f32>, dims: &[usize]) -> Result<Self> {
        let shape = Self::checked_shape("Tensor::new", data.len(), dims)?;
        Ok(Tensor { shape, data, classes: None })
    }

    /// A tensor of integer classes (labels, token ids), e.g. `[samples, 1]`.
    pub fn from_classes(classes: Vec<u32>, dims: &[usize]) -> Result<Self> {
        let shape = Self::checked_shape("Tensor::from_classes", classes.len(), dims)?;
        Ok(Tensor { shape, data: classes.iter().map(|c| *c as f32).collect(), classes: Some(classes) })
    }

    fn checked_shape(what: &str, len: usize, dims: &[usize]) -> Result<Shape> {
        let shape = Shape::new(dims)?;
        if shape.numel() != len {
            return Err(Error::shape(what, format!("{} elements for shape {shape}", shape.numel()), len));
        }
        Ok(shape)
    }

    pub fn zeros(dims: &[usize]) -> Result<Self> {
        let shape = Shape::new(dims)?;
        Ok(Tensor { data: vec![0.0; shape.numel()], shape, classes: None })
    }

    /// A 2-D tensor from rows of equal length.
    pub fn from_rows(rows: &[Vec<f32>]) -> Result<Self> {
        let cols = rows.first().map_or(0, Vec::len);
        let mut data = Vec::with_capacity(rows.len() * cols);
        for (i, r) in rows.iter().enumerate() {
            if r.len() != cols {
                return Err(Error::shape(format!("Tensor::from_rows, row {i}"), cols, r.len()));
            }
            data.extend_from_slice(r);
        }
        Tensor::new(data, &[rows.len(), cols])
    }

    /// A one-column tensor of whole numbers in [0, 2²⁴) (exact in f32) as classes; any
    /// other tensor unchanged. Readers apply this to label columns.
    pub fn into_classes_if_whole(mut self) -> Tensor {
        let whole = |x: &f32| x.fract() == 0.0 && (0.0..16_777_216.0).contains(x);
        if self.classes.is_none() && self.row_len() == 1 && self.data.iter().all(whole) {
            self.classes = Some(self.data.iter().map(|x| *x as u32).collect());
        }
        self
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    /// Whether this is a tensor of integer classes.
    pub fn is_classes(&self) -> bool {
        self.classes.is_some()
    }
    /// The integer classes, for a class tensor.
    pub fn classes(&self) -> Option<&[u32]> {
        self.classes.as_deref()
    }
    /// The elements as a loss reads them: classes for a class tensor, else values.
    pub fn targets(&self) -> Targets<'_> {
        match &self.classes {
            Some(c) => Targets::Classes(c),
            None => Targets::Values(&self.data),
        }
    }
    /// The elements as f32 (a class as its index).
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    /// The elements as f32, to change: a class tensor becomes a plain value tensor.
    pub fn data_mut(&mut self) -> &mut [f32] {
        self.classes = None;
        &mut self.data
    }
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }
    pub fn device(&self) -> Device {
        Device::Cpu
    }

    /// Number of rows (size of the first axis); 0 for a scalar.
    pub fn rows(&self) -> usize {
        if self.shape.rank() == 0 { 0 } else { self.shape.dims()[0] }
    }

    /// Elements per row (product of all axes but the first).
    pub fn row_len(&self) -> usize {
        self.shape.dims().iter().skip(1).product()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        let n = self.row_len();
        &self.data[i * n..(i + 1) * n]
    }

    /// A new tensor with the given rows, in order (used for splits and folds).
    /// The shape of one sample: every axis after the first.
    pub fn sample_dims(&self) -> &[usize] {
        &self.shape.dims()[1.min(self.shape.rank())..]
    }

    pub fn select_rows(&self, idx: &[usize]) -> Tensor {
        fn pick<T: Copy>(v: &[T], n: usize, idx: &[usize]) -> Vec<T> {
            let mut out = Vec::with_capacity(idx.len() * n);
            for &i in idx {
                out.extend_from_slice(&v[i * n..(i + 1) * n]);
            }
            out
        }
        let n = self.row_len();
        let mut dims = self.shape;
        dims.set_dim(0, idx.len());
        Tensor { shape: dims, data: pick(&self.data, n, idx), classes: self.classes.as_ref().map(|c| pick(c, n, idx)) }
    }

    /// Reports the first NaN or infinity with its position, naming the data source.
    pub fn check_finite(&self, source_name: &str) -> Result<()> {
        if let Some(pos) = self.data.iter().position(|v| !v.is_finite()) {
            let n = self.row_len().max(1);
            let what = if self.data[pos].is_nan() { "NaN" } else { "infinity" };
            return Err(Error::data(source_name, format!("{what} at row {}, column {}", pos / n, pos % n)));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_tensors_hold_integers_and_keep_them_through_row_selection() {
        let t = Tensor::from_classes(vec![3, 0, 7], &[3, 1]).unwrap();
        assert_eq!(t.targets(), Targets::Classes(&[3, 0, 7]));
        assert_eq!(t.data(), &[3.0, 0.0, 7.0]);
        assert_eq!(t.select_rows(&[2, 0]).classes(), Some(&[7, 3][..]));
        assert!(Tensor::from_classes(vec![1, 2], &[3, 1]).unwrap_err().to_string().contains("3 elements"));
        // Whole numbers in a single column become classes; fractions, negatives and
        // several columns do not.
        let whole = Tensor::new(vec![1.0, 4.0], &[2, 1]).unwrap().into_classes_if_whole();
        assert_eq!(whole.classes(), Some(&[1, 4][..]));
        for (data, dims) in [(vec![1.5, 2.0], [2, 1]), (vec![-1.0, 2.0], [2, 1]), (vec![1.0, 2.0], [1, 2])] {
            assert!(!Tensor::new(data, &dims).unwrap().into_classes_if_whole().is_classes());
        }
        // Writing the values makes a plain value tensor (the classes would be stale).
        let mut t = t;
        t.data_mut()[0] = 0.5;
        assert_eq!(t.targets(), Targets::Values(&[0.5, 0.0, 7.0]));
    }
}
