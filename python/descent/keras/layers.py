"""Keras's layers, with Keras's names, positional arguments and keywords, each writing
the descent layer config of the same name (the keys descent's TOML uses). Calling a layer
on a symbolic tensor (from :func:`descent.keras.Input`) builds a functional model, as in
Keras; calling one layer twice shares its weights."""

from ._config import bind, clean

# Keras-only keywords with no effect in descent, accepted for compatibility.
_IGNORED = {"dtype", "trainable", "autocast"}

_counts = {}


def _unique_name(base):
    n = _counts.get(base, 0)
    _counts[base] = n + 1
    return base if n == 0 else f"{base}_{n}"


def _snake(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i > 0 and name[i - 1].islower():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class KerasTensor:
    """A symbolic tensor: the output of `Input` or of a layer called in a functional model."""

    def __init__(self, name, shape, node):
        self.name = name
        self.shape = (None,) + tuple(shape) if shape is not None else None
        self._node = node  # the producing layer call (None for an input)

    def __repr__(self):
        return f"<KerasTensor {self.name} shape={self.shape}>"


class _InputNode:
    def __init__(self, name, shape):
        self.name = name
        self.shape = shape
        self.inputs = []


def Input(shape=None, batch_size=None, name=None, dtype=None, **_):
    """Keras's ``Input``: a model input of per-sample ``shape``."""
    name = name or _unique_name("input_layer")
    shape = list(shape) if shape is not None else None
    return KerasTensor(name, shape, _InputNode(name, shape))


class _Call:
    """One call of a layer in a functional graph."""

    def __init__(self, layer, inputs, output_name):
        self.layer = layer
        self.inputs = inputs
        self.name = output_name


class Layer:
    """A descent layer: its config type, Keras's positional argument order, and the
    keywords given."""

    _type = None
    _positional = ()

    def __init__(self, *args, **kwargs):
        table = bind(type(self).__name__, self._positional, args, kwargs)
        for k in _IGNORED:
            table.pop(k, None)
        if "input_dim" in table and self._type == "dense":
            table["input_shape"] = [table.pop("input_dim")]
        self.name = table.pop("name", None) or _unique_name(_snake(type(self).__name__))
        self._table = clean(table, f"{type(self).__name__}()")
        self._calls = 0

    def get_config(self):
        return {"name": self.name, **self._table}

    def _model_weights(self):
        owner = getattr(self, "_owner", None)
        if owner is None:
            raise ValueError(f"{self.name}: the layer has no weights until its model is built (compile or fit it first)")
        return owner

    def get_weights(self):
        """The layer's weights (Keras's order: kernel, then bias, …) as NumPy arrays."""
        return [w for n, w in self._model_weights()._named_weights() if n.startswith(self.name + ".")]

    def set_weights(self, weights):
        self._model_weights()._set_layer_weights(self, weights)

    @property
    def weights(self):
        return self.get_weights()

    def config_table(self, inputs=None):
        """The descent layer table, applied to `inputs` (names) in a functional model."""
        t = {"type": self._type, **self._table, "name": self.name}
        if inputs is not None:
            t["inputs"] = inputs
        return t

    def __call__(self, inputs, *more, **_):
        tensors = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        tensors += list(more)  # e.g. attention(query, value)
        for t in tensors:
            if not isinstance(t, KerasTensor):
                raise TypeError(f"{self.name}: called on {type(t).__name__}; call layers on keras.Input(...) or another layer's output (use model.predict for arrays)")
        self._calls += 1
        output = self.name if self._calls == 1 else f"{self.name}_call_{self._calls - 1}"
        node = _Call(self, tensors, output)
        return KerasTensor(output, None, node)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _layer(keras_name, descent_type, positional=(), doc=""):
    cls = type(keras_name, (Layer,), {"_type": descent_type, "_positional": tuple(positional), "__doc__": doc or f"Keras's ``{keras_name}`` (descent layer ``{descent_type}``)."})
    globals()[keras_name] = cls
    return cls


_layer("Dense", "dense", ["units"])
_layer("Activation", "activation", ["activation"])
_layer("Dropout", "dropout", ["rate"])
_layer("GaussianNoise", "gaussian_noise", ["stddev"])
_layer("BatchNormalization", "batch_normalization")
_layer("LayerNormalization", "layer_normalization")
_layer("Add", "add")
_layer("Concatenate", "concatenate")
_layer("Conv1D", "conv1d", ["filters", "kernel_size"])
_layer("Conv2D", "conv2d", ["filters", "kernel_size"])
_layer("DepthwiseConv2D", "depthwise_conv2d", ["kernel_size"])
for _k in ("Max", "Average"):
    for _d in ("1D", "2D"):
        _layer(f"{_k}Pooling{_d}", f"{_k.lower()}_pooling{_d.lower()}", ["pool_size", "strides", "padding"])
        _layer(f"Global{_k}Pooling{_d}", f"global_{_k.lower()}_pooling{_d.lower()}")
_layer("Flatten", "flatten")
_layer("Reshape", "reshape", ["target_shape"])
_layer("ZeroPadding2D", "zero_padding2d", ["padding"])
_layer("SpatialDropout1D", "spatial_dropout1d", ["rate"])
_layer("SpatialDropout2D", "spatial_dropout2d", ["rate"])
_layer("RandomFlip", "random_flip", ["mode"])
_layer("RandomTranslation", "random_translation", ["height_factor", "width_factor"])
_layer("Embedding", "embedding", ["input_dim", "output_dim"])
_layer("TokenAndPositionEmbedding", "token_and_position_embedding", ["vocabulary_size", "sequence_length", "embedding_dim"])
_layer("MultiHeadAttention", "multi_head_attention", ["num_heads", "key_dim"])

# Keras's short aliases.
MaxPool1D, MaxPool2D = globals()["MaxPooling1D"], globals()["MaxPooling2D"]
AvgPool1D, AvgPool2D = globals()["AveragePooling1D"], globals()["AveragePooling2D"]
GlobalMaxPool1D, GlobalMaxPool2D = globals()["GlobalMaxPooling1D"], globals()["GlobalMaxPooling2D"]
GlobalAvgPool1D, GlobalAvgPool2D = globals()["GlobalAveragePooling1D"], globals()["GlobalAveragePooling2D"]
Convolution1D, Convolution2D = globals()["Conv1D"], globals()["Conv2D"]
