//! Keras's model object: a network (`nn::Network`, the description: layers, graph,
//! parameters) and, once compiled, the [`Trainer`] that trains it. `Sequential::new`
//! and `Model::new(inputs, outputs)` make its two forms; `fit`, `evaluate`, `predict`
//! and `train_on_batch` (in `fit.rs`) serve both. It dereferences to its network, so
//! `summary`, `params`, `layers` and the shapes read as on the network itself.

use std::ops::{Deref, DerefMut};
use std::path::Path;

use super::checkpoint::Restored;
use super::validate::check_targets;
use super::{parse_metric, Trainer};
use crate::data::Preprocessing;
use crate::error::{Error, Result};
use crate::io::{self, CompileConfig, SavedModel, OPTIMIZER_STATE_FILE};
use crate::nn::{Activation, Layer, Loss, ModelConfig, ModelKind, Network, SymbolicTensor};
use crate::optim::Optimizer;

pub struct Model {
    pub(crate) network: Network,
    pub(crate) trainer: Option<Trainer>,
}

/// Keras's `Sequential`: a chain of layers, each applied to the previous one's output.
pub enum Sequential {}

// `Sequential::new` returns the `Model` it makes, as Keras's constructor does.
#[allow(clippy::new_ret_no_self)]
impl Sequential {
    /// A model from layers. If the first layer declares `input_shape`, it is built now
    /// (as Keras does); otherwise at the first `fit`/`build`.
    pub fn new(layers: Vec<Box<dyn Layer>>) -> Result<Model> {
        Network::sequential(layers).map(Model::from_network)
    }

    /// The model a (sequential or functional) configuration describes.
    pub fn from_config(config: ModelConfig) -> Result<Model> {
        Model::from_config(config)
    }
}

impl Deref for Model {
    type Target = Network;
    fn deref(&self) -> &Network {
        &self.network
    }
}

impl DerefMut for Model {
    fn deref_mut(&mut self) -> &mut Network {
        &mut self.network
    }
}

impl Model {
    /// Keras's `Model(inputs, outputs)`: the layers called between `inputs` and
    /// `outputs` (see `nn::Input` and `nn::Call`), built now.
    pub fn new(inputs: &[SymbolicTensor], outputs: &[SymbolicTensor]) -> Result<Model> {
        Network::functional(inputs, outputs).map(Model::from_network)
    }

    /// The model a (sequential or functional) configuration describes, uncompiled.
    pub fn from_config(config: ModelConfig) -> Result<Model> {
        Network::from_config(config).map(Model::from_network)
    }

    /// The model `config` describes (inputs normalized: [`ModelConfig::normalize_inputs`]),
    /// built — inputs whose shape the config leaves out take the one
    /// [`Network::input_shape_for`] makes of `sample` — and seeded. Without `sample`, every
    /// input's shape must be declared.
    pub fn build_from(mut config: ModelConfig, sample: Option<&[usize]>, seed: u64) -> Result<Model> {
        config.normalize_inputs();
        let declared: Vec<Vec<usize>> = config.inputs.iter().map(|i| i.shape.clone().unwrap_or_default()).collect();
        let mut model = Model::from_config(config)?;
        if !model.is_built() {
            let Some(sample) = sample else {
                return Err(Error::Config("the model has no input shape: declare it (`input_shape` on the first layer, or each input's `shape`) or build it for data".into()));
            };
            let shape = model.input_shape_for(0, sample);
            match model.kind() {
                ModelKind::Sequential => model.build(&shape)?,
                ModelKind::Functional => {
                    let mut shapes = if declared.is_empty() { vec![Vec::new()] } else { declared };
                    if shapes[0].is_empty() {
                        shapes[0] = shape;
                    }
                    model.build_inputs(&shapes)?
                }
            }
        }
        model.with_seed(seed)
    }

    pub fn from_network(network: Network) -> Model {
        Model { network, trainer: None }
    }

    pub fn network(&self) -> &Network {
        &self.network
    }

    pub fn into_network(self) -> Network {
        self.network
    }

    /// Sets the seed for weight initialization (rebuilding if already built), shuffling
    /// and splits. The same seed gives bit-identical training.
    pub fn with_seed(mut self, seed: u64) -> Result<Self> {
        self.network = self.network.with_seed(seed)?;
        Ok(self)
    }

    /// Renames the model (the run and summary title).
    pub fn with_name(mut self, name: &str) -> Self {
        self.network = self.network.with_name(name);
        self
    }

    /// Keras's `compile(optimizer, loss, metrics)`. Returns the warnings it raised (also
    /// printed): e.g. a softmax output fed to a loss that expects logits.
    /// A model with several outputs trains every output with this loss, weighted 1
    /// (use [`Model::compile_outputs`] for a loss and weight per output).
    pub fn compile(
        &mut self,
        optimizer: impl Into<Box<dyn Optimizer>>,
        loss: Loss,
        metrics: &[&str],
    ) -> Result<Vec<String>> {
        let k = self.num_outputs();
        self.compile_outputs(optimizer, &vec![loss; k], &vec![1.0; k], metrics)
    }

    /// Keras's `compile(optimizer, loss=[…], loss_weights=[…], metrics)` for a model with
    /// several outputs: one loss and one weight per output, in the model's output order;
    /// the trained loss is Σ wₖ·lossₖ, and every metric is reported for each output
    /// (`<output>_<metric>`, with `<output>_loss` beside the total `loss`).
    pub fn compile_outputs(
        &mut self,
        optimizer: impl Into<Box<dyn Optimizer>>,
        losses: &[Loss],
        loss_weights: &[f32],
        metrics: &[&str],
    ) -> Result<Vec<String>> {
        let k = self.num_outputs();
        if losses.len() != k || loss_weights.len() != k {
            return Err(Error::Config(format!(
                "compile: model '{}' has {k} outputs ({}); got {} losses and {} loss weights",
                self.name(),
                self.output_names().collect::<Vec<_>>().join(", "),
                losses.len(),
                loss_weights.len()
            )));
        }
        for loss in losses {
            let ls = loss.label_smoothing();
            if !(0.0..=1.0).contains(&ls) {
                return Err(Error::Config(format!("loss {}: label_smoothing = {ls} is outside [0, 1]", loss.name())));
            }
        }
        if let Some((i, w)) = loss_weights.iter().enumerate().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
            return Err(Error::Config(format!("compile: loss weight {w} of output {i} must be finite and ≥ 0")));
        }
        let mut parsed = Vec::new();
        for name in metrics {
            let metric = parse_metric(name)?;
            parsed.push((name.to_string(), metric));
        }
        let mut warnings = Vec::new();
        for (i, loss) in losses.iter().enumerate() {
            warnings.extend(self.loss_warnings(i, loss));
        }
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        self.trainer = Some(Trainer::new(optimizer.into(), losses.to_vec(), loss_weights.to_vec(), parsed, warnings.clone()));
        Ok(warnings)
    }

    /// The trainer `compile` made (optimizer, loss, metrics, tape).
    pub fn trainer(&self) -> Option<&Trainer> {
        self.trainer.as_ref()
    }

    pub fn optimizer(&self) -> Option<&dyn Optimizer> {
        self.trainer.as_ref().map(|c| c.optimizer.as_ref())
    }

    pub fn optimizer_mut(&mut self) -> Option<&mut dyn Optimizer> {
        self.trainer.as_mut().map(|c| c.optimizer.as_mut() as &mut dyn Optimizer)
    }

    /// Replaces the weights with the optimizer's evaluation point where it has one
    /// (schedule-free AdamW's average x); returns whether anything changed. Call before
    /// evaluating or saving; training continues correctly only from the training
    /// iterate, so do this at the end (or on a copy).
    pub fn use_eval_weights(&mut self) -> bool {
        let Some(x) = self.trainer.as_ref().and_then(|c| c.optimizer.eval_weights(&self.network.store)) else {
            return false;
        };
        self.network.store.values_mut().copy_from_slice(&x);
        true
    }

    /// Replaces the weights with the optimizer's moving average of them (`use_ema`), e.g.
    /// before evaluating or saving. Errors when the optimizer keeps no average.
    pub fn use_ema_weights(&mut self) -> Result<()> {
        let ema = self
            .trainer
            .as_ref()
            .and_then(|c| c.optimizer.ema_weights())
            .ok_or_else(|| Error::State("the optimizer keeps no moving average (set use_ema)".into()))?;
        let store = &mut self.network.store;
        let ids: Vec<_> = store.ids().filter(|id| store.entry(*id).trainable).collect();
        for id in ids {
            let r = store.entry(id).range();
            store.value_mut(id).copy_from_slice(&ema[r]);
        }
        Ok(())
    }

    /// Keras warns when a probability output feeds a loss that expects logits; we also
    /// warn for the opposite mistake, which silently trains on garbage.
    fn loss_warnings(&self, output: usize, loss: &Loss) -> Vec<String> {
        let last = self.output_activation_of(output);
        let mut out = Vec::new();
        match (last, loss) {
            (Some(Activation::Softmax), l) if l.from_logits() => out.push(format!(
                "`{}` received `from_logits=true`, but the model's output is produced by a softmax \
                 activation and thus does not represent logits. Was this intended? (Use a linear \
                 last layer, or from_logits=false.)",
                l.name()
            )),
            (Some(Activation::Sigmoid), l @ Loss::BinaryCrossentropy { from_logits: true, .. }) => out.push(format!(
                "`{}` received `from_logits=true`, but the model's output is produced by a sigmoid \
                 activation and thus does not represent logits. Was this intended?",
                l.name()
            )),
            (Some(Activation::Linear) | None, l)
                if !l.from_logits()
                    && matches!(
                        l,
                        Loss::SparseCategoricalCrossentropy { .. }
                            | Loss::CategoricalCrossentropy { .. }
                            | Loss::BinaryCrossentropy { .. }
                    ) =>
            {
                out.push(format!(
                    "`{}` expects probabilities (from_logits=false), but the model's last layer has no \
                     softmax/sigmoid activation, so its outputs are logits. Set from_logits=true.",
                    l.name()
                ))
            }
            _ => {}
        }
        out
    }

    /// Saves architecture, weights, compile settings and optimizer state into `dir`
    /// (see `io::save_model`).
    pub fn save(&self, dir: impl AsRef<Path>, preprocessing: &Preprocessing) -> Result<()> {
        let compile = self.trainer.as_ref().map(|t| {
            // One loss for every output, weighted 1, saves as Keras's single `loss`.
            let uniform = t.losses.iter().all(|l| *l == t.losses[0]) && t.loss_weights.iter().all(|w| *w == 1.0);
            CompileConfig {
                optimizer: t.optimizer.config(),
                loss: t.loss(),
                output_losses: if uniform { Vec::new() } else { t.losses.clone() },
                loss_weights: if uniform { Vec::new() } else { t.loss_weights.clone() },
                metrics: t.metrics.iter().map(|(n, _)| n.clone()).collect(),
            }
        });
        let state = self.optimizer().filter(|o| o.iterations() > 0).map(|o| o.save_state());
        io::save_model(&self.network, dir, compile.as_ref(), state.as_ref(), preprocessing)
    }

    /// Loads a model saved by [`Model::save`]: rebuilt, weights restored, compiled as it
    /// was (with its optimizer state when saved).
    pub fn load(dir: impl AsRef<Path>) -> Result<(Model, SavedModel)> {
        let dir = dir.as_ref();
        let loaded = io::load_model(dir)?;
        let mut model = Model::from_network(loaded.network);
        if let Some(c) = &loaded.saved.compile {
            let metrics: Vec<&str> = c.metrics.iter().map(String::as_str).collect();
            if c.output_losses.is_empty() {
                model.compile(c.optimizer.build()?, c.loss, &metrics)?;
            } else {
                model.compile_outputs(c.optimizer.build()?, &c.output_losses, &c.loss_weights, &metrics)?;
            }
            if let Some(state) = &loaded.optimizer_state {
                let trainer = model.trainer.as_mut().expect("compiled above");
                trainer.optimizer.load_state(state, &model.network.store).map_err(|e| Error::format(dir.join(OPTIMIZER_STATE_FILE), e.to_string()))?;
            }
        }
        Ok((model, loaded.saved))
    }

    /// Writes a full checkpoint after `epoch` completed epochs (atomically).
    pub fn save_checkpoint(&self, path: impl AsRef<Path>, epoch: usize, history: &super::History) -> Result<()> {
        let optimizer = self.optimizer().ok_or_else(|| Error::State("save_checkpoint: compile the model first".into()))?;
        super::checkpoint::write(path.as_ref(), &self.network, optimizer, epoch, history)
    }

    /// Restores weights, optimizer state and random streams from a checkpoint written
    /// by [`Model::save_checkpoint`] for this same model (compiled with the same
    /// optimizer). A truncated or corrupt file, or another model's, is an error naming
    /// the file and what differs; the model is unchanged then.
    pub fn load_checkpoint(&mut self, path: impl AsRef<Path>) -> Result<Restored> {
        let trainer = self.trainer.as_mut().ok_or_else(|| Error::State("load_checkpoint: compile the model first".into()))?;
        super::checkpoint::restore(path.as_ref(), &mut self.network, trainer.optimizer.as_mut())
    }

    /// The confusion matrix of a classifier on `(x, y)`: rows are true classes, columns
    /// predicted ones (arg-max of the outputs; one output: thresholded, 2 classes).
    /// `None` for regression losses.
    pub fn confusion_matrix(&mut self, x: &crate::tensor::Tensor, y: &crate::tensor::Tensor, batch_size: usize) -> Result<Option<crate::nn::ConfusionMatrix>> {
        let compiled = self.trainer.as_ref().ok_or_else(|| Error::State("confusion_matrix: compile the model first".into()))?;
        let loss = compiled.loss();
        let (sparse, from_logits) = (loss.kind().sparse_targets(), loss.from_logits());
        let classification = matches!(
            loss,
            Loss::SparseCategoricalCrossentropy { .. } | Loss::CategoricalCrossentropy { .. } | Loss::BinaryCrossentropy { .. }
        );
        if !classification {
            return Ok(None);
        }
        check_targets(&loss, &self.output_shape_of(0).to_vec(), x, y, "confusion matrix data")?;
        let pred = self.predict(x, batch_size)?;
        let cols = pred.row_len().max(1);
        let threshold = if from_logits { 0.0 } else { 0.5 };
        let mut cm = crate::nn::ConfusionMatrix::new(if cols == 1 { 2 } else { cols });
        for r in 0..pred.rows() {
            let (p, t) = (pred.row(r), y.row(r));
            if cols == 1 {
                cm.add((t[0] > 0.5) as usize, (p[0] > threshold) as usize);
            } else {
                let truth = match y.classes() {
                    Some(c) if sparse => c[r] as usize,
                    _ if sparse => t[0] as usize,
                    _ => crate::tensor::kernels::reduce::argmax(t),
                };
                cm.add(truth, crate::tensor::kernels::reduce::argmax(p));
            }
        }
        Ok(Some(cm))
    }
}
