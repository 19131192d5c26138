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
