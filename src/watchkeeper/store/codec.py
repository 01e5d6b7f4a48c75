"""JSON for values JSON cannot hold: non-finite floats, numpy scalars and arrays, datetimes.

``encode`` turns a value into plain JSON types; ``decode`` turns it back. Non-finite floats become
``{"$float": "nan" | "inf" | "-inf"}`` and datetimes ``{"$datetime": iso}``: config, summaries and table cells
keep NaN and infinity as such instead of losing them or writing invalid JSON.

>>> encode({"loss": float("nan"), "lr": [1e-3, float("inf")]})
{'loss': {'$float': 'nan'}, 'lr': [0.001, {'$float': 'inf'}]}
>>> decode(encode({"x": float("-inf")}))
{'x': -inf}
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import numpy as np

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _float(x: float) -> Any:
    if math.isfinite(x):
        return x
    return {"$float": "nan" if x != x else ("inf" if x > 0 else "-inf")}


def encode(value: Any, *, where: str = "value") -> Any:
    """Plain JSON types for ``value``; ``where`` names it in the error for a value JSON cannot hold."""
    t = type(value)
    if value is None or t is str or t is bool or t is int:
        return value
    if t is float:
        return _float(value)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be str, got {type(k).__name__} {k!r}")
            out[k] = encode(v, where=f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [encode(v, where=f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return encode(value.item(), where=where)
    if isinstance(value, np.ndarray):
        return encode(value.tolist(), where=where)
    if isinstance(value, bool):  # subclasses of the plain types, e.g. IntEnum and StrEnum members
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        return _float(float(value))
    if isinstance(value, _dt.datetime | _dt.date):
        return {"$datetime": value.isoformat()}
    raise TypeError(
        f"{where}: cannot store a value of type {t.__module__}.{t.__qualname__} "
        "(expected str, int, float, bool, None, datetime, or lists and dicts of them)"
    )


def decode(value: Any) -> Any:
    """The inverse of :func:`encode` (datetimes come back as ``datetime``)."""
    if isinstance(value, dict):
        if len(value) == 1:
            if "$float" in value:
                return _NONFINITE[value["$float"]]
            if "$datetime" in value:
                return _dt.datetime.fromisoformat(value["$datetime"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value
