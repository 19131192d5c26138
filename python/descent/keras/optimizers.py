"""Keras's optimizers (and descent's further ones), Keras's names and keywords, each
writing descent's optimizer table: ``{"name": "adam", "learning_rate": 0.001, ...}``.
A learning rate may be a schedule from :mod:`descent.keras.optimizers.schedules`."""

from ._config import bind, clean
from . import schedules  # noqa: F401  (keras.optimizers.schedules)

# Keras-only keywords without an effect here.
_IGNORED = {"name", "jit_compile", "loss_scale_factor"}


class Optimizer:
    _name = None

    def __init__(self, *args, **kwargs):
        table = bind(type(self).__name__, ("learning_rate",), args, kwargs)
        for k in _IGNORED:
            table.pop(k, None)
        self._table = clean(table, f"{type(self).__name__}()")

    def get_config_table(self):
        return {"name": self._name, **self._table}

    def get_config(self):
        return self.get_config_table()

    @property
    def learning_rate(self):
        return self._table.get("learning_rate")

    def __repr__(self):
        return f"<{type(self).__name__} {self._table}>"


def _optimizer(cls_name, descent_name):
    cls = type(cls_name, (Optimizer,), {"_name": descent_name, "__doc__": f"``{cls_name}`` (descent's ``{descent_name}``)."})
    globals()[cls_name] = cls
    return cls


for _cls, _name in [
    ("SGD", "sgd"), ("RMSprop", "rmsprop"), ("Adam", "adam"), ("AdamW", "adamw"), ("Adamax", "adamax"),
    ("Nadam", "nadam"), ("RAdam", "radam"), ("Adagrad", "adagrad"), ("Adadelta", "adadelta"),
    ("Adafactor", "adafactor"), ("Ftrl", "ftrl"), ("Lion", "lion"), ("Muon", "muon"), ("Lamb", "lamb"),
    ("LARS", "lars"), ("Rprop", "rprop"), ("ScheduleFreeAdamW", "schedule_free_adamw"),
]:
    _optimizer(_cls, _name)


def get(identifier):
    """An optimizer from a name (``"adam"``) or an optimizer object."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        return identifier.lower()
    raise ValueError(f"could not interpret optimizer: {identifier!r}")
