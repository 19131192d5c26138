"""Keras's learning-rate schedules, writing descent's schedule tables."""

from ._config import Table, define


class LearningRateSchedule(Table):
    pass


for _cls, _name, _args in [
    ("ExponentialDecay", "exponential_decay", ["initial_learning_rate", "decay_steps", "decay_rate", "staircase"]),
    ("InverseTimeDecay", "inverse_time_decay", ["initial_learning_rate", "decay_steps", "decay_rate", "staircase"]),
    ("PolynomialDecay", "polynomial_decay", ["initial_learning_rate", "decay_steps", "end_learning_rate", "power", "cycle"]),
    ("PiecewiseConstantDecay", "piecewise_constant_decay", ["boundaries", "values"]),
    ("CosineDecay", "cosine_decay", ["initial_learning_rate", "decay_steps", "alpha"]),
    ("CosineDecayRestarts", "cosine_decay_restarts", ["initial_learning_rate", "first_decay_steps", "t_mul", "m_mul", "alpha"]),
]:
    define(globals(), LearningRateSchedule, _cls, _name, _args)
