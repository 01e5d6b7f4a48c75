"""Prediction signals of a window: the distribution of what the model answered, per output column.

Output columns are those of role ``output`` in the window's profile; each signal carries the label
``output=<column>``. By the column's kind:

Numeric outputs (a score, a regression value, a class code):

* ``prediction_mean``: the mean of the finite values (exact);
* ``positive_rate``: for values in [0, 1], the share above 0.5 (``1 - F(0.5)`` from the quantile sketch,
  within its rank error; exact, as the mean, when every value is an integer, i.e. 0 or 1 — then the share
  of 0 when ``settings.positive_label`` is 0); for integer codes beyond [0, 1], the share equal to a
  numeric ``positive_label`` (``F(p) - F(p-)``); nothing for other numbers (a regression);
* confidence of a binary score (values in [0, 1], not only integers): the confidence of a score ``p`` is
  ``max(p, 1 - p)``. Its distribution follows from the score's CDF ``F`` (quantile sketch)::

      G(c) = P(max(p, 1 - p) <= c) = P(1 - c <= p <= c) = F(c) - F((1 - c)-)     for c in [0.5, 1]

  where ``F(x-) = P(p < x)`` is read as ``F`` at the largest float below ``x``. ``confidence_p25``,
  ``confidence_p50`` and ``confidence_p75`` are the smallest ``c`` with ``G(c) >= q`` (the sketch's own
  "inverted CDF" convention), found by bisection on [0.5, 1] (G is non-decreasing); ``confidence_mean`` is
  ``0.5 + integral over [0.5, 1] of (1 - G(c)) dc`` (E[X] = ∫ P(X > c) dc for X >= 0), summed on a grid of
  ``CONFIDENCE_GRID`` steps, G taken at each step's left end, which bounds the grid's error by one step
  (2.4e-4); ``low_confidence_rate`` is ``P(conf < t) = F(t-) - F(1 - t)`` for ``t =
  settings.low_confidence``. All inherit the sketch's rank error (two CDF reads: at most twice it).
* a numeric output named like a confidence or a probability (its name contains ``confidence`` or
  ``proba``, e.g. ``confidence``, ``proba``, ``probability``, or the ``<output>.confidence`` column the SDK
  adds for a vector of class probabilities) is taken as the confidence itself: its mean, quartiles and
  ``P(value < t)`` give the confidence signals, and it gets no mean or positive rate of its own.

Categorical and boolean outputs (a class):

* ``positive_rate``: the share of values equal to ``settings.positive_label`` (compared as text for string
  classes; for booleans, True unless the label is False, 0, "false", "0" or "no"). Exact up to 1024
  distinct classes (the frequent-items sketch's exact range), a lower bound beyond;
* ``class_share{class=...}``: the share of each of the ``TOP_CLASSES`` most frequent classes;
* ``prediction_mean`` of a boolean output: the share of True.

Every output but numbers: ``prediction_diversity`` = distinct predictions / predictions (the calls that
returned a value in the column; a call that raised predicted nothing). Distinct counts are exact up to 1024
distinct values, HyperLogLog estimates beyond. Text outputs (long, mostly distinct strings such as an
LLM's answers) get only this one.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from watchkeeper.monitor.base import Derived, MonitorSettings, WindowContext
from watchkeeper.profile import ColumnProfile
from watchkeeper.sketch import Quantiles

TOP_CLASSES = 10
CONFIDENCE_GRID = 2048
CONFIDENCE_NAME = re.compile(r"confidence|proba", re.IGNORECASE)
_BISECTIONS = 64
_FALSE_LABELS = {"false", "0", "no"}


def derive(ctx: WindowContext) -> Iterator[Derived]:
    prof = ctx.profile
    if prof is None:
        return
    for name in prof.outputs():
        col = prof[name]
        labels = {"output": name}
        kind = col.kind
        if kind == "numeric":
            yield from _numeric(col, labels, ctx.settings)
        elif kind in ("categorical", "boolean"):
            yield from _classes(col, labels, ctx.settings)
            yield Derived("prediction_diversity", diversity(col), labels)
        elif kind == "text":
            yield Derived("prediction_diversity", diversity(col), labels)


def is_confidence_name(name: str) -> bool:
    return CONFIDENCE_NAME.search(name) is not None


# -- numeric outputs ---------------------------------------------------------------------------------------


def _numeric(col: ColumnProfile, labels: dict[str, str], settings: MonitorSettings) -> Iterator[Derived]:
    part = col.numeric
    if part is None or part.quantiles.n == 0:
        return
    q = part.quantiles
    t = settings.low_confidence
    if is_confidence_name(col.name):
        conf = q.quantile(np.array([0.25, 0.5, 0.75]))
        yield from _confidence(float(part.moments.mean), conf, _below(q, t), labels)
        return
    yield Derived("prediction_mean", float(part.moments.mean), labels)
    integers = col.counts.float == 0 and col.counts.str == 0
    if q.min >= 0.0 and q.max <= 1.0:
        if integers:  # 0/1 labels: the mean is the share of 1, exactly
            share_one = float(part.moments.mean)
            zero_is_positive = _is_zero(settings.positive_label)
            yield Derived("positive_rate", 1.0 - share_one if zero_is_positive else share_one, labels)
        else:
            yield Derived("positive_rate", float(1.0 - q.cdf([0.5])[0]), labels)
            mean, quartiles, low = binary_confidence(q, t)
            yield from _confidence(mean, quartiles, low, labels)
    elif integers and _is_number(settings.positive_label):
        p = float(settings.positive_label)
        at, below = q.cdf([p, np.nextafter(p, -np.inf)])
        yield Derived("positive_rate", float(at - below), labels)


def _confidence(mean: float, quartiles: Any, low: float, labels: dict[str, str]) -> Iterator[Derived]:
    yield Derived("confidence_mean", float(mean), labels)
    for name, value in zip(("confidence_p25", "confidence_p50", "confidence_p75"), quartiles, strict=True):
        yield Derived(name, float(value), labels)
    yield Derived("low_confidence_rate", float(low), labels)


def _below(q: Quantiles, t: float) -> float:
    """``P(X < t)`` from the sketch's ``P(X <= x)``."""
    return float(q.cdf([np.nextafter(t, -np.inf)])[0])


def binary_confidence(q: Quantiles, threshold: float) -> tuple[float, np.ndarray, float]:
    """Mean, quartiles and ``P(conf < threshold)`` of ``conf = max(p, 1 - p)`` for scores ``p`` in [0, 1]
    held by the quantile sketch ``q`` (see the module doc for the formulas)."""

    def g(c: np.ndarray) -> np.ndarray:
        below = np.nextafter(1.0 - c, -np.inf)
        both = q.cdf(np.concatenate([c, below]))
        return both[: c.size] - both[c.size :]

    # quartiles: smallest c with G(c) >= level, by bisection; G(1) = 1 as every score is <= 1
    levels = np.array([0.25, 0.5, 0.75])
    lo, hi = np.full(3, 0.5), np.ones(3)
    done = g(lo) >= levels
    hi[done] = 0.5
    for _ in range(_BISECTIONS):
        mid = (lo + hi) / 2
        ok = g(mid) >= levels
        hi = np.where(ok, mid, hi)
        lo = np.where(ok, lo, mid)
    # mean: 0.5 + sum over grid steps of (1 - G(left end)) * step
    grid = np.linspace(0.5, 1.0, CONFIDENCE_GRID + 1)[:-1]
    mean = 0.5 + float(np.sum(1.0 - g(grid))) * (0.5 / CONFIDENCE_GRID)
    if threshold <= 0.5:
        low = 0.0
    elif threshold > 1.0:
        low = 1.0
    else:
        below_t, upto_1_minus_t = q.cdf([np.nextafter(threshold, -np.inf), 1.0 - threshold])
        low = float(below_t - upto_1_minus_t)
    return mean, np.clip(hi, 0.5, 1.0), min(max(low, 0.0), 1.0)


# -- categorical and boolean outputs -----------------------------------------------------------------------


def _classes(col: ColumnProfile, labels: dict[str, str], settings: MonitorSettings) -> Iterator[Derived]:
    positive = settings.positive_label
    if col.kind == "boolean":
        true, false = col.true_count, col.false_count
        n = true + false
        if not n:
            return
        yield Derived("prediction_mean", true / n, labels)
        yield Derived("positive_rate", (true if _as_bool(positive) else false) / n, labels)
        for value, count in ((True, true), (False, false)):
            if count:
                yield Derived("class_share", count / n, {**labels, "class": str(value)})
        return
    strings = col.strings
    if strings is None or not strings.seen:
        return
    n = strings.seen
    key = positive if isinstance(positive, str) else str(positive)
    yield Derived("positive_rate", strings.frequent.count(key).count / n, labels)
    for item in strings.frequent.top(TOP_CLASSES):
        yield Derived("class_share", item.count / n, {**labels, "class": str(item.value)})


def diversity(col: ColumnProfile) -> float:
    """Distinct predictions / predictions of a categorical, text or boolean output."""
    if col.kind == "boolean":
        n = col.true_count + col.false_count
        return ((col.true_count > 0) + (col.false_count > 0)) / n if n else math.nan
    strings = col.strings
    if strings is None or not strings.seen:
        return math.nan
    return float(strings.distinct.estimate) / strings.seen


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and math.isfinite(float(v))


def _is_zero(v: Any) -> bool:
    return _is_number(v) and float(v) == 0.0


def _as_bool(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() not in _FALSE_LABELS
    if _is_number(v):
        return float(v) != 0.0
    return True
