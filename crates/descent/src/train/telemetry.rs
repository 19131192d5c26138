//! Training telemetry: what `fit` records about a run, cheaply, for the doctor
//! (`descent doctor`) and the report. One recorder, filled by the epoch loop and the
//! training step; saved as `telemetry.json` in the run folder.
//!
//! - every step: the batch's mean loss, the learning rate it used, whether clipping
//!   changed the gradient, and the global gradient norm when it was computed;
//! - every `every` steps (and the last step of each epoch), a *sample*: the global
//!   gradient norm and, per layer, the gradient norm, the weight norm, the update/weight
//!   ratio ‖Δw‖/‖w‖ of that step, the fraction of dead units of ReLU outputs (units at
//!   zero for every sample of the batch) and the saturated fraction of sigmoid/tanh
//!   outputs (within 0.01 of their bounds);
//! - every epoch: its logs, wall time, time spent waiting for data, clipped and skipped
//!   updates;
//! - a diverged run: where the first non-finite value appeared (the first layer whose
//!   output, else the first parameter whose gradient, was not finite).
//!
//! Every buffer is reserved when training begins, so recording allocates nothing per
//! step. A sample costs one pass over the gradients, one over the weights (twice: the
//! copy before the update and the difference after) and one over the ReLU/sigmoid/tanh
//! outputs; with `every = 10` that is a small fraction of a step's own passes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::autograd::{ParamId, Tape};
use crate::nn::Network;
use crate::tensor::kernels::activation::Activation;
use crate::tensor::{Backend, B};

/// The recorder's file format version (`telemetry.json`).
pub const TELEMETRY_VERSION: u32 = 1;

/// What `fit` recorded about a run (see the module docs).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Telemetry {
    pub version: u32,
    /// Steps between samples.
    pub every: usize,
    pub machine: Machine,
    pub optimizer: OptimizerInfo,
    pub batch_size: usize,
    pub samples_per_epoch: usize,
    pub steps_per_epoch: usize,
    pub epochs_planned: usize,
    pub parameters: usize,
    /// Per step, in order (the global step is the index).
    pub steps: StepSeries,
    /// The global step of each sample.
    pub sample_steps: Vec<u64>,
    /// The global gradient norm at each sample.
    #[serde(with = "finite_or_null")]
    pub sample_grad_norm: Vec<f32>,
    /// One series per layer with parameters or a watched activation, in layer order.
    pub layers: Vec<LayerSeries>,
    pub epochs: Vec<EpochRecord>,
    pub divergence: Option<Divergence>,
    /// Wall time the per-layer samples took (their statistics and weight copy): the
    /// recorder's own cost, beside the epochs' `seconds`.
    #[serde(default)]
    pub sampling_seconds: f64,
    /// FLOPs of one sample's forward pass (`Tape::forward_flops` at the first sample over
    /// its rows); a training step does about 3× this. 0 when not recorded.
    #[serde(default)]
    pub forward_flops_per_sample: f64,
    #[serde(skip)]
    probe: Probe,
}

/// Where training ran.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    pub threads: usize,
    pub simd: String,
    pub cpu: String,
}

impl Machine {
    /// This machine, as `fit` records it.
    pub fn current() -> Machine {
        Machine { threads: rayon::current_num_threads(), simd: format!("{:?}", crate::tensor::kernels::simd_level()), cpu: cpu_name() }
    }
}

/// The optimizer's name and the options the doctor reasons about.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct OptimizerInfo {
    pub name: String,
    pub clipnorm: Option<f32>,
    pub global_clipnorm: Option<f32>,
    pub clipvalue: Option<f32>,
    pub skip_nonfinite: bool,
}

/// Per-step series (non-finite values are written as `null`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StepSeries {
    #[serde(with = "finite_or_null")]
    pub loss: Vec<f32>,
    pub learning_rate: Vec<f32>,
    /// The global gradient norm where it was computed (clipping, skipping, samples), else null.
    #[serde(with = "finite_or_null")]
    pub grad_norm: Vec<f32>,
    /// Whether clipping by norm changed this step's gradient.
    pub clipped: Vec<bool>,
}

/// One layer's sampled statistics, one value per sample (null where not applicable).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct LayerSeries {
    pub name: String,
    pub kind: String,
    /// The output activation, when it is one the recorder watches (relu, sigmoid, tanh).
    pub activation: Option<String>,
    pub parameters: usize,
    #[serde(with = "finite_or_null")]
    pub grad_norm: Vec<f32>,
    #[serde(with = "finite_or_null")]
    pub weight_norm: Vec<f32>,
    #[serde(with = "finite_or_null")]
    pub update_ratio: Vec<f32>,
    /// ReLU: fraction of units that were zero for every sample of the batch.
    #[serde(with = "finite_or_null")]
    pub dead_fraction: Vec<f32>,
    /// Sigmoid/tanh: fraction of outputs within 0.01 of the activation's bounds.
    #[serde(with = "finite_or_null")]
    pub saturated_fraction: Vec<f32>,
    /// The distribution of the layer's first parameter (its kernel) at each epoch's end.
    #[serde(default)]
    pub histograms: Vec<Histogram>,
}

/// Counts of values in `bins` equal bins over `[lo, hi]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Histogram {
    pub epoch: usize,
    pub lo: f32,
    pub hi: f32,
    pub counts: Vec<u32>,
}

/// Bins of each weight histogram.
const HISTOGRAM_BINS: usize = 30;

impl Histogram {
    /// The histogram of the finite values of `values` (their own range).
    pub fn of(epoch: usize, values: &[f32]) -> Histogram {
        let finite = || values.iter().copied().filter(|v| v.is_finite());
        let (lo, hi) = (finite().fold(f32::INFINITY, f32::min), finite().fold(f32::NEG_INFINITY, f32::max));
        let mut counts = vec![0u32; HISTOGRAM_BINS];
        // No finite value (a diverged layer): an empty histogram over [0, 0], which JSON holds.
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 0.0) };
        if finite().next().is_some() {
            let width = (hi - lo).max(f32::MIN_POSITIVE);
            for v in finite() {
                let bin = (((v - lo) / width) * HISTOGRAM_BINS as f32) as usize;
                counts[bin.min(HISTOGRAM_BINS - 1)] += 1;
            }
        }
        Histogram { epoch, lo, hi, counts }
    }
}

/// One epoch's summary.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub steps: usize,
    pub seconds: f64,
    /// Wall time spent waiting for the next batch (streams; gathering rows in memory
    /// counts as the step's own work).
    pub data_seconds: f64,
    pub clipped: usize,
    pub skipped: u64,
    /// The epoch's logs (loss, metrics, validation), non-finite values as null.
    #[serde(with = "finite_map")]
    pub logs: BTreeMap<String, f64>,
}

/// Where a run stopped being finite.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Divergence {
    pub epoch: usize,
    /// Step within the epoch (0-based) and over the run.
    pub step: usize,
    pub global_step: u64,
    pub learning_rate: f32,
    /// The first layer output or parameter gradient that was not finite.
    pub origin: String,
}

/// What a sample needs between the backward pass and the update.
#[derive(Clone, Debug, Default, PartialEq)]
struct Probe {
    /// Each recorded layer's index in the network and its parameters.
    layers: Vec<(usize, Vec<ParamId>)>,
    /// The weights before the update (for ‖Δw‖).
    before: Vec<f32>,
    /// Scratch: which units of an output were ever active.
    alive: Vec<bool>,
    sampling: bool,
    global_step: u64,
}

impl Telemetry {
    /// A recorder taking a sample every `every` steps (at least 1).
    pub fn new(every: usize) -> Self {
        Telemetry { version: TELEMETRY_VERSION, every: every.max(1), ..Default::default() }
    }

    /// Called when training starts: describes the run and reserves every buffer for
    /// `epochs` epochs of `steps_per_epoch` steps.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn begin(&mut self, net: &Network, optimizer: &dyn crate::optim::Optimizer, batch: usize, samples: usize, steps_per_epoch: usize, epochs: usize, start_epoch: usize) {
        let options = optimizer.config().options;
        self.machine = Machine::current();
        self.optimizer = OptimizerInfo {
            name: optimizer.name().to_string(),
            clipnorm: options.clipnorm,
            global_clipnorm: options.global_clipnorm,
            clipvalue: options.clipvalue,
            skip_nonfinite: options.skip_nonfinite,
        };
        self.batch_size = batch;
        self.samples_per_epoch = samples;
        self.steps_per_epoch = steps_per_epoch;
        self.epochs_planned = epochs;
        self.parameters = net.store.count();
        let remaining = steps_per_epoch * epochs.saturating_sub(start_epoch);
        let samples_cap = remaining / self.every + epochs + 2;
        self.steps.loss.reserve(remaining);
        self.steps.learning_rate.reserve(remaining);
        self.steps.grad_norm.reserve(remaining);
        self.steps.clipped.reserve(remaining);
        self.sample_steps.reserve(samples_cap);
        self.sample_grad_norm.reserve(samples_cap);
        self.epochs.reserve(epochs);
        self.probe.layers.clear();
        self.layers.clear();
        let mut widest = 0;
        for (i, layer) in net.layers.iter().enumerate() {
            let watched = watched(layer.output_activation());
            let ids: Vec<ParamId> = layer.params().into_iter().filter(|&id| net.store.entry(id).trainable).collect();
            if ids.is_empty() && watched.is_none() {
                continue;
            }
            let parameters = ids.iter().map(|&id| net.store.entry(id).range().len()).sum();
            let cap = |v: &mut Vec<f32>| v.reserve(samples_cap);
            let mut series = LayerSeries {
                name: layer.name().to_string(),
                kind: layer.kind().to_string(),
                activation: watched.map(|a| a.to_string()),
                parameters,
                ..Default::default()
            };
            for v in [&mut series.grad_norm, &mut series.weight_norm, &mut series.update_ratio, &mut series.dead_fraction, &mut series.saturated_fraction] {
                cap(v);
            }
            self.layers.push(series);
            self.probe.layers.push((i, ids));
            widest = widest.max(net.widest_output_of(i));
        }
        self.probe.before.reserve(net.store.len());
        self.probe.alive.reserve(widest);
        self.probe.global_step = (start_epoch * steps_per_epoch) as u64;
    }

    /// Called before each step: whether this step is sampled.
    pub(crate) fn step_begins(&mut self, last_of_epoch: bool) {
        self.probe.sampling = self.probe.global_step.is_multiple_of(self.every as u64) || last_of_epoch;
    }

    /// Between backward and the update of a sampled step: gradient and weight norms per
    /// layer, activation statistics from the tape, and a copy of the weights.
    pub(crate) fn before_update(&mut self, net: &Network, tape: &Tape, rows: usize) {
        if !self.probe.sampling {
            return;
        }
        let started = std::time::Instant::now();
        if self.forward_flops_per_sample == 0.0 && rows > 0 {
            self.forward_flops_per_sample = tape.forward_flops() / rows as f64;
        }
        let store = &net.store;
        let mut total = 0.0f64;
        for ((i, ids), series) in self.probe.layers.iter().zip(&mut self.layers) {
            let (mut gg, mut ww) = (0.0f64, 0.0f64);
            for &id in ids {
                let range = store.entry(id).range();
                gg += B::sum_squares(B::range(store.device_grads(), range.clone())) as f64;
                ww += B::sum_squares(B::range(store.device_values(), range)) as f64;
            }
            total += gg;
            let has_params = !ids.is_empty();
            series.grad_norm.push(if has_params { gg.sqrt() as f32 } else { f32::NAN });
            series.weight_norm.push(if has_params { ww.sqrt() as f32 } else { f32::NAN });
            let (dead, saturated) = match (watched(net.layers[*i].output_activation()), net.first_output_of(tape, *i)) {
                (Some(a), Some(out)) => {
                    let values = tape.value(store, out);
                    let cols = tape.shape(out).dims().last().copied().unwrap_or(1).max(1);
                    activation_stats(a, &values, cols, &mut self.probe.alive)
                }
                _ => (f32::NAN, f32::NAN),
            };
            series.dead_fraction.push(dead);
            series.saturated_fraction.push(saturated);
        }
        self.probe.before.clear();
        self.probe.before.extend_from_slice(&store.values());
        self.sample_steps.push(self.probe.global_step);
        self.sample_grad_norm.push(total.sqrt() as f32);
        self.sampling_seconds += started.elapsed().as_secs_f64();
    }

    /// After the update of a sampled step: ‖Δw‖/‖w‖ per layer.
    pub(crate) fn after_update(&mut self, net: &Network) {
        if !self.probe.sampling {
            return;
        }
        let started = std::time::Instant::now();
        let values = net.store.values();
        for ((_, ids), series) in self.probe.layers.iter().zip(&mut self.layers) {
            let mut dd = 0.0f64;
            for &id in ids {
                let range = net.store.entry(id).range();
                dd += squared_distance(&values[range.clone()], &self.probe.before[range]);
            }
            // ‖w‖ before the update is the weight norm this sample recorded.
            let w = series.weight_norm.last().copied().unwrap_or(f32::NAN) as f64;
            series.update_ratio.push(if ids.is_empty() { f32::NAN } else if w > 0.0 { (dd.sqrt() / w) as f32 } else { f32::INFINITY });
        }
        self.sampling_seconds += started.elapsed().as_secs_f64();
    }

    /// After each step: the batch's mean loss, the learning rate it used and what the
    /// optimizer's statistics pass found.
    pub(crate) fn step_ends(&mut self, mean_loss: f32, learning_rate: f32, stats: &crate::optim::GradStats) {
        let norm = match (self.probe.sampling, stats.global_norm) {
            (_, Some(n)) => n,
            (true, None) => self.sample_grad_norm.last().copied().unwrap_or(f32::NAN),
            (false, None) => f32::NAN,
        };
        self.steps.loss.push(mean_loss);
        self.steps.learning_rate.push(learning_rate);
        self.steps.grad_norm.push(norm);
        self.steps.clipped.push(stats.clipped);
        self.probe.global_step += 1;
    }

    /// At the end of each epoch.
    /// Records the epoch and each layer's weight histogram (once per epoch: allocating
    /// here is off the per-step path).
    pub(crate) fn epoch_ends(&mut self, record: EpochRecord, net: &Network) {
        for (series, (_, ids)) in self.layers.iter_mut().zip(&self.probe.layers) {
            if let Some(&kernel) = ids.first() {
                series.histograms.push(Histogram::of(record.epoch, net.store.value(kernel)));
            }
        }
        self.epochs.push(record);
    }

    /// The global step of the next step.
    pub fn global_step(&self) -> u64 {
        self.probe.global_step
    }

    /// Parses `telemetry.json`.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        let t: Telemetry = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if t.version != TELEMETRY_VERSION {
            return Err(format!("telemetry version {} (this descent reads version {TELEMETRY_VERSION})", t.version));
        }
        let n = t.sample_steps.len();
        if t.sample_grad_norm.len() != n || t.layers.iter().any(|l| l.grad_norm.len() != n || l.update_ratio.len() != n) {
            return Err(format!("the per-layer series do not all hold {n} samples"));
        }
        let s = &t.steps;
        if s.learning_rate.len() != s.loss.len() || s.grad_norm.len() != s.loss.len() || s.clipped.len() != s.loss.len() {
            return Err("the per-step series differ in length".into());
        }
        Ok(t)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("telemetry serializes")
    }

    /// Writes the telemetry as TensorBoard scalars into a new event file in `dir`:
    /// per step `learning_rate`, `grad_norm/global`; per sample `grad_norm/<layer>`,
    /// `update_ratio/<layer>`, `weight_norm/<layer>`, `dead_fraction/<layer>`,
    /// `saturated_fraction/<layer>`; per epoch `data_wait_share` and `steps_per_second`.
    pub fn write_tensorboard(&self, dir: &std::path::Path) -> crate::Result<()> {
        use super::tensorboard::{EventWriter, SummaryValue::Scalar};
        let mut w = EventWriter::create(dir)?;
        for (i, (&lr, &g)) in self.steps.learning_rate.iter().zip(&self.steps.grad_norm).enumerate() {
            w.write(i as i64, "learning_rate", Scalar(lr))?;
            if g.is_finite() {
                w.write(i as i64, "grad_norm/global", Scalar(g))?;
            }
        }
        for l in &self.layers {
            let series: [(&str, &Vec<f32>); 5] = [
                ("grad_norm", &l.grad_norm),
                ("update_ratio", &l.update_ratio),
                ("weight_norm", &l.weight_norm),
                ("dead_fraction", &l.dead_fraction),
                ("saturated_fraction", &l.saturated_fraction),
            ];
            for (name, values) in series {
                for (&step, &v) in self.sample_steps.iter().zip(values.iter()) {
                    if v.is_finite() {
                        w.write(step as i64, &format!("{name}/{}", l.name), Scalar(v))?;
                    }
                }
            }
        }
        for e in &self.epochs {
            if e.seconds > 0.0 {
                w.write(e.epoch as i64, "data_wait_share", Scalar((e.data_seconds / e.seconds) as f32))?;
                w.write(e.epoch as i64, "steps_per_second", Scalar((e.steps as f64 / e.seconds) as f32))?;
            }
        }
        w.flush()
    }
}

/// Σ (a − b)², in f32 lanes the compiler vectorizes, each block of 4096 summed into f64
/// (a scalar f64 loop over W2's 1.9 M weights cost more than the rest of a sample).
fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    let mut total = 0.0f64;
    for (ca, cb) in a.chunks(4096).zip(b.chunks(4096)) {
        let mut lanes = [0.0f32; 16];
        let (ea, eb) = (ca.chunks_exact(16), cb.chunks_exact(16));
        let (ra, rb) = (ea.remainder(), eb.remainder());
        for (x, y) in ea.zip(eb) {
            for k in 0..16 {
                let d = x[k] - y[k];
                lanes[k] += d * d;
            }
        }
        total += lanes.iter().map(|&l| l as f64).sum::<f64>() + ra.iter().zip(rb).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>();
    }
    total
}

/// The activations whose health the recorder watches.
fn watched(a: Option<Activation>) -> Option<Activation> {
    a.filter(|a| matches!(a, Activation::Relu | Activation::Sigmoid | Activation::Tanh))
}

/// (dead-unit fraction, saturated fraction) of one output `[rows, cols]`: ReLU gets the
/// first, sigmoid and tanh the second.
fn activation_stats(a: Activation, values: &[f32], cols: usize, alive: &mut Vec<bool>) -> (f32, f32) {
    match a {
        Activation::Relu => {
            alive.clear();
            alive.resize(cols, false);
            for row in values.chunks_exact(cols) {
                for (seen, v) in alive.iter_mut().zip(row) {
                    *seen |= *v > 0.0;
                }
            }
            let dead = alive.iter().filter(|a| !**a).count();
            (dead as f32 / cols as f32, f32::NAN)
        }
        Activation::Sigmoid | Activation::Tanh => {
            let (lo, hi) = if a == Activation::Sigmoid { (0.01, 0.99) } else { (-0.99, 0.99) };
            let saturated = values.iter().filter(|v| **v <= lo || **v >= hi).count();
            (f32::NAN, saturated as f32 / values.len().max(1) as f32)
        }
        _ => (f32::NAN, f32::NAN),
    }
}

/// The CPU's model name (Linux), else the architecture.
fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Serializes `Vec<f32>` with non-finite values as `null` (JSON has no NaN) and reads
/// `null` back as NaN.
mod finite_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| if x.is_finite() { Some(*x) } else { None }))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        let v: Vec<Option<f32>> = Vec::deserialize(d)?;
        Ok(v.into_iter().map(|x| x.unwrap_or(f32::NAN)).collect())
    }
}

/// `finite_or_null` for a map of logs.
mod finite_map {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, x)| (k, if x.is_finite() { Some(*x) } else { None })))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let m: BTreeMap<String, Option<f64>> = BTreeMap::deserialize(d)?;
        Ok(m.into_iter().map(|(k, x)| (k, x.unwrap_or(f64::NAN))).collect())
    }
}

/// The first non-finite value of the last step, in the order they were computed: the
/// first layer output (forward), else the first parameter gradient (backward).
pub(crate) fn locate_nonfinite(net: &Network, tape: &Tape) -> String {
    for (i, layer) in net.layers.iter().enumerate() {
        if let Some(out) = net.first_output_of(tape, i) {
            let values = tape.value(&net.store, out);
            if let Some(k) = values.iter().position(|v| !v.is_finite()) {
                return format!("the output of layer '{}' ({}): {} at element {k}", layer.name(), layer.kind(), values[k]);
            }
        }
    }
    let grads = net.store.grads();
    for e in net.store.entries() {
        if let Some(k) = grads[e.range()].iter().position(|g| !g.is_finite()) {
            return format!("the gradient of '{}': {} at element {k}", e.name, grads[e.range()][k]);
        }
    }
    let values = net.store.values();
    for e in net.store.entries() {
        if let Some(k) = values[e.range()].iter().position(|g| !g.is_finite()) {
            return format!("the weights of '{}': {} at element {k}", e.name, values[e.range()][k]);
        }
    }
    "the loss (every layer output and gradient was finite)".into()
}

impl std::fmt::Display for Divergence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the loss became non-finite at epoch {}, step {} (step {} of the run), learning rate {:e}; first non-finite value: {}",
            self.epoch + 1,
            self.step + 1,
            self.global_step + 1,
            self.learning_rate,
            self.origin
        )
    }
}
