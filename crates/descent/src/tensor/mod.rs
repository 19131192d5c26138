//! Tensors: shapes and layouts, the backend seam (`backend`: the trait every kernel is
//! reached through, and its buffers) and the CPU kernels behind it (`kernels`).
//! [`Tensor`] is the user's host-side value (inputs, targets, predictions).

#[macro_use]
pub mod kernels;
pub mod alloc;
pub mod backend;
mod layout;
mod shape;
mod targets;

pub use backend::{Backend, DeviceInts, DeviceSlice, DeviceVec, HostMut, HostRef, B};
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

/// A dense, row-major f32 tensor owned by the user: model inputs, targets, predictions.
/// (Inside a training step the autograd tape uses its own reused buffers instead.)
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Shape,
    data: Vec<f32>,
}

impl Tensor {
    /// Builds a tensor, checking that `data` holds exactly `shape`'s element count.
    pub fn new(data: Vec<f32>, dims: &[usize]) -> Result<Self> {
        let shape = Shape::new(dims)?;
        if shape.numel() != data.len() {
            return Err(Error::shape("Tensor::new", format!("{} elements for shape {shape}", shape.numel()), data.len()));
        }
        Ok(Tensor { shape, data })
    }

    pub fn zeros(dims: &[usize]) -> Result<Self> {
        let shape = Shape::new(dims)?;
        Ok(Tensor { data: vec![0.0; shape.numel()], shape })
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

    pub fn shape(&self) -> Shape {
        self.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    pub fn data_mut(&mut self) -> &mut [f32] {
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
    pub fn select_rows(&self, idx: &[usize]) -> Tensor {
        let n = self.row_len();
        let mut data = Vec::with_capacity(idx.len() * n);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        let mut dims = self.shape;
        dims.set_dim(0, idx.len());
        Tensor { shape: dims, data }
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
