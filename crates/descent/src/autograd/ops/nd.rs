//! Axis arithmetic shared by the N-d ops.

use crate::error::{Error, Result};

/// A signed axis (−1 is the last) of a rank-`rank` value, checked.
pub(crate) fn axis_of(what: &str, axis: isize, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as isize } else { axis };
    if a < 0 || a as usize >= rank {
        return Err(Error::shape(what, format!("an axis in [-{rank}, {rank})"), axis));
    }
    Ok(a as usize)
}
