"""Keras's callbacks. Subclass :class:`Callback` (or use :class:`LambdaCallback`) for
Python code at train/epoch/batch boundaries; set ``self.model.stop_training = True`` to
stop. The others run inside descent's training loop, in Rust, configured with Keras's
keywords: ``EarlyStopping``, ``ModelCheckpoint``, ``CSVLogger``, ``TerminateOnNaN``,
``ReduceLROnPlateau``, ``LearningRateScheduler`` (with a schedule from
``keras.optimizers.schedules``), ``TensorBoard``, ``BackupAndRestore``."""

from ._config import bind, clean


class Callback:
    """Keras's base class: override any of the hooks below."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass


class LambdaCallback(Callback):
    """Keras's ``LambdaCallback``: functions for some of the hooks."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_batch_end=None, on_train_begin=None, on_train_end=None, on_batch_end=None, **_):
        super().__init__()
        hooks = {
            "on_epoch_begin": on_epoch_begin,
            "on_epoch_end": on_epoch_end,
            "on_train_batch_end": on_train_batch_end or on_batch_end,
            "on_train_begin": on_train_begin,
            "on_train_end": on_train_end,
        }
        for name, f in hooks.items():
            if f is not None:
                setattr(self, name, f)


class History(Callback):
    """What ``fit`` returns: ``history`` maps each loss and metric to its values per epoch."""

    def __init__(self, history=None, epochs=0, params=None):
        super().__init__()
        self.history = history or {}
        self.epoch = list(range(epochs))
        self.params = params or {}

    def __repr__(self):
        return f"<History epochs={len(self.epoch)} keys={list(self.history)}>"


class _DescentCallback:
    """A callback descent runs itself: its ``[[callbacks]]`` table."""

    _type = None
    _positional = ()
    _renamed = {}

    def __init__(self, *args, **kwargs):
        table = bind(type(self).__name__, self._positional, args, kwargs)
        table.pop("verbose", None)
        for keras_key, descent_key in self._renamed.items():
            if keras_key in table:
                table[descent_key] = table.pop(keras_key)
        if table.pop("_separator", ",") != ",":
            raise ValueError("CSVLogger: descent writes comma-separated files only")
        self._table = clean(table, f"{type(self).__name__}()")

    def config_table(self):
        return {"type": self._type, **self._table}


def _callback(cls_name, descent_type, positional=(), renamed=None):
    cls = type(cls_name, (_DescentCallback,), {"_type": descent_type, "_positional": tuple(positional), "_renamed": renamed or {}})
    globals()[cls_name] = cls


_callback("EarlyStopping", "early_stopping", ["monitor", "min_delta", "patience"])
_callback("ModelCheckpoint", "model_checkpoint", ["filepath", "monitor"], {"filepath": "dir"})
_callback("CSVLogger", "csv_logger", ["filename", "separator", "append"], {"separator": "_separator"})
_callback("TerminateOnNaN", "terminate_on_nan")
_callback("ReduceLROnPlateau", "reduce_lr_on_plateau", ["monitor", "factor", "patience"], {"min_lr": "min_lr"})


class LearningRateScheduler(Callback):
    """Keras's ``LearningRateScheduler(schedule)``: ``schedule(epoch, lr)`` returns the
    learning rate for each epoch (called at its start). A schedule object from
    ``keras.optimizers.schedules`` runs inside descent's loop instead."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if hasattr(schedule, "get_config_table"):
            self._table = {"type": "learning_rate_scheduler", "schedule": clean(schedule, "LearningRateScheduler(schedule)")}
        elif callable(schedule):
            self._table = None
            self._lr_schedule = schedule
        else:
            raise TypeError(f"LearningRateScheduler: schedule must be a function (epoch, lr) -> lr or a keras.optimizers.schedules object, not {type(schedule).__name__}")

    def config_table(self):
        return self._table

_callback("TensorBoard", "tensorboard", ["log_dir"])
_callback("BackupAndRestore", "backup_and_restore", ["backup_dir"])
