//! `Configured<R>`: a rule plus Keras's common arguments, as one `Optimizer`.
//!
//! One step, top to bottom:
//!   (gradient accumulation: add into the accumulator; on every Nth batch use its mean)
//!   norms, if clipping by norm or skipping non-finite steps (one reduction pass)
//!   for each trainable tensor: the rule's fused kernel, with that tensor's clip scale,
//!     clip value, L2 and decoupled decay folded into the same pass
//!   EMA of the weights (one pass), overwrite every N steps if asked

use super::options::{Options, Prep};
use super::rule::{Rule, StateInit, StepCtx, TensorInfo, MAX_STATE};
use super::schedule::LearningRate;
use super::{GradSource, GradStats, Optimizer, OptimizerConfig, OptimizerState};
use crate::autograd::ParamStore;
use crate::error::{Error, Result};
use crate::tensor::kernels::optim::configured;
use crate::tensor::{Backend, DeviceSlice, DeviceVec, B};

#[derive(Clone, Debug)]
pub struct Configured<R: Rule> {
    pub rule: R,
    pub options: Options,
    lr: LearningRate,
    lr_scale: f32,
    iterations: u64,
    skipped: u64,
    state_names: Vec<&'static str>,
    state: Vec<DeviceVec>,
    accumulated: DeviceVec,
    ema: DeviceVec,
    norms: Vec<f32>,
    /// Parameter count the state was allocated for (0 before the first step).
    len: usize,
}

impl<R: Rule> Configured<R> {
    pub fn with_options(rule: R, options: Options) -> Self {
        let lr = options.learning_rate.clone().unwrap_or(LearningRate::Constant(R::DEFAULT_LR));
        Configured {
            rule,
            options,
            lr,
            lr_scale: 1.0,
            iterations: 0,
            skipped: 0,
            state_names: Vec::new(),
            state: Vec::new(),
            accumulated: DeviceVec::default(),
            ema: DeviceVec::default(),
            norms: Vec::new(),
            len: 0,
        }
    }

    pub fn validate(&self) -> Result<()> {
        self.rule.validate()?;
        self.options.validate(R::NAME)
    }

    /// Sets the learning rate (a number or a schedule).
    pub fn with_learning_rate(mut self, lr: impl Into<LearningRate>) -> Self {
        self.lr = lr.into();
        self.options.learning_rate = Some(self.lr.clone());
        self
    }
    pub fn weight_decay(mut self, wd: f32) -> Self {
        self.options.weight_decay = Some(wd);
        self
    }
    pub fn l2(mut self, l2: f32) -> Self {
        self.options.l2 = Some(l2);
        self
    }
    pub fn exclude_from_weight_decay(mut self, patterns: &[&str]) -> Self {
        self.options.exclude_from_weight_decay = patterns.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn decay_vectors(mut self, yes: bool) -> Self {
        self.options.decay_vectors = yes;
        self
    }
    pub fn clipnorm(mut self, v: f32) -> Self {
        self.options.clipnorm = Some(v);
        self
    }
    pub fn global_clipnorm(mut self, v: f32) -> Self {
        self.options.global_clipnorm = Some(v);
        self
    }
    pub fn clipvalue(mut self, v: f32) -> Self {
        self.options.clipvalue = Some(v);
        self
    }
    pub fn skip_nonfinite(mut self, yes: bool) -> Self {
        self.options.skip_nonfinite = yes;
        self
    }
    pub fn gradient_accumulation_steps(mut self, n: u32) -> Self {
        self.options.gradient_accumulation_steps = Some(n);
        self
    }
    pub fn ema(mut self, momentum: f32, overwrite_frequency: Option<u64>) -> Self {
        self.options.use_ema = true;
        self.options.ema_momentum = momentum;
        self.options.ema_overwrite_frequency = overwrite_frequency;
        self
    }

    fn init(&mut self, values: &DeviceSlice) {
        let n = B::len(values);
        self.len = n;
        let lr0 = self.lr.at(0);
        let buffers = self.rule.state_buffers(lr0);
        assert!(buffers.len() <= MAX_STATE, "{} declares too many state buffers", R::NAME);
        self.state_names = buffers.iter().map(|(name, _)| *name).collect();
        self.state = buffers
            .iter()
            .map(|(_, init)| match init {
                StateInit::Const(c) => filled(n, *c),
                StateInit::Params => copied(values),
            })
            .collect();
        if self.options.gradient_accumulation_steps.is_some_and(|k| k > 1) {
            self.accumulated = B::zeros(n);
        }
        if self.options.use_ema {
            self.ema = copied(values);
        }
    }

    fn current_lr(&self) -> f32 {
        self.lr.at(self.iterations) * self.lr_scale
    }

    /// Per-tensor and global gradient norms into `self.norms` (the global one last).
    fn compute_norms(&mut self, store: &ParamStore, use_accumulated: bool) {
        let (raw_grads, entries) = (store.device_grads(), store.entries());
        let grads: &DeviceSlice = if use_accumulated { &self.accumulated } else { raw_grads };
        let norms = &mut self.norms;
        norms.resize(entries.len() + 1, 0.0);
        let mut total = 0.0f64;
        for (i, e) in entries.iter().enumerate() {
            norms[i] = 0.0;
            if e.trainable {
                let ss = B::sum_squares(B::range(grads, e.range()));
                total += ss as f64;
                norms[i] = ss.sqrt();
            }
        }
        norms[entries.len()] = total.sqrt() as f32;
    }

    /// The update proper (after accumulation and norms): clipping, decay and the rule's
    /// kernels, fused.
    fn update(&mut self, store: &mut ParamStore, use_accumulated: bool, global: f32) {
        let (values, raw_grads, entries) = store.parts_mut();
        let grads: &DeviceSlice = if use_accumulated { &self.accumulated } else { raw_grads };
        if self.options.skip_nonfinite && !global.is_finite() {
            self.skipped += 1;
            return;
        }
        // Keras: bias corrections count updates; schedules count batches.
        let t = self.updates_done() + 1;
        let lr = self.current_lr();
        self.rule.begin_step(t);
        let o = &self.options;
        let n_state = self.state.len();
        let clip = o.clipvalue.unwrap_or(f32::INFINITY);
        let global_scale = o.global_clipnorm.map_or(1.0, |c| c * (1.0 / global).min(1.0 / c));
        let prep_of = |i: usize| -> Option<Prep> {
            let e = &entries[i];
            if !e.trainable {
                return None;
            }
            let scale = match o.clipnorm {
                Some(c) => c / self.norms[i].max(c),
                None => global_scale,
            };
            let decays = (o.weight_decay.is_some() || o.l2.is_some()) && o.decays(&e.name, e.shape.rank());
            Some(Prep {
                scale,
                clip,
                l2: if decays { o.l2.unwrap_or(0.0) } else { 0.0 },
                decay: if decays { (configured(lr) * configured(o.weight_decay.unwrap_or(0.0))) as f32 } else { 0.0 },
            })
        };
        let mut i = 0;
        while i < entries.len() {
            let Some(prep) = prep_of(i) else {
                i += 1;
                continue;
            };
            // Elementwise rules take a run of adjacent tensors with the same preparation
            // as one range (alignment padding between them has zero values, gradients and
            // state, which every elementwise rule leaves at zero).
            let mut end = i + 1;
            while R::ELEMENTWISE && end < entries.len() && prep_of(end).is_some_and(|p| same_prep(&p, &prep)) {
                end += 1;
            }
            let range = entries[i].offset..entries[end - 1].range().end;
            let mut state = self.state.iter_mut();
            let mut slots: [Option<&mut DeviceSlice>; MAX_STATE] = std::array::from_fn(|_| state.next().map(|b| B::range_mut(b, range.clone())));
            let ctx = StepCtx { t, lr, prep };
            let info = TensorInfo { name: &entries[i].name, shape: entries[i].shape };
            self.rule.update(&ctx, info, B::range_mut(values, range.clone()), B::range(grads, range), &mut slots[..n_state]);
            i = end;
        }
    }

    /// Updates applied so far (batches / accumulation steps, as Keras's `iterations`).
    fn updates_done(&self) -> u64 {
        self.iterations / self.options.gradient_accumulation_steps.unwrap_or(1).max(1) as u64
    }

    fn update_ema(&mut self, store: &mut ParamStore) {
        let m = if self.updates_done() == 0 { 0.0 } else { self.options.ema_momentum };
        let (values, _, entries) = store.parts_mut();
        for e in entries.iter().filter(|e| e.trainable) {
            B::lerp_toward(B::range_mut(&mut self.ema, e.range()), B::range(values, e.range()), m);
        }
        if let Some(f) = self.options.ema_overwrite_frequency {
            if (self.updates_done() + 1).is_multiple_of(f) {
                for e in entries.iter().filter(|e| e.trainable) {
                    B::copy(B::range_mut(values, e.range()), B::range(&self.ema, e.range()));
                }
            }
        }
    }
}

fn same_prep(a: &Prep, b: &Prep) -> bool {
    a.scale == b.scale && a.clip == b.clip && a.l2 == b.l2 && a.decay == b.decay
}

fn filled(n: usize, value: f32) -> DeviceVec {
    let mut v = B::zeros(n);
    if value != 0.0 {
        B::fill(&mut v, value);
    }
    v
}

fn copied(values: &DeviceSlice) -> DeviceVec {
    let mut v = B::zeros(B::len(values));
    B::copy(&mut v, values);
    v
}

impl<R: Rule> Optimizer for Configured<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }
    fn learning_rate(&self) -> f32 {
        self.current_lr()
    }
    fn set_learning_rate(&mut self, lr: f32) {
        let base = self.lr.at(self.iterations);
        self.lr_scale = if base > 0.0 { lr / base } else { 1.0 };
    }
    fn iterations(&self) -> u64 {
        self.iterations
    }
    fn skipped_steps(&self) -> u64 {
        self.skipped
    }

    fn accumulate(&mut self, store: &ParamStore) -> GradSource {
        if self.len != store.len() {
            self.init(store.device_values());
        }
        let Some(k) = self.options.gradient_accumulation_steps.filter(|k| *k > 1) else {
            return GradSource::Raw;
        };
        // Keras: on the k-th batch use (accumulated + g)/k, else just accumulate.
        let grads = store.device_grads();
        if (self.iterations + 1).is_multiple_of(k as u64) {
            B::add_then_scale(&mut self.accumulated, grads, 1.0 / k as f32);
            GradSource::Accumulated
        } else {
            B::add_assign(&mut self.accumulated, grads);
            GradSource::Pending
        }
    }

    fn grad_stats(&mut self, store: &ParamStore, source: GradSource) -> GradStats {
        let needs_norms = self.options.clipnorm.is_some() || self.options.global_clipnorm.is_some() || self.options.skip_nonfinite;
        if !needs_norms || source == GradSource::Pending {
            return GradStats::default();
        }
        self.compute_norms(store, source == GradSource::Accumulated);
        let global_norm = self.norms.last().copied();
        let (per_tensor, global) = (self.norms.split_last().map_or(&[][..], |(_, t)| t), global_norm.unwrap_or(0.0));
        let clipped = self.options.global_clipnorm.is_some_and(|c| global > c) || self.options.clipnorm.is_some_and(|c| per_tensor.iter().any(|n| *n > c));
        GradStats { global_norm, clipped }
    }

    fn apply(&mut self, store: &mut ParamStore, source: GradSource, stats: &GradStats) {
        let accumulated = match source {
            GradSource::Pending => return,
            GradSource::Raw => false,
            GradSource::Accumulated => true,
        };
        self.update(store, accumulated, stats.global_norm.unwrap_or(0.0));
        if accumulated {
            B::fill(&mut self.accumulated, 0.0);
        }
    }

    fn finish_step(&mut self, store: &mut ParamStore) {
        if self.options.use_ema {
            self.update_ema(store);
        }
        self.iterations += 1;
    }

    fn ema_weights(&self) -> Option<&[f32]> {
        if self.options.use_ema && B::len(&self.ema) > 0 { Some(B::host(&self.ema)) } else { None }
    }

    fn eval_weights(&self, params: &ParamStore) -> Option<Vec<f32>> {
        if self.state.is_empty() {
            return None;
        }
        let state: Vec<&[f32]> = self.state.iter().map(|s| B::host(s)).collect();
        let values = params.values();
        let mut x = self.rule.eval_weights(std::ops::Deref::deref(&values), &state)?;
        // Frozen tensors were never updated: keep their values.
        for e in params.entries().iter().filter(|e| !e.trainable) {
            x[e.range()].copy_from_slice(&params.values()[e.range()]);
        }
        Some(x)
    }

    fn save_state(&self) -> OptimizerState {
        let mut buffers: Vec<(String, Vec<f32>)> =
            self.state_names.iter().zip(&self.state).map(|(n, b)| (n.to_string(), B::host(b).to_vec())).collect();
        if B::len(&self.accumulated) > 0 {
            buffers.push(("accumulated_grads".into(), B::host(&self.accumulated).to_vec()));
        }
        if B::len(&self.ema) > 0 {
            buffers.push(("ema".into(), B::host(&self.ema).to_vec()));
        }
        let mut scalars: Vec<(String, f64)> = self.rule.scalar_state().into_iter().map(|(n, v)| (n.to_string(), v)).collect();
        scalars.push(("lr_scale".into(), self.lr_scale as f64));
        scalars.push(("skipped_steps".into(), self.skipped as f64));
        OptimizerState { optimizer: R::NAME.to_string(), iterations: self.iterations, scalars, buffers }
    }

    fn load_state(&mut self, state: &OptimizerState, params: &ParamStore) -> Result<()> {
        if state.optimizer != R::NAME {
            return Err(Error::State(format!("optimizer state is for `{}`, not `{}`", state.optimizer, R::NAME)));
        }
        self.init(params.device_values());
        let n = params.len();
        let mut targets: Vec<(&str, &mut DeviceVec)> =
            self.state_names.iter().copied().zip(self.state.iter_mut()).collect();
        if B::len(&self.accumulated) > 0 {
            targets.push(("accumulated_grads", &mut self.accumulated));
        }
        if B::len(&self.ema) > 0 {
            targets.push(("ema", &mut self.ema));
        }
        for (name, target) in targets {
            let saved = state
                .buffers
                .iter()
                .find(|(n, _)| n == name)
                .ok_or_else(|| Error::State(format!("{} state has no buffer `{name}`", R::NAME)))?;
            if saved.1.len() != n {
                return Err(Error::State(format!(
                    "{} state buffer `{name}` holds {} values, the model has {n} parameter slots",
                    R::NAME,
                    saved.1.len()
                )));
            }
            B::write_with(target, |t| t.copy_from_slice(&saved.1));
        }
        self.rule.load_scalar_state(&state.scalars);
        let scalar = |k: &str| state.scalars.iter().find(|(n, _)| n == k).map(|(_, v)| *v);
        self.lr_scale = scalar("lr_scale").unwrap_or(1.0) as f32;
        self.skipped = scalar("skipped_steps").unwrap_or(0.0) as u64;
        self.iterations = state.iterations;
        Ok(())
    }

    fn config(&self) -> OptimizerConfig {
        OptimizerConfig { rule: self.rule.to_config(), options: self.options.clone() }
    }
}
