//! Index arithmetic shared by the N-d ops: row-major strides, and a shape seen as
//! (outer, along, inner) around one axis.

use crate::error::{Error, Result};
use crate::tensor::Shape;

/// Row-major strides of `dims` (the last axis has stride 1).
pub(super) fn strides(dims: &[usize]) -> [usize; Shape::MAX_RANK] {
    let mut s = [0; Shape::MAX_RANK];
    let mut acc = 1;
    for k in (0..dims.len()).rev() {
        s[k] = acc;
        acc *= dims[k];
    }
    s
}

/// `dims` around `axis`: (product of the axes before, the axis' length, product after).
pub(super) fn around(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (dims[..axis].iter().product(), dims[axis], dims[axis + 1..].iter().product())
}

/// A signed axis (−1 is the last) of a rank-`rank` value, checked.
pub(crate) fn axis_of(what: &str, axis: isize, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as isize } else { axis };
    if a < 0 || a as usize >= rank {
        return Err(Error::shape(what, format!("an axis in [-{rank}, {rank})"), axis));
    }
    Ok(a as usize)
}
