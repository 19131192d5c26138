//! `descent._native`: descent's models for Python. One class, `NativeModel`, holds a
//! descent `Model` built from the same JSON a saved `model.json` holds (the Keras layer
//! classes of `descent.keras` write it), and runs compile / fit / evaluate / predict /
//! save on descent's engine. Arrays come in as NumPy float32 (one copy into descent's
//! aligned storage) and go out as NumPy arrays; training runs with the GIL released,
//! re-taking it only to call Python callbacks and to check for Ctrl-C between steps.
//! Every descent error is raised as `descent.DescentError` (a `ValueError`) with
//! descent's own message.

use std::collections::BTreeMap;
use std::path::Path;

use descent::data::Preprocessing;
use descent::experiment::CompileSection;
use descent::nn::ModelConfig;
use descent::tensor::Tensor;
use descent::train::{Callback, CallbackConfig, FitOptions, Logs, Model, TrainContext};
use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

create_exception!(_native, DescentError, PyValueError, "An error descent reports: bad input, a bad configuration, a diverged run.");

fn raise(e: descent::Error) -> PyErr {
    DescentError::new_err(e.to_string())
}

fn bad(message: impl Into<String>) -> PyErr {
    DescentError::new_err(message.into())
}

/// A C-contiguous float32 array as a descent tensor (one copy). A 1-D array of targets
/// becomes a column, `[n, 1]`, as Keras reads a vector of labels.
fn tensor(a: &PyReadonlyArrayDyn<f32>, what: &str, column: bool) -> PyResult<Tensor> {
    let mut dims = a.shape().to_vec();
    if column && dims.len() == 1 {
        dims.push(1);
    }
    let data = match a.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => a.as_array().iter().copied().collect(),
    };
    Tensor::new(data, &dims).map_err(|e| bad(format!("{what}: {e}")))
}

fn tensors(arrays: &[PyReadonlyArrayDyn<f32>], what: &str, column: bool) -> PyResult<Vec<Tensor>> {
    if arrays.is_empty() {
        return Err(bad(format!("{what}: no arrays given")));
    }
    let many = arrays.len() > 1;
    arrays.iter().enumerate().map(|(i, a)| tensor(a, &if many { format!("{what}[{i}]") } else { what.to_string() }, column)).collect()
}

/// One array per input and one target per output (Keras's message when they differ).
fn check_arity(model: &Model, inputs: usize, outputs: usize) -> PyResult<()> {
    let (want_in, want_out) = (model.num_inputs(), model.num_outputs());
    if inputs != want_in {
        return Err(bad(format!("the model has {want_in} input(s) ({}), {inputs} array(s) were given", model.input_names().collect::<Vec<_>>().join(", "))));
    }
    if outputs != want_out {
        return Err(bad(format!("the model has {want_out} output(s) ({}), {outputs} target array(s) were given", model.output_names().collect::<Vec<_>>().join(", "))));
    }
    Ok(())
}

fn logs_dict<'py>(py: Python<'py>, logs: &Logs) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in logs.iter() {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// Python callbacks (Keras's `Callback` methods) and Ctrl-C, inside a fit that runs
/// without the GIL: each hook takes the GIL, calls every callback, and stops training
/// when one raises, when the model's `stop_training` is set, or on a pending signal.
/// The first Python error is kept and raised when `fit` returns.
struct PythonHooks {
    callbacks: Vec<Py<PyAny>>,
    /// Those that override `on_train_batch_end` (the others are not called per batch:
    /// a Python call per step would cost W1 several percent).
    batch_callbacks: Vec<Py<PyAny>>,
    /// The Python model (`callback.model`), whose `stop_training` a callback may set.
    model: Py<PyAny>,
    error: Option<PyErr>,
    /// When Ctrl-C was last checked: between those checks a batch does not touch the GIL
    /// (taking it every step would make each step wait for any busy Python thread).
    signals_checked: std::time::Instant,
}

/// How often a batch without Python batch callbacks checks for Ctrl-C.
const SIGNAL_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

impl PythonHooks {
    fn call(&mut self, ctx: &mut TrainContext, method: &str, per_batch: bool, args: impl Fn(Python<'_>) -> PyResult<Vec<Py<PyAny>>>) {
        if self.error.is_some() {
            ctx.stop_training = true;
            return;
        }
        if per_batch && self.batch_callbacks.is_empty() && self.signals_checked.elapsed() < SIGNAL_CHECK_EVERY {
            return;
        }
        self.signals_checked = std::time::Instant::now();
        let result: PyResult<bool> = Python::attach(|py| {
            py.check_signals()?;
            let callbacks = if per_batch { &self.batch_callbacks } else { &self.callbacks };
            if !callbacks.is_empty() {
                let args = args(py)?;
                for cb in callbacks {
                    let f = cb.bind(py).getattr(method)?;
                    f.call1(pyo3::types::PyTuple::new(py, args.iter().map(|a| a.bind(py)))?)?;
                }
            }
            let stop = self.model.bind(py).getattr("stop_training").ok().map(|s| s.is_truthy()).transpose()?.unwrap_or(false);
            Ok(stop)
        });
        match result {
            Ok(stop) => ctx.stop_training |= stop,
            Err(e) => {
                self.error = Some(e);
                ctx.stop_training = true;
            }
        }
    }
}

impl Callback for PythonHooks {
    fn on_train_begin(&mut self, ctx: &mut TrainContext) {
        self.call(ctx, "on_train_begin", false, |py| Ok(vec![PyDict::new(py).into_any().unbind()]));
    }
    fn on_epoch_begin(&mut self, epoch: usize, ctx: &mut TrainContext) {
        self.call(ctx, "on_epoch_begin", false, |py| Ok(vec![epoch.into_pyobject(py)?.into_any().unbind(), PyDict::new(py).into_any().unbind()]));
        // Keras's LearningRateScheduler with a Python function: lr = schedule(epoch, lr).
        if self.error.is_some() {
            return;
        }
        let scheduled: PyResult<Option<f64>> = Python::attach(|py| {
            let mut lr = None;
            for cb in &self.callbacks {
                if let Ok(f) = cb.bind(py).getattr("_lr_schedule") {
                    let current = lr.unwrap_or(ctx.optimizer.learning_rate() as f64);
                    let next: f64 = f.call1((epoch, current))?.extract()?;
                    if !next.is_finite() || next < 0.0 {
                        return Err(DescentError::new_err(format!("LearningRateScheduler: the schedule returned {next} for epoch {epoch}; a learning rate is finite and ≥ 0")));
                    }
                    lr = Some(next);
                }
            }
            Ok(lr)
        });
        match scheduled {
            Ok(Some(lr)) => ctx.optimizer.set_learning_rate(lr as f32),
            Ok(None) => {}
            Err(e) => {
                self.error = Some(e);
                ctx.stop_training = true;
            }
        }
    }
    fn on_batch_end(&mut self, batch: usize, logs: &Logs, ctx: &mut TrainContext) {
        self.call(ctx, "on_train_batch_end", true, |py| Ok(vec![batch.into_pyobject(py)?.into_any().unbind(), logs_dict(py, logs)?.into_any().unbind()]));
    }
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, ctx: &mut TrainContext) {
        self.call(ctx, "on_epoch_end", false, |py| Ok(vec![epoch.into_pyobject(py)?.into_any().unbind(), logs_dict(py, logs)?.into_any().unbind()]));
    }
    fn on_train_end(&mut self, logs: &Logs, ctx: &mut TrainContext) {
        self.call(ctx, "on_train_end", false, |py| Ok(vec![logs_dict(py, logs)?.into_any().unbind()]));
    }
}

/// A descent model for Python: built from its JSON config when its input shape is known
/// (from the config, or from the first data it sees, as Keras builds on first call).
#[pyclass(module = "descent._native", unsendable)]
struct NativeModel {
    config: ModelConfig,
    seed: u64,
    compile: Option<Compile>,
    model: Option<Model>,
}

impl NativeModel {
    /// The model, built for samples of shape `sample` if it is not yet. Returns compile
    /// warnings when building also compiled it.
    fn built(&mut self, sample: Option<&[usize]>) -> PyResult<(&mut Model, Vec<String>)> {
        let mut warnings = Vec::new();
        if self.model.is_none() {
            if sample.is_none() && !self.config.declares_input_shapes() {
                return Err(bad("the model has no input shape yet: give the first layer `input_shape=`, start from `keras.Input(shape=...)`, or fit it on data first"));
            }
            let mut model = Model::build_from(self.config.clone(), sample, self.seed).map_err(raise)?;
            if let Some(c) = &self.compile {
                warnings = compile_model(&mut model, c)?;
            }
            self.model = Some(model);
        }
        Ok((self.model.as_mut().expect("built above"), warnings))
    }
}

/// What `compile` was given: the `[compile]` table, and per-output losses and weights.
#[derive(Clone)]
struct Compile {
    section: CompileSection,
    losses: Vec<descent::nn::Loss>,
    loss_weights: Vec<f32>,
}

fn compile_model(model: &mut Model, c: &Compile) -> PyResult<Vec<String>> {
    let metrics: Vec<&str> = c.section.metrics.iter().map(String::as_str).collect();
    let optimizer = c.section.optimizer.build().map_err(raise)?;
    let k = model.num_outputs();
    if c.losses.is_empty() && c.loss_weights.is_empty() {
        return model.compile(optimizer, c.section.loss, &metrics).map_err(raise);
    }
    let losses = if c.losses.is_empty() { vec![c.section.loss; k] } else { c.losses.clone() };
    let weights = if c.loss_weights.is_empty() { vec![1.0; k] } else { c.loss_weights.clone() };
    model.compile_outputs(optimizer, &losses, &weights, &metrics).map_err(raise)
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> PyResult<T> {
    serde_json::from_str(text).map_err(|e| bad(format!("{what}: {e}")))
}

#[pymethods]
impl NativeModel {
    /// A model from its config (the `model` table of a `model.json`, as JSON text).
    #[new]
    #[pyo3(signature = (config_json, seed=None))]
    fn new(config_json: &str, seed: Option<u64>) -> PyResult<Self> {
        let seed = seed.unwrap_or(descent::nn::DEFAULT_SEED);
        let mut config: ModelConfig = from_json(config_json, "model config")?;
        config.normalize_inputs();
        let mut m = NativeModel { config, seed, compile: None, model: None };
        // Built now when the config gives the input shape (so `summary` works at once).
        if m.config.declares_input_shapes() {
            m.built(None)?;
        }
        Ok(m)
    }

    /// Compiles with the `[compile]` table of an experiment (optimizer, loss, metrics) as
    /// JSON; returns descent's warnings (e.g. softmax output with `from_logits = true`).
    /// For a model with several outputs, `output_losses_json` gives one loss table per
    /// output and `loss_weights` one weight each (empty: `loss` for every output, weight 1).
    #[pyo3(signature = (compile_json, output_losses_json="[]", loss_weights=Vec::new()))]
    fn compile(&mut self, compile_json: &str, output_losses_json: &str, loss_weights: Vec<f32>) -> PyResult<Vec<String>> {
        let c: CompileSection = from_json(compile_json, "compile")?;
        let losses: Vec<descent::nn::Loss> = from_json(output_losses_json, "loss")?;
        self.compile = Some(Compile { section: c, losses, loss_weights });
        match (self.model.as_mut(), &self.compile) {
            (Some(model), Some(c)) => compile_model(model, c),
            _ => Ok(Vec::new()),
        }
    }

    fn is_built(&self) -> bool {
        self.model.is_some()
    }

    /// Builds the model for samples of `shape` (when not yet built); returns compile
    /// warnings, if building compiled it.
    fn build(&mut self, shape: Vec<usize>) -> PyResult<Vec<String>> {
        Ok(self.built(Some(&shape))?.1)
    }

    /// Keras's `fit`. `callbacks_json`: descent's own callbacks (a JSON list of
    /// `[[callbacks]]` tables); `python_callbacks`: objects with Keras's `Callback`
    /// methods, `batch_callbacks` those of them to call after every batch; `owner`: the Python model (`stop_training`). Returns the history (name →
    /// values per epoch) and the warnings of building.
    #[pyo3(signature = (x, y, epochs, batch_size, validation_split, validation_data, shuffle, verbose, callbacks_json, python_callbacks, batch_callbacks, owner, class_weight=None, sample_weight=None))]
    #[allow(clippy::too_many_arguments)]
    fn fit<'py>(
        &mut self,
        py: Python<'py>,
        x: Vec<PyReadonlyArrayDyn<'py, f32>>,
        y: Vec<PyReadonlyArrayDyn<'py, f32>>,
        epochs: usize,
        batch_size: usize,
        validation_split: f32,
        validation_data: Option<(PyReadonlyArrayDyn<'py, f32>, PyReadonlyArrayDyn<'py, f32>)>,
        shuffle: bool,
        verbose: u8,
        callbacks_json: &str,
        python_callbacks: Vec<Py<PyAny>>,
        batch_callbacks: Vec<Py<PyAny>>,
        owner: Py<PyAny>,
        class_weight: Option<BTreeMap<usize, f32>>,
        sample_weight: Option<PyReadonlyArrayDyn<'py, f32>>,
    ) -> PyResult<(Bound<'py, PyDict>, Vec<String>)> {
        let (xs, ys) = (tensors(&x, "x", false)?, tensors(&y, "y", true)?);
        let sample_weight = sample_weight.map(|w| tensor(&w, "sample_weight", false)).transpose()?;
        let validation = match validation_data {
            Some((vx, vy)) => Some((tensor(&vx, "validation x", false)?, tensor(&vy, "validation y", true)?)),
            None => None,
        };
        let configs: Vec<CallbackConfig> = from_json(callbacks_json, "callbacks")?;
        let (model, warnings) = self.built(Some(&xs[0].dims()[1..]))?;
        if model.optimizer().is_none() {
            return Err(bad("the model is not compiled: call `model.compile(optimizer=..., loss=...)` before `fit`"));
        }
        check_arity(model, xs.len(), ys.len())?;
        if validation.is_some() && (xs.len() > 1 || ys.len() > 1) {
            return Err(bad("validation_data with several inputs or outputs is not supported: use validation_split"));
        }
        let mut hooks = PythonHooks { callbacks: python_callbacks, batch_callbacks, model: owner, error: None, signals_checked: std::time::Instant::now() };
        // `BackupAndRestore` is the fit's own backup, not a callback (relative to the
        // working directory, as Keras's `backup_dir`).
        let backup = configs.iter().find_map(|c| c.backup(Path::new("."), "model"));
        let result = py.detach(|| {
            let mut callbacks: Vec<Box<dyn Callback + '_>> = Vec::new();
            for c in configs.iter().filter(|c| !matches!(c, CallbackConfig::BackupAndRestore { .. })) {
                callbacks.push(c.build(Path::new("."))?);
            }
            callbacks.push(Box::new(&mut hooks));
            let options = FitOptions {
                    epochs,
                    batch_size,
                    validation_split,
                    validation_data: validation.as_ref().map(|(a, b)| (a, b)),
                    shuffle,
                    verbose,
                    callbacks,
                    backup,
                    class_weight,
                    sample_weight: sample_weight.as_ref(),
                    ..Default::default()
            };
            let (xr, yr): (Vec<&Tensor>, Vec<&Tensor>) = (xs.iter().collect(), ys.iter().collect());
            match (xr.len(), yr.len()) {
                (1, 1) => model.fit(xr[0], yr[0], options),
                (_, 1) => model.fit_inputs(&xr, yr[0], options),
                _ => model.fit_outputs(&xr, &yr, options),
            }
        });
        if let Some(e) = hooks.error.take() {
            return Err(e);
        }
        let history = result.map_err(raise)?;
        let out = PyDict::new(py);
        for (name, values) in &history.metrics {
            out.set_item(name, PyList::new(py, values)?)?;
        }
        Ok((out, warnings))
    }

    /// Keras's `evaluate`: loss and metrics over `(x, y)` as a dict.
    fn evaluate<'py>(&mut self, py: Python<'py>, x: Vec<PyReadonlyArrayDyn<'py, f32>>, y: Vec<PyReadonlyArrayDyn<'py, f32>>, batch_size: usize) -> PyResult<Bound<'py, PyDict>> {
        let (xs, ys) = (tensors(&x, "x", false)?, tensors(&y, "y", true)?);
        let (model, _) = self.built(Some(&xs[0].dims()[1..]))?;
        if model.optimizer().is_none() {
            return Err(bad("the model is not compiled: call `model.compile(optimizer=..., loss=...)` before `evaluate`"));
        }
        check_arity(model, xs.len(), ys.len())?;
        let logs = py
            .detach(|| {
                let (xr, yr): (Vec<&Tensor>, Vec<&Tensor>) = (xs.iter().collect(), ys.iter().collect());
                match (xr.len(), yr.len()) {
                    (1, 1) => model.evaluate(xr[0], yr[0], batch_size),
                    (_, 1) => model.evaluate_inputs(&xr, yr[0], batch_size),
                    _ => model.evaluate_outputs(&xr, &yr, batch_size),
                }
            })
            .map_err(raise)?;
        logs_dict(py, &logs)
    }

    /// Keras's `predict`: the model's outputs for `x` (one array per output).
    fn predict<'py>(&mut self, py: Python<'py>, x: Vec<PyReadonlyArrayDyn<'py, f32>>, batch_size: usize) -> PyResult<Vec<Bound<'py, PyArrayDyn<f32>>>> {
        let xs = tensors(&x, "x", false)?;
        let (model, _) = self.built(Some(&xs[0].dims()[1..]))?;
        check_arity(model, xs.len(), model.num_outputs())?;
        let outs = py.detach(|| model.predict_outputs(&xs.iter().collect::<Vec<_>>(), batch_size)).map_err(raise)?;
        outs.into_iter()
            .map(|out| {
                let dims = out.dims().to_vec();
                numpy::PyArray1::from_vec(py, out.into_data()).reshape(dims)
            })
            .collect()
    }

    /// `descent explain` on arrays: permutation importance of every feature over `(x, y)`
    /// (`repeats` shuffles each, seeded), and integrated gradients (`steps`, from a zero
    /// baseline) and saliency of the first `samples` rows for their true class (JSON).
    #[pyo3(signature = (x, y, samples=3, repeats=5, steps=50, seed=0))]
    fn explain(&mut self, py: Python<'_>, x: PyReadonlyArrayDyn<'_, f32>, y: PyReadonlyArrayDyn<'_, f32>, samples: usize, repeats: usize, steps: usize, seed: u64) -> PyResult<String> {
        use descent::train::explain::{integrated_gradients, permutation_importance, saliency};
        let (x, y) = (tensor(&x, "x", false)?, tensor(&y, "y", true)?);
        let (model, _) = self.built(Some(&x.dims()[1..]))?;
        if model.optimizer().is_none() {
            return Err(bad("the model is not compiled: explain scores it with its loss and metrics"));
        }
        let json = py.detach(|| -> descent::Result<serde_json::Value> {
            let (base, metric, importances) = permutation_importance(model, &x, &y, repeats, seed)?;
            let mut explained = Vec::new();
            for r in 0..x.rows().min(samples) {
                let class = y.data()[r] as usize;
                let a = integrated_gradients(model, x.row(r), None, class, steps)?;
                let s = saliency(model, &x.select_rows(&[r]), &[class])?;
                explained.push(serde_json::json!({
                    "sample": r, "class": class, "output": a.output, "baseline_output": a.baseline_output,
                    "completeness_gap": a.completeness_gap, "integrated_gradients": a.attributions, "saliency": s,
                }));
            }
            let importance: Vec<serde_json::Value> = importances.iter().map(|i| serde_json::json!({ "feature": i.feature, "mean": i.mean, "std": i.std })).collect();
            Ok(serde_json::json!({ "metric": metric, "score": base, "permutation_importance": importance, "samples": explained }))
        });
        Ok(json.map_err(raise)?.to_string())
    }

    fn summary(&mut self) -> PyResult<String> {
        Ok(self.built(None)?.0.summary())
    }

    /// The config as JSON (what `model.json` holds under `model`).
    fn config_json(&mut self) -> PyResult<String> {
        let config = match &self.model {
            Some(m) => m.config().map_err(raise)?,
            None => self.config.clone(),
        };
        serde_json::to_string(&config).map_err(|e| bad(e.to_string()))
    }

    /// The weights in descent's order, with their names (`<layer>.kernel`, …).
    fn get_weights<'py>(&mut self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyArrayDyn<f32>>)>> {
        let (model, _) = self.built(None)?;
        let params = model.params();
        let ids: Vec<_> = params.ids().collect();
        ids.into_iter()
            .map(|id| {
                let e = params.entry(id);
                let a = numpy::PyArray1::from_slice(py, &params.value(id)).reshape(e.shape.dims().to_vec())?;
                Ok((e.name.clone(), a))
            })
            .collect()
    }

    /// Sets every weight, in `get_weights`'s order; shapes must match.
    fn set_weights(&mut self, weights: Vec<PyReadonlyArrayDyn<'_, f32>>) -> PyResult<()> {
        let (model, _) = self.built(None)?;
        let params = model.params_mut();
        let ids: Vec<_> = params.ids().collect();
        if ids.len() != weights.len() {
            return Err(bad(format!("set_weights: the model has {} weight arrays, {} were given", ids.len(), weights.len())));
        }
        for (id, w) in ids.into_iter().zip(&weights) {
            let e = params.entry(id);
            if e.shape.dims() != w.shape() {
                return Err(bad(format!("set_weights: `{}` has shape {:?}, the array {:?}", e.name, e.shape.dims(), w.shape())));
            }
            let values: Vec<f32> = w.as_array().iter().copied().collect();
            params.value_mut(id).copy_from_slice(&values);
        }
        Ok(())
    }

    /// Writes the model folder (`model.json`, `model.safetensors`, optimizer state), the
    /// same as a run folder's model: the CLI's `evaluate`/`predict` open it.
    fn save(&mut self, dir: &str) -> PyResult<()> {
        let (model, _) = self.built(None)?;
        model.save(dir, &Preprocessing::default()).map_err(raise)
    }

    /// Opens a model folder written by `save` or by `descent fit` (a run folder).
    #[staticmethod]
    fn load(dir: &str) -> PyResult<NativeModel> {
        let (model, saved) = Model::load(dir).map_err(raise)?;
        let compile = saved.compile.as_ref().map(|c| Compile {
            section: CompileSection { optimizer: c.optimizer.clone(), loss: c.loss, metrics: c.metrics.clone() },
            losses: c.output_losses.clone(),
            loss_weights: c.loss_weights.clone(),
        });
        Ok(NativeModel { config: saved.model.clone(), seed: saved.seed, compile, model: Some(model) })
    }
}

/// `descent fit FILE`: runs an experiment file into its run folder; returns the folder,
/// the history and the held-out scores (JSON).
#[pyfunction]
fn fit_experiment(py: Python<'_>, path: &str) -> PyResult<String> {
    let exp = descent::experiment::Experiment::from_file(path).map_err(raise)?;
    let run = py.detach(|| exp.run(None)).map_err(raise)?;
    let history: serde_json::Map<String, serde_json::Value> = run.history.metrics.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect();
    let test: serde_json::Map<String, serde_json::Value> = run.test.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect();
    Ok(serde_json::json!({ "dir": run.dir, "history": history, "test": test, "warnings": run.warnings }).to_string())
}

/// `descent cv FILE`: k-fold cross-validation of an experiment file (JSON report: each
/// metric's per-fold values, mean and std).
#[pyfunction]
#[pyo3(signature = (path, folds=5, stratified=false, repeats=1, seed=None))]
fn cross_validate(py: Python<'_>, path: &str, folds: usize, stratified: bool, repeats: usize, seed: Option<u64>) -> PyResult<String> {
    let exp = descent::experiment::Experiment::from_file(path).map_err(raise)?;
    let spec = descent_tune::FoldSpec { folds, stratified, repeats, shuffle: true, seed: seed.unwrap_or(exp.seed) };
    let report = py.detach(|| descent_tune::cross_validate(&exp, &spec, usize::MAX, |_, _, _| true)).map_err(raise)?;
    let report = report.ok_or_else(|| bad("cross-validation was stopped"))?;
    Ok(report.to_json().to_string())
}

/// `descent tune STUDY.toml`: runs or resumes a study (its SQLite file keeps every trial);
/// returns every trial (JSON) once the budget is spent.
/// With `study_json` (the study file's tables as JSON), the study is defined in code and
/// `path` is where its file would be (see `StudyDef::from_text`).
#[pyfunction]
#[pyo3(signature = (path, trials=None, jobs=None, verbose=false, study_json=None))]
fn tune(py: Python<'_>, path: &str, trials: Option<usize>, jobs: Option<usize>, verbose: bool, study_json: Option<&str>) -> PyResult<String> {
    use descent_tune::study_file::StudyDef;
    let mut def = match study_json {
        None => StudyDef::from_file(Path::new(path)),
        Some(json) => {
            let value: serde_json::Value = from_json(json, "study")?;
            let text = toml::to_string(&value).map_err(|e| bad(format!("study: {e}")))?;
            StudyDef::from_text(&text, Path::new(path))
        }
    }
    .map_err(raise)?;
    if let Some(t) = trials {
        def.section.trials = t;
    }
    let mut opts = def.options(verbose);
    if let Some(j) = jobs {
        opts.jobs = j;
    }
    let study = def.open().map_err(raise)?;
    let all = py.detach(|| {
        study.optimize(&opts, |trial| def.evaluate(trial))?;
        study.trials()
    });
    let all = all.map_err(raise)?;
    let trials: Vec<serde_json::Value> = all
        .iter()
        .map(|t| serde_json::json!({ "number": t.number, "state": t.state.as_str(), "params": t.params, "value": t.value, "attempts": t.attempts, "scores": t.scores }))
        .collect();
    Ok(serde_json::json!({ "study": def.name, "storage": def.storage, "direction": def.objective.direction().as_str(), "trials": trials }).to_string())
}

/// `descent compare`: cross-validates each experiment file (or one experiment with each
/// optimizer, `name` or `name@lr`) on the same folds; JSON with each contender's report
/// and the ranked table with paired tests.
#[pyfunction]
#[pyo3(signature = (paths, optimizers, metric, folds=5, stratified=false, repeats=1, seed=None))]
#[allow(clippy::too_many_arguments)]
fn compare(py: Python<'_>, paths: Vec<String>, optimizers: Vec<String>, metric: &str, folds: usize, stratified: bool, repeats: usize, seed: Option<u64>) -> PyResult<String> {
    use descent::experiment::Experiment;
    use descent_tune::compare::{compare, with_optimizer, Contender};
    let contenders: Vec<Contender> = if optimizers.is_empty() {
        paths
            .iter()
            .map(|p| Experiment::from_file(p).map(|e| Contender { label: e.name().to_string(), experiment: e }))
            .collect::<descent::Result<_>>()
            .map_err(raise)?
    } else {
        let [base] = paths.as_slice() else {
            return Err(bad("compare: optimizers= takes exactly one experiment"));
        };
        let base = Experiment::from_file(base).map_err(raise)?;
        optimizers.iter().map(|o| with_optimizer(&base, o)).collect::<descent::Result<_>>().map_err(raise)?
    };
    let first = contenders.first().ok_or_else(|| bad("compare: no contenders"))?;
    let spec = descent_tune::FoldSpec { folds, stratified, repeats, shuffle: true, seed: seed.unwrap_or(first.experiment.seed) };
    let threads = 1;
    let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let result = py.detach(|| compare(&contenders, &spec, metric, jobs, threads)).map_err(raise)?;
    let reports: Vec<serde_json::Value> = result.contenders.iter().map(|(label, r)| serde_json::json!({ "label": label, "report": r.to_json() })).collect();
    Ok(serde_json::json!({ "metric": result.metric, "contenders": reports, "table": result.table() }).to_string())
}

/// `descent doctor RUN`: the findings on a run folder (JSON list: problem, code, title,
/// evidence, cause, fix), consulting the learning-rate range test when `lr_find`.
#[pyfunction]
#[pyo3(signature = (run, lr_find=false))]
fn doctor(py: Python<'_>, run: &str, lr_find: bool) -> PyResult<String> {
    use descent::experiment::doctor::{diagnose, experiment_baseline, machine_ceiling, Consult, RunRecord};
    let record = RunRecord::load(Path::new(run)).map_err(raise)?;
    let findings = py.detach(|| {
        let exp = &record.experiment;
        let mut range_test = || exp.lr_find(&descent::experiment::LrFindOptions::default()).ok().map(|f| f.valley);
        let mut ceiling = || machine_ceiling(&record);
        diagnose(&record, Consult { lr_find: if lr_find { Some(&mut range_test) } else { None }, baseline: experiment_baseline(exp), ceiling: Some(&mut ceiling) })
    });
    let list: Vec<serde_json::Value> = findings
        .iter()
        .map(|f| serde_json::json!({ "problem": f.problem.to_string(), "code": f.code, "title": f.title, "evidence": f.evidence, "cause": f.cause, "fix": f.fix, "text": f.to_string() }))
        .collect();
    Ok(serde_json::Value::Array(list).to_string())
}

/// `descent lr-find FILE`: the learning-rate range test on an experiment file (JSON:
/// rates, smoothed losses, the suggestions).
#[pyfunction]
#[pyo3(signature = (path, steps=100))]
fn lr_find(py: Python<'_>, path: &str, steps: usize) -> PyResult<String> {
    let exp = descent::experiment::Experiment::from_file(path).map_err(raise)?;
    let options = descent::experiment::LrFindOptions { steps, ..Default::default() };
    let f = py.detach(|| exp.lr_find(&options)).map_err(raise)?;
    Ok(serde_json::json!({ "learning_rates": f.learning_rates, "losses": f.losses, "stopped_early": f.stopped_early, "valley": f.valley, "steep": f.steep, "minimum": f.minimum }).to_string())
}

/// `descent report RUN`: the HTML report of a run folder, written to `out` (default
/// `RUN/report.html`); returns the path.
#[pyfunction]
#[pyo3(signature = (run, out=None))]
fn report(run: &str, out: Option<&str>) -> PyResult<String> {
    let html = descent::experiment::report::run_report(Path::new(run)).map_err(raise)?;
    let out = out.map(std::path::PathBuf::from).unwrap_or_else(|| Path::new(run).join("report.html"));
    descent::io::write_atomic(&out, html.as_bytes()).map_err(raise)?;
    Ok(out.display().to_string())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeModel>()?;
    m.add_function(wrap_pyfunction!(fit_experiment, m)?)?;
    m.add_function(wrap_pyfunction!(cross_validate, m)?)?;
    m.add_function(wrap_pyfunction!(tune, m)?)?;
    m.add_function(wrap_pyfunction!(compare, m)?)?;
    m.add_function(wrap_pyfunction!(doctor, m)?)?;
    m.add_function(wrap_pyfunction!(lr_find, m)?)?;
    m.add_function(wrap_pyfunction!(report, m)?)?;
    m.add("DescentError", m.py().get_type::<DescentError>())?;
    Ok(())
}
