use std::fmt;

use crate::error::{Error, Result};

/// Up to 4 axes, stored inline so shapes are `Copy` and never allocate on the hot path.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    dims: [usize; Shape::MAX_RANK],
    rank: u8,
}

impl Shape {
    pub const MAX_RANK: usize = 4;

    pub fn new(dims: &[usize]) -> Result<Self> {
        if dims.len() > Self::MAX_RANK {
            return Err(Error::shape("Shape::new", format!("at most {} axes", Self::MAX_RANK), dims.len()));
        }
        // Every shape's element count fits a usize, so `numel` (and every size computed
        // from it) never wraps — a file's header claiming 2^60 × 2^10 elements is an
        // error here, not a small wrapped product that passes the size checks.
        if Self::checked_numel(dims).is_none() {
            return Err(Error::shape("Shape::new", "at most usize::MAX elements", format!("{dims:?}, whose product overflows")));
        }
        let mut s = Shape { dims: [0; Self::MAX_RANK], rank: dims.len() as u8 };
        s.dims[..dims.len()].copy_from_slice(dims);
        Ok(s)
    }

    /// A `[rows, cols]` matrix shape (infallible).
    pub const fn matrix(rows: usize, cols: usize) -> Self {
        Shape { dims: [rows, cols, 0, 0], rank: 2 }
    }

    pub const fn scalar() -> Self {
        Shape { dims: [0; Self::MAX_RANK], rank: 0 }
    }

    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank as usize]
    }
    pub fn rank(&self) -> usize {
        self.rank as usize
    }
    /// The product of `dims`, or `None` where it overflows (sizes from files).
    pub fn checked_numel(dims: &[usize]) -> Option<usize> {
        dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
    }

    pub fn numel(&self) -> usize {
        self.dims().iter().product()
    }
    /// First axis (the batch); 1 for scalars.
    pub fn rows(&self) -> usize {
        if self.rank == 0 { 1 } else { self.dims[0] }
    }
    /// Product of the remaining axes (features per sample).
    pub fn cols(&self) -> usize {
        self.dims().iter().skip(1).product()
    }
    pub fn set_dim(&mut self, axis: usize, n: usize) {
        self.dims[axis] = n;
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
