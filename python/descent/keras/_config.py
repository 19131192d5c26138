"""Turning Keras-style constructor arguments into descent's config tables (the JSON a
``model.json`` holds, the same keys as an experiment's TOML)."""

import json
import math


def clean(value, where):
    """`value` with tuples as lists, config objects as their tables and ``None`` entries
    dropped (descent has no null: an absent key takes its default); NaN and infinities
    are refused here, naming the argument, as descent refuses them in files."""
    if hasattr(value, "get_config_table"):
        return value.get_config_table()
    if isinstance(value, dict):
        return {k: clean(v, f"{where}.{k}") for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [clean(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} = {value}: not a finite number")
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return clean(value.item(), where)  # NumPy scalars
    return value


def to_json(table, where):
    return json.dumps(clean(table, where), allow_nan=False)


def bind(cls_name, positional, args, kwargs):
    """Keras's positional arguments bound to their names, merged with the keywords."""
    if len(args) > len(positional):
        raise TypeError(f"{cls_name}() takes at most {len(positional)} positional arguments ({', '.join(positional)}), {len(args)} were given")
    bound = dict(zip(positional, args))
    for k in bound:
        if k in kwargs:
            raise TypeError(f"{cls_name}() got multiple values for argument '{k}'")
    bound.update(kwargs)
    return bound


class Table:
    """A Keras object that stands for a descent config table: ``{"name": ..., **keywords}``
    (an optimizer, a schedule, a loss). Subclasses set the descent name, Keras's
    positional argument order and the Keras-only keywords to drop."""

    _name = None
    _positional = ()
    _ignored = ("name",)

    def __init__(self, *args, **kwargs):
        table = bind(type(self).__name__, self._positional, args, kwargs)
        for k in self._ignored:
            table.pop(k, None)
        self._check(table)
        self._table = clean(table, f"{type(self).__name__}()")

    def _check(self, table):
        pass

    def get_config_table(self):
        return {"name": self._name, **self._table}

    def get_config(self):
        return self.get_config_table()

    def __repr__(self):
        return f"<{type(self).__name__} {self._table}>"


def define(namespace, base, cls_name, descent_name, positional=None):
    """A subclass of `base` named `cls_name` for descent's `descent_name`, put in `namespace`."""
    attrs = {"_name": descent_name, "__doc__": f"Keras's ``{cls_name}`` (descent's ``{descent_name}``)."}
    if positional is not None:
        attrs["_positional"] = tuple(positional)
    namespace[cls_name] = type(cls_name, (base,), attrs)
