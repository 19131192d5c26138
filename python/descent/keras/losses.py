"""Keras's losses as classes and string names, writing descent's loss table."""

from ._config import Table, define


class Loss(Table):
    def _check(self, table):
        reduction = table.pop("reduction", None)
        if reduction not in (None, "auto", "sum_over_batch_size"):
            raise ValueError(f"{type(self).__name__}: reduction={reduction!r} is not supported (descent averages over the batch, Keras's default)")


for _cls, _name, _args in [
    ("SparseCategoricalCrossentropy", "sparse_categorical_crossentropy", ["from_logits"]),
    ("CategoricalCrossentropy", "categorical_crossentropy", ["from_logits", "label_smoothing"]),
    ("BinaryCrossentropy", "binary_crossentropy", ["from_logits", "label_smoothing"]),
    ("MeanSquaredError", "mean_squared_error", []),
    ("MeanAbsoluteError", "mean_absolute_error", []),
    ("Huber", "huber", ["delta"]),
]:
    define(globals(), Loss, _cls, _name, _args)
MSE = MeanSquaredError  # noqa: F821
MAE = MeanAbsoluteError  # noqa: F821


def get(identifier):
    """A loss from a name (``"mse"``, ``"sparse_categorical_crossentropy"``) or object."""
    if isinstance(identifier, (Loss, str)):
        return identifier
    raise ValueError(f"could not interpret loss: {identifier!r}")
