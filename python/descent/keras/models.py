"""Keras's ``Model`` (functional) and ``Sequential``, over ``descent._native``."""

import sys
import warnings

import numpy as np

from .. import _native
from . import callbacks as _callbacks
from . import layers as _layers
from . import losses as _losses
from . import metrics as _metrics
from . import optimizers as _optimizers
from ._config import clean, to_json

_seed = None


def set_random_seed(seed):
    """Seeds every model made afterwards (descent's models are seeded: the same seed,
    the same initial weights and training)."""
    global _seed
    _seed = int(seed)


def _f32(a, what):
    if a is None:
        raise ValueError(f"{what} is required")
    return np.ascontiguousarray(a, dtype=np.float32)


def _arrays(a, names, what):
    """One float32 array per name: `a` a dict by name, a list in order, or one array."""
    if isinstance(a, dict):
        missing = [n for n in names if n not in a]
        if missing or len(a) != len(names):
            raise ValueError(f"{what}: expected arrays for {names}, got keys {sorted(a)}")
        return [_f32(a[n], f"{what}[{n!r}]") for n in names]
    if len(names) > 1 and isinstance(a, (list, tuple)):
        return [_f32(v, f"{what}[{i}]") for i, v in enumerate(a)]
    return [_f32(a, what)]


def _per_output(value, names, what):
    """A per-output setting as a list in output order (from a dict by name or a list)."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(f"compile: {what} names {unknown}, which are not outputs ({names})")
        return [value.get(n) for n in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"compile: {len(value)} {what} for {len(names)} outputs ({names})")
        return list(value)
    return None


class Model:
    """Keras's functional ``Model(inputs, outputs)``."""

    def __init__(self, inputs=None, outputs=None, name=None, **_):
        self.name = name or "model"
        self.stop_training = False
        self._native = None
        self._compile = None
        self.history = None
        self.layers = []
        if inputs is not None:
            self._graph, self.layers = _functional_config(inputs, outputs, self.name)

    # --- the native model ----------------------------------------------------------
    def _config(self):
        return self._graph

    def _model(self):
        if self._native is None:
            self._native = _native.NativeModel(to_json(self._config(), "model"), _seed)
            if self._compile is not None:
                self._warn(self._native.compile(*self._compile))
            for layer in self.layers:
                layer._owner = self
        return self._native

    def get_layer(self, name=None, index=None):
        """A layer by name or by index, as Keras's ``get_layer``."""
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}; the layers are: {', '.join(l.name for l in self.layers)}")

    def _named_weights(self):
        return self._model().get_weights()

    @staticmethod
    def _warn(messages):
        for m in messages:
            warnings.warn(m, stacklevel=3)

    # --- Keras's methods -----------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None, run_eagerly=None, steps_per_execution=None, jit_compile=None, **_):
        if loss is None:
            raise ValueError("compile: a loss is required (e.g. loss='sparse_categorical_crossentropy')")
        outputs = self._output_names()
        losses = _per_output(loss, outputs, "losses")
        if losses is not None and any(l is None for l in losses):
            raise ValueError(f"compile: every output needs a loss ({outputs})")
        weights = _per_output(loss_weights, outputs, "loss_weights") if loss_weights is not None else []
        as_table = lambda l: {"name": l} if isinstance(l, str) else _losses.get(l)
        table = {
            "optimizer": _optimizers.get(optimizer),
            "loss": _losses.get(losses[0] if losses else loss),
            "metrics": [_metrics.name_of(m) for m in (metrics or [])],
        }
        self._compile = (to_json(table, "compile"), to_json([as_table(l) for l in losses or []], "loss"), [float(w if w is not None else 1.0) for w in weights or []])
        if self._native is not None:
            self._warn(self._native.compile(*self._compile))
        elif self._has_input_shape():
            self._model()

    def _input_names(self):
        return [i["name"] for i in self._config().get("inputs", [])] or ["input"]

    def _output_names(self):
        return self._config().get("outputs") or ["output"]

    def _has_input_shape(self):
        c = self._config()
        return c.get("input_shape") is not None or bool(c.get("inputs")) and all(i.get("shape") for i in c["inputs"])

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0, validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1, **_):
        if initial_epoch or steps_per_epoch or validation_steps:
            raise ValueError("fit: initial_epoch, steps_per_epoch and validation_steps are not supported (descent runs whole epochs; resume with callbacks.BackupAndRestore)")
        if self._compile is None:
            raise RuntimeError("You must call `compile()` before using the model.")
        x, y = _arrays(x, self._input_names(), "x"), _arrays(y, self._output_names(), "y")
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ValueError("fit: validation_data must be (x_val, y_val)")
            if len(x) > 1 or len(y) > 1:
                raise ValueError("fit: validation_data with several inputs or outputs is not supported; use validation_split")
            validation_data = (_f32(validation_data[0], "validation x"), _f32(validation_data[1], "validation y"))
        verbose = 1 if verbose == "auto" else int(verbose)
        python_callbacks, descent_callbacks = [], []
        for cb in callbacks or []:
            table = cb.config_table() if hasattr(cb, "config_table") else None
            if table is not None:
                descent_callbacks.append(table)
            elif isinstance(cb, _callbacks.Callback):
                cb.set_model(self)
                cb.set_params({"epochs": epochs, "verbose": verbose})
                python_callbacks.append(cb)
            else:
                raise TypeError(f"fit: {cb!r} is not a keras.callbacks.Callback")
        model = self._model()
        self.stop_training = False
        history, built_warnings = model.fit(
            x, y, int(epochs), int(batch_size or 32), float(validation_split), validation_data, bool(shuffle), verbose,
            to_json(descent_callbacks, "callbacks"), python_callbacks,
            [cb for cb in python_callbacks if type(cb).on_train_batch_end is not _callbacks.Callback.on_train_batch_end or "on_train_batch_end" in vars(cb)], self,
            {int(k): float(v) for k, v in class_weight.items()} if class_weight else None,
            None if sample_weight is None else _f32(sample_weight, "sample_weight"),
        )
        self._warn(built_warnings)
        epochs_run = len(next(iter(history.values()))) if history else 0
        self.history = _callbacks.History(history, epochs_run, {"epochs": epochs, "verbose": verbose})
        return self.history

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False, **_):
        logs = self._model().evaluate(_arrays(x, self._input_names(), "x"), _arrays(y, self._output_names(), "y"), int(batch_size or 32))
        if verbose not in (0, "0"):
            print(" - ".join(f"{k}: {v:.4f}" for k, v in logs.items()), file=sys.stderr)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", **_):
        outs = self._model().predict(_arrays(x, self._input_names(), "x"), int(batch_size or 32))
        return outs[0] if len(outs) == 1 else outs

    def __call__(self, x):
        return self.predict(x, verbose=0)

    def summary(self, print_fn=None, **_):
        text = self._model().summary()
        (print_fn or print)(text)

    def get_weights(self):
        return [w for _, w in self._model().get_weights()]

    def set_weights(self, weights):
        self._model().set_weights([np.ascontiguousarray(w, dtype=np.float32) for w in weights])

    def _set_layer_weights(self, layer, weights):
        named = self._named_weights()
        mine = [i for i, (n, _) in enumerate(named) if n.startswith(layer.name + ".")]
        if len(mine) != len(weights):
            raise ValueError(f"{layer.name}: has {len(mine)} weight arrays, {len(weights)} were given")
        full = [w for _, w in named]
        for i, w in zip(mine, weights):
            full[i] = w
        self.set_weights(full)

    @property
    def weights(self):
        return self.get_weights()

    def count_params(self):
        return int(sum(w.size for w in self.get_weights()))

    def get_config(self):
        import json
        return json.loads(self._model().config_json())

    def save(self, filepath, **_):
        """Writes a descent model folder at ``filepath`` (``model.json``,
        ``model.safetensors``, optimizer state): ``keras.models.load_model`` and the
        CLI's ``descent evaluate`` / ``descent predict`` open it."""
        self._model().save(str(filepath))


class Sequential(Model):
    """Keras's ``Sequential``: a stack of layers."""

    def __init__(self, layers=None, name=None, **_):
        super().__init__(name=name or "sequential")
        self.layers = []
        self._input_shape = None
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if isinstance(layer, _layers.KerasTensor) and layer._node is not None and isinstance(layer._node, _layers._InputNode):
            self._input_shape = layer._node.shape
            return
        if not isinstance(layer, _layers.Layer):
            raise TypeError(f"Sequential.add: {layer!r} is not a layer")
        self.layers.append(layer)
        self._native = None  # rebuilt with the new stack

    def pop(self):
        self._native = None
        return self.layers.pop()

    def _input_names(self):
        return ["input"]

    def _output_names(self):
        return ["output"]

    def _config(self):
        if not self.layers:
            raise ValueError("the Sequential model has no layers")
        tables = [layer.config_table() for layer in self.layers]
        config = {"name": self.name, "layers": tables}
        shape = self._input_shape or tables[0].get("input_shape")
        tables[0].pop("input_shape", None)
        for t in tables[1:]:
            if "input_shape" in t:
                raise ValueError(f"layer {t['name']}: input_shape is only for the first layer")
        if shape is not None:
            config["input_shape"] = list(shape)
        return config


class _Loaded(Model):
    """A model opened from a folder: its config is whatever the folder holds."""

    def __init__(self, native):
        super().__init__(name="loaded")
        self._native = native
        self._compile = "loaded"

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)

    def _config(self):
        import json
        return json.loads(self._native.config_json())


def load_model(filepath, **_):
    """Opens a model folder written by ``Model.save`` or by ``descent fit`` (a run folder)."""
    return _Loaded(_native.NativeModel.load(str(filepath)))


def _functional_config(inputs, outputs, name):
    """The descent config of the graph from ``inputs`` to ``outputs`` (KerasTensors)."""
    inputs = list(inputs.values()) if isinstance(inputs, dict) else list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    outputs = list(outputs.values()) if isinstance(outputs, dict) else list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    for i in inputs:
        if not (isinstance(i, _layers.KerasTensor) and isinstance(i._node, _layers._InputNode)):
            raise TypeError(f"Model inputs must come from keras.Input, not {i!r}")
    seen, order = set(), []

    def visit(t):
        node = t._node
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, _layers._InputNode):
            return
        for i in node.inputs:
            visit(i)
        order.append(node)

    for o in outputs:
        if not isinstance(o, _layers.KerasTensor):
            raise TypeError(f"Model outputs must be layer outputs, not {type(o).__name__}")
        visit(o)
    names = {i.name for i in inputs}
    tables, called = [], set()
    for node in order:
        for i in node.inputs:
            if isinstance(i._node, _layers._InputNode) and i.name not in names:
                raise ValueError(f"the graph uses input {i.name!r}, which is not among the model's inputs")
        args = [i.name for i in node.inputs]
        if id(node.layer) in called:
            tables.append({"type": "call", "layer": node.layer.name, "name": node.name, "inputs": args})
        else:
            called.add(id(node.layer))
            t = node.layer.config_table(args)
            t.pop("input_shape", None)
            tables.append(t)
    ins = [clean({"name": i._node.name, "shape": i._node.shape}, "Input") for i in inputs]
    layers = []
    for node in order:
        if all(node.layer is not l for l in layers):
            layers.append(node.layer)
    return {"name": name, "inputs": ins, "layers": tables, "outputs": [o.name for o in outputs]}, layers
