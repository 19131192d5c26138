//! Convolution layers, channels-last as Keras: `Conv2D` over `[h, w, c]`, `Conv1D` over
//! `[len, c]` and `DepthwiseConv2D` (one filter bank per input channel). One layer type
//! serves Conv1D and Conv2D (a 1-D input is an image of height 1 on the tape).

use serde::{Deserialize, Serialize};

use super::layer::Layer;
use super::{Initializer, LayerConfig, Regularizer};
use crate::autograd::{ParamId, ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::kernels::activation::Activation;
use crate::tensor::{Padding, Shape, WindowArgs};

/// A size per spatial axis as Keras takes it: one number for every axis, or a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size {
    One(usize),
    Each(Vec<usize>),
}

impl Size {
    /// The sizes of `rank` spatial axes (1 or 2), as (rows, cols) with rows = 1 in 1-D.
    pub fn axes(&self, what: &str, rank: usize) -> Result<[usize; 2]> {
        let each = match self {
            Size::One(v) => vec![*v; rank],
            Size::Each(v) => v.clone(),
        };
        match (rank, each.as_slice()) {
            (1, [l]) => Ok([1, *l]),
            (2, [h, w]) => Ok([*h, *w]),
            _ => Err(Error::Config(format!("{what}: expected one number or a list of {rank}, got {each:?}"))),
        }
    }
}

impl From<usize> for Size {
    fn from(v: usize) -> Self {
        Size::One(v)
    }
}
impl From<[usize; 2]> for Size {
    fn from(v: [usize; 2]) -> Self {
        Size::Each(v.to_vec())
    }
}

pub(super) fn one() -> Size {
    Size::One(1)
}
fn yes() -> bool {
    true
}
fn zeros() -> Initializer {
    Initializer::Zeros
}
fn one_group() -> usize {
    1
}

/// Keras's `Conv1D` / `Conv2D` arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvConfig {
    pub filters: usize,
    pub kernel_size: Size,
    #[serde(default = "one")]
    pub strides: Size,
    #[serde(default)]
    pub padding: Padding,
    #[serde(default = "one")]
    pub dilation_rate: Size,
    /// Channel groups: input channels and filters split into `groups` independent
    /// convolutions.
    #[serde(default = "one_group")]
    pub groups: usize,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "yes")]
    pub use_bias: bool,
    #[serde(default)]
    pub kernel_initializer: Initializer,
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_regularizer: Option<Regularizer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias_regularizer: Option<Regularizer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_regularizer: Option<Regularizer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

impl ConvConfig {
    /// `filters` of `kernel_size` with Keras's defaults (stride 1, `valid`, no activation).
    pub fn new(filters: usize, kernel_size: impl Into<Size>) -> Self {
        ConvConfig {
            filters,
            kernel_size: kernel_size.into(),
            strides: one(),
            padding: Padding::Valid,
            dilation_rate: one(),
            groups: 1,
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
            activity_regularizer: None,
            name: None,
            input_shape: None,
            inputs: None,
        }
    }
}

/// Keras's `DepthwiseConv2D` arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepthwiseConv2dConfig {
    pub kernel_size: Size,
    #[serde(default = "one")]
    pub strides: Size,
    #[serde(default)]
    pub padding: Padding,
    /// Output channels per input channel.
    #[serde(default = "one_group")]
    pub depth_multiplier: usize,
    #[serde(default = "one")]
    pub dilation_rate: Size,
    #[serde(default)]
    pub activation: Activation,
    #[serde(default = "yes")]
    pub use_bias: bool,
    #[serde(default)]
    pub depthwise_initializer: Initializer,
    #[serde(default = "zeros")]
    pub bias_initializer: Initializer,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depthwise_regularizer: Option<Regularizer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias_regularizer: Option<Regularizer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_regularizer: Option<Regularizer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Vec<String>>,
}

/// Which Keras layer a [`Conv`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Conv1d,
    Conv2d,
    Depthwise,
}

/// What every form reads at build: the normalized arguments.
struct Parts {
    filters_per_group_or_multiplier: usize,
    kernel: [usize; 2],
    args: WindowArgs,
    groups: Option<usize>,
    use_bias: bool,
    inits: (Initializer, Initializer),
    regularizers: [Option<Regularizer>; 3],
}

/// A convolution layer (Conv1D, Conv2D or DepthwiseConv2D).
#[derive(Clone, Debug)]
pub struct Conv {
    form: Form,
    conv: Option<ConvConfig>,
    depthwise: Option<DepthwiseConv2dConfig>,
    name: String,
    kernel: Option<ParamId>,
    bias: Option<ParamId>,
    /// Set at build: the window arguments, the groups, and for depthwise the kernel
    /// shape the tape op reads (`[kh, kw, 1, c·multiplier]`).
    args: WindowArgs,
    groups: usize,
    depthwise_shape: Option<[usize; 4]>,
}

impl Conv {
    fn with(form: Form, conv: Option<ConvConfig>, depthwise: Option<DepthwiseConv2dConfig>) -> Self {
        let name = conv.as_ref().and_then(|c| c.name.clone()).or(depthwise.as_ref().and_then(|c| c.name.clone())).unwrap_or_default();
        Conv { form, conv, depthwise, name, kernel: None, bias: None, args: WindowArgs::new([1, 1]), groups: 1, depthwise_shape: None }
    }
    /// Keras's `Conv2D`.
    pub fn conv2d(config: ConvConfig) -> Self {
        Conv::with(Form::Conv2d, Some(config), None)
    }
    /// Keras's `Conv1D`.
    pub fn conv1d(config: ConvConfig) -> Self {
        Conv::with(Form::Conv1d, Some(config), None)
    }
    /// Keras's `DepthwiseConv2D`.
    pub fn depthwise(config: DepthwiseConv2dConfig) -> Self {
        Conv::with(Form::Depthwise, None, Some(config))
    }
    pub fn kernel(&self) -> Option<ParamId> {
        self.kernel
    }
    pub fn bias(&self) -> Option<ParamId> {
        self.bias
    }

    fn spatial_rank(&self) -> usize {
        if self.form == Form::Conv1d { 1 } else { 2 }
    }

    fn parts(&self) -> Result<Parts> {
        let what = format!("layer '{}' ({})", self.name, self.kind());
        let rank = self.spatial_rank();
        Ok(match (&self.conv, &self.depthwise) {
            (Some(c), _) => Parts {
                filters_per_group_or_multiplier: c.filters,
                kernel: c.kernel_size.axes(&format!("{what} kernel_size"), rank)?,
                args: WindowArgs {
                    size: [0, 0],
                    strides: c.strides.axes(&format!("{what} strides"), rank)?,
                    dilation: c.dilation_rate.axes(&format!("{what} dilation_rate"), rank)?,
                    padding: c.padding,
                },
                groups: Some(c.groups),
                use_bias: c.use_bias,
                inits: (c.kernel_initializer, c.bias_initializer),
                regularizers: [c.kernel_regularizer, c.bias_regularizer, c.activity_regularizer],
            },
            (None, Some(d)) => Parts {
                filters_per_group_or_multiplier: d.depth_multiplier,
                kernel: d.kernel_size.axes(&format!("{what} kernel_size"), 2)?,
                args: WindowArgs {
                    size: [0, 0],
                    strides: d.strides.axes(&format!("{what} strides"), 2)?,
                    dilation: d.dilation_rate.axes(&format!("{what} dilation_rate"), 2)?,
                    padding: d.padding,
                },
                groups: None,
                use_bias: d.use_bias,
                inits: (d.depthwise_initializer, d.bias_initializer),
                regularizers: [d.depthwise_regularizer, d.bias_regularizer, d.activity_regularizer],
            },
            (None, None) => unreachable!("a Conv has one of the two configs"),
        })
    }

    fn activation(&self) -> Activation {
        match (&self.conv, &self.depthwise) {
            (Some(c), _) => c.activation,
            (None, Some(d)) => d.activation,
            (None, None) => Activation::Linear,
        }
    }

    fn activity_regularizer(&self) -> Option<Regularizer> {
        self.conv.as_ref().and_then(|c| c.activity_regularizer).or(self.depthwise.as_ref().and_then(|d| d.activity_regularizer))
    }
}

impl Layer for Conv {
    fn kind(&self) -> &'static str {
        match self.form {
            Form::Conv1d => "Conv1D",
            Form::Conv2d => "Conv2D",
            Form::Depthwise => "DepthwiseConv2D",
        }
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn set_name(&mut self, name: String) {
        self.name = name;
    }
    fn default_name(&self) -> &'static str {
        match self.form {
            Form::Conv1d => "conv1d",
            Form::Conv2d => "conv2d",
            Form::Depthwise => "depthwise_conv2d",
        }
    }
    fn declared_input_shape(&self) -> Option<&[usize]> {
        self.conv.as_ref().map_or(self.depthwise.as_ref().and_then(|d| d.input_shape.as_deref()), |c| c.input_shape.as_deref())
    }
    fn declared_inputs(&self) -> Option<&[String]> {
        self.conv.as_ref().map_or(self.depthwise.as_ref().and_then(|d| d.inputs.as_deref()), |c| c.inputs.as_deref())
    }
    fn input_rank(&self) -> Option<usize> {
        Some(self.spatial_rank() + 1)
    }
    fn config(&self) -> LayerConfig {
        let name = Some(self.name.clone());
        match (self.form, &self.conv, &self.depthwise) {
            (Form::Conv1d, Some(c), _) => LayerConfig::Conv1d(ConvConfig { name, ..c.clone() }),
            (Form::Conv2d, Some(c), _) => LayerConfig::Conv2d(ConvConfig { name, ..c.clone() }),
            (_, _, Some(d)) => LayerConfig::DepthwiseConv2d(DepthwiseConv2dConfig { name, ..d.clone() }),
            _ => unreachable!("a Conv has the config of its form"),
        }
    }

    fn build(&mut self, input: &[usize], store: &mut ParamStore, rng: &mut Rng) -> Result<Vec<usize>> {
        let what = format!("layer '{}' ({})", self.name, self.kind());
        let p = self.parts()?;
        let rank = self.spatial_rank();
        let (h, w, c) = match (rank, input) {
            (2, [h, w, c]) => (*h, *w, *c),
            (1, [l, c]) => (1, *l, *c),
            _ => {
                let want = if rank == 2 { "a per-sample input [height, width, channels]" } else { "a per-sample input [length, channels]" };
                return Err(Error::shape(what, want, format!("{input:?}")));
            }
        };
        if p.filters_per_group_or_multiplier == 0 {
            let key = if self.form == Form::Depthwise { "depth_multiplier" } else { "filters" };
            return Err(Error::Config(format!("{what}: {key} must be at least 1")));
        }
        let (groups, filters, group_channels) = match p.groups {
            Some(g) if g == 0 || c % g != 0 || p.filters_per_group_or_multiplier % g != 0 => {
                return Err(Error::Config(format!(
                    "{what}: groups {g} must divide both the input channels ({c}) and filters ({})",
                    p.filters_per_group_or_multiplier
                )))
            }
            Some(g) => (g, p.filters_per_group_or_multiplier, c / g),
            None => (c, c * p.filters_per_group_or_multiplier, 1),
        };
        for (key, r) in ["kernel_regularizer", "bias_regularizer", "activity_regularizer"].iter().zip(p.regularizers) {
            if let Some(r) = r {
                r.check(&format!("{what} {key}"))?;
            }
        }
        let args = WindowArgs { size: p.kernel, ..p.args };
        let win = args.window(&what, 1, c, (h, w))?;
        let [kh, kw] = p.kernel;
        // Keras's kernel shapes: [kh, kw, c/groups, filters], [k, c/groups, filters],
        // and [kh, kw, c, multiplier] for depthwise.
        let kernel_dims: Vec<usize> = match self.form {
            Form::Conv2d => vec![kh, kw, group_channels, filters],
            Form::Conv1d => vec![kw, group_channels, filters],
            Form::Depthwise => vec![kh, kw, c, p.filters_per_group_or_multiplier],
        };
        // Keras's fans: the kernel's spatial taps times its last two axes.
        let taps: usize = kernel_dims[..kernel_dims.len() - 2].iter().product();
        let (fan_in, fan_out) = (taps * kernel_dims[kernel_dims.len() - 2], taps * kernel_dims[kernel_dims.len() - 1]);
        let (kernel_init, bias_init) = p.inits;
        self.kernel = Some(store.add(format!("{}.kernel", self.name), Shape::new(&kernel_dims)?, |k| kernel_init.fill(k, fan_in, fan_out, rng)));
        self.bias = if p.use_bias { Some(store.add(format!("{}.bias", self.name), Shape::new(&[filters])?, |b| bias_init.fill(b, fan_in, fan_out, rng))) } else { None };
        self.args = args;
        self.groups = groups;
        self.depthwise_shape = (self.form == Form::Depthwise).then_some([kh, kw, 1, filters]);
        Ok(if rank == 2 { vec![win.rows.out, win.cols.out, filters] } else { vec![win.cols.out, filters] })
    }

    fn forward(&self, tape: &mut Tape, store: &ParamStore, x: Var, _training: bool) -> Result<Var> {
        let kernel = self.kernel.ok_or_else(|| Error::State(format!("layer '{}' used before build", self.name)))?;
        let mut w = tape.param(store, kernel);
        if let Some(dims) = self.depthwise_shape {
            w = tape.reshape(store, w, &dims)?;
        }
        let b = self.bias.map(|b| tape.param(store, b));
        let act = self.activation();
        let y = tape.conv2d(store, x, w, b, self.args, self.groups, act)?;
        Ok(match self.activity_regularizer().filter(|r| !r.is_zero()) {
            Some(r) => tape.activity_penalty(store, y, r.l1, r.l2),
            None => y,
        })
    }

    fn params(&self) -> Vec<ParamId> {
        self.kernel.into_iter().chain(self.bias).collect()
    }
    fn output_activation(&self) -> Option<Activation> {
        Some(self.activation())
    }
    /// Called every step: reads the configs directly (no `parts()`, which formats names).
    fn regularizers(&self, f: &mut dyn FnMut(ParamId, Regularizer)) {
        let (kernel, bias) = match (&self.conv, &self.depthwise) {
            (Some(c), _) => (c.kernel_regularizer, c.bias_regularizer),
            (None, Some(d)) => (d.depthwise_regularizer, d.bias_regularizer),
            (None, None) => (None, None),
        };
        if let (Some(id), Some(r)) = (self.kernel, kernel) {
            f(id, r);
        }
        if let (Some(id), Some(r)) = (self.bias, bias) {
            f(id, r);
        }
    }
}
