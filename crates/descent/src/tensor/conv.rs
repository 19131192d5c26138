//! Geometry of sliding windows over channels-last images (NHWC, as Keras): where a
//! convolution's or a pooling's window reads, as plain data every backend understands
//! (like [`super::Layout`]). A 1-D input `[n, len, c]` is an image of height 1.

use crate::error::{Error, Result};

/// Keras's `padding`: `valid` (no padding: windows stay inside) or `same` (zeros around,
/// so that the output has ⌈input / stride⌉ positions; the odd one goes after, as
/// TensorFlow pads).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    #[default]
    Valid,
    Same,
    /// Keras's `causal` (Conv1D): all the padding before, so position t sees only ≤ t.
    Causal,
}

/// One spatial axis of a window: input length, window length, stride, dilation and the
/// padding before it; `out` positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowAxis {
    pub input: usize,
    pub window: usize,
    pub stride: usize,
    pub dilation: usize,
    pub pad_before: usize,
    pub out: usize,
}

impl WindowAxis {
    /// The axis for `padding`, or an error naming `what` when no window fits.
    pub fn new(what: &str, input: usize, window: usize, stride: usize, dilation: usize, padding: Padding) -> Result<Self> {
        if window == 0 || stride == 0 || dilation == 0 {
            return Err(Error::Config(format!("{what}: window size, stride and dilation must be at least 1 (got {window}, {stride}, {dilation})")));
        }
        let span = (window - 1) * dilation + 1;
        let (out, pad_before) = match padding {
            Padding::Valid => {
                if input < span {
                    return Err(Error::shape(what, format!("an input of at least {span} along each spatial axis (window {window}, dilation {dilation}) for padding \"valid\""), input));
                }
                ((input - span) / stride + 1, 0)
            }
            Padding::Same => {
                let out = input.div_ceil(stride);
                let total = ((out - 1) * stride + span).saturating_sub(input);
                (out, total / 2)
            }
            Padding::Causal => ((input - 1) / stride + 1, span - 1),
        };
        if out == 0 {
            return Err(Error::shape(what, "a non-empty input along each spatial axis", input));
        }
        Ok(WindowAxis { input, window, stride, dilation, pad_before, out })
    }

    /// The input position tap `k` of output position `o` reads (`None`: padding).
    #[inline]
    pub fn source(&self, o: usize, k: usize) -> Option<usize> {
        (o * self.stride + k * self.dilation).checked_sub(self.pad_before).filter(|&i| i < self.input)
    }

    /// The taps of output position `o` that fall inside the input: `k` in the range.
    #[inline]
    pub fn taps_inside(&self, o: usize) -> std::ops::Range<usize> {
        let start = o * self.stride;
        // tap k reads start + k·d − pad: inside when pad ≤ start + k·d < pad + input.
        let lo = self.pad_before.saturating_sub(start).div_ceil(self.dilation);
        let hi = (self.pad_before + self.input).saturating_sub(start).div_ceil(self.dilation);
        lo.min(self.window)..hi.min(self.window)
    }
}

/// A 2-D sliding window over `[batch, height, width, channels]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window2d {
    pub batch: usize,
    pub channels: usize,
    pub rows: WindowAxis,
    pub cols: WindowAxis,
}

impl Window2d {
    /// Output positions per sample.
    pub fn out_positions(&self) -> usize {
        self.rows.out * self.cols.out
    }
    /// Input values per sample.
    pub fn in_len(&self) -> usize {
        self.rows.input * self.cols.input * self.channels
    }
}

/// A convolution: the window over the input, the filters and how channels are grouped.
/// The kernel is Keras's `[kh, kw, channels / groups, filters]`, which is also the
/// im2col matrix `[kh·kw·channels/groups, filters]` (rows in (ky, kx, c) order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub window: Window2d,
    pub filters: usize,
    pub groups: usize,
}

impl ConvGeometry {
    pub fn group_channels(&self) -> usize {
        self.window.channels / self.groups
    }
    pub fn group_filters(&self) -> usize {
        self.filters / self.groups
    }
    /// Rows of the im2col matrix (output positions of the whole batch).
    pub fn rows(&self) -> usize {
        self.window.batch * self.window.out_positions()
    }
    /// Depth of one group's product: taps × channels per group.
    pub fn depth(&self) -> usize {
        self.window.rows.window * self.window.cols.window * self.group_channels()
    }
    /// A 1×1 convolution with stride 1 and no padding, ungrouped: the input itself is the
    /// im2col matrix.
    pub fn is_pointwise(&self) -> bool {
        let w = &self.window;
        self.groups == 1 && [w.rows, w.cols].iter().all(|a| a.window == 1 && a.stride == 1 && a.pad_before == 0)
    }
    /// Multiply-adds of the forward pass.
    pub fn macs(&self) -> usize {
        self.rows() * self.depth() * self.filters
    }
}

/// Max or average over each window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    /// The mean of the window's cells inside the input (padding is not counted, as in
    /// Keras/TensorFlow).
    Average,
}

/// A window's parameters in the compact form a tape node records (the input and
/// output extents come from the node's shapes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowSpec {
    pub size: [u16; 2],
    pub stride: [u16; 2],
    pub dilation: [u16; 2],
    pub pad_before: [u16; 2],
}

impl WindowSpec {
    /// The 2-D window of `batch` samples of `channels` channels from `in_hw` to `out_hw`.
    pub fn window(&self, batch: usize, channels: usize, in_hw: (usize, usize), out_hw: (usize, usize)) -> Window2d {
        let axis = |k: usize, input: usize, out: usize| WindowAxis {
            input,
            window: self.size[k] as usize,
            stride: self.stride[k] as usize,
            dilation: self.dilation[k] as usize,
            pad_before: self.pad_before[k] as usize,
            out,
        };
        Window2d { batch, channels, rows: axis(0, in_hw.0, out_hw.0), cols: axis(1, in_hw.1, out_hw.1) }
    }

    /// The spec of `win` (every extent below 2¹⁶, which the caller checked).
    pub fn of(win: &Window2d) -> Self {
        let pair = |f: fn(&WindowAxis) -> usize| [f(&win.rows) as u16, f(&win.cols) as u16];
        WindowSpec { size: pair(|a| a.window), stride: pair(|a| a.stride), dilation: pair(|a| a.dilation), pad_before: pair(|a| a.pad_before) }
    }
}

/// A convolution's or pooling's arguments as Keras takes them: window size, strides,
/// dilation and padding per spatial axis (rows, columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowArgs {
    pub size: [usize; 2],
    pub strides: [usize; 2],
    pub dilation: [usize; 2],
    pub padding: Padding,
}

impl WindowArgs {
    /// A `size` window with stride and dilation 1, `valid`.
    pub fn new(size: [usize; 2]) -> Self {
        WindowArgs { size, strides: [1, 1], dilation: [1, 1], padding: Padding::Valid }
    }

    /// The window over `[batch, h, w, channels]`, or an error naming `what`.
    pub fn window(&self, what: &str, batch: usize, channels: usize, (h, w): (usize, usize)) -> Result<Window2d> {
        if self.padding == Padding::Causal && self.size[0] != 1 {
            return Err(Error::Config(format!("{what}: padding \"causal\" is for 1-D inputs (Conv1D)")));
        }
        let rows_padding = if self.padding == Padding::Causal { Padding::Valid } else { self.padding };
        let rows = WindowAxis::new(what, h, self.size[0], self.strides[0], self.dilation[0], rows_padding)?;
        let cols = WindowAxis::new(what, w, self.size[1], self.strides[1], self.dilation[1], self.padding)?;
        let win = Window2d { batch, channels, rows, cols };
        let big = [rows, cols].iter().any(|a| [a.window, a.stride, a.dilation, a.pad_before].iter().any(|&v| v > u16::MAX as usize));
        if big {
            return Err(Error::Config(format!("{what}: window sizes, strides, dilations and padding must be below 65536")));
        }
        Ok(win)
    }
}

/// `(batch, h, w, channels)` of a channels-last image `[n, h, w, c]`, or of a sequence
/// `[n, len, c]` as an image of height 1.
pub fn image_dims(dims: &[usize]) -> Option<(usize, usize, usize, usize)> {
    match *dims {
        [n, h, w, c] => Some((n, h, w, c)),
        [n, l, c] => Some((n, 1, l, c)),
        _ => None,
    }
}

/// What an image shift reads for cells whose source falls outside the input (Keras's
/// `fill_mode`): a constant, the input reflected about its edge (`d c b a | a b c d |
/// d c b a`), wrapped around, or the nearest edge cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FillMode {
    Constant(f32),
    Reflect,
    Wrap,
    Nearest,
}

impl FillMode {
    /// The input index position `s` (possibly outside `0..len`) reads; `None`: the constant.
    #[inline]
    pub fn resolve(self, s: isize, len: usize) -> Option<usize> {
        let l = len as isize;
        if (0..l).contains(&s) {
            return Some(s as usize);
        }
        match self {
            FillMode::Constant(_) => None,
            FillMode::Reflect => {
                let m = s.rem_euclid(2 * l);
                Some(if m < l { m } else { 2 * l - 1 - m } as usize)
            }
            FillMode::Wrap => Some(s.rem_euclid(l) as usize),
            FillMode::Nearest => Some(s.clamp(0, l - 1) as usize),
        }
    }
}

/// One sample's shift and flips: output cell (oy, ox) reads input (map(oy), map(ox))
/// with map(o) = fill(o − shift), then mirrored when flipped. Stored as 4 f32 per
/// sample (small whole numbers, exact): `[flip_rows, flip_cols, shift_rows, shift_cols]`.
pub const REMAP_FIELDS: usize = 4;

/// The input position along one axis of length `len` that output `o` reads.
#[inline]
pub fn remap_source(o: usize, len: usize, shift: f32, flip: bool, fill: FillMode) -> Option<usize> {
    let s = fill.resolve(o as isize - shift as isize, len)?;
    Some(if flip { len - 1 - s } else { s })
}
