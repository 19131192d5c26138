"""Keras's losses as classes and string names, writing descent's loss table."""

from ._config import bind, clean


class Loss:
    _name = None
    _positional = ()

    def __init__(self, *args, **kwargs):
        table = bind(type(self).__name__, self._positional, args, kwargs)
        table.pop("name", None)
        reduction = table.pop("reduction", None)
        if reduction not in (None, "auto", "sum_over_batch_size"):
            raise ValueError(f"{type(self).__name__}: reduction={reduction!r} is not supported (descent averages over the batch, Keras's default)")
        self._table = clean(table, f"{type(self).__name__}()")

    def get_config_table(self):
        return {"name": self._name, **self._table}

    def get_config(self):
        return self.get_config_table()


def _loss(cls_name, descent_name, positional=()):
    cls = type(cls_name, (Loss,), {"_name": descent_name, "_positional": tuple(positional)})
    globals()[cls_name] = cls


_loss("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy", ["from_logits"])
_loss("CategoricalCrossentropy", "categorical_crossentropy", ["from_logits", "label_smoothing"])
_loss("BinaryCrossentropy", "binary_crossentropy", ["from_logits", "label_smoothing"])
_loss("MeanSquaredError", "mean_squared_error")
_loss("MeanAbsoluteError", "mean_absolute_error")
_loss("Huber", "huber", ["delta"])
MSE = MeanSquaredError  # noqa: F821
MAE = MeanAbsoluteError  # noqa: F821


def get(identifier):
    """A loss from a name (``"mse"``, ``"sparse_categorical_crossentropy"``) or object."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        return identifier
    raise ValueError(f"could not interpret loss: {identifier!r}")
