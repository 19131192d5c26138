//! Layout: how a value is read out of a buffer — a shape, a stride per axis and a start
//! offset (candle's storage + layout split). Permute, slice and broadcast are all just
//! layouts over their input's buffer: a permutation reorders the strides, a slice moves
//! the offset and shortens one axis, a broadcast gives an axis stride 0. One strided copy
//! (and its scatter-add for backward) in the backend then serves all three.

use super::Shape;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Shape,
    strides: [usize; Shape::MAX_RANK],
    offset: usize,
}

/// Row-major strides of `dims` (the last axis has stride 1).
pub fn contiguous_strides(dims: &[usize]) -> [usize; Shape::MAX_RANK] {
    let mut s = [0; Shape::MAX_RANK];
    let mut acc = 1;
    for k in (0..dims.len()).rev() {
        s[k] = acc;
        acc *= dims[k];
    }
    s
}

impl Layout {
    /// The row-major layout of `shape` itself.
    pub fn contiguous(shape: Shape) -> Self {
        Layout { shape, strides: contiguous_strides(shape.dims()), offset: 0 }
    }

    /// `input` with its axes reordered: output axis k reads input axis `axes[k]`.
    pub fn permuted(input: Shape, axes: &[usize]) -> Self {
        let src = contiguous_strides(input.dims());
        let mut dims = [0usize; Shape::MAX_RANK];
        let mut strides = [0usize; Shape::MAX_RANK];
        for (k, &a) in axes.iter().enumerate() {
            dims[k] = input.dims()[a];
            strides[k] = src[a];
        }
        let shape = Shape::new(&dims[..axes.len()]).expect("a permutation keeps the rank");
        Layout { shape, strides, offset: 0 }
    }

    /// Entries `start..start + len` of `input` along `axis`.
    pub fn narrowed(input: Shape, axis: usize, start: usize, len: usize) -> Self {
        let strides = contiguous_strides(input.dims());
        let mut shape = input;
        shape.set_dim(axis, len);
        Layout { shape, strides, offset: start * strides[axis] }
    }

    /// `input` read as `out` (NumPy broadcasting: aligned at the last axis; an axis of 1
    /// is repeated, with stride 0). `None` when the shapes do not broadcast that way.
    pub fn broadcast(input: Shape, out: Shape) -> Option<Self> {
        let (ri, ro) = (input.rank(), out.rank());
        if ri > ro {
            return None;
        }
        let src = contiguous_strides(input.dims());
        let mut strides = [0usize; Shape::MAX_RANK];
        for k in 0..ri {
            let (d, o) = (input.dims()[k], out.dims()[ro - ri + k]);
            strides[ro - ri + k] = match d {
                _ if d == o => src[k],
                1 => 0,
                _ => return None,
            };
        }
        Some(Layout { shape: out, strides, offset: 0 })
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Whether the elements are those of a row-major buffer, in order, from the start.
    pub fn is_contiguous(&self) -> bool {
        self.offset == 0 && self.strides == contiguous_strides(self.shape.dims())
    }

    /// Calls `f(out, src, run)` for runs of `run` consecutive output elements starting at
    /// `out` that read consecutive source elements from `src` (the innermost axis when its
    /// stride is 1, else single elements), in output order.
    pub fn for_each_run(&self, mut f: impl FnMut(usize, usize, usize)) {
        let rank = self.shape.rank();
        if rank == 0 {
            f(0, self.offset, 1);
            return;
        }
        let dims = self.shape.dims();
        let (run, outer_rank) = if self.strides[rank - 1] == 1 { (dims[rank - 1], rank - 1) } else { (1, rank) };
        let total = self.shape.numel();
        if total == 0 {
            return;
        }
        let mut coord = [0usize; Shape::MAX_RANK];
        let mut src = self.offset;
        let mut out = 0;
        while out < total {
            f(out, src, run);
            out += run;
            // Odometer over the outer axes, keeping the source offset in step.
            for k in (0..outer_rank).rev() {
                coord[k] += 1;
                src += self.strides[k];
                if coord[k] < dims[k] {
                    break;
                }
                src -= self.strides[k] * dims[k];
                coord[k] = 0;
            }
        }
    }

    /// Calls `f(out, a, b)` for every output element, in order, with its source index in
    /// this layout and in `other`, a layout of the same shape (a broadcast binary op).
    pub fn for_each_pair(&self, other: &Layout, mut f: impl FnMut(usize, usize, usize)) {
        let rank = self.shape.rank();
        let dims = self.shape.dims();
        let (sa, sb) = (&self.strides, &other.strides);
        let (mut ia, mut ib) = (self.offset, other.offset);
        let mut coord = [0usize; Shape::MAX_RANK];
        for o in 0..self.shape.numel() {
            f(o, ia, ib);
            // One odometer over the shared shape, both source offsets kept in step.
            for k in (0..rank).rev() {
                coord[k] += 1;
                ia += sa[k];
                ib += sb[k];
                if coord[k] < dims[k] {
                    break;
                }
                ia -= sa[k] * dims[k];
                ib -= sb[k] * dims[k];
                coord[k] = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indices(l: &Layout) -> Vec<usize> {
        let mut v = Vec::new();
        l.for_each_run(|_, s, run| v.extend(s..s + run));
        v
    }

    #[test]
    fn a_pair_of_layouts_is_walked_in_step() {
        let out = Shape::matrix(2, 3);
        let row = Layout::broadcast(Shape::new(&[3]).unwrap(), out).unwrap();
        let col = Layout::broadcast(Shape::matrix(2, 1), out).unwrap();
        let mut seen = Vec::new();
        row.for_each_pair(&col, |o, a, b| seen.push((o, a, b)));
        assert_eq!(seen, [(0, 0, 0), (1, 1, 0), (2, 2, 0), (3, 0, 1), (4, 1, 1), (5, 2, 1)]);
    }

    #[test]
    fn a_permutation_reads_the_transposed_order() {
        let l = Layout::permuted(Shape::matrix(2, 3), &[1, 0]);
        assert_eq!(l.shape().dims(), &[3, 2]);
        assert_eq!(indices(&l), [0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn a_narrowed_axis_reads_its_part_of_each_row() {
        let l = Layout::narrowed(Shape::matrix(2, 4), 1, 1, 2);
        assert_eq!(indices(&l), [1, 2, 5, 6]);
        let mut runs = Vec::new();
        l.for_each_run(|o, s, n| runs.push((o, s, n)));
        assert_eq!(runs, [(0, 1, 2), (2, 5, 2)]);
    }

    #[test]
    fn a_broadcast_repeats_axes_of_one() {
        let l = Layout::broadcast(Shape::new(&[3]).unwrap(), Shape::matrix(2, 3)).unwrap();
        assert_eq!(indices(&l), [0, 1, 2, 0, 1, 2]);
        let col = Layout::broadcast(Shape::matrix(2, 1), Shape::matrix(2, 3)).unwrap();
        assert_eq!(indices(&col), [0, 0, 0, 1, 1, 1]);
        assert!(Layout::broadcast(Shape::new(&[2]).unwrap(), Shape::matrix(2, 3)).is_none());
        assert!(Layout::contiguous(Shape::matrix(2, 3)).is_contiguous());
    }
}
