"""Alert-rule expressions: a small PromQL subset over signals, parsed once and evaluated at one time ``t``.

``parse(text)`` gives an ``Expr`` (syntax and type errors raise ``ExprError`` with line and column; the
grammar is in ``alerting.parse``); ``Expr.evaluate(source, t, lookback)`` gives an instant vector, a list of
``Sample``. Examples::

    latency_p99_ms{model="fraud-clf"} > 500
    drift_score{model="fraud-clf", feature=~"amount|age"} > 0.2
    baseline_deviation(latency_p95_ms, window=7d) > 4
    absent(request_rate{model="fraud-clf"}, 10m)
    rate(requests_total[5m]) * 60 < 1
    avg_over_time(error_rate[15m]) > 0.05 and request_rate > 1
    max by (model) (drift_score) > 0.3

Semantics are PromQL's at one evaluation time, with these choices written down:

- An instant selector takes, per matching series, the last non-NaN point with time in ``[t - lookback, t]``;
  a series with none is absent (stale). A range selector ``x[d]`` reads the non-NaN points in ``[t - d, t]``
  (closed at both ends, as ``SeriesSource.select`` is; PromQL 3 leaves the left end open).
- ``__name__``: a plain selection keeps it; arithmetic, unary minus, ``bool`` comparisons, functions and
  aggregations drop it, except a filtering comparison (which keeps the left side's labels, or the vector
  side's against a scalar), ``last_over_time`` and set operators, as in PromQL.
- Binary operators between two vectors match one-to-one on the label sets without ``__name__``, or on the
  labels of ``on(...)`` / all but those of ``ignoring(...)``; with ``on`` the result keeps only those labels.
  Two series of one side in one match group is an evaluation error (``ExprError``): group_left/group_right
  are not supported. Comparisons keep the left value, or 0/1 with ``bool``; a scalar-vector comparison keeps
  the vector's value whichever side it is on. Arithmetic follows IEEE 754 (``x / 0`` is ±Inf or NaN).
- ``rate``, ``increase`` and ``delta`` do not extrapolate to the range's ends, unlike PromQL: with the first
  and last points ``(t0, v0)`` and ``(t1, v1)`` of the range, ``increase = v1 - v0 + Σ resets`` (each drop
  of the counter adds the value before the drop, as PromQL's reset rule), ``rate = increase / (t1 - t0)``,
  ``delta = v1 - v0``; with fewer than 2 points the series is absent. An alert on a rate then reads exactly
  the points it was given, which is easier to check by hand than Prometheus' extrapolation.
- ``count_over_time`` counts non-NaN points only (every ``*_over_time`` skips NaN); ``stddev_over_time`` is
  the population standard deviation; ``quantile_over_time`` interpolates linearly (numpy's default, and
  PromQL's), with q < 0 giving -Inf and q > 1 giving +Inf.
- ``absent(x{...})`` / ``absent(x{...}, d)`` / ``absent_over_time(x{...}[d])``: one sample of value 1 when no
  series matching the selector has a non-NaN point in ``[t - d, t]`` (d defaults to the lookback), labelled
  with the selector's equality matchers (a label matched twice is left out), else nothing. ``absent(expr)``
  of any other expression gives ``{}`` 1 when the expression is empty.
- ``baseline_deviation(x, window=7d, min_points=10)``: per series, the modified (robust) z-score of its latest
  value ``x`` (as the instant selector sees it) against its own non-NaN points ``h`` in ``[t - window, t)``
  before that latest point::

      z = (x - median(h)) / (1.4826 · MAD),   MAD = median(|h - median(h)|)

  1.4826 ≈ 1 / Φ⁻¹(3/4) makes the MAD a consistent estimator of σ for normal data (Rousseeuw & Croux 1993,
  "Alternatives to the median absolute deviation", JASA 88:1273); the modified z-score and its usual
  threshold of 3.5 are Iglewicz & Hoaglin 1993, "How to Detect and Handle Outliers" (ASQC). When MAD is 0
  (more than half the history identical) the mean absolute deviation from the median is used instead,
  ``z = (x - median) / (1.2533 · MeanAD)`` with 1.2533 ≈ √(π/2) its normal-consistency constant; when that
  is 0 too the history is constant and z is +Inf, -Inf or 0 by the sign of ``x - median``. With fewer than
  ``min_points`` history points the series is absent.
- Aggregations ``sum avg min max count`` with ``by``/``without`` (``without`` also drops ``__name__``);
  ``min``/``max`` ignore NaN unless every value is NaN.

The evaluation reads through ``SeriesSource.select(name, matchers, start, end)`` once per selector, with the
range that selector needs; ``Expr.max_range()`` says how far back from ``t`` the widest one reaches.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from watchkeeper.alerting.model import Sample, SeriesSource
from watchkeeper.alerting.parse import (
    AGGREGATIONS,
    ARITHMETIC,
    COMPARISONS,
    FUNCTIONS,
    SET_OPS,
    Aggregation,
    Binary,
    Call,
    DurationLiteral,
    ExprError,
    MatrixSelector,
    Node,
    NumberLiteral,
    Unary,
    VectorSelector,
    format_duration,
    parse_duration,
    parse_tree,
)

__all__ = [
    "AGGREGATIONS",
    "DEFAULT_LOOKBACK",
    "FUNCTIONS",
    "Expr",
    "ExprError",
    "format_duration",
    "parse",
    "parse_duration",
    "robust_zscore",
]

DEFAULT_LOOKBACK = 300.0
"""Seconds an instant selector looks back for a series' latest point (PromQL's default, 5m)."""

MAD_SCALE = 1.4826  # 1 / Φ⁻¹(3/4): MAD → σ for normal data (Rousseeuw & Croux 1993)
MEAN_AD_SCALE = 1.2533  # √(π/2): mean absolute deviation → σ for normal data

NAME = "__name__"

Value = float | list[Sample]


def parse(text: str) -> Expr:
    """Parse an alert-rule expression; raises ``ExprError`` (a ``ValueError``) with the position of the first
    syntax error, unknown function (the message lists the known ones) or wrong argument.

    >>> e = parse('max by (model) (drift_score{feature=~"amount|age"}) > 0.3')
    >>> sorted(e.metric_names()), e.max_range()
    (['drift_score'], 300.0)
    >>> try:
    ...     parse("max(rate(x))")
    ... except ExprError as err:
    ...     print(err.line, err.column, err.message)
    1 10 rate() expects a range vector like x[5m] as argument 1 (v), got instant vector
    """
    return Expr(text, parse_tree(text))


class Expr:
    """A parsed expression. ``text`` is what was parsed; ``evaluate`` may be called any number of times."""

    __slots__ = ("_root", "_text")

    def __init__(self, text: str, root: Node) -> None:
        self._text = text
        self._root = root

    @property
    def text(self) -> str:
        return self._text

    @property
    def root(self) -> Node:
        """The syntax tree (``alerting.parse`` nodes)."""
        return self._root

    @property
    def type(self) -> str:
        """ "vector" or "scalar": what the expression gives before ``evaluate`` wraps a scalar in a sample."""
        return self._root.type

    def __repr__(self) -> str:
        return f"parse({self._text!r})"

    def metric_names(self) -> set[str]:
        """The metric name of every selector, for checking at load time that the signals exist. Selectors
        that choose names by regular expression (``{__name__=~"..."}``) name none."""
        return {n.name for n in _walk(self._root) if isinstance(n, VectorSelector) and n.name is not None}

    def absent_names(self) -> set[str]:
        """The metric names read only inside ``absent()``/``absent_over_time()``: a rule may name a signal
        that does not exist yet when it alerts on exactly that."""
        inside: set[str] = set()
        outside: set[str] = set()

        def visit(node: Node, in_absent: bool) -> None:
            if isinstance(node, VectorSelector) and node.name is not None:
                (inside if in_absent else outside).add(node.name)
            nested = in_absent or (isinstance(node, Call) and node.name in ("absent", "absent_over_time"))
            for child in node.children():
                visit(child, nested)

        visit(self._root, False)
        return inside - outside

    def max_range(self, lookback: float = DEFAULT_LOOKBACK) -> float:
        """The widest time range any part of the expression reads back from ``t``, in seconds: how much
        history a caller must load (``lookback`` for a plain selector, ``d`` for ``x[d]``, ``window`` for
        baseline_deviation)."""
        return _max_range(self._root, lookback)

    def evaluate(self, source: SeriesSource, t: float, lookback: float = DEFAULT_LOOKBACK) -> list[Sample]:
        """The instant vector at time ``t`` (seconds since the epoch). A scalar expression gives one sample
        with no labels. Raises ``ExprError`` for what only the data can show (many-to-one matching)."""
        t = float(t)
        lookback = float(lookback)
        if not math.isfinite(t):
            raise ValueError(f"t: expected a finite time in seconds, got {t}")
        if not (math.isfinite(lookback) and lookback > 0):
            raise ValueError(f"lookback: expected a positive number of seconds, got {lookback}")
        result = _Evaluator(self._text, source, t, lookback).eval(self._root)
        if isinstance(result, float):
            return [Sample({}, result)]
        return result


def robust_zscore(latest: float, history: np.ndarray) -> float:
    """The modified z-score of ``latest`` against ``history`` (non-empty, no NaN), as baseline_deviation
    computes it; see the module docstring for the formula, fallbacks and references.

    >>> round(robust_zscore(20.0, np.array([9.0, 10.0, 10.0, 11.0, 12.0])), 4)  # median 10, MAD 1
    6.7449
    >>> robust_zscore(11.0, np.array([10.0, 10.0, 10.0])), robust_zscore(9.0, np.array([10.0, 10.0]))
    (inf, -inf)
    """
    h = np.asarray(history, dtype=np.float64)
    med = float(np.median(h))
    dev = np.abs(h - med)
    diff = float(latest) - med
    mad = float(np.median(dev))
    if mad > 0:
        return diff / (MAD_SCALE * mad)
    mean_ad = float(np.mean(dev))
    if mean_ad > 0:
        return diff / (MEAN_AD_SCALE * mean_ad)
    if diff == 0 or math.isnan(diff):
        return 0.0 if diff == 0 else math.nan
    return math.copysign(math.inf, diff)


# ------------------------------------------------------------------------------------------------ walking


def _walk(node: Node):
    yield node
    for child in node.children():
        yield from _walk(child)


def _max_range(node: Node, lookback: float) -> float:
    if isinstance(node, VectorSelector):
        return lookback
    if isinstance(node, MatrixSelector):
        return node.range
    if isinstance(node, Call):
        if node.name == "absent" and len(node.args) == 2:
            assert isinstance(node.args[1], DurationLiteral)
            return node.args[1].seconds
        if node.name == "baseline_deviation":
            assert isinstance(node.args[1], DurationLiteral)
            return max(node.args[1].seconds, lookback)
    return max((_max_range(c, lookback) for c in node.children()), default=0.0)


# ------------------------------------------------------------------------------------------------ helpers


@dataclass(frozen=True, slots=True)
class _Points:
    """One series' non-NaN points in a range; ``labels`` include ``__name__``."""

    labels: dict[str, str]
    t: np.ndarray
    v: np.ndarray


def _drop_name(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != NAME}


def _format_labels(labels: Mapping[str, str]) -> str:
    name = labels.get(NAME, "")
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != NAME)
    return f"{name}{{{inner}}}"


def _arith(op: str, a: float, b: float) -> float:
    # numpy scalars give IEEE results (x/0 = ±Inf, 0/0 = NaN, (-8)^0.5 = NaN) where Python floats raise
    x, y = np.float64(a), np.float64(b)
    with np.errstate(all="ignore"):
        if op == "+":
            r = x + y
        elif op == "-":
            r = x - y
        elif op == "*":
            r = x * y
        elif op == "/":
            r = x / y
        elif op == "%":
            r = np.fmod(x, y)  # the sign of the dividend, as Go's math.Mod that PromQL uses
        else:
            r = np.power(x, y)
    return float(r)


def _compare(op: str, a: float, b: float) -> bool:
    if op == "==":
        return a == b
    if op == "!=":
        return a != b
    if op == ">":
        return a > b
    if op == "<":
        return a < b
    if op == ">=":
        return a >= b
    return a <= b


def _sum(values: list[float]) -> float:
    try:
        return math.fsum(values)  # exact rounding, so sum by () of many small values does not drift
    except (ValueError, OverflowError):  # inf - inf, or an intermediate overflow: IEEE's answer
        return float(sum(values))


def _increase(t: np.ndarray, v: np.ndarray) -> float | None:
    if len(v) < 2:
        return None
    drops = np.diff(v) < 0
    return float(v[-1] - v[0] + v[:-1][drops].sum())


def _rate(t: np.ndarray, v: np.ndarray) -> float | None:
    if len(v) < 2 or not t[-1] > t[0]:
        return None
    inc = _increase(t, v)
    assert inc is not None
    return inc / float(t[-1] - t[0])


def _delta(t: np.ndarray, v: np.ndarray) -> float | None:
    return float(v[-1] - v[0]) if len(v) >= 2 else None


_RANGE_FUNCTIONS: dict[str, Callable[[np.ndarray, np.ndarray], float | None]] = {
    "rate": _rate,
    "increase": _increase,
    "delta": _delta,
    "avg_over_time": lambda t, v: float(np.mean(v)),
    "min_over_time": lambda t, v: float(np.min(v)),
    "max_over_time": lambda t, v: float(np.max(v)),
    "sum_over_time": lambda t, v: _sum(v.tolist()),
    "count_over_time": lambda t, v: float(len(v)),
    "last_over_time": lambda t, v: float(v[-1]),
    "stddev_over_time": lambda t, v: float(np.std(v)),
}


def _quantile(q: float, v: np.ndarray) -> float:
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    return float(np.quantile(v, q))


# ---------------------------------------------------------------------------------------------- evaluator


class _Evaluator:
    def __init__(self, text: str, source: SeriesSource, t: float, lookback: float) -> None:
        self.text = text
        self.source = source
        self.t = t
        self.lookback = lookback

    def error(self, message: str, node: Node) -> ExprError:
        return ExprError(message, node.pos, self.text)

    def eval(self, node: Node) -> Value:
        if isinstance(node, NumberLiteral):
            return node.value
        if isinstance(node, VectorSelector):
            return [Sample(p.labels, float(p.v[-1])) for p in self.series(node, self.t - self.lookback)]
        if isinstance(node, Unary):
            x = self.eval(node.expr)
            if isinstance(x, float):
                return -x
            return self.unique([Sample(_drop_name(s.labels), -s.value) for s in x], node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Aggregation):
            return self.aggregate(node)
        if isinstance(node, Call):
            return self.call(node)
        raise self.error(f"cannot evaluate {type(node).__name__} here", node)  # the parser prevents this

    def vector(self, node: Node) -> list[Sample]:
        x = self.eval(node)
        assert isinstance(x, list), "the parser checked this is an instant vector"
        return x

    def series(self, sel: VectorSelector, start: float) -> list[_Points]:
        """Every series of ``sel`` with at least one non-NaN point in ``[start, t]``."""
        if sel.name is not None:
            names = [sel.name]
        else:
            names = sorted(
                n for n in self.source.names() if all(m.matches({NAME: n}) for m in sel.name_matchers)
            )
        out: list[_Points] = []
        for name in names:
            for rs in self.source.select(name, sel.matchers, start, self.t):
                t = np.asarray(rs.t, dtype=np.float64)
                v = np.asarray(rs.value, dtype=np.float64)
                # a source may hand back more than was asked; the range is this evaluator's contract
                keep = (t >= start) & (t <= self.t) & ~np.isnan(v)
                if keep.any():
                    labels = {**rs.labels, NAME: rs.name}
                    out.append(_Points(labels, t[keep], v[keep]))
        return out

    def unique(self, samples: list[Sample], node: Node) -> list[Sample]:
        """PromQL refuses a vector with two samples of one label set (possible once names are dropped)."""
        seen: set[tuple[tuple[str, str], ...]] = set()
        for s in samples:
            key = tuple(sorted(s.labels.items()))
            if key in seen:
                raise self.error(
                    f"the result has two samples labelled {_format_labels(s.labels)}: the series differed "
                    "only in the metric name, which this operation drops",
                    node,
                )
            seen.add(key)
        return samples

    # -- operators

    def binary(self, node: Binary) -> Value:
        lhs, rhs, op = self.eval(node.lhs), self.eval(node.rhs), node.op
        if isinstance(lhs, float) and isinstance(rhs, float):
            if op in COMPARISONS:
                return 1.0 if _compare(op, lhs, rhs) else 0.0
            return _arith(op, lhs, rhs)
        if isinstance(lhs, list) and isinstance(rhs, list):
            if op in SET_OPS:
                return self.set_operation(node, lhs, rhs)
            return self.vector_vector(node, lhs, rhs)
        scalar_left = isinstance(lhs, float)
        vec = rhs if scalar_left else lhs
        k = lhs if scalar_left else rhs
        assert isinstance(vec, list) and isinstance(k, float)
        out: list[Sample] = []
        for s in vec:
            a, b = (k, s.value) if scalar_left else (s.value, k)
            if op in COMPARISONS:
                hit = _compare(op, a, b)
                if node.bool_:
                    out.append(Sample(_drop_name(s.labels), 1.0 if hit else 0.0))
                elif hit:
                    out.append(s)  # the vector's labels (name kept) and its value, whichever side it is on
            else:
                out.append(Sample(_drop_name(s.labels), _arith(op, a, b)))
        return self.unique(out, node)

    def signature(self, node: Binary) -> Callable[[Mapping[str, str]], tuple]:
        if node.on:
            names = sorted(set(node.labels))
            return lambda labels: tuple(labels.get(n, "") for n in names)
        skip = {*node.labels, NAME}
        return lambda labels: tuple(sorted((k, v) for k, v in labels.items() if k not in skip))

    def set_operation(self, node: Binary, lhs: list[Sample], rhs: list[Sample]) -> list[Sample]:
        sig = self.signature(node)
        if node.op == "or":
            left = {sig(s.labels) for s in lhs}
            return [*lhs, *(s for s in rhs if sig(s.labels) not in left)]
        right = {sig(s.labels) for s in rhs}
        if node.op == "and":
            return [s for s in lhs if sig(s.labels) in right]
        return [s for s in lhs if sig(s.labels) not in right]

    def vector_vector(self, node: Binary, lhs: list[Sample], rhs: list[Sample]) -> list[Sample]:
        sig, op = self.signature(node), node.op
        right: dict[tuple, Sample] = {}
        for s in rhs:
            key = sig(s.labels)
            if key in right:
                raise self.many_to_one(node, "right", right[key], s)
            right[key] = s
        matched: dict[tuple, Sample] = {}
        out: list[Sample] = []
        for s in lhs:
            key = sig(s.labels)
            r = right.get(key)
            if r is None:
                continue
            if key in matched:
                raise self.many_to_one(node, "left", matched[key], s)
            matched[key] = s
            if op in COMPARISONS:
                hit = _compare(op, s.value, r.value)
                if not (hit or node.bool_):
                    continue
                value = (1.0 if hit else 0.0) if node.bool_ else s.value
            else:
                value = _arith(op, s.value, r.value)
            labels = dict(s.labels)
            if op in ARITHMETIC or node.bool_:
                labels.pop(NAME, None)
            if node.on:
                labels = {n: labels[n] for n in node.labels if n in labels}
            elif node.on is False:
                for n in node.labels:
                    labels.pop(n, None)
            out.append(Sample(labels, value))
        return self.unique(out, node)

    def many_to_one(self, node: Binary, side: str, first: Sample, second: Sample) -> ExprError:
        return self.error(
            f"'{node.op}' found two series on the {side} side for one match group, "
            f"{_format_labels(first.labels)} and {_format_labels(second.labels)}; many-to-one matching "
            "(group_left/group_right) is not supported: choose labels with on(...)/ignoring(...) that tell "
            "them apart, or aggregate that side",
            node,
        )

    def aggregate(self, node: Aggregation) -> list[Sample]:
        groups: dict[tuple, tuple[dict[str, str], list[float]]] = {}
        for s in self.vector(node.expr):
            if node.without:
                skip = {*node.labels, NAME}
                labels = {k: v for k, v in s.labels.items() if k not in skip}
            else:
                labels = {k: s.labels[k] for k in node.labels if k in s.labels}
            key = tuple(sorted(labels.items()))
            groups.setdefault(key, (labels, []))[1].append(s.value)
        out = []
        for labels, values in groups.values():
            out.append(Sample(labels, self.combine(node.op, values)))
        return out

    @staticmethod
    def combine(op: str, values: list[float]) -> float:
        if op == "sum":
            return _sum(values)
        if op == "avg":
            return _sum(values) / len(values)
        if op == "count":
            return float(len(values))
        real = [v for v in values if not math.isnan(v)]
        if not real:
            return math.nan
        return min(real) if op == "min" else max(real)

    # -- functions

    def call(self, node: Call) -> list[Sample]:
        name, args = node.name, node.args
        if name == "abs":
            return self.unique(
                [Sample(_drop_name(s.labels), abs(s.value)) for s in self.vector(args[0])], node
            )
        if name in ("absent", "absent_over_time"):
            return self.absent(node)
        if name == "baseline_deviation":
            return self.baseline_deviation(node)
        if name == "quantile_over_time":
            q = self.eval(args[0])
            assert isinstance(q, float)
            matrix, fn = args[1], (lambda t, v: _quantile(q, v))
        else:
            matrix, fn = args[0], _RANGE_FUNCTIONS[name]
        assert isinstance(matrix, MatrixSelector)
        out = []
        for p in self.series(matrix.selector, self.t - matrix.range):
            value = fn(p.t, p.v)
            if value is not None:
                labels = p.labels if name == "last_over_time" else _drop_name(p.labels)
                out.append(Sample(labels, value))
        return self.unique(out, node)

    def absent(self, node: Call) -> list[Sample]:
        arg = node.args[0]
        if isinstance(arg, MatrixSelector):  # absent_over_time(x[d])
            sel, d = arg.selector, arg.range
        elif len(node.args) == 2:
            assert isinstance(arg, VectorSelector) and isinstance(node.args[1], DurationLiteral)
            sel, d = arg, node.args[1].seconds
        else:
            if self.vector(arg):
                return []
            return [Sample(arg.absent_labels() if isinstance(arg, VectorSelector) else {}, 1.0)]
        if self.series(sel, self.t - d):
            return []
        return [Sample(sel.absent_labels(), 1.0)]

    def baseline_deviation(self, node: Call) -> list[Sample]:
        sel, window_arg, points_arg = node.args
        assert isinstance(sel, VectorSelector) and isinstance(window_arg, DurationLiteral)
        assert isinstance(points_arg, NumberLiteral)
        window, min_points = window_arg.seconds, int(points_arg.value)
        recent = self.t - self.lookback
        out = []
        for p in self.series(sel, self.t - max(window, self.lookback)):
            if p.t[-1] < recent:  # stale: the instant selector would not see it
                continue
            ht, hv = p.t[:-1], p.v[:-1]
            history = hv[(ht >= self.t - window) & (ht < self.t)]
            if len(history) < min_points:
                continue
            out.append(Sample(_drop_name(p.labels), robust_zscore(float(p.v[-1]), history)))
        return self.unique(out, node)
