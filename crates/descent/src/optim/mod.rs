//! Optimizers as fused kernels over the flat parameter, gradient and state buffers.
//!
//! An optimizer is a [`Rule`] (its own math: one file each in `rules/`) wrapped in
//! [`Configured`], which adds Keras's common arguments to every rule: learning rate or
//! [`Schedule`], decoupled weight decay and coupled L2 with an exclusion rule, clipnorm /
//! global_clipnorm / clipvalue, skipping non-finite steps, gradient accumulation and an
//! EMA of the weights. Clipping and decay are folded into the rule's kernel, so a step
//! reads and writes each buffer once. [`chain`] offers the same pieces as optax-style
//! composable transforms for building your own.
//!
//! Adding an optimizer: one file in `rules/` and one row in the optimizer table (`optimizer_table!`).

pub mod chain;
mod configured;
mod options;
mod rule;
pub mod rules;
pub mod schedule;

pub use configured::Configured;
pub use options::{Options, Prep, OPTION_KEYS};
pub use rule::{Rule, StateInit, StepCtx, TensorInfo};
pub use rules::*;
pub use schedule::{LearningRate, Schedule};

use serde::{Deserialize, Serialize};

use crate::autograd::ParamStore;
use crate::error::{Error, Result};

/// An optimizer updating the parameters of a `ParamStore` from its gradients.
pub trait Optimizer: Send {
    fn name(&self) -> &'static str;
    /// The learning rate the next step will use.
    fn learning_rate(&self) -> f32;
    /// Overrides the learning rate from now on (a schedule keeps its shape, rescaled).
    fn set_learning_rate(&mut self, lr: f32);
    /// Steps taken (batches seen, with gradient accumulation).
    fn iterations(&self) -> u64;
    /// Updates skipped because a gradient was not finite (`skip_nonfinite`).
    fn skipped_steps(&self) -> u64 {
        0
    }
    /// One update of every trainable parameter from its gradient: the stages below, in
    /// order. State buffers are allocated on the first step, never afterwards.
    fn step(&mut self, params: &mut ParamStore) {
        let source = self.accumulate(params);
        if source != GradSource::Pending {
            let stats = self.grad_stats(params, source);
            self.apply(params, source, &stats);
        }
        self.finish_step(params);
    }
    /// Stage 1, gradient accumulation: adds this batch's gradients in and says which
    /// gradients the update reads (none on a batch that only accumulates).
    fn accumulate(&mut self, _params: &ParamStore) -> GradSource {
        GradSource::Raw
    }
    /// Stage 2, one pass of norms and finiteness over the gradients the update reads
    /// (computed when clipping by norm or skipping non-finite steps needs them).
    fn grad_stats(&mut self, _params: &ParamStore, _source: GradSource) -> GradStats {
        GradStats::default()
    }
    /// Stage 3, the fused rule: clipping, weight decay and the optimizer's math in one
    /// pass over each buffer. (For an optimizer without stages, its whole `step`.)
    fn apply(&mut self, params: &mut ParamStore, _source: GradSource, _stats: &GradStats) {
        self.step(params)
    }
    /// Stage 4, after the update: the EMA of the weights, and the step count.
    fn finish_step(&mut self, _params: &mut ParamStore) {}
    /// The moving average of the weights, when `use_ema` is on (same layout as the store).
    fn ema_weights(&self) -> Option<crate::tensor::HostRef<'_>> {
        None
    }
    /// The weights to evaluate at, when they differ from the training iterate: the
    /// average x of schedule-free AdamW. `None` for every other optimizer.
    fn eval_weights(&self, _params: &ParamStore) -> Option<Vec<f32>> {
        None
    }
    fn save_state(&self) -> OptimizerState;
    fn load_state(&mut self, state: &OptimizerState, params: &ParamStore) -> Result<()>;
    fn config(&self) -> OptimizerConfig;
}

/// Which gradients an update reads (see [`Optimizer::accumulate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradSource {
    /// This batch's gradients, in the parameter store.
    Raw,
    /// The mean of the accumulated batches (`gradient_accumulation_steps`).
    Accumulated,
    /// This batch was only accumulated: no update.
    Pending,
}

/// What the statistics pass found.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GradStats {
    /// The global gradient norm, when it was computed; non-finite if any gradient is.
    pub global_norm: Option<f32>,
    /// Whether clipping by norm (clipnorm, global_clipnorm) will scale this gradient.
    pub clipped: bool,
}

/// Everything needed to continue an optimizer exactly where it stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState {
    pub optimizer: String,
    pub iterations: u64,
    pub scalars: Vec<(String, f64)>,
    pub buffers: Vec<(String, Vec<f32>)>,
}

/// An optimizer as written in configs: `"adam"`, or a table mixing the optimizer's own
/// hyperparameters and the common options:
/// `{ name = "sgd", learning_rate = 0.1, momentum = 0.9, clipnorm = 1.0 }`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OptimizerConfig {
    #[serde(flatten)]
    pub rule: RuleConfig,
    #[serde(flatten)]
    pub options: Options,
}

impl<'de> Deserialize<'de> for OptimizerConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let v = serde_json::Value::deserialize(d)?;
        crate::config_util::refuse_null(&v, "optimizer")?;
        let serde_json::Value::Object(mut table) = v else {
            return Err(D::Error::custom("an optimizer is a name or a table with `name`"));
        };
        // serde cannot combine `flatten` with `deny_unknown_fields`: split by hand.
        let mut common = serde_json::Map::new();
        for key in options::OPTION_KEYS {
            if let Some(v) = table.remove(key) {
                common.insert(key.to_string(), v);
            }
        }
        let options: Options = serde_json::from_value(common.into()).map_err(D::Error::custom)?;
        let rule: RuleConfig = serde_json::from_value(table.into()).map_err(|e| {
            let msg = e.to_string();
            if msg.contains("unknown field") {
                D::Error::custom(format!("{msg}, or one of the options every optimizer takes: {}", options::OPTION_KEYS.join(", ")))
            } else {
                D::Error::custom(msg)
            }
        })?;
        Ok(OptimizerConfig { rule, options })
    }
}

fn boxed<R: Rule>(rule: &R, options: &Options) -> Result<Box<dyn Optimizer>> {
    let o = Configured::with_options(rule.clone(), options.clone());
    o.validate()?;
    Ok(Box::new(o))
}

/// The one table of optimizers, each row: the variant and its rule (hyperparameters +
/// fused kernel, in `rules/`), the name configs use, a sensible first learning rate to
/// try on a small network with standardized inputs, and the options the name implies.
/// It generates [`RuleConfig`], [`OptimizerConfig::build`], [`OptimizerConfig::name`],
/// [`OptimizerConfig::NAMES`] and [`OptimizerConfig::starting_learning_rate`].
///
/// The starting rates were checked on digits (`examples/optimizers.rs` and the README's
/// table): Keras's defaults are far too small for Adadelta, Adagrad and Ftrl; Lion wants
/// a few times less than Adam; LARS's trust ratio shrinks steps by its trust
/// coefficient, so it wants a large one.
macro_rules! optimizer_table {
    ($($(#[$doc:meta])* $variant:ident($rule:ty) = $name:literal, start $lr:expr $(, implies |$o:ident| $implied:expr)?;)*) => {
        /// Every optimizer's hyperparameters, by name.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "name", rename_all = "snake_case")]
        pub enum RuleConfig {
            $($(#[$doc])* $variant($rule),)*
        }

        impl OptimizerConfig {
            /// Checks every value and creates the optimizer.
            pub fn build(&self) -> Result<Box<dyn Optimizer>> {
                match &self.rule {
                    $(RuleConfig::$variant(r) => {
                        #[allow(unused_mut)]
                        let mut options = self.options.clone();
                        $({ let $o = &mut options; $implied; })?
                        boxed(r, &options)
                    })*
                }
            }

            pub fn name(&self) -> &'static str {
                match &self.rule {
                    $(RuleConfig::$variant(_) => $name,)*
                }
            }

            /// Every optimizer name, for listings and error messages.
            pub const NAMES: [&'static str; [$($name),*].len()] = [$($name),*];

            /// A sensible first learning rate to try for each optimizer (see the table).
            pub fn starting_learning_rate(name: &str) -> Option<f32> {
                match name {
                    $($name => Some($lr),)*
                    _ => None,
                }
            }
        }
    };
}

optimizer_table! {
    Sgd(Sgd) = "sgd", start 0.1;
    Rmsprop(RmsProp) = "rmsprop", start 0.001;
    Adam(Adam) = "adam", start 0.001;
    /// Adam with decoupled weight decay (weight_decay defaults to 0.004, as in Keras).
    Adamw(Adam) = "adamw", start 0.001, implies |o| { o.weight_decay.get_or_insert(0.004); };
    Adamax(Adamax) = "adamax", start 0.01;
    Nadam(Nadam) = "nadam", start 0.001;
    Radam(RAdam) = "radam", start 0.003;
    Adagrad(Adagrad) = "adagrad", start 0.1;
    Adadelta(Adadelta) = "adadelta", start 1.0;
    Adafactor(Adafactor) = "adafactor", start 0.01;
    Ftrl(Ftrl) = "ftrl", start 0.1;
    Lion(Lion) = "lion", start 3e-4;
    /// Muon for hidden matrices, Adam for the rest (Keras 3's `Muon`).
    Muon(Muon) = "muon", start 0.001, implies |o| { o.weight_decay.get_or_insert(0.004); };
    Lamb(Lamb) = "lamb", start 0.003;
    Lars(Lars) = "lars", start 1.0;
    Rprop(Rprop) = "rprop", start 0.01;
    ScheduleFreeAdamw(ScheduleFreeAdamW) = "schedule_free_adamw", start 0.0025;
}

impl OptimizerConfig {
    /// The default configuration of a named optimizer.
    pub fn named(name: &str) -> Result<OptimizerConfig> {
        serde_json::from_value(serde_json::json!({ "name": name })).map_err(|e| Error::Config(format!("optimizer: {e}")))
    }
}

impl<R: Rule> From<Configured<R>> for Box<dyn Optimizer> {
    fn from(o: Configured<R>) -> Self {
        Box::new(o)
    }
}

#[cfg(test)]
mod reference_tests;

#[cfg(test)]
mod tests;
