//! Describing a functional model as Keras does: `Input` makes a symbolic tensor, calling
//! a layer on symbolic tensors makes another (its shape checked on the spot), and
//! `Network::functional(inputs, outputs)` (Keras's `Model(inputs, outputs)`, which is
//! `train::Model::new`) collects every call between them into the graph.
//!
//! ```
//! use descent::nn::{Activation, Add, Call, Dense, Input};
//! use descent::train::Model;
//! let x = Input::new(&[64]);
//! let h = Dense::new(64, Activation::Relu).call(&x)?;
//! let r = Dense::new(64, Activation::Relu).call(&h)?;
//! let s = Add::new().call_on(&[&h, &r])?;
//! let y = Dense::new(10, Activation::Linear).call(&s)?;
//! let model = Model::new(&[x], &[y])?;
//! assert_eq!(model.output_units(), 10);
//! # Ok::<(), descent::Error>(())
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::layer::Layer;
use super::model::{InputConfig, ModelKind, Network, Node};
use crate::autograd::ParamStore;
use crate::error::{Error, Result};
use crate::rng;

/// A tensor of a model being described: its per-sample shape and how it is made.
#[derive(Clone)]
pub struct SymbolicTensor(Rc<Symbol>);

struct Symbol {
    shape: Vec<usize>,
    source: Source,
}

enum Source {
    Input { name: String },
    Call { layer: SharedLayer, inputs: Vec<SymbolicTensor> },
}

impl SymbolicTensor {
    /// Per-sample shape (without the batch axis).
    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }
}

/// Keras's `keras.Input`: a model input of a per-sample shape.
pub enum Input {}

// `Input::new` returns the symbolic tensor, as `keras.Input` does.
#[allow(clippy::new_ret_no_self)]
impl Input {
    /// An input named automatically (`input_layer`, `input_layer_1`, …).
    pub fn new(shape: &[usize]) -> SymbolicTensor {
        Input::named("", shape)
    }
    pub fn named(name: &str, shape: &[usize]) -> SymbolicTensor {
        SymbolicTensor(Rc::new(Symbol { shape: shape.to_vec(), source: Source::Input { name: name.into() } }))
    }
}

/// A layer that may be called on several tensors, every call with the same weights
/// (Keras's shared layers). Calling a plain layer wraps it in one of these.
#[derive(Clone)]
pub struct SharedLayer(Rc<RefCell<SharedState>>);

struct SharedState {
    /// Until a model takes it.
    layer: Option<Box<dyn Layer>>,
    /// The first call's input shapes and output shape.
    first: Option<(Vec<Vec<usize>>, Vec<usize>)>,
}

impl SharedLayer {
    pub fn new(layer: impl Layer + 'static) -> Self {
        SharedLayer(Rc::new(RefCell::new(SharedState { layer: Some(Box::new(layer)), first: None })))
    }

    pub fn call(&self, x: &SymbolicTensor) -> Result<SymbolicTensor> {
        self.call_on(&[x])
    }

    /// Applies the layer to several tensors (merge layers). The output shape comes from
    /// building the layer on a sizing store (nothing is allocated or initialized); a
    /// later call must see the first call's shapes.
    pub fn call_on(&self, xs: &[&SymbolicTensor]) -> Result<SymbolicTensor> {
        let ins: Vec<Vec<usize>> = xs.iter().map(|x| x.0.shape.clone()).collect();
        let mut state = self.0.borrow_mut();
        let shape = match &state.first {
            Some((first, out)) if *first == ins => out.clone(),
            Some((first, _)) => {
                let name = state.layer.as_ref().map_or("?", |l| l.name()).to_string();
                return Err(Error::shape(format!("shared layer '{name}' called again"), format!("inputs {first:?} (as its first call)"), format!("{ins:?}")));
            }
            None => {
                let layer = state.layer.as_mut().ok_or_else(|| Error::State("this layer already belongs to a model".into()))?;
                let refs: Vec<&[usize]> = ins.iter().map(Vec::as_slice).collect();
                // Names come when the model is assembled; errors now say the default one.
                let unnamed = layer.name().is_empty();
                if unnamed {
                    layer.set_name(layer.default_name().to_string());
                }
                let out = layer.build_inputs(&refs, &mut ParamStore::sizing(), &mut rng::derive(0, 0));
                if unnamed {
                    layer.set_name(String::new());
                }
                let out = out?;
                state.first = Some((ins, out.clone()));
                out
            }
        };
        drop(state);
        let inputs = xs.iter().map(|x| (*x).clone()).collect();
        Ok(SymbolicTensor(Rc::new(Symbol { shape, source: Source::Call { layer: self.clone(), inputs } })))
    }
}

/// `layer.call(&x)`: a layer applied to symbolic tensors, as in Keras's `layer(x)`.
pub trait Call: Layer + Sized + 'static {
    fn call(self, x: &SymbolicTensor) -> Result<SymbolicTensor> {
        SharedLayer::new(self).call(x)
    }
    fn call_on(self, xs: &[&SymbolicTensor]) -> Result<SymbolicTensor> {
        SharedLayer::new(self).call_on(xs)
    }
}

impl<L: Layer + Sized + 'static> Call for L {}

/// Numbers the graph's tensors (inputs first) and collects its calls in an order where
/// every call follows what it reads.
struct Collect {
    ids: HashMap<*const Symbol, usize>,
    layer_ids: HashMap<*const RefCell<SharedState>, usize>,
    layers: Vec<SharedLayer>,
    nodes: Vec<Node>,
    n_inputs: usize,
}

impl Collect {
    fn visit(&mut self, t: &SymbolicTensor) -> Result<usize> {
        if let Some(&id) = self.ids.get(&Rc::as_ptr(&t.0)) {
            return Ok(id);
        }
        match &t.0.source {
            Source::Input { name } => Err(Error::Config(format!(
                "the outputs depend on input '{}' {:?}, which is not among the model's inputs",
                if name.is_empty() { "(unnamed)" } else { name },
                t.0.shape
            ))),
            Source::Call { layer, inputs } => {
                let ins = inputs.iter().map(|x| self.visit(x)).collect::<Result<Vec<_>>>()?;
                let key = Rc::as_ptr(&layer.0);
                let next = self.layers.len();
                let l = *self.layer_ids.entry(key).or_insert(next);
                if l == next {
                    self.layers.push(layer.clone());
                }
                self.nodes.push(Node { layer: l, inputs: ins, name: None });
                let id = self.n_inputs + self.nodes.len() - 1;
                self.ids.insert(Rc::as_ptr(&t.0), id);
                Ok(id)
            }
        }
    }
}

impl Network {
    /// Keras's `Model(inputs, outputs)`: the layers called between `inputs` and
    /// `outputs`, built now (every input has a shape). Each layer moves into the network.
    pub fn functional(inputs: &[SymbolicTensor], outputs: &[SymbolicTensor]) -> Result<Network> {
        let mut c = Collect { ids: HashMap::new(), layer_ids: HashMap::new(), layers: Vec::new(), nodes: Vec::new(), n_inputs: inputs.len() };
        let mut input_configs = Vec::with_capacity(inputs.len());
        for (i, x) in inputs.iter().enumerate() {
            let Source::Input { name } = &x.0.source else {
                return Err(Error::Config(format!("model input {i} is a layer's output, not an `Input`")));
            };
            if c.ids.insert(Rc::as_ptr(&x.0), i).is_some() {
                return Err(Error::Config(format!("model input {i} is given twice")));
            }
            input_configs.push(InputConfig { name: name.clone(), shape: Some(x.0.shape.clone()) });
        }
        let outputs = outputs.iter().map(|y| c.visit(y)).collect::<Result<Vec<_>>>()?;
        let layers = c
            .layers
            .iter()
            .map(|l| l.0.borrow_mut().layer.take().ok_or_else(|| Error::State("a layer of these outputs already belongs to another model".into())))
            .collect::<Result<Vec<_>>>()?;
        Network::assemble("functional".into(), ModelKind::Functional, layers, input_configs, c.nodes, outputs)
    }
}
