"""Keras's optimizers (and descent's further ones), Keras's names and keywords, each
writing descent's optimizer table: ``{"name": "adam", "learning_rate": 0.001, ...}``.
A learning rate may be a schedule from :mod:`descent.keras.optimizers.schedules`."""

from ._config import Table, define
from . import schedules  # noqa: F401  (keras.optimizers.schedules)


class Optimizer(Table):
    _positional = ("learning_rate",)
    # Keras-only keywords without an effect here.
    _ignored = ("name", "jit_compile", "loss_scale_factor")

    @property
    def learning_rate(self):
        return self._table.get("learning_rate")


for _cls, _name in [
    ("SGD", "sgd"), ("RMSprop", "rmsprop"), ("Adam", "adam"), ("AdamW", "adamw"), ("Adamax", "adamax"),
    ("Nadam", "nadam"), ("RAdam", "radam"), ("Adagrad", "adagrad"), ("Adadelta", "adadelta"),
    ("Adafactor", "adafactor"), ("Ftrl", "ftrl"), ("Lion", "lion"), ("Muon", "muon"), ("Lamb", "lamb"),
    ("LARS", "lars"), ("Rprop", "rprop"), ("ScheduleFreeAdamW", "schedule_free_adamw"),
]:
    define(globals(), Optimizer, _cls, _name)


def get(identifier):
    """An optimizer from a name (``"adam"``) or an optimizer object."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return identifier.lower()
    raise ValueError(f"could not interpret optimizer: {identifier!r}")
