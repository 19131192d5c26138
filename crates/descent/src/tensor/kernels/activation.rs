//! Activation functions: forward in place over a row-major `[rows, cols]` buffer and
//! backward from the saved output (and, for GELU only, the saved input).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::simd::{fast_erf, fast_exp};

/// Every activation, with Keras's names and default parameters.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Activation {
    #[default]
    Linear,
    Relu,
    /// `x` for x > 0, else `alpha·x` (Keras's activation default alpha = 0.2).
    LeakyRelu { alpha: f32 },
    /// `x` for x > 0, else `alpha·(eˣ − 1)` (alpha = 1).
    Elu { alpha: f32 },
    /// `x·Φ(x)`; with `approximate`, the tanh form `0.5x(1 + tanh(√(2/π)(x + 0.044715x³)))`.
    Gelu { approximate: bool },
    Sigmoid,
    Tanh,
    /// Row-wise `eˣ / Σ eˣ` over the last axis.
    Softmax,
    /// `ln(1 + eˣ)`.
    Softplus,
}

impl Activation {
    pub const NAMES: [&'static str; 9] =
        ["linear", "relu", "leaky_relu", "elu", "gelu", "sigmoid", "tanh", "softmax", "softplus"];

    pub fn name(&self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Elu { .. } => "elu",
            Activation::Gelu { .. } => "gelu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
            Activation::Softplus => "softplus",
        }
    }

    /// Whether the backward pass needs the pre-activation input (not derivable from the output).
    pub fn needs_input_for_backward(&self) -> bool {
        matches!(self, Activation::Gelu { .. })
    }

    /// Parses a name with optional parameters (Keras defaults otherwise).
    pub fn from_parts(name: &str, alpha: Option<f32>, approximate: Option<bool>) -> Result<Self, String> {
        let act = match name {
            "linear" | "identity" | "none" => Activation::Linear,
            "relu" => Activation::Relu,
            "leaky_relu" => Activation::LeakyRelu { alpha: alpha.unwrap_or(0.2) },
            "elu" => Activation::Elu { alpha: alpha.unwrap_or(1.0) },
            "gelu" => Activation::Gelu { approximate: approximate.unwrap_or(false) },
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "softmax" => Activation::Softmax,
            "softplus" => Activation::Softplus,
            other => {
                return Err(format!("unknown activation `{other}`, expected one of {}", Self::NAMES.join(", ")));
            }
        };
        if let Activation::LeakyRelu { alpha } | Activation::Elu { alpha } = act {
            if !(alpha.is_finite() && alpha >= 0.0) {
                return Err(format!("activation `{name}` needs alpha ≥ 0, got {alpha}"));
            }
        } else if alpha.is_some() {
            return Err(format!("activation `{name}` takes no alpha"));
        }
        if approximate.is_some() && !matches!(act, Activation::Gelu { .. }) {
            return Err(format!("activation `{name}` takes no `approximate`"));
        }
        Ok(act)
    }
}

impl FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Activation::from_parts(s, None, None)
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::LeakyRelu { alpha } | Activation::Elu { alpha } => write!(f, "{}(alpha={alpha})", self.name()),
            Activation::Gelu { approximate: true } => write!(f, "gelu(approximate)"),
            _ => f.write_str(self.name()),
        }
    }
}

/// In configs an activation is a name (`"relu"`) or a table
/// (`{ name = "leaky_relu", alpha = 0.1 }`).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum ActivationRepr {
    Name(String),
    Table(ActivationTable),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivationTable {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alpha: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    approximate: Option<bool>,
}

impl Serialize for Activation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let repr = match *self {
            Activation::LeakyRelu { alpha } | Activation::Elu { alpha } => {
                ActivationRepr::Table(ActivationTable { name: self.name().into(), alpha: Some(alpha), approximate: None })
            }
            Activation::Gelu { approximate: true } => {
                ActivationRepr::Table(ActivationTable { name: "gelu".into(), alpha: None, approximate: Some(true) })
            }
            _ => ActivationRepr::Name(self.name().into()),
        };
        repr.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Activation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let repr = ActivationRepr::deserialize(d).map_err(|_| {
            serde::de::Error::custom(format!(
                "an activation is a name ({}) or a table {{ name, alpha, approximate }}",
                Activation::NAMES.join(", ")
            ))
        })?;
        let parsed = match repr {
            ActivationRepr::Name(n) => Activation::from_parts(&n, None, None),
            ActivationRepr::Table(t) => Activation::from_parts(&t.name, t.alpha, t.approximate),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const INV_SQRT_2PI: f32 = 0.398_942_3;

#[inline(always)]
fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + fast_exp(-z))
}

#[inline(always)]
fn gelu(z: f32, approximate: bool) -> f32 {
    if approximate {
        0.5 * z * (1.0 + (SQRT_2_OVER_PI * (z + GELU_C * z * z * z)).tanh())
    } else {
        0.5 * z * (1.0 + fast_erf(z * FRAC_1_SQRT_2))
    }
}

#[inline(always)]
fn gelu_grad(z: f32, approximate: bool) -> f32 {
    if approximate {
        let t = (SQRT_2_OVER_PI * (z + GELU_C * z * z * z)).tanh();
        0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * z * z)
    } else {
        let cdf = 0.5 * (1.0 + fast_erf(z * FRAC_1_SQRT_2));
        cdf + z * INV_SQRT_2PI * fast_exp(-0.5 * z * z)
    }
}

simd_dispatch! {
    /// `x[i, j] = act(x[i, j] + bias[j])` in place; `bias` may be empty (no bias).
    /// Dense layers call this right after the GEMM: bias and activation in one pass.
    pub fn bias_act_inplace(x: &mut [f32], bias: &[f32], cols: usize, act: Activation) {
        if !bias.is_empty() {
            for row in x.chunks_exact_mut(cols) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += *b;
                }
            }
        }
        match act {
            Activation::Linear => {}
            Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::LeakyRelu { alpha } => x.iter_mut().for_each(|v| *v = if *v > 0.0 { *v } else { alpha * *v }),
            Activation::Elu { alpha } => x.iter_mut().for_each(|v| *v = if *v > 0.0 { *v } else { alpha * v.exp_m1() }),
            Activation::Gelu { approximate } => x.iter_mut().for_each(|v| *v = gelu(*v, approximate)),
            Activation::Sigmoid => x.iter_mut().for_each(|v| *v = sigmoid(*v)),
            Activation::Tanh => x.iter_mut().for_each(|v| *v = v.tanh()),
            Activation::Softplus => x.iter_mut().for_each(|v| *v = v.max(0.0) + (-v.abs()).exp().ln_1p()),
            Activation::Softmax => {
                for row in x.chunks_exact_mut(cols) {
                    softmax_row(row);
                }
            }
        }
    }
}

/// In-place numerically stable softmax of one row.
#[inline(always)]
pub fn softmax_row(row: &mut [f32]) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = fast_exp(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    row.iter_mut().for_each(|v| *v *= inv);
}

simd_dispatch! {
    /// Turns the output gradient `g = ∂L/∂y` into `∂L/∂z` in place, for `y = act(z)`.
    /// `y` is the saved output; `z` the saved input (only read for GELU, else may be empty).
    pub fn act_backward_inplace(g: &mut [f32], y: &[f32], z: &[f32], cols: usize, act: Activation) {
        match act {
            Activation::Linear => {}
            // relu'(z) = [z > 0] = [y > 0]
            Activation::Relu => g.iter_mut().zip(y).for_each(|(g, y)| *g = if *y > 0.0 { *g } else { 0.0 }),
            // leaky'(z) = 1 if z > 0 else alpha; sign(y) = sign(z) for alpha ≥ 0
            Activation::LeakyRelu { alpha } => {
                g.iter_mut().zip(y).for_each(|(g, y)| *g = if *y > 0.0 { *g } else { alpha * *g })
            }
            // elu'(z) = 1 if z > 0 else alpha·eᶻ = y + alpha
            Activation::Elu { alpha } => {
                g.iter_mut().zip(y).for_each(|(g, y)| *g = if *y > 0.0 { *g } else { *g * (*y + alpha) })
            }
            // gelu'(z) = Φ(z) + z·φ(z)  (or the derivative of the tanh form)
            Activation::Gelu { approximate } => {
                g.iter_mut().zip(z).for_each(|(g, z)| *g *= gelu_grad(*z, approximate))
            }
            // σ' = y(1 − y)
            Activation::Sigmoid => g.iter_mut().zip(y).for_each(|(g, y)| *g *= *y * (1.0 - *y)),
            // tanh' = 1 − y²
            Activation::Tanh => g.iter_mut().zip(y).for_each(|(g, y)| *g *= 1.0 - *y * *y),
            // softplus'(z) = σ(z) = 1 − e^(−y)
            Activation::Softplus => g.iter_mut().zip(y).for_each(|(g, y)| *g *= 1.0 - fast_exp(-*y)),
            // softmax: ∂L/∂z_i = y_i (g_i − Σ_j g_j y_j), row by row
            Activation::Softmax => {
                for (gr, yr) in g.chunks_exact_mut(cols).zip(y.chunks_exact(cols)) {
                    let dot: f32 = gr.iter().zip(yr).map(|(g, y)| g * y).sum();
                    gr.iter_mut().zip(yr).for_each(|(g, y)| *g = *y * (*g - dot));
                }
            }
        }
    }
}
