"""Keras's learning-rate schedules, writing descent's schedule tables."""

from ._config import bind, clean


class LearningRateSchedule:
    _name = None
    _positional = ()

    def __init__(self, *args, **kwargs):
        table = bind(type(self).__name__, self._positional, args, kwargs)
        table.pop("name", None)
        self._table = clean(table, f"{type(self).__name__}()")

    def get_config_table(self):
        return {"name": self._name, **self._table}

    def get_config(self):
        return self.get_config_table()


def _schedule(cls_name, descent_name, positional):
    cls = type(cls_name, (LearningRateSchedule,), {"_name": descent_name, "_positional": tuple(positional)})
    globals()[cls_name] = cls


_schedule("ExponentialDecay", "exponential_decay", ["initial_learning_rate", "decay_steps", "decay_rate", "staircase"])
_schedule("InverseTimeDecay", "inverse_time_decay", ["initial_learning_rate", "decay_steps", "decay_rate", "staircase"])
_schedule("PolynomialDecay", "polynomial_decay", ["initial_learning_rate", "decay_steps", "end_learning_rate", "power", "cycle"])
_schedule("PiecewiseConstantDecay", "piecewise_constant_decay", ["boundaries", "values"])
_schedule("CosineDecay", "cosine_decay", ["initial_learning_rate", "decay_steps", "alpha"])
_schedule("CosineDecayRestarts", "cosine_decay_restarts", ["initial_learning_rate", "first_decay_steps", "t_mul", "m_mul", "alpha"])
