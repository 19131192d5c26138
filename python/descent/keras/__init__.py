"""Keras's API on descent's engine: ``from descent import keras``."""

from . import callbacks, layers, losses, metrics, optimizers, regularizers
from . import models
from .layers import Input
from .models import Model, Sequential, load_model, set_random_seed


class utils:  # noqa: N801  (keras.utils.set_random_seed)
    set_random_seed = staticmethod(set_random_seed)


__all__ = ["Input", "Model", "Sequential", "callbacks", "layers", "load_model", "losses", "metrics", "models", "optimizers", "regularizers", "utils"]
