//! A linear stack of layers (Keras's `Sequential`). Training methods (`compile`, `fit`,
//! `evaluate`, `predict`) are in the `train` module.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::layer::{Layer, LayerConfig};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::rng;

/// Default seed: runs are reproducible unless the user asks otherwise.
pub const DEFAULT_SEED: u64 = 42;

/// Stream of the seed used for weight initialization.
const INIT_STREAM: u64 = 1;

/// The serializable description of a model (saved as `model.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(default = "default_name")]
    pub name: String,
    /// Per-sample input shape, e.g. `[64]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    pub layers: Vec<LayerConfig>,
}

fn default_name() -> String {
    "sequential".into()
}

pub struct Sequential {
    pub(crate) name: String,
    pub(crate) layers: Vec<Box<dyn Layer>>,
    pub(crate) store: ParamStore,
    pub(crate) input_shape: Option<Vec<usize>>,
    pub(crate) output_shapes: Vec<Vec<usize>>,
    pub(crate) seed: u64,
    pub(crate) tape: Tape,
    pub(crate) compiled: Option<crate::train::Compiled>,
}

impl Sequential {
    /// A model from layers. If the first layer declares `input_shape`, it is built now
    /// (as Keras does); otherwise at the first `fit`/`build`.
    pub fn new(layers: Vec<Box<dyn Layer>>) -> Result<Self> {
        let mut model = Sequential {
            name: default_name(),
            layers: Vec::new(),
            store: ParamStore::new(),
            input_shape: None,
            output_shapes: Vec::new(),
            seed: DEFAULT_SEED,
            tape: Tape::new(),
            compiled: None,
        };
        let mut counts: HashMap<&'static str, usize> = HashMap::new();
        let mut taken: Vec<String> = layers.iter().map(|l| l.name().to_string()).filter(|n| !n.is_empty()).collect();
        for mut layer in layers {
            if layer.name().is_empty() {
                // Keras's automatic names: dense, dense_1, dense_2, …
                let base = layer.default_name();
                let name = loop {
                    let c = counts.entry(base).or_insert(0);
                    let candidate = if *c == 0 { base.to_string() } else { format!("{base}_{c}") };
                    *c += 1;
                    if !taken.contains(&candidate) {
                        break candidate;
                    }
                };
                taken.push(name.clone());
                layer.set_name(name);
            }
            model.layers.push(layer);
        }
        let mut seen = std::collections::HashSet::new();
        for l in &model.layers {
            if !seen.insert(l.name().to_string()) {
                return Err(Error::Config(format!("two layers are named '{}': layer names must be unique", l.name())));
            }
        }
        if model.layers.is_empty() {
            return Err(Error::Config("a Sequential model needs at least one layer".into()));
        }
        if let Some(shape) = model.layers[0].declared_input_shape().map(<[usize]>::to_vec) {
            model.build(&shape)?;
        }
        Ok(model)
    }

    pub fn from_config(config: ModelConfig) -> Result<Self> {
        let mut model = Sequential::new(config.layers.into_iter().map(LayerConfig::into_layer).collect())?;
        model.name = config.name;
        if let (Some(shape), false) = (config.input_shape, model.is_built()) {
            model.build(&shape)?;
        }
        Ok(model)
    }

    pub fn config(&self) -> ModelConfig {
        ModelConfig {
            name: self.name.clone(),
            input_shape: self.input_shape.clone(),
            layers: self.layers.iter().map(|l| l.config()).collect(),
        }
    }

    /// Sets the seed for weight initialization (rebuilding if already built), shuffling
    /// and splits. The same seed gives bit-identical training.
    pub fn with_seed(mut self, seed: u64) -> Result<Self> {
        self.seed = seed;
        if let Some(shape) = self.input_shape.clone() {
            self.build(&shape)?;
        }
        Ok(self)
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn is_built(&self) -> bool {
        self.input_shape.is_some()
    }

    /// Creates all parameters for a per-sample input shape (e.g. `[100]`).
    pub fn build(&mut self, input_shape: &[usize]) -> Result<()> {
        // Twice: a sizing pass lays the tensors out, so that the real one writes them
        // into buffers allocated once at their final size (growing and then moving them
        // to huge pages touched every page two or three times: 5–25 ms for W2's model).
        let mut sizing = ParamStore::sizing();
        let mut shape = input_shape.to_vec();
        for layer in &mut self.layers {
            shape = layer.build(&shape, &mut sizing, &mut rng::derive(self.seed, INIT_STREAM))?;
        }
        let mut store = ParamStore::with_capacity(sizing.len());
        let mut rng = rng::derive(self.seed, INIT_STREAM);
        let mut shape = input_shape.to_vec();
        let mut outputs = Vec::with_capacity(self.layers.len());
        for layer in &mut self.layers {
            shape = layer.build(&shape, &mut store, &mut rng)?;
            outputs.push(shape.clone());
        }
        debug_assert_eq!(store.len(), sizing.len(), "both passes lay out the same tensors");
        self.store = store;
        self.output_shapes = outputs;
        self.input_shape = Some(input_shape.to_vec());
        Ok(())
    }

    pub fn input_shape(&self) -> Option<&[usize]> {
        self.input_shape.as_deref()
    }

    /// Per-sample output shape (after build).
    pub fn output_shape(&self) -> Option<&[usize]> {
        self.output_shapes.last().map(Vec::as_slice)
    }

    /// Number of outputs per sample.
    pub fn output_units(&self) -> usize {
        self.output_shape().map_or(0, |s| s.iter().product())
    }

    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }
    pub fn params(&self) -> &ParamStore {
        &self.store
    }
    pub fn params_mut(&mut self) -> &mut ParamStore {
        &mut self.store
    }
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Applies all layers to `x` on `tape`.
    pub fn forward(&self, tape: &mut Tape, x: Var, training: bool) -> Result<Var> {
        let mut h = x;
        for layer in &self.layers {
            h = layer.forward(tape, &self.store, h, training)?;
        }
        Ok(h)
    }

    /// A Keras-style table: layers, output shapes, parameter counts.
    pub fn summary(&self) -> String {
        let mut rows = vec![("Layer (type)".to_string(), "Output Shape".to_string(), "Param #".to_string())];
        for (i, layer) in self.layers.iter().enumerate() {
            let shape = self.output_shapes.get(i).map_or("?".to_string(), |s| {
                let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
                format!("(None, {})", dims.join(", "))
            });
            let count: usize = layer.params().iter().map(|p| self.store.entry(*p).shape.numel()).sum();
            rows.push((format!("{} ({})", layer.name(), layer.kind()), shape, group_digits(count)));
        }
        let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0) + 2;
        let w1 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0) + 2;
        let w2 = rows.iter().map(|r| r.2.chars().count()).max().unwrap_or(0);
        let line = "─".repeat(w0 + w1 + w2);
        let mut out = format!("Model: \"{}\"\n{line}\n", self.name);
        for (i, (a, b, c)) in rows.iter().enumerate() {
            out += &format!("{a:<w0$}{b:<w1$}{c:>w2$}\n");
            if i == 0 {
                out += &format!("{line}\n");
            }
        }
        let total = self.store.count();
        let trainable: usize =
            self.store.entries().iter().filter(|e| e.trainable).map(|e| e.shape.numel()).sum();
        out += &format!("{line}\n Total params: {} ({})\n", group_digits(total), human_bytes(total * 4));
        out += &format!(" Trainable params: {}\n", group_digits(trainable));
        out += &format!(" Non-trainable params: {}\n", group_digits(total - trainable));
        out
    }
}

fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn human_bytes(b: usize) -> String {
    if b < 1024 {
        format!("{b} B")
    } else if b < 1 << 20 {
        format!("{:.2} KB", b as f64 / 1024.0)
    } else {
        format!("{:.2} MB", b as f64 / (1 << 20) as f64)
    }
}
