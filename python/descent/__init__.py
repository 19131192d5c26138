"""descent from Python: the Keras program you already write, on descent's engine.

    from descent import keras

gives ``keras.Sequential``, ``keras.Model``, ``keras.Input``, ``keras.layers``,
``keras.optimizers`` (and ``.schedules``), ``keras.losses``, ``keras.metrics``,
``keras.callbacks``, ``keras.regularizers`` and ``keras.models.load_model``, with
Keras's names, arguments and defaults. Models train in Rust (``descent._native``) with
the GIL released. ``descent.fit_experiment``, ``descent.cross_validate``, ``descent.tune``, ``descent.compare``,
``descent.lr_find``, ``descent.doctor``, ``descent.report`` and ``descent.explain`` run experiment, study and
run-folder files as the CLI does. Errors descent reports are raised as :class:`DescentError`, a
``ValueError`` carrying descent's message.
"""

from ._native import DescentError
from . import keras
from .lab import compare, cross_validate, doctor, explain, fit_experiment, lr_find, report, tune

__all__ = ["DescentError", "compare", "cross_validate", "doctor", "explain", "fit_experiment", "keras", "lr_find", "report", "tune"]
__version__ = "0.1.0"
