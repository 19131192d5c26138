//! Pooling layers, channels-last as Keras: `MaxPooling2D` / `AveragePooling2D` (and
//! their 1-D forms) over windows, and the global forms over the whole image or
//! sequence (`GlobalAveragePooling2D`, `GlobalMaxPooling2D`, …), one op on the tape.

use serde::{Deserialize, Serialize};

use super::conv::Size;
use super::layer::Layer;
use super::LayerConfig;
use crate::autograd::{ParamId, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::{Padding, PoolKind, WindowArgs};

fn two() -> Size {
    Size::One(2)
}

/// Keras's `MaxPooling2D` / `AveragePooling2D` (and 1-D) arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolingConfig {
    #[serde(default = "two")]
    pub pool_size: Size,
    /// Default: the pool size (windows side by side).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strides: Option<Size>,
    #[serde(default)]
    pub padding: Padding,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

impl PoolingConfig {
    pub fn new(pool_size: impl Into<Size>) -> Self {
        PoolingConfig { pool_size: pool_size.into(), strides: None, padding: Padding::Valid, name: None, input_shape: None, inputs: None }
    }
}

/// Keras's global pooling arguments.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalPoolingConfig {
    /// Keep the spatial axes (of length 1) instead of dropping them.
    #[serde(default)]
    pub keepdims: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

/// Which pooling layer: max or average, over 1 or 2 spatial axes, windowed or global.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolForm {
    pub kind: PoolKind,
    pub rank: usize,
    pub global: bool,
}

/// A pooling layer (every form above).
#[derive(Clone, Debug)]
pub struct Pooling {
    form: PoolForm,
    windowed: Option<PoolingConfig>,
    global: Option<GlobalPoolingConfig>,
    name: String,
    /// Set at build.
    args: WindowArgs,
    out: Vec<usize>,
}

impl Pooling {
    pub fn windowed(kind: PoolKind, rank: usize, config: PoolingConfig) -> Self {
        let name = config.name.clone().unwrap_or_default();
        Pooling { form: PoolForm { kind, rank, global: false }, windowed: Some(config), global: None, name, args: WindowArgs::new([1, 1]), out: Vec::new() }
    }
    pub fn global(kind: PoolKind, rank: usize, config: GlobalPoolingConfig) -> Self {
        let name = config.name.clone().unwrap_or_default();
        Pooling { form: PoolForm { kind, rank, global: true }, windowed: None, global: Some(config), name, args: WindowArgs::new([1, 1]), out: Vec::new() }
    }
    /// Keras's `MaxPooling2D(pool_size)`.
    pub fn max2d(pool_size: impl Into<Size>) -> Self {
        Pooling::windowed(PoolKind::Max, 2, PoolingConfig::new(pool_size))
    }
}

impl Pooling {
    /// Keras's class name and automatic name prefix of this form.
    fn names(&self) -> (&'static str, &'static str) {
        let PoolForm { kind, rank, global } = self.form;
        match (global, kind, rank) {
            (false, PoolKind::Max, 2) => ("MaxPooling2D", "max_pooling2d"),
            (false, PoolKind::Max, _) => ("MaxPooling1D", "max_pooling1d"),
            (false, PoolKind::Average, 2) => ("AveragePooling2D", "average_pooling2d"),
            (false, PoolKind::Average, _) => ("AveragePooling1D", "average_pooling1d"),
            (true, PoolKind::Max, 2) => ("GlobalMaxPooling2D", "global_max_pooling2d"),
            (true, PoolKind::Max, _) => ("GlobalMaxPooling1D", "global_max_pooling1d"),
            (true, PoolKind::Average, 2) => ("GlobalAveragePooling2D", "global_average_pooling2d"),
            (true, PoolKind::Average, _) => ("GlobalAveragePooling1D", "global_average_pooling1d"),
        }
    }
}

impl Layer for Pooling {
    fn kind(&self) -> &'static str {
        self.names().0
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
    fn default_name(&self) -> &'static str {
        self.names().1
    }
    fn declared_input_shape(&self) -> Option<&[usize]> {
        self.windowed.as_ref().map_or(self.global.as_ref().and_then(|g| g.input_shape.as_deref()), |w| w.input_shape.as_deref())
    }
    fn declared_inputs(&self) -> Option<&[String]> {
        self.windowed.as_ref().map_or(self.global.as_ref().and_then(|g| g.inputs.as_deref()), |w| w.inputs.as_deref())
    }
    fn input_rank(&self) -> Option<usize> {
        Some(self.form.rank + 1)
    }
    fn config(&self) -> LayerConfig {
        let name = Some(self.name.clone());
        let PoolForm { kind, rank, global } = self.form;
        if global {
            let c = GlobalPoolingConfig { name, ..self.global.clone().unwrap_or_default() };
            return match (kind, rank) {
                (PoolKind::Max, 2) => LayerConfig::GlobalMaxPooling2d(c),
                (PoolKind::Max, _) => LayerConfig::GlobalMaxPooling1d(c),
                (PoolKind::Average, 2) => LayerConfig::GlobalAveragePooling2d(c),
                (PoolKind::Average, _) => LayerConfig::GlobalAveragePooling1d(c),
            };
        }
        let c = PoolingConfig { name, ..self.windowed.clone().expect("a windowed pooling has its config") };
        match (kind, rank) {
            (PoolKind::Max, 2) => LayerConfig::MaxPooling2d(c),
            (PoolKind::Max, _) => LayerConfig::MaxPooling1d(c),
            (PoolKind::Average, 2) => LayerConfig::AveragePooling2d(c),
            (PoolKind::Average, _) => LayerConfig::AveragePooling1d(c),
        }
    }

    fn build(&mut self, input: &[usize], _: &mut ParamStore, _: &mut Rng) -> Result<Vec<usize>> {
        let what = format!("layer '{}' ({})", self.name, self.kind());
        let rank = self.form.rank;
        let (h, w, c) = match (rank, input) {
            (2, [h, w, c]) => (*h, *w, *c),
            (1, [l, c]) => (1, *l, *c),
            _ => {
                let want = if rank == 2 { "a per-sample input [height, width, channels]" } else { "a per-sample input [length, channels]" };
                return Err(Error::shape(what, want, format!("{input:?}")));
            }
        };
        self.args = match &self.windowed {
            None => WindowArgs::new([h, w]),
            Some(cfg) => {
                let size = cfg.pool_size.axes(&format!("{what} pool_size"), rank)?;
                let strides = match &cfg.strides {
                    Some(s) => s.axes(&format!("{what} strides"), rank)?,
                    None => size,
                };
                if cfg.padding == Padding::Causal {
                    return Err(Error::Config(format!("{what}: padding must be \"valid\" or \"same\"")));
                }
                WindowArgs { size, strides, dilation: [1, 1], padding: cfg.padding }
            }
        };
        let win = self.args.window(&what, 1, c, (h, w))?;
        self.out = match (self.form.global, self.global.as_ref().is_some_and(|g| g.keepdims), rank) {
            (true, false, _) => vec![c],
            (true, true, 2) | (false, _, 2) => vec![win.rows.out, win.cols.out, c],
            _ => vec![win.cols.out, c],
        };
        Ok(self.out.clone())
    }

    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, _training: bool) -> Result<Var> {
        let y = tape.pool2d(store, x, self.form.kind, self.args)?;
        if self.form.global && !self.global.as_ref().is_some_and(|g| g.keepdims) {
            let n = tape.shape(y).rows();
            return tape.reshape(store, y, &[n, *self.out.last().unwrap_or(&1)]);
        }
        Ok(y)
    }

    fn params(&self) -> Vec<ParamId> {
        Vec::new()
    }
}
