//! A network: Keras's two model forms over one graph. A `Network` is a list of layer
//! calls (nodes), each applied to tensors that come before it: the inputs first, then
//! each node's output in order. [`Network::sequential`] makes the chain; the functional
//! form ([`Network::functional`] over `Input` and `layer.call(&x)`, or `inputs = [...]`
//! in a config) adds branches, merges (`Add`, `Concatenate`), several inputs and
//! outputs, and layers shared by several calls. A network describes a model and owns
//! its parameters; what trains it (tape, optimizer, loss, metrics) is the `train`
//! module's `Trainer`, and Keras's `Model` / `Sequential` pair the two.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::layer::{Layer, LayerConfig};
use crate::autograd::{ParamStore, Tape, Var};
use crate::error::{Error, Result};
use crate::rng;
use crate::tensor::kernels::activation::Activation;
use crate::tensor::Shape;

/// Default seed: runs are reproducible unless the user asks otherwise.
pub const DEFAULT_SEED: u64 = 42;

/// Stream of the seed used for weight initialization.
const INIT_STREAM: u64 = 1;

/// A model input: its name (what layers refer to) and per-sample shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    pub name: String,
    /// Per-sample shape, e.g. `[64]` (default: the data's features).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<usize>>,
}

/// The serializable description of a model (saved as `model.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    #[serde(default = "default_name")]
    pub name: String,
    /// Per-sample input shape of a Sequential model, e.g. `[64]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    /// A functional model's inputs, in the order data is given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputConfig>,
    pub layers: Vec<LayerConfig>,
    /// A functional model's outputs, by layer name (default: the last layer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<String>,
}

impl ModelConfig {
    /// Functional when it names inputs or outputs or any layer says what it is applied to.
    pub fn is_functional(&self) -> bool {
        !self.inputs.is_empty()
            || !self.outputs.is_empty()
            || self.layers.iter().any(|l| l.inputs().is_some() || matches!(l, LayerConfig::Call(_)))
    }

    /// Puts the inputs where a model reads them, for a config written as an experiment's
    /// `[model]` (or by the Python front): a sequential model's first layer's
    /// `input_shape` becomes the model's, and a functional model that declares no inputs
    /// gets one, `input_layer`.
    pub fn normalize_inputs(&mut self) {
        if self.is_functional() && self.inputs.is_empty() {
            self.inputs.push(InputConfig { name: "input_layer".into(), shape: None });
        } else if !self.is_functional() && self.input_shape.is_none() {
            self.input_shape = self.layers.first_mut().and_then(|l| l.input_shape_mut().take());
        }
    }

    /// Whether every input's shape is declared (the model can be built without data).
    pub fn declares_input_shapes(&self) -> bool {
        self.input_shape.is_some() || (!self.inputs.is_empty() && self.inputs.iter().all(|i| i.shape.is_some()))
    }
}

fn default_name() -> String {
    "sequential".into()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    Sequential,
    Functional,
}

/// A layer's first call: its input shapes and output shape (later calls must match).
type FirstCall = (Vec<Vec<usize>>, Vec<usize>);

/// One call of a layer: which layer, applied to which tensors (by tensor id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) layer: usize,
    pub(crate) inputs: Vec<usize>,
    /// The output's name when this is a further call of its layer (a shared layer);
    /// a layer's first call is named by the layer.
    pub(crate) name: Option<String>,
}

/// Layers, their graph and the flat parameter store.
pub struct Network {
    pub(crate) name: String,
    kind: ModelKind,
    pub(crate) layers: Vec<Box<dyn Layer>>,
    inputs: Vec<InputConfig>,
    nodes: Vec<Node>,
    /// Tensor ids of the outputs.
    outputs: Vec<usize>,
    /// Per-sample shape of every tensor (inputs, then each node's output); empty until built.
    shapes: Vec<Vec<usize>>,
    pub(crate) store: ParamStore,
    pub(crate) seed: u64,
}

/// Keras's automatic names (`dense`, `dense_1`, …) for the unnamed, then a check that
/// every name — layers' and inputs' — is unique.
fn assign_names(layers: &mut [Box<dyn Layer>], inputs: &mut [InputConfig]) -> Result<()> {
    let mut taken: Vec<String> = layers.iter().map(|l| l.name().to_string()).chain(inputs.iter().map(|i| i.name.clone())).filter(|n| !n.is_empty()).collect();
    let mut counts: HashMap<&'static str, usize> = HashMap::new();
    let mut fresh = |base: &'static str, taken: &mut Vec<String>| loop {
        let c = counts.entry(base).or_insert(0);
        let candidate = if *c == 0 { base.to_string() } else { format!("{base}_{c}") };
        *c += 1;
        if !taken.contains(&candidate) {
            taken.push(candidate.clone());
            break candidate;
        }
    };
    for input in inputs.iter_mut().filter(|i| i.name.is_empty()) {
        input.name = fresh("input_layer", &mut taken);
    }
    for layer in layers.iter_mut().filter(|l| l.name().is_empty()) {
        let name = fresh(layer.default_name(), &mut taken);
        layer.set_name(name);
    }
    let mut seen = std::collections::HashSet::new();
    for name in layers.iter().map(|l| l.name()).chain(inputs.iter().map(|i| i.name.as_str())) {
        if !seen.insert(name) {
            return Err(Error::Config(format!("two layers are named '{name}': layer and input names must be unique")));
        }
    }
    Ok(())
}

/// The default name of the k-th further call (k ≥ 1) of `layer`: `<layer>_call_<k>`.
fn call_name(layer: &str, k: usize) -> String {
    format!("{layer}_call_{k}")
}

/// Names the output of every further call of a layer that has no name yet
/// (`<layer>_call_<k>`), and checks call names against every other name.
fn name_later_calls(layers: &[Box<dyn Layer>], inputs: &[InputConfig], nodes: &mut [Node]) -> Result<()> {
    let mut calls = vec![0usize; layers.len()];
    let mut taken: std::collections::HashSet<String> = layers.iter().map(|l| l.name().to_string()).chain(inputs.iter().map(|i| i.name.clone())).collect();
    for node in nodes.iter_mut() {
        calls[node.layer] += 1;
        if calls[node.layer] == 1 {
            node.name = None;
            continue;
        }
        let name = node.name.take().unwrap_or_else(|| call_name(layers[node.layer].name(), calls[node.layer] - 1));
        if !taken.insert(name.clone()) {
            return Err(Error::Config(format!("two layers are named '{name}': layer and input names must be unique")));
        }
        node.name = Some(name);
    }
    Ok(())
}

impl Network {
    /// Keras's `Sequential`: a chain of layers, each applied to the previous one's
    /// output. If the first layer declares `input_shape`, it is built now (as Keras
    /// does); otherwise at the first `fit`/`build`.
    pub fn sequential(layers: Vec<Box<dyn Layer>>) -> Result<Network> {
        if layers.is_empty() {
            return Err(Error::Config("a Sequential model needs at least one layer".into()));
        }
        let n = layers.len();
        let declared = layers[0].declared_input_shape().map(<[usize]>::to_vec);
        let nodes = (0..n).map(|i| Node { layer: i, inputs: vec![i], name: None }).collect();
        let input = InputConfig { name: "input_layer".into(), shape: declared };
        Network::assemble(default_name(), ModelKind::Sequential, layers, vec![input], nodes, vec![n])
    }

    /// Checks a graph, names its layers and builds it when every input's shape is known.
    pub(crate) fn assemble(
        name: String,
        kind: ModelKind,
        mut layers: Vec<Box<dyn Layer>>,
        mut inputs: Vec<InputConfig>,
        mut nodes: Vec<Node>,
        outputs: Vec<usize>,
    ) -> Result<Network> {
        assign_names(&mut layers, &mut inputs)?;
        name_later_calls(&layers, &inputs, &mut nodes)?;
        if inputs.is_empty() || outputs.is_empty() {
            return Err(Error::Config("a model needs at least one input and one output".into()));
        }
        for (j, node) in nodes.iter().enumerate() {
            // Every call reads tensors made before it, so the node order is a topological one.
            debug_assert!(node.layer < layers.len() && node.inputs.iter().all(|&t| t < inputs.len() + j));
        }
        let mut model = Network {
            name,
            kind,
            layers,
            inputs,
            nodes,
            outputs,
            shapes: Vec::new(),
            store: ParamStore::new(),
            seed: DEFAULT_SEED,
        };
        let declared: Option<Vec<Vec<usize>>> = model.inputs.iter().map(|i| i.shape.clone()).collect();
        if let Some(shapes) = declared {
            model.build_inputs(&shapes)?;
        }
        Ok(model)
    }

    /// The model a (sequential or functional) configuration describes. A functional
    /// layer without `inputs` is applied to the layer before it (the first input for
    /// the first layer); names refer to inputs and earlier layers only.
    pub fn from_config(config: ModelConfig) -> Result<Network> {
        if !config.is_functional() {
            let mut model = Network::sequential(config.layers.into_iter().map(LayerConfig::into_layer).collect::<Result<_>>()?)?;
            model.name = config.name;
            if let (Some(shape), false) = (config.input_shape, model.is_built()) {
                model.build(&shape)?;
            }
            return Ok(model);
        }
        let mut inputs = config.inputs;
        if inputs.is_empty() {
            inputs.push(InputConfig { name: "input_layer".into(), shape: config.input_shape });
        }
        if config.layers.is_empty() {
            return Err(Error::Config("a model needs at least one layer".into()));
        }
        // Entries in order: a new layer, or a further call of an earlier one.
        enum Entry {
            Layer(usize),
            Call(super::layer::CallConfig),
        }
        let mut layers: Vec<Box<dyn Layer>> = Vec::with_capacity(config.layers.len());
        let mut entries = Vec::with_capacity(config.layers.len());
        for entry in config.layers {
            match entry {
                LayerConfig::Call(call) => entries.push(Entry::Call(call)),
                other => {
                    entries.push(Entry::Layer(layers.len()));
                    layers.push(other.into_layer()?);
                }
            }
        }
        assign_names(&mut layers, &mut inputs)?;
        let n_in = inputs.len();
        let mut tensor_of: HashMap<String, usize> = inputs.iter().enumerate().map(|(i, x)| (x.name.clone(), i)).collect();
        let mut defined = vec![false; layers.len()];
        let mut nodes: Vec<Node> = Vec::with_capacity(entries.len());
        for (j, entry) in entries.iter().enumerate() {
            let (layer, declared, name) = match entry {
                Entry::Layer(l) => (*l, layers[*l].declared_inputs(), None),
                Entry::Call(c) => {
                    let l = layers.iter().position(|x| x.name() == c.layer).filter(|&l| defined[l]).ok_or_else(|| {
                        Error::Config(format!("`model.layers[{j}]` (a call): '{}' is not an earlier layer of the model", c.layer))
                    })?;
                    let k = nodes.iter().filter(|n| n.layer == l).count();
                    (l, c.inputs.as_deref(), Some(c.name.clone().unwrap_or_else(|| call_name(&c.layer, k))))
                }
            };
            let what = name.as_deref().unwrap_or(layers[layer].name()).to_string();
            let ins = match declared {
                Some(names) => names
                    .iter()
                    .map(|n| {
                        tensor_of.get(n).copied().ok_or_else(|| {
                            Error::Config(format!(
                                "`model.layers[{j}]` ('{what}'): input '{n}' is not a model input or an earlier layer (known: {})",
                                known_names(&tensor_of)
                            ))
                        })
                    })
                    .collect::<Result<Vec<_>>>()?,
                None if j == 0 => vec![0],
                None => vec![n_in + j - 1],
            };
            if ins.is_empty() {
                return Err(Error::Config(format!("`model.layers[{j}]` ('{what}'): `inputs` is empty")));
            }
            defined[layer] = true;
            nodes.push(Node { layer, inputs: ins, name });
            let out_name = nodes[j].name.clone().unwrap_or_else(|| layers[layer].name().to_string());
            if tensor_of.insert(out_name.clone(), n_in + j).is_some() {
                return Err(Error::Config(format!("two layers are named '{out_name}': layer and input names must be unique")));
            }
        }
        let outputs = if config.outputs.is_empty() {
            vec![n_in + nodes.len() - 1]
        } else {
            config
                .outputs
                .iter()
                .map(|n| {
                    tensor_of.get(n).copied().ok_or_else(|| {
                        Error::Config(format!("`model.outputs`: '{n}' is not a layer or input of the model (known: {})", known_names(&tensor_of)))
                    })
                })
                .collect::<Result<Vec<_>>>()?
        };
        let name = if config.name == default_name() { "functional".to_string() } else { config.name };
        Network::assemble(name, ModelKind::Functional, layers, inputs, nodes, outputs)
    }

    /// The graph as a config: layers in call order, each functional one with the names
    /// of what it is applied to; a further call of a shared layer is a `call` entry.
    pub fn config(&self) -> Result<ModelConfig> {
        if self.kind == ModelKind::Sequential {
            let layers = self.nodes.iter().map(|n| self.layers[n.layer].config()).collect();
            return Ok(ModelConfig { name: self.name.clone(), input_shape: self.input_shape().map(<[usize]>::to_vec), inputs: Vec::new(), layers, outputs: Vec::new() });
        }
        // A layer's first call is its entry; a further call of it is a `call` entry.
        let layers = self
            .nodes
            .iter()
            .map(|node| {
                let inputs = Some(node.inputs.iter().map(|&t| self.tensor_name(t).to_string()).collect());
                match &node.name {
                    None => {
                        let mut config = self.layers[node.layer].config();
                        *config.inputs_mut() = inputs;
                        config
                    }
                    Some(name) => LayerConfig::Call(super::layer::CallConfig {
                        layer: self.layers[node.layer].name().to_string(),
                        name: Some(name.clone()),
                        inputs,
                        input_shape: None,
                    }),
                }
            })
            .collect();
        let inputs = self.inputs.iter().enumerate().map(|(i, x)| InputConfig { name: x.name.clone(), shape: self.shapes.get(i).cloned().or(x.shape.clone()) }).collect();
        let outputs = self.outputs.iter().map(|&t| self.tensor_name(t).to_string()).collect();
        Ok(ModelConfig { name: self.name.clone(), input_shape: None, inputs, layers, outputs })
    }

    /// An input's name, or the name of the layer whose call made the tensor.
    fn tensor_name(&self, t: usize) -> &str {
        match t.checked_sub(self.inputs.len()) {
            None => &self.inputs[t].name,
            Some(j) => self.nodes[j].name.as_deref().unwrap_or(self.layers[self.nodes[j].layer].name()),
        }
    }

    pub fn kind(&self) -> ModelKind {
        self.kind
    }

    /// Renames the model (the run and summary title).
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.into();
        self
    }

    /// Sets the seed for weight initialization (rebuilding if already built), shuffling
    /// and splits. The same seed gives bit-identical training.
    pub fn with_seed(mut self, seed: u64) -> Result<Self> {
        self.seed = seed;
        if self.is_built() {
            let shapes = self.shapes[..self.inputs.len()].to_vec();
            self.build_inputs(&shapes)?;
        }
        Ok(self)
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn is_built(&self) -> bool {
        !self.shapes.is_empty()
    }

    /// Creates all parameters for a per-sample input shape (e.g. `[100]`) of a
    /// single-input model.
    pub fn build(&mut self, input_shape: &[usize]) -> Result<()> {
        if self.inputs.len() != 1 {
            return Err(Error::Config(format!("model '{}' has {} inputs: build it with one shape per input", self.name, self.inputs.len())));
        }
        self.build_inputs(&[input_shape.to_vec()])
    }

    /// Creates all parameters for one per-sample shape per input.
    pub fn build_inputs(&mut self, input_shapes: &[Vec<usize>]) -> Result<()> {
        if input_shapes.len() != self.inputs.len() {
            return Err(Error::shape(format!("building model '{}'", self.name), format!("{} input shapes", self.inputs.len()), input_shapes.len()));
        }
        for (input, shape) in self.inputs.iter().zip(input_shapes) {
            if shape.is_empty() || shape.len() >= Shape::MAX_RANK || shape.contains(&0) {
                return Err(Error::shape(
                    format!("input '{}' of model '{}'", input.name, self.name),
                    format!("a per-sample shape of 1 to {} positive sizes", Shape::MAX_RANK - 1),
                    format!("{shape:?}"),
                ));
            }
        }
        // Twice: a sizing pass lays the tensors out, so that the real one writes them
        // into buffers allocated once at their final size (growing and then moving them
        // to huge pages touched every page two or three times: 5–25 ms for W2's model).
        let mut sizing = ParamStore::sizing();
        self.build_pass(input_shapes, &mut sizing)?;
        let mut store = ParamStore::with_capacity(sizing.len());
        let shapes = self.build_pass(input_shapes, &mut store)?;
        debug_assert_eq!(store.len(), sizing.len(), "both passes lay out the same tensors");
        self.store = store;
        self.shapes = shapes;
        Ok(())
    }

    /// Builds every layer at its first call, in call order; a shared layer's later calls
    /// must see the shapes of its first. Returns every tensor's shape.
    fn build_pass(&mut self, input_shapes: &[Vec<usize>], store: &mut ParamStore) -> Result<Vec<Vec<usize>>> {
        let mut rng = rng::derive(self.seed, INIT_STREAM);
        let mut shapes = input_shapes.to_vec();
        let mut first_call: Vec<Option<FirstCall>> = vec![None; self.layers.len()];
        // Weights and gradients (f32 each) of a layout from a file must fit in memory:
        // checked layer by layer on the sizing pass, before anything is allocated.
        let memory = crate::tensor::alloc::physical_memory();
        for (j, node) in self.nodes.iter().enumerate() {
            let ins: Vec<Vec<usize>> = node.inputs.iter().map(|&t| shapes[t].clone()).collect();
            let out = match &first_call[node.layer] {
                Some((first_ins, out)) if *first_ins == ins => out.clone(),
                Some((first_ins, _)) => {
                    return Err(Error::shape(
                        format!("shared layer '{}' called again", self.layers[node.layer].name()),
                        format!("inputs {first_ins:?} (as its first call)"),
                        format!("{ins:?}"),
                    ))
                }
                None => {
                    let refs: Vec<&[usize]> = ins.iter().map(Vec::as_slice).collect();
                    // A layer's own value errors are at its entry (`model.layers[j]`, j in
                    // call order as in the config), so a config file can show the line.
                    let before = store.len();
                    let out = self.layers[node.layer].build_inputs(&refs, store, &mut rng).map_err(|e| match e {
                        Error::Config(_) => Error::invalid(&format!("model.layers[{j}]"), e),
                        other => other,
                    })?;
                    if store.len() > memory / 8 {
                        let layer = &self.layers[node.layer];
                        return Err(Error::invalid(
                            &format!("model.layers[{j}]"),
                            format!(
                                "layer '{}' would hold {} parameters (with inputs {ins:?}), {} GiB with their gradients: more than this machine's {} GiB of memory",
                                layer.name(),
                                store.len() - before,
                                (store.len() as u128 * 8) >> 30,
                                memory >> 30
                            ),
                        ));
                    }
                    first_call[node.layer] = Some((ins, out.clone()));
                    out
                }
            };
            shapes.push(out);
        }
        Ok(shapes)
    }

    /// The per-sample shape input `index` takes when none is declared, from the data's
    /// per-sample shape `sample`: as the data is, except that a layer reading it that
    /// needs a flat input (Dense) gets it flattened, and one that needs one more axis
    /// (Conv2D on `[28, 28]` images) gets a channel axis of 1 — no flattening unless
    /// the model asks for it.
    pub fn input_shape_for(&self, index: usize, sample: &[usize]) -> Vec<usize> {
        let wanted = self.nodes.iter().find(|n| n.inputs.contains(&index)).and_then(|n| self.layers[n.layer].input_rank());
        match wanted {
            Some(1) => vec![sample.iter().product()],
            Some(r) if sample.len() + 1 == r => sample.iter().copied().chain([1]).collect(),
            _ if sample.is_empty() => vec![1],
            _ => sample.to_vec(),
        }
    }

    /// Per-sample shape of the first input (after build).
    pub fn input_shape(&self) -> Option<&[usize]> {
        self.shapes.first().map(Vec::as_slice)
    }

    /// Per-sample shape of every input, in order (after build).
    pub fn input_shapes(&self) -> impl Iterator<Item = &[usize]> {
        self.shapes.iter().take(if self.is_built() { self.inputs.len() } else { 0 }).map(Vec::as_slice)
    }

    /// The shape a batch of `n` samples of input `index` is fed in: `[n, …input shape]`
    /// (a flat `[n, features]` before the model is built).
    pub fn input_batch_shape(&self, index: usize, n: usize, features: usize) -> Shape {
        let mut dims = [0usize; Shape::MAX_RANK];
        match self.input_shapes().nth(index) {
            Some(s) if s.len() < Shape::MAX_RANK && s.iter().product::<usize>() == features => {
                dims[0] = n;
                dims[1..=s.len()].copy_from_slice(s);
                Shape::new(&dims[..=s.len()]).expect("rank checked at build")
            }
            _ => Shape::matrix(n, features),
        }
    }

    pub fn num_inputs(&self) -> usize {
        self.inputs.len()
    }
    pub fn num_outputs(&self) -> usize {
        self.outputs.len()
    }
    /// The inputs' names, in the order data is given.
    pub fn input_names(&self) -> impl Iterator<Item = &str> {
        self.inputs.iter().map(|i| i.name.as_str())
    }

    /// Per-sample shape of the first output (after build).
    pub fn output_shape(&self) -> Option<&[usize]> {
        self.shapes.get(self.outputs[0]).map(Vec::as_slice)
    }

    /// Number of outputs per sample.
    pub fn output_units(&self) -> usize {
        self.output_units_of(0)
    }

    /// The per-sample shape of output `k` (after build; empty before).
    pub fn output_shape_of(&self, k: usize) -> &[usize] {
        self.outputs.get(k).and_then(|&t| self.shapes.get(t)).map_or(&[], |s| s.as_slice())
    }

    /// Values per sample of output `k` (after build).
    pub fn output_units_of(&self, k: usize) -> usize {
        self.outputs.get(k).and_then(|&t| self.shapes.get(t)).map_or(0, |s| s.iter().product())
    }

    /// The outputs' names (the layer calls that produce them), in order.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.outputs.iter().map(|&t| self.tensor_name(t))
    }

    /// The activation applied last on the way to output `k`, if any.
    pub fn output_activation_of(&self, k: usize) -> Option<Activation> {
        let j = self.outputs.get(k)?.checked_sub(self.inputs.len())?;
        self.layers[self.nodes[j].layer].output_activation()
    }

    /// The activation applied last on the way to the first output, if any (for the
    /// softmax-with-from_logits warning).
    pub fn output_activation(&self) -> Option<Activation> {
        self.output_activation_of(0)
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

    /// Applies the model to `x` on `tape` (a single-input model); returns its first output.
    pub fn forward(&self, tape: &mut Tape, x: Var, training: bool) -> Result<Var> {
        self.forward_inputs(tape, &[x], training)
    }

    /// Applies the model to one value per input; returns its first output.
    pub fn forward_inputs(&self, tape: &mut Tape, xs: &[Var], training: bool) -> Result<Var> {
        let mut vars = tape.take_graph_vars();
        let result = self.run_nodes(tape, xs, training, &mut vars);
        let out = vars.0.get(self.outputs[0]).copied();
        tape.return_graph_vars(vars);
        result?;
        out.ok_or_else(|| Error::State(format!("model '{}' computed no output", self.name)))
    }

    /// Applies the model to one value per input; `outputs` receives every output.
    pub fn forward_outputs(&self, tape: &mut Tape, xs: &[Var], training: bool, outputs: &mut Vec<Var>) -> Result<()> {
        let mut vars = tape.take_graph_vars();
        let result = self.run_nodes(tape, xs, training, &mut vars);
        outputs.clear();
        if result.is_ok() {
            outputs.extend(self.outputs.iter().map(|&t| vars.0[t]));
        }
        tape.return_graph_vars(vars);
        result
    }

    /// The output of layer `layer`'s first call in the last forward pass on `tape`.
    pub(crate) fn first_output_of(&self, tape: &Tape, layer: usize) -> Option<Var> {
        let node = self.nodes.iter().position(|n| n.layer == layer)?;
        tape.graph_var(self.inputs.len() + node)
    }

    /// The last axis of layer `layer`'s (first) output, once built.
    pub(crate) fn widest_output_of(&self, layer: usize) -> usize {
        let node = self.nodes.iter().position(|n| n.layer == layer);
        node.and_then(|k| self.shapes.get(self.inputs.len() + k)).and_then(|s| s.last().copied()).unwrap_or(0)
    }

    /// Whether every layer can decode a sequence position by position (a key/value
    /// cache for generation; see [`Network::forward_decode`]).
    pub fn decodes_incrementally(&self) -> bool {
        self.layers.iter().all(|l| l.decodes_incrementally())
    }

    /// The first output for new positions of one sequence, the first at absolute
    /// position `pos`, with `caches` (one per node, kept between calls) holding what
    /// the layers keep of earlier positions.
    pub fn forward_decode(&self, tape: &mut Tape, x: Var, pos: usize, caches: &mut Vec<super::DecodeCache>) -> Result<Var> {
        caches.resize_with(self.nodes.len(), Default::default);
        let mut vars = vec![x];
        let mut args = Vec::new();
        for (node, cache) in self.nodes.iter().zip(caches.iter_mut()) {
            args.clear();
            args.extend(node.inputs.iter().map(|&t| vars[t]));
            vars.push(self.layers[node.layer].forward_decode(tape, &self.store, &args, pos, cache)?);
        }
        Ok(vars[self.outputs[0]])
    }

    /// Every node in order; `vars.0` ends with every tensor's value, `vars.1` is scratch
    /// for one call's arguments (both reused from the tape: no allocation per step).
    fn run_nodes(&self, tape: &mut Tape, xs: &[Var], training: bool, (vars, args): &mut (Vec<Var>, Vec<Var>)) -> Result<()> {
        if xs.len() != self.inputs.len() {
            return Err(Error::shape(format!("model '{}'", self.name), format!("{} inputs", self.inputs.len()), xs.len()));
        }
        vars.extend_from_slice(xs);
        for node in &self.nodes {
            args.clear();
            args.extend(node.inputs.iter().map(|&t| vars[t]));
            let y = self.layers[node.layer].forward_inputs(tape, &self.store, args, training)?;
            vars.push(y);
        }
        Ok(())
    }

    /// A Keras-style table: layers, output shapes, parameter counts and, for functional
    /// models, the input rows and what each layer is connected to.
    pub fn summary(&self) -> String {
        let functional = self.kind == ModelKind::Functional;
        let shape_of = |t: usize| {
            self.shapes.get(t).map_or("?".to_string(), |s| {
                let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
                format!("(None, {})", dims.join(", "))
            })
        };
        let mut header = vec!["Layer (type)".to_string(), "Output Shape".to_string(), "Param #".to_string()];
        if functional {
            header.push("Connected to".to_string());
        }
        // Rows of cells; a cell may span several lines (one per connection).
        let mut rows: Vec<Vec<Vec<String>>> = vec![header.into_iter().map(|h| vec![h]).collect()];
        if functional {
            for (i, input) in self.inputs.iter().enumerate() {
                rows.push(vec![vec![format!("{} (InputLayer)", input.name)], vec![shape_of(i)], vec!["0".into()], vec!["-".into()]]);
            }
        }
        let mut counted = vec![false; self.layers.len()];
        for (j, node) in self.nodes.iter().enumerate() {
            let layer = &self.layers[node.layer];
            // A shared layer's parameters are counted at its first call.
            let count: usize = if std::mem::replace(&mut counted[node.layer], true) {
                0
            } else {
                layer.params().iter().map(|p| self.store.entry(*p).shape.numel()).sum()
            };
            let title = match &node.name {
                None => format!("{} ({})", layer.name(), layer.kind()),
                Some(call) => format!("{call} (call of {})", layer.name()),
            };
            let mut row = vec![vec![title], vec![shape_of(self.inputs.len() + j)], vec![group_digits(count)]];
            if functional {
                let n = node.inputs.len();
                row.push(node.inputs.iter().enumerate().map(|(k, &t)| format!("{}{}", self.tensor_name(t), if k + 1 < n { "," } else { "" })).collect());
            }
            rows.push(row);
        }
        let cols = rows[0].len();
        let widths: Vec<usize> = (0..cols).map(|c| rows.iter().flat_map(|r| r[c].iter()).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
        let line = "─".repeat(widths.iter().sum::<usize>() + 2 * (cols - 1));
        let mut out = format!("Model: \"{}\"\n{line}\n", self.name);
        for (i, row) in rows.iter().enumerate() {
            let height = row.iter().map(Vec::len).max().unwrap_or(1);
            for k in 0..height {
                let cells: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .enumerate()
                    .map(|(c, (cell, &w))| {
                        let s = cell.get(k).map_or("", String::as_str);
                        // Parameter counts right-aligned, as Keras prints them.
                        if c == 2 { format!("{s:>w$}") } else { format!("{s:<w$}") }
                    })
                    .collect();
                out += cells.join("  ").trim_end();
                out += "\n";
            }
            if i == 0 {
                out += &format!("{line}\n");
            }
        }
        let total = self.store.count();
        let trainable: usize = self.store.entries().iter().filter(|e| e.trainable).map(|e| e.shape.numel()).sum();
        out += &format!("{line}\n Total params: {} ({})\n", group_digits(total), human_bytes(total * 4));
        out += &format!(" Trainable params: {}\n", group_digits(trainable));
        out += &format!(" Non-trainable params: {}\n", group_digits(total - trainable));
        out
    }
}

fn known_names(tensor_of: &HashMap<String, usize>) -> String {
    let mut names: Vec<(&usize, &String)> = tensor_of.iter().map(|(n, t)| (t, n)).collect();
    names.sort();
    names.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>().join(", ")
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
