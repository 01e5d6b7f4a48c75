"""What ``run.log`` accepts, checked on the caller's thread so a bad value fails where it was written.

A logged scalar is an ``int``, ``float`` or ``bool``, a numpy scalar or 0-d array, or anything with
``.item()`` that yields one (a one-element PyTorch tensor). Nested dicts flatten into ``parent/child`` keys,
W&B's convention for chart sections. ``None`` means "not logged at this step" and is skipped. NaN and
infinity are values and are kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

MAX_KEY_LENGTH = 256


def check_key(key: object) -> str:
    if type(key) is not str:
        raise TypeError(f"log: keys must be str, got {type(key).__name__} {key!r}")
    if not key or not key.strip():
        raise ValueError("log: a key must be a non-empty string, got an empty or blank key")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"log: key {key[:40]!r}... is {len(key)} characters long (at most {MAX_KEY_LENGTH})")
    if any(ord(c) < 32 for c in key):
        raise ValueError(f"log: key {key!r} contains control characters")
    return key


def scalar(key: str, value: Any) -> float | int | None:
    """The number to store for ``value``, None to skip it, or a TypeError naming the key and the type."""
    t = type(value)
    if t is float or t is int:
        return value
    if value is None:
        return None
    if t is bool or isinstance(value, bool | np.bool_):
        return int(bool(value))
    if isinstance(value, int | float):
        return value.real if isinstance(value, int) else float(value)
    if isinstance(value, np.generic):
        if isinstance(value, np.integer | np.floating):
            return value.item()
        raise _not_a_number(key, value)
    item = getattr(value, "item", None)
    size = getattr(value, "size", None)
    if callable(size):  # torch.Tensor.size() is a method; numel() gives the count
        numel = getattr(value, "numel", None)
        size = numel() if callable(numel) else None
    if callable(item) and size == 1:
        try:
            v = item()
        except Exception as exc:  # a framework's own error: say which key it was
            raise TypeError(f"log: key {key!r}: {type(value).__name__}.item() failed: {exc}") from exc
        if isinstance(v, bool | int | float) and not isinstance(v, complex):
            return float(v) if not isinstance(v, int) else int(v)
    raise _not_a_number(key, value)


def _not_a_number(key: str, value: Any) -> TypeError:
    t = type(value)
    hint = ""
    if isinstance(value, str):
        hint = "; strings belong in run.summary, run.config or a wk.Table"
    elif isinstance(value, list | tuple | np.ndarray):
        hint = "; log arrays as several keys or as rows of a wk.Table"
    return TypeError(
        f"log: key {key!r} has a value of type {t.__module__}.{t.__qualname__}, expected a number "
        f"(int, float, bool, numpy scalar), a dict of numbers, a wk.Table or a wk.Image{hint}"
    )


def flatten(prefix: str, value: Mapping[str, Any], out: dict[str, Any]) -> None:
    """``{"train": {"loss": 1}}`` -> ``{"train/loss": 1}`` (keys checked, values left to the caller)."""
    for k, v in value.items():
        key = f"{prefix}/{check_key(k)}"
        if isinstance(v, Mapping):
            flatten(key, v, out)
        else:
            out[check_key(key)] = v


def as_float(v: float | int) -> float:
    """A stored value: ints beyond the float range become +/-inf rather than failing the write."""
    try:
        return float(v)
    except OverflowError:
        return math.inf if v > 0 else -math.inf
