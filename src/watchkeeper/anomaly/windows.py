"""Windowing KPI rows into per-window feature rows: the step between raw time series and a detector.

A KPI frame (one row per sample: a timestamp, optional entity columns such as ``device_id``, numeric KPI
columns) becomes one row per (entity, window) with one column per (KPI, statistic), ready for
``Detector.fit`` / ``Detector.score``.

**The grid.** Window ``k`` covers ``[origin + k*step, origin + k*step + size)`` in UTC epoch time:
left-closed, right-open, the same for every entity. A row at time ``t`` lies in the windows ``k`` with
``floor((t - origin - size) / step) < k <= floor((t - origin) / step)``; with ``step == size`` (tumbling)
that is the single window ``floor((t - origin) / step)``. The arithmetic is on int64 nanoseconds, so where a
window starts never depends on where an entity's data starts, on gaps, or on rounding. :func:`window_starts`
exposes the same grid for reuse (live scoring).

**Statistics** per window and column, over the rows whose value is not NaN (infinities count as NaN):
``mean``; ``sum``; ``count``; ``var`` and ``std`` with ``ddof=1`` (NaN below 2 values; exactly 0 when every
value is equal); ``min``, ``max``, ``range = max - min``; ``median`` and ``qNN`` (the NN-th percentile, e.g.
``q05``, ``q95``) with NumPy's default linear interpolation between order statistics (Hyndman and Fan,
"Sample quantiles in statistical packages", The American Statistician 50(4), 1996, definition 7);
``first``/``last`` (first and last value in time); ``zero_frac`` (share of values equal to 0); and ``slope``,
the ordinary least-squares slope of value against time in seconds, ``sum((t - t̄)(x - x̄)) / sum((t - t̄)²)``
(NaN when all times are equal, 0 for a constant value). A window whose values are all NaN has count 0 and
NaN for every other statistic; an empty window (``fill="none"``) and a short one are NaN throughout, count
included, so detectors skip them.

**Sliding windows** (``step < size``). When ``step`` divides ``size`` and no order statistic is asked for,
each window is the union of ``size/step`` tumbling sub-windows of length ``step``: the sub-windows are
aggregated once and merged. Counts, sums, minima, maxima, first/last are merged directly; the centred sums
of squares and cross-products by the pairwise update of Chan, Golub and LeVeque ("Algorithms for computing
the sample variance", The American Statistician 37(3), 1983):
``M2 = sum_i M2_i + sum_i n_i (x̄_i - x̄)²`` and ``C = sum_i C_i + sum_i n_i (t̄_i - t̄)(x̄_i - x̄)``.
Otherwise (medians or quantiles, or a ``step`` that does not divide ``size``) every row is repeated once per
window that contains it, which is exact for every statistic and costs about ``size/step`` times the memory.

**Bad input** is handled and reported, never silently: rows with a missing or unparseable timestamp or a
missing entity value are dropped; out-of-order rows are sorted (stable); rows of one entity with equal
timestamps are resolved by the ``duplicates`` policy; NaN values are left out of the statistics; windows
with no rows between an entity's first and last window are emitted as NaN, dropped or forward-filled
(``fill``); windows with fewer than ``min_rows`` rows get NaN features; constant columns are flagged. After
:meth:`Windows.transform`, :attr:`Windows.report` is a :class:`WindowReport` saying what was done, with one
row of flags per window; its summary is logged at INFO on the ``watchkeeper.anomaly`` logger.

>>> import pandas as pd
>>> kpi = pd.DataFrame({
...     "timestamp": pd.to_datetime(["2024-01-01 00:01", "2024-01-01 00:04", "2024-01-01 00:12"], utc=True),
...     "cpu": [10.0, 20.0, 40.0],
... })
>>> w = Windows("10min", stats=["mean", "max"])
>>> feats = w.transform(kpi)
>>> feats.columns.tolist(), feats.to_numpy().tolist()
(['cpu_mean', 'cpu_max'], [[15.0, 20.0], [40.0, 40.0]])
>>> [str(t) for t in feats.index]
['2024-01-01 00:00:00+00:00', '2024-01-01 00:10:00+00:00']
>>> w.report.windows, w.report.empty_windows
(2, 0)
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["WindowReport", "Windows", "epoch_seconds", "window_starts"]

_log = logging.getLogger("watchkeeper.anomaly")

_NS = 1_000_000_000
_NAMED_STATS = (
    "mean",
    "std",
    "var",
    "min",
    "max",
    "median",
    "sum",
    "count",
    "first",
    "last",
    "range",
    "slope",
    "zero_frac",
)
_KNOWN = ", ".join(_NAMED_STATS) + ", qNN (the NN-th percentile: q05, q25, q75, q95, ...)"
_QUANTILE = re.compile(r"q(\d\d)")
_FILLS = ("none", "drop", "ffill")
_REPEATED = "sliding (rows repeated per window)"
_DUPLICATES = ("last", "first", "mean", "keep")
#: more windows than this (after filling gaps) is taken as a unit mistake rather than data
_MAX_WINDOWS = 50_000_000


# -- durations and the grid ------------------------------------------------------------------------------


def _duration_ns(value: Any, what: str) -> int:
    """A positive duration as int nanoseconds: an offset string ("10min"), seconds, or a timedelta."""
    expected = "a duration such as '10min', '1h', '30s', a number of seconds, or a timedelta"
    ns: int | None = None
    if isinstance(value, bool):
        ns = None
    elif isinstance(value, np.timedelta64):
        ns = int(value.astype("timedelta64[ns]").astype(np.int64))
    elif isinstance(value, int | np.integer):
        ns = int(value) * _NS
    elif isinstance(value, float | np.floating):
        if math.isfinite(value):
            whole = math.floor(value)
            ns = int(whole) * _NS + round((value - whole) * 1e9)
    elif isinstance(value, str):
        import pandas as pd

        try:
            td = pd.Timedelta(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{what}: expected {expected}, got {value!r}") from exc
        if td is not pd.NaT:
            ns = int(td // pd.Timedelta(1, unit="ns"))
    elif isinstance(value, timedelta):
        if hasattr(value, "as_unit"):  # pandas Timedelta keeps nanoseconds
            ns = int(value.as_unit("ns").value)
        else:
            ns = (value.days * 86_400 + value.seconds) * _NS + value.microseconds * 1_000
    if ns is None:
        raise ValueError(f"{what}: expected {expected}, got {value!r}")
    if ns <= 0:
        raise ValueError(f"{what}: expected a positive duration, got {value!r}")
    return ns


def _origin_ns(origin: Any) -> int:
    """The grid origin as UTC epoch nanoseconds: seconds since the epoch, or a datetime (naive = UTC)."""
    if isinstance(origin, bool):
        raise ValueError(f"origin: expected epoch seconds or a datetime, got {origin!r}")
    if isinstance(origin, int | np.integer):
        return int(origin) * _NS
    if isinstance(origin, float | np.floating) and math.isfinite(origin):
        whole = math.floor(origin)
        return int(whole) * _NS + round((origin - whole) * 1e9)
    if isinstance(origin, str | datetime | np.datetime64):
        import pandas as pd

        try:
            ts = pd.Timestamp(origin)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"origin: expected epoch seconds or a datetime, got {origin!r}") from exc
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        return int(ts.as_unit("ns").value)
    raise ValueError(f"origin: expected epoch seconds or a datetime, got {origin!r}")


def _seconds_to_ns(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch seconds (ints or floats) as int64 ns, and where they were usable (finite, in range)."""
    if x.dtype.kind in "iu":
        ok = np.abs(x) < 9_000_000_000
        return np.where(ok, x, 0).astype(np.int64) * _NS, ok
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x) & (np.abs(x) < 9e9)
    xs = np.where(ok, x, 0.0)
    whole = np.floor(xs)  # split so that whole seconds convert exactly
    return whole.astype(np.int64) * _NS + np.round((xs - whole) * 1e9).astype(np.int64), ok


def _window_range(
    t_ns: np.ndarray, size_ns: int, step_ns: int, origin_ns: int
) -> tuple[np.ndarray, np.ndarray]:
    """The first and last window index ``k`` whose window contains each time (the grid, defined once)."""
    rel = t_ns - origin_ns
    return (rel - size_ns) // step_ns + 1, rel // step_ns


def window_starts(t_seconds: Any, size_s: Any, step_s: Any = None, origin: Any = 0) -> np.ndarray:
    """Start times (epoch seconds) of the grid windows that contain each time in ``t_seconds``.

    The grid is the one :class:`Windows` uses: window ``k`` covers ``[origin + k*step, origin + k*step +
    size)``. ``size_s``/``step_s`` are seconds (or anything :class:`Windows` accepts, e.g. "10min");
    ``step_s=None`` means tumbling. The result has shape ``t.shape + (ceil(size/step),)``, earliest window
    first; when ``step`` does not divide ``size`` some times lie in one window fewer, and the last slot is
    NaN. A NaN or infinite time gives a row of NaN.

    >>> window_starts([0.0, 599.5, 600.0, 1234.0], 600).tolist()
    [[0.0], [0.0], [600.0], [1200.0]]
    >>> window_starts(650.0, "10min", step_s="5min").tolist()
    [300.0, 600.0]
    """
    size_ns = _duration_ns(size_s, "size_s")
    step_ns = size_ns if step_s is None else _duration_ns(step_s, "step_s")
    if step_ns > size_ns:
        raise ValueError(f"step_s: expected at most size_s ({size_ns / _NS:g} s), got {step_ns / _NS:g} s")
    o_ns = _origin_ns(origin)
    t = np.asarray(t_seconds)
    if t.dtype.kind not in "iuf":
        t = t.astype(np.float64)
    ns, ok = _seconds_to_ns(t.ravel())
    kmin, kmax = _window_range(ns, size_ns, step_ns, o_ns)
    width = -(-size_ns // step_ns)
    k = kmin[:, None] + np.arange(width)
    starts = (o_ns + k * step_ns) / 1e9
    starts[(k > kmax[:, None]) | ~ok[:, None]] = np.nan
    return starts.reshape((*t.shape, width))


def _fmt_duration(ns: int) -> str:
    for unit, n in (("d", 86_400 * _NS), ("h", 3_600 * _NS), ("min", 60 * _NS), ("s", _NS)):
        if ns % n == 0:
            return f"{ns // n}{unit}"
    return f"{ns / _NS:g}s"


# -- statistics ----------------------------------------------------------------------------------------


def _parse_stats(stats: Any) -> list[tuple[str, float | None]]:
    """(name, quantile) pairs; quantile is set for median and qNN."""
    if isinstance(stats, str):
        stats = [stats]
    try:
        names = list(stats)
    except TypeError as exc:
        raise ValueError(f"stats: expected a list of statistic names, got {stats!r}") from exc
    if not names:
        raise ValueError(f"stats: expected at least one statistic (known: {_KNOWN})")
    out: list[tuple[str, float | None]] = []
    for s in names:
        if not isinstance(s, str):
            raise ValueError(f"stats: expected statistic names as strings, got {s!r}")
        if any(s == have for have, _ in out):
            raise ValueError(f"stats: {s!r} is given twice")
        if s == "median":
            out.append((s, 0.5))
        elif (m := _QUANTILE.fullmatch(s)) is not None:
            out.append((s, int(m.group(1)) / 100))
        elif s in _NAMED_STATS:
            out.append((s, None))
        else:
            raise ValueError(f"stats: unknown statistic {s!r} (known: {_KNOWN})")
    return out


@dataclass(frozen=True, slots=True)
class _Need:
    """Which per-window moments the requested statistics need."""

    m2: bool
    first: bool
    last: bool
    zeros: bool
    slope: bool
    quantiles: tuple[float, ...]

    @classmethod
    def of(cls, stats: list[tuple[str, float | None]]) -> _Need:
        names = {s for s, _ in stats}
        return cls(
            m2=bool(names & {"std", "var", "slope"}),
            first="first" in names,
            last="last" in names,
            zeros="zero_frac" in names,
            slope="slope" in names,
            quantiles=tuple(sorted({q for _, q in stats if q is not None})),
        )


def _reduce(
    mom: dict[str, np.ndarray], starts: np.ndarray, lengths: np.ndarray, need: _Need, raw: bool
) -> dict:
    """Merge contributions into groups (contiguous runs given by ``starts``/``lengths``).

    A contribution is a raw row (``raw``: count 1 or 0, its value as sum, mean, min, max, first and last,
    no spread) or an already aggregated sub-window. ``mt`` is each contribution's mean time in seconds from
    the start of the group's window. Returns the same moments per group.
    """
    c_in = mom["c"]
    valid = c_in > 0
    all_valid = bool(valid.all())
    out: dict[str, np.ndarray] = {}
    c = lengths.astype(np.float64) if raw and all_valid else np.add.reduceat(c_in, starts)
    s_in = mom["sum"] if all_valid else np.where(valid, mom["sum"], 0.0)
    total = np.add.reduceat(s_in, starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / c
    out.update(c=c, sum=total, mean=mean)
    minimum = np.minimum if raw and all_valid else np.fmin
    maximum = np.maximum if raw and all_valid else np.fmax
    out["min"] = minimum.reduceat(mom["min"], starts)
    out["max"] = maximum.reduceat(mom["max"], starts)
    dev = None
    if need.m2:
        m_in = mom["mean"] if all_valid else np.where(valid, mom["mean"], 0.0)
        dev = m_in - np.repeat(mean, lengths)
        if not all_valid:
            dev[~valid] = 0.0
        sq = dev * dev if raw else c_in * dev * dev + mom["m2"]
        out["m2"] = np.add.reduceat(sq, starts)
    if need.first:
        if all_valid:
            out["first"] = mom["first"][starts]
        else:
            pos = np.minimum.reduceat(np.where(valid, np.arange(len(c_in)), len(c_in)), starts)
            out["first"] = np.append(mom["first"], np.nan)[pos]
    if need.last:
        if all_valid:
            out["last"] = mom["last"][starts + lengths - 1]
        else:
            pos = np.maximum.reduceat(np.where(valid, np.arange(len(c_in)), -1), starts)
            out["last"] = np.where(pos >= 0, mom["last"][pos], np.nan)
    if need.zeros:
        out["zeros"] = np.add.reduceat(mom["zeros"], starts)
    if need.slope:
        assert dev is not None
        t_in = mom["mt"] if all_valid else np.where(valid, mom["mt"], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mt = np.add.reduceat(c_in * t_in, starts) / c
        dt = t_in - np.repeat(mt, lengths)
        if not all_valid:
            dt[~valid] = 0.0
        if raw:
            out["m2t"] = np.add.reduceat(dt * dt, starts)
            out["ctx"] = np.add.reduceat(dt * dev, starts)
        else:
            out["m2t"] = np.add.reduceat(c_in * dt * dt + mom["m2t"], starts)
            out["ctx"] = np.add.reduceat(c_in * dt * dev + mom["ctx"], starts)
        out["mt"] = mt
    return out


def _raw_moments(x: np.ndarray, rel_s: np.ndarray | None, need: _Need) -> dict[str, np.ndarray]:
    """A column's rows as contributions to :func:`_reduce` (x has NaN for missing values)."""
    valid = ~np.isnan(x)
    mom = {"c": valid.astype(np.float64), "sum": x, "mean": x, "min": x, "max": x, "first": x, "last": x}
    if need.zeros:
        mom["zeros"] = (x == 0).astype(np.float64)
    if need.slope:
        assert rel_s is not None
        mom["mt"] = rel_s
    return mom


def _quantiles(
    x: np.ndarray, src: np.ndarray | None, starts: np.ndarray, lengths: np.ndarray, qs: Sequence[float]
) -> dict[float, np.ndarray]:
    """Per-group quantiles of ``x[src]`` (groups are runs given by ``starts``/``lengths``), NaN left out,
    linear interpolation as in ``numpy.quantile`` (its default)."""
    # Sort within groups by one integer sort of (group, rank of the value among all rows): far faster than
    # a two-key sort on floats. NaN ranks last, so it sorts last within each group.
    n_base = len(x)
    by_value = np.argsort(x)
    rank = np.empty(n_base, dtype=np.int64)
    rank[by_value] = np.arange(n_base)
    if src is not None:
        rank = rank[src]
    gid = np.repeat(np.arange(len(starts), dtype=np.int64), lengths)
    xs = x[by_value][np.sort(gid * n_base + rank) % n_base]
    n = np.add.reduceat((~np.isnan(xs)).astype(np.int64), starts)
    out = {}
    for q in qs:
        pos = q * np.maximum(n - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
        frac = pos - lo
        a, b = xs[starts + lo], xs[starts + hi]
        diff = b - a
        # numpy's lerp: from below for frac < 0.5, from above otherwise (exact at both ends)
        v = np.where(frac >= 0.5, b - diff * (1 - frac), a + diff * frac)
        v[n == 0] = np.nan
        out[q] = v
    return out


def _finalize(
    mom: dict[str, np.ndarray], quant: dict[float, np.ndarray], stats, size_s: float
) -> list[np.ndarray]:
    """The requested statistics of one column from its per-window moments."""
    c, mn, mx = mom["c"], mom["min"], mom["max"]
    flat = (c >= 2) & (mn == mx)  # every value equal: spread and slope are exactly 0, not rounding noise
    cols = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for name, q in stats:
            if q is not None:
                v = quant[q]
            elif name == "mean":
                v = mom["mean"]
            elif name == "sum":
                v = np.where(c > 0, mom["sum"], np.nan)
            elif name == "count":
                v = c
            elif name in ("var", "std"):
                v = np.where(c >= 2, mom["m2"] / (c - 1), np.nan)
                v[flat] = 0.0
                if name == "std":
                    v = np.sqrt(v)
            elif name == "min":
                v = mn
            elif name == "max":
                v = mx
            elif name == "range":
                v = mx - mn
            elif name == "first":
                v = mom["first"]
            elif name == "last":
                v = mom["last"]
            elif name == "zero_frac":
                v = mom["zeros"] / c
            elif name == "slope":
                m2t = mom["m2t"]
                # times all equal (up to rounding of their mean): no slope
                v = np.where(m2t > c * (1e-12 * size_s) ** 2, mom["ctx"] / m2t, np.nan)
                v[flat] = 0.0
            else:  # pragma: no cover - _parse_stats admits nothing else
                raise AssertionError(name)
            cols.append(np.asarray(v, dtype=np.float64))
    return cols


# -- the report ----------------------------------------------------------------------------------------


@dataclass
class WindowReport:
    """What :meth:`Windows.transform` did to the data. ``str(report)`` is a one-paragraph summary.

    ``per_window`` has the features' index and, per window: ``n_rows`` (rows in it), ``empty`` (no rows,
    a gap between the entity's first and last window), ``short`` (fewer than ``min_rows`` rows: features
    set to NaN), ``filled`` (features copied from the previous window by ``fill="ffill"``) and ``has_nan``
    (some of its rows had NaN values, left out of the statistics). Entity keys are the ``by`` value (a
    tuple for several ``by`` columns; ``None`` without ``by``).
    """

    rows_in: int
    #: rows that went into windows: after dropping bad rows and resolving duplicates
    rows_used: int
    #: rows of the features frame (empty windows included unless dropped)
    windows: int
    entities: int
    size_s: float
    step_s: float
    #: "tumbling", "sliding (merged sub-windows)" or "sliding (rows repeated per window)"
    method: str
    fill: str
    duplicates: str
    min_rows: int
    by: list[str]
    #: rows dropped for a missing or unparseable timestamp
    bad_timestamps_dropped: int = 0
    #: rows dropped for a missing ``by`` value (with a good timestamp)
    missing_by_dropped: int = 0
    #: rows that came after a later row of their own entity (interleaved entities are not out of order)
    unsorted_rows_sorted: int = 0
    #: rows removed by the duplicates policy (with "keep": rows kept that repeat an earlier timestamp)
    duplicates_resolved: int = 0
    #: per KPI column, NaN or infinite values left out of the statistics
    nan_values: dict[str, int] = field(default_factory=dict)
    #: windows without rows between an entity's first and last window (emitted, dropped or filled)
    empty_windows: int = 0
    #: windows with rows but fewer than ``min_rows``
    short_windows: int = 0
    #: per entity, the columns with two or more values, all equal (their spread features are 0)
    constant_columns: dict[Any, list[str]] = field(default_factory=dict)
    #: entities whose first window is later than the earliest first window of all entities
    entities_starting_late: list[Any] = field(default_factory=list)
    per_window: Any = field(default=None, repr=False)

    def __str__(self) -> str:
        size = _fmt_duration(round(self.size_s * _NS))
        step = _fmt_duration(round(self.step_s * _NS))
        kind = "tumbling" if self.size_s == self.step_s else f"sliding every {step}"
        ents = _count(self.entities, "entity", "entities")
        parts = [
            f"windowed {self.rows_used:,} of {self.rows_in:,} rows ({ents}) into {self.windows:,} "
            f"windows of {size} ({kind})"
        ]
        if self.bad_timestamps_dropped:
            parts.append(
                f"dropped {self.bad_timestamps_dropped:,} rows with a missing or unparseable timestamp"
            )
        if self.missing_by_dropped:
            parts.append(f"dropped {self.missing_by_dropped:,} rows with a missing {'/'.join(self.by)}")
        if self.unsorted_rows_sorted:
            parts.append(f"sorted {self.unsorted_rows_sorted:,} out-of-order rows")
        if self.duplicates_resolved:
            n = self.duplicates_resolved
            parts.append(
                f"kept {n:,} rows with a duplicate timestamp"
                if self.duplicates == "keep"
                else f"resolved {n:,} duplicate timestamps "
                f"({'averaged' if self.duplicates == 'mean' else 'kept ' + self.duplicates})"
            )
        nans = {k: v for k, v in self.nan_values.items() if v}
        if nans:
            some = ", ".join(f"{k}: {v:,}" for k, v in list(nans.items())[:4]) + (
                ", ..." if len(nans) > 4 else ""
            )
            parts.append(f"left {sum(nans.values()):,} NaN values out of the statistics ({some})")
        if self.empty_windows:
            done = {"none": "emitted as NaN", "drop": "dropped", "ffill": "forward-filled"}[self.fill]
            parts.append(f"{self.empty_windows:,} empty windows {done}")
        if self.short_windows:
            parts.append(f"{self.short_windows:,} windows with fewer than {self.min_rows} rows set to NaN")
        if self.constant_columns:
            items = list(self.constant_columns.items())
            some = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in items[:3])
            some += "; ..." if len(items) > 3 else ""
            parts.append(f"constant columns in {_count(len(items), 'entity', 'entities')} ({some})")
        if self.entities_starting_late:
            late = self.entities_starting_late
            some = ", ".join(map(str, late[:3])) + (", ..." if len(late) > 3 else "")
            parts.append(
                f"{_count(len(late), 'entity starts', 'entities start')} after the first window ({some})"
            )
        return "; ".join(parts)


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


# -- the windowing -------------------------------------------------------------------------------------


class Windows:
    """Cut KPI rows into grid-aligned windows and compute statistics per window, column and entity.

    ``size``/``step``: offset strings ("10min", "1h", "30s"), seconds, or timedeltas; ``step=None`` is
    tumbling, ``step < size`` sliding, ``step > size`` an error. ``time``: the timestamp column (datetime64,
    tz-aware datetimes, converted to UTC, strings, or epoch seconds); when the frame has no such column but
    a DatetimeIndex, the index is used. ``columns``: the KPI columns (default: every numeric, non-boolean
    column other than ``time`` and ``by``). ``min_rows``: windows with fewer rows get NaN features.
    ``fill``: what to do with empty windows between an entity's first and last window: "none" (emit them
    with NaN features), "drop" (leave them out), "ffill" (copy the previous window's features).
    ``duplicates``: rows of one entity with the same timestamp: "last", "first", "mean" (average, NaN left
    out) or "keep" (all). ``origin``: the grid's origin, epoch seconds or a datetime (default the epoch).
    Filling gaps is refused beyond 50 million windows (a unit mistake, most likely); epoch numbers beyond
    year 2255 are refused as not seconds.
    """

    def __init__(
        self,
        size: Any,
        *,
        stats: Sequence[str] | str = ("mean", "std", "max"),
        step: Any = None,
        time: str = "timestamp",
        columns: Sequence[str] | str | None = None,
        min_rows: int = 1,
        fill: str = "none",
        duplicates: str = "last",
        origin: Any = 0,
    ) -> None:
        self.size_ns = _duration_ns(size, "Windows: size")
        self.step_ns = self.size_ns if step is None else _duration_ns(step, "Windows: step")
        if self.step_ns > self.size_ns:
            raise ValueError(
                f"Windows: step must not exceed size (expected step <= {_fmt_duration(self.size_ns)}, got "
                f"{_fmt_duration(self.step_ns)}); a longer step would leave rows in no window"
            )
        self.stats = _parse_stats(stats)
        self.time = time
        self.columns = [columns] if isinstance(columns, str) else (None if columns is None else list(columns))
        if isinstance(min_rows, bool) or not isinstance(min_rows, int | np.integer) or min_rows < 1:
            raise ValueError(f"Windows: min_rows must be an integer >= 1, got {min_rows!r}")
        self.min_rows = int(min_rows)
        if fill not in _FILLS:
            raise ValueError(f"Windows: fill must be one of {list(_FILLS)}, got {fill!r}")
        self.fill = fill
        if duplicates not in _DUPLICATES:
            raise ValueError(f"Windows: duplicates must be one of {list(_DUPLICATES)}, got {duplicates!r}")
        self.duplicates = duplicates
        self.origin_ns = _origin_ns(origin)
        self.report: WindowReport | None = None

    def __repr__(self) -> str:
        step = "" if self.step_ns == self.size_ns else f", step={_fmt_duration(self.step_ns)!r}"
        return (
            f"Windows({_fmt_duration(self.size_ns)!r}{step}, stats={[s for s, _ in self.stats]!r}, "
            f"fill={self.fill!r}, duplicates={self.duplicates!r}, min_rows={self.min_rows})"
        )

    @property
    def method(self) -> str:
        """How windows are computed: "tumbling", "sliding (merged sub-windows)" or "sliding (rows repeated
        per window)" (also used for merged windows over gaps so long that a dense grid would not pay)."""
        if self.step_ns == self.size_ns:
            return "tumbling"
        if self.size_ns % self.step_ns == 0 and not _Need.of(self.stats).quantiles:
            return "sliding (merged sub-windows)"
        return _REPEATED

    def feature_names(self, columns: Sequence[str]) -> list[str]:
        """The output column names for these KPI columns, in output order."""
        return [f"{c}_{s}" for c in columns for s, _ in self.stats]

    def transform(self, df: Any, by: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Features per (entity, window) of a pandas or polars frame; see the class and module docs.

        Returns a float64 pandas DataFrame indexed by ``(*by, "window_start")`` (UTC timestamps), with
        columns ``f"{column}_{stat}"``, and sets :attr:`report`.
        """
        import pandas as pd

        by_list = [] if by is None else ([by] if isinstance(by, str) else list(by))
        frame = _to_pandas(df, self.time, by_list, self.columns)
        n_in = len(frame)
        t_ns, t_ok = _time_column(frame, self.time)
        keys, by_ok = [], np.ones(n_in, dtype=bool)
        for name in by_list:
            col = _field(frame, name)
            if col is None:
                raise ValueError(
                    f"Windows.transform: by column {name!r} not found (expected one of the columns "
                    f"{_names(frame)})"
                )
            codes, uniq = pd.factorize(col, sort=True)  # a missing value gets code -1
            keys.append((codes, uniq))
            by_ok &= codes >= 0
        columns = _kpi_columns(frame, self.columns, self.time, by_list)
        data = [_numeric_values(frame, c) for c in columns]

        keep = t_ok & by_ok
        bad_ts, missing_by = int((~t_ok).sum()), int((t_ok & ~by_ok).sum())
        if not keep.all():
            t_ns = t_ns[keep]
            data = [x[keep] for x in data]
            keys = [(codes[keep], uniq) for codes, uniq in keys]
        e, levels = _entity_codes(keys, len(t_ns), dropped=not keep.all())
        n_entities = len(levels[0]) if levels else (1 if len(t_ns) else 0)

        order, late = _sort_order(e, t_ns, n_entities)
        if order is not None:
            e, t_ns = e[order], t_ns[order]
            data = [x[order] for x in data]
        e, t_ns, data, n_dup = _resolve_duplicates(e, t_ns, data, self.duplicates)
        nan_values = {}
        for i, (name, x) in enumerate(zip(columns, data, strict=True)):
            bad = ~np.isfinite(x)
            nan_values[str(name)] = int(bad.sum())
            if nan_values[str(name)] and not np.isnan(x[bad]).all():
                data[i] = np.where(bad, np.nan, x)

        need = _Need.of(self.stats)
        feat_names = self.feature_names([str(c) for c in columns])
        method = self.method
        if len(t_ns):
            method, ew, kw, n_rows, nan_rows, feats = self._aggregate(e, t_ns, data, need)
        else:
            ew = kw = n_rows = nan_rows = np.zeros(0, dtype=np.int64)
            feats = np.zeros((0, len(feat_names)))
        out = self._assemble(ew, kw, n_rows, nan_rows, feats)
        ew, kw, n_rows, feats, empty, short, filled, has_nan, n_empty, late_entities = out

        index = self._index(ew, kw, by_list, levels)
        features = pd.DataFrame(feats, index=index, columns=feat_names, copy=False)
        per_window = pd.DataFrame(
            {"n_rows": n_rows, "empty": empty, "short": short, "filled": filled, "has_nan": has_nan},
            index=index,
        )
        key_of = _entity_keys(levels, n_entities)
        self.report = WindowReport(
            rows_in=n_in,
            rows_used=len(t_ns),
            windows=len(features),
            entities=n_entities,
            size_s=self.size_ns / _NS,
            step_s=self.step_ns / _NS,
            method=method,
            fill=self.fill,
            duplicates=self.duplicates,
            min_rows=self.min_rows,
            by=by_list,
            bad_timestamps_dropped=bad_ts,
            missing_by_dropped=missing_by,
            unsorted_rows_sorted=late,
            duplicates_resolved=n_dup,
            nan_values=nan_values,
            empty_windows=n_empty,
            short_windows=int(short.sum()),
            constant_columns=_constant_columns(e, data, columns, key_of),
            entities_starting_late=[key_of(i) for i in late_entities],
            per_window=per_window,
        )
        _log.info("windows: %s", self.report)
        return features

    # -- steps -----------------------------------------------------------------------------------------

    def _aggregate(self, e: np.ndarray, t: np.ndarray, data: list[np.ndarray], need: _Need):
        """Windows with rows, sorted by (entity, k): the method used, entity, k, rows, rows with NaN, and
        the feature matrix."""
        size_ns, step_ns, o_ns = self.size_ns, self.step_ns, self.origin_ns
        method = self.method
        if method == "tumbling":
            k = (t - o_ns) // step_ns
            return method, *self._from_rows(e, k, t, data, need, step_ns)
        if method == _REPEATED:
            return method, *self._repeated(e, t, data, need)
        # sliding, merged: aggregate tumbling sub-windows of one step, then merge m consecutive ones
        m = size_ns // step_ns
        ks = (t - o_ns) // step_ns
        starts, lengths, es, ks_g = _runs(e, ks)
        # each entity's sub-windows on a dense strip padded by m-1 empty slots each side; window w of the
        # entity (k = first_sub - m + 1 + w) merges strip slots w .. w+m-1
        ent_start = np.flatnonzero(np.r_[True, es[1:] != es[:-1]])
        first_sub = ks_g[ent_start]
        last_sub = ks_g[np.r_[ent_start[1:], len(es)] - 1]
        n_win = last_sub - first_sub + m
        n_total = int(n_win.sum())
        if n_total > max(4 * len(t), 1_000_000):
            # long gaps: the dense strips would be mostly empty, repeating rows is cheaper
            return _REPEATED, *self._repeated(e, t, data, need)
        nan_rows = _any_nan_rows(data)
        sub_nan = np.add.reduceat(nan_rows.astype(np.int64), starts) if nan_rows is not None else None
        rel = (t - np.repeat(o_ns + ks_g * step_ns, lengths)) / _NS if need.slope else None
        subs = [_reduce(_raw_moments(x, rel, need), starts, lengths, need, raw=True) for x in data]
        strip_len = n_win + m - 1
        strip_off = np.cumsum(strip_len) - strip_len
        ent_of_group = np.repeat(np.arange(len(ent_start)), np.diff(np.r_[ent_start, len(es)]))
        slot = strip_off[ent_of_group] + (ks_g - first_sub[ent_of_group]) + (m - 1)
        win_off = np.cumsum(n_win) - n_win
        ent_of_win = np.repeat(np.arange(len(ent_start)), n_win)
        w_local = np.arange(n_total) - win_off[ent_of_win]
        gather = ((strip_off[ent_of_win] + w_local)[:, None] + np.arange(m)).ravel()
        wk = first_sub[ent_of_win] - m + 1 + w_local
        we = es[ent_start][ent_of_win]
        starts_w = np.arange(0, n_total * m, m)
        lengths_w = np.full(n_total, m)
        offset_s = np.tile(np.arange(m) * (step_ns / _NS), n_total)

        def strip(values: np.ndarray, empty: float) -> np.ndarray:
            s = np.full(int(strip_len.sum()), empty)
            s[slot] = values
            return s[gather]

        n_rows_w = np.add.reduceat(strip(lengths.astype(np.float64), 0.0), starts_w).astype(np.int64)
        nan_w = (
            np.add.reduceat(strip(sub_nan.astype(np.float64), 0.0), starts_w).astype(np.int64)
            if sub_nan is not None
            else np.zeros(n_total, dtype=np.int64)
        )
        zero_keys = ("c", "sum", "m2", "zeros", "m2t", "ctx")
        cols = []
        for mom in subs:
            con = {key: strip(v, 0.0 if key in zero_keys else np.nan) for key, v in mom.items()}
            if need.slope:
                con["mt"] = con["mt"] + offset_s
            merged = _reduce(con, starts_w, lengths_w, need, raw=False)
            cols.extend(_finalize(merged, {}, self.stats, self.size_ns / _NS))
        keep = n_rows_w > 0
        feats = np.column_stack(cols)[keep] if cols else np.zeros((int(keep.sum()), 0))
        return method, we[keep], wk[keep], n_rows_w[keep], nan_w[keep], feats

    def _repeated(self, e: np.ndarray, t: np.ndarray, data: list[np.ndarray], need: _Need):
        """Sliding windows by repeating each row once per window that contains it."""
        kmin, kmax = _window_range(t, self.size_ns, self.step_ns, self.origin_ns)
        reps = kmax - kmin + 1
        src = np.repeat(np.arange(len(t)), reps)
        k = kmin[src] + (np.arange(len(src)) - np.repeat(np.cumsum(reps) - reps, reps))
        # order by (entity, k), rows staying in time order within a window: entities are already in order,
        # so one stable sort on a combined key does it
        k0 = int(kmin.min())
        width = int(kmax.max()) - k0 + 1
        if (int(e[-1]) + 1) * width < 2**62:
            order = np.argsort(e[src] * width + (k - k0), kind="stable")
        else:
            order = np.lexsort((k, e[src]))
        src, k = src[order], k[order]
        return self._from_rows(e[src], k, t[src], data, need, self.size_ns, src=src)

    def _from_rows(self, e, k, t, data, need: _Need, span_ns: int, src: np.ndarray | None = None):
        """Aggregate rows sorted by (entity, window k) into one row per (entity, k). ``src``: the row of
        ``data`` behind each of ``e``/``k``/``t`` when rows are repeated (None: they are ``data``'s rows)."""
        starts, lengths, ew, kw = _runs(e, k)
        nan_rows = _any_nan_rows(data)
        nan_w = (
            np.add.reduceat((nan_rows if src is None else nan_rows[src]).astype(np.int64), starts)
            if nan_rows is not None
            else np.zeros(len(starts), dtype=np.int64)
        )
        rel = (t - np.repeat(self.origin_ns + kw * self.step_ns, lengths)) / _NS if need.slope else None
        cols = []
        for x in data:
            xs = x if src is None else x[src]
            mom = _reduce(_raw_moments(xs, rel, need), starts, lengths, need, raw=True)
            quant = _quantiles(x, src, starts, lengths, need.quantiles) if need.quantiles else {}
            cols.extend(_finalize(mom, quant, self.stats, span_ns / _NS))
        feats = np.column_stack(cols) if cols else np.zeros((len(starts), 0))
        return ew, kw, lengths.astype(np.int64), nan_w, feats

    def _assemble(self, ew, kw, n_rows, nan_rows, feats):
        """Short windows to NaN; the gaps between each entity's first and last window filled per ``fill``."""
        short = n_rows < self.min_rows
        if short.any():
            feats[short] = np.nan
        if len(ew):
            ent_start = np.flatnonzero(np.r_[True, ew[1:] != ew[:-1]])
            ent_end = np.r_[ent_start[1:], len(ew)] - 1
            k_first, k_last = kw[ent_start], kw[ent_end]
            late = ew[ent_start][k_first > k_first.min()]
        else:
            ent_start = np.zeros(0, dtype=np.int64)
            k_first = k_last = ent_start
            late = ent_start
        span = k_last - k_first + 1
        n_dense = int(span.sum())
        n_empty = n_dense - len(ew)
        has_nan = nan_rows > 0
        if n_empty == 0 or self.fill == "drop":
            none = np.zeros(len(ew), dtype=bool)
            return ew, kw, n_rows, feats, none, short, none.copy(), has_nan, n_empty, late
        if n_dense > _MAX_WINDOWS:
            raise ValueError(
                f"Windows.transform: filling the gaps would make {n_dense:,} windows of "
                f"{_fmt_duration(self.size_ns)} (data spans too long a time for this size; are epoch "
                f"timestamps in seconds?); use fill='drop' to leave empty windows out"
            )
        ent_ids = ew[ent_start]
        off = np.cumsum(span) - span
        ent_of_row = np.repeat(np.arange(len(ent_start)), np.diff(np.r_[ent_start, len(ew)]))
        pos = off[ent_of_row] + (kw - k_first[ent_of_row])
        ent_dense = np.repeat(np.arange(len(ent_start)), span)
        k_dense = k_first[ent_dense] + (np.arange(n_dense) - off[ent_dense])
        present = np.zeros(n_dense, dtype=bool)
        present[pos] = True
        f_dense = np.full((n_dense, feats.shape[1]), np.nan)
        f_dense[pos] = feats

        def spread(values: np.ndarray, fill: Any) -> np.ndarray:
            out = np.full(n_dense, fill, dtype=values.dtype)
            out[pos] = values
            return out

        filled = np.zeros(n_dense, dtype=bool)
        if self.fill == "ffill":
            # each entity's first window has rows, so the running maximum never crosses entities
            src = np.maximum.accumulate(np.where(present, np.arange(n_dense), -1))
            f_dense = f_dense[src]
            filled = ~present
        return (
            ent_ids[ent_dense],
            k_dense,
            spread(n_rows, 0),
            f_dense,
            ~present,
            spread(short, False),
            filled,
            spread(has_nan, False),
            n_empty,
            late,
        )

    def _index(self, ew, kw, by_list, levels) -> pd.Index:
        import pandas as pd

        starts = pd.DatetimeIndex(
            (self.origin_ns + kw.astype(np.int64) * self.step_ns).view("datetime64[ns]"), name="window_start"
        ).tz_localize("UTC")
        if not by_list:
            return starts
        arrays = (
            [uniq.take(codes[ew]) for uniq, codes in levels[1]] if len(ew) else [u[:0] for u, _ in levels[1]]
        )
        return pd.MultiIndex.from_arrays([*arrays, starts], names=[*by_list, "window_start"])


# -- helpers on frames and arrays ----------------------------------------------------------------------


def _names(frame: Any) -> list:
    names = [*list(frame.columns)[:12], *[n for n in getattr(frame.index, "names", []) if n is not None]]
    return names


def _to_pandas(df: Any, time: str, by: list[str], columns: list[str] | None) -> pd.DataFrame:
    """A pandas frame with (at least) the fields needed; polars frames are converted column by column."""
    import pandas as pd

    if isinstance(df, pd.DataFrame):
        return df
    mod = type(df).__module__
    if mod.startswith("polars"):
        if not hasattr(df, "to_pandas"):
            raise ValueError(
                f"Windows.transform: expected a pandas or polars DataFrame, got {type(df).__name__}"
                " (collect() a LazyFrame first)"
            )
        have = list(df.columns)
        for what, names in (("time", [time]), ("by", by), ("columns", columns or [])):
            for name in names:
                if name not in have:
                    raise ValueError(
                        f"Windows.transform: {what} column {name!r} not found (expected one of {have[:12]})"
                    )
        if columns is None:
            columns = [c for c, dt in df.schema.items() if dt.is_numeric() and c != time and c not in by]
        wanted = list(dict.fromkeys([time, *by, *columns]))
        return df.select(wanted).to_pandas()
    raise ValueError(f"Windows.transform: expected a pandas or polars DataFrame, got {type(df).__name__}")


def _field(frame: pd.DataFrame, name: Any) -> Any:
    """A column (Series) or index level (Index), or None when the frame has neither."""
    if name in frame.columns:
        return frame[name]
    if name is not None and name in (frame.index.names or []):
        return frame.index.get_level_values(name)
    return None


def epoch_seconds(frame: Any, time: str) -> np.ndarray:
    """Seconds since the epoch (UTC) of each row's ``time``, read exactly as :meth:`Windows.transform` reads
    it (datetimes, naive ones as UTC; strings; epoch seconds); NaN where a row has no usable timestamp. For
    code that must agree with the windowing on which window a row falls in (live scoring)."""
    ns, ok = _time_column(frame, time)
    return np.where(ok, ns / _NS, np.nan)


def _time_column(frame: pd.DataFrame, time: str) -> tuple[np.ndarray, np.ndarray]:
    """UTC epoch nanoseconds of each row, and which rows had a usable timestamp."""
    import pandas as pd

    if time in frame.columns:
        col: Any = frame[time]
    elif time in (frame.index.names or []):
        col = pd.Series(frame.index.get_level_values(time))
    elif isinstance(frame.index, pd.DatetimeIndex):
        col = pd.Series(frame.index)
    else:
        raise ValueError(
            f"Windows.transform: time column {time!r} not found (expected one of the columns "
            f"{_names(frame)}, or a DatetimeIndex); pass time=<name of the timestamp column>"
        )
    dtype = col.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise ValueError(
            f"Windows.transform: time column {time!r} must hold datetimes or epoch seconds, got dtype {dtype}"
        )
    if pd.api.types.is_numeric_dtype(dtype):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan) if col.hasnans else col.to_numpy()
        if values.dtype.kind not in "iuf":
            values = values.astype(np.float64)
        ns, ok = _seconds_to_ns(values)
        if len(values) and (~ok & np.isfinite(values)).any():
            big = np.nanmax(np.abs(values[np.isfinite(values)]))
            raise ValueError(
                f"Windows.transform: time column {time!r} holds numbers up to {big:.4g}, out of range for "
                f"epoch seconds (expected seconds since 1970; milliseconds? divide by 1000)"
            )
        return ns, ok
    if not (isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M"):
        parsed = pd.to_datetime(col, utc=True, errors="coerce")
        retry = parsed.isna().to_numpy() & ~col.isna().to_numpy()
        if retry.any():  # a format inferred from the first rows missed others: parse those one by one
            parsed[retry] = pd.to_datetime(col[retry], utc=True, errors="coerce", format="mixed")
        col = parsed
        dtype = col.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_convert("UTC").dt.tz_localize(None)
    values = col.to_numpy().astype("datetime64[ns]").view(np.int64)
    ok = values != np.iinfo(np.int64).min  # NaT
    return values, ok


def _kpi_columns(frame: pd.DataFrame, columns: list[str] | None, time: str, by: list[str]) -> list:
    import pandas as pd

    if columns is None:
        skip = {time, *by}
        found = [
            c
            for c in frame.columns
            if c not in skip
            and pd.api.types.is_numeric_dtype(frame[c].dtype)
            and not pd.api.types.is_bool_dtype(frame[c].dtype)
        ]
        if not found:
            raise ValueError(
                f"Windows.transform: no numeric KPI columns to window (expected numeric columns besides "
                f"time {time!r} and by {by}, got columns {list(frame.columns)[:12]})"
            )
        return found
    for c in columns:
        if c not in frame.columns:
            raise ValueError(
                f"Windows.transform: KPI column {c!r} not found (expected one of {list(frame.columns)[:12]})"
            )
        if c == time or c in by:
            raise ValueError(f"Windows.transform: column {c!r} is the time or a by column, not a KPI column")
        if not pd.api.types.is_numeric_dtype(frame[c].dtype):
            raise ValueError(
                f"Windows.transform: KPI column {c!r} must be numeric, got dtype {frame[c].dtype}"
            )
    return list(columns)


def _numeric_values(frame: pd.DataFrame, name: Any) -> np.ndarray:
    col = frame[name]
    if col.dtype == np.float64:
        return col.to_numpy()
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


def _entity_codes(per_level: list[tuple[np.ndarray, Any]], n: int, dropped: bool) -> tuple[np.ndarray, list]:
    """Entity code per row (0..E-1 in sorted key order) from each by level's (codes, sorted uniques), and
    ``[entities, [(level uniques, level code of each entity), ...]]``. ``dropped``: rows were left out, so
    some level values may have no rows left."""
    import pandas as pd

    if not per_level:
        return np.zeros(n, dtype=np.int64), []
    if len(per_level) == 1:
        codes, uniq = per_level[0]
        if not dropped:
            return codes.astype(np.int64), [uniq, [(uniq, np.arange(len(uniq)))]]
        e, present = pd.factorize(codes, sort=True)
        return e.astype(np.int64), [present, [(uniq, np.asarray(present, dtype=np.int64))]]
    sizes = [max(len(u), 1) for _, u in per_level]
    if math.prod(sizes) >= 2**62:
        raise ValueError(f"Windows.transform: too many combinations of by values ({sizes})")
    combined = np.zeros(n, dtype=np.int64)
    for (codes, _), size in zip(per_level, sizes, strict=True):
        combined = combined * size + codes
    e, uniq_comb = pd.factorize(combined, sort=True)
    level_codes = []
    rest = np.asarray(uniq_comb, dtype=np.int64)
    for (_, uniq), size in reversed(list(zip(per_level, sizes, strict=True))):
        level_codes.append((uniq, rest % size))
        rest = rest // size
    return e.astype(np.int64), [uniq_comb, level_codes[::-1]]


def _entity_keys(levels: list, n_entities: int):
    if not levels:
        return lambda i: None
    pairs = levels[1]
    if len(pairs) == 1:
        uniq, codes = pairs[0]
        return lambda i: _plain(uniq[codes[i]])
    return lambda i: tuple(_plain(u[c[i]]) for u, c in pairs)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _sort_order(e: np.ndarray, t: np.ndarray, n_entities: int) -> tuple[np.ndarray | None, int]:
    """A stable order by (entity, time), or None when the rows already are; and how many rows came after a
    later row of their own entity (interleaved entities are not counted as out of order)."""
    if len(t) < 2:
        return None, 0
    de, dt = np.diff(e), np.diff(t)
    if ((de > 0) | ((de == 0) & (dt >= 0))).all():
        return None, 0
    if n_entities > 1:
        by_entity = np.argsort(_small(e, n_entities), kind="stable")
        e1, t1 = e[by_entity], t[by_entity]
    else:
        by_entity, e1, t1 = None, e, t
    same = e1[1:] == e1[:-1]
    behind = same & (t1[1:] < t1[:-1])
    if not behind.any():
        return by_entity, 0
    import pandas as pd

    running_max = pd.Series(t1).groupby(e1).cummax().to_numpy()
    late = int((same & (t1[1:] < running_max[:-1])).sum())
    # by time (stable), then by entity (stable): (entity, time) order, ties in input order
    by_time = np.argsort(t, kind="stable")
    return by_time[np.argsort(_small(e[by_time], n_entities), kind="stable")], late


def _small(codes: np.ndarray, n: int) -> np.ndarray:
    """Codes below 2**15 as int16, which NumPy's stable sort orders by radix (linear time)."""
    return codes.astype(np.int16) if n < 2**15 else codes


def _resolve_duplicates(e, t, data, policy: str):
    """Apply the duplicate-timestamp policy to rows sorted by (entity, time); returns rows and the count."""
    if len(t) < 2:
        return e, t, data, 0
    dup_prev = np.r_[False, (e[1:] == e[:-1]) & (t[1:] == t[:-1])]
    n_dup = int(dup_prev.sum())
    if n_dup == 0 or policy == "keep":
        return e, t, data, n_dup
    if policy == "first":
        keep = ~dup_prev
        return e[keep], t[keep], [x[keep] for x in data], n_dup
    if policy == "last":
        keep = ~np.r_[dup_prev[1:], False]
        return e[keep], t[keep], [x[keep] for x in data], n_dup
    starts = np.flatnonzero(~dup_prev)  # mean
    out = []
    for x in data:
        ok = np.isfinite(x)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(
                np.add.reduceat(np.where(ok, x, 0.0), starts) / np.add.reduceat(ok.astype(float), starts)
            )
    return e[starts], t[starts], out, n_dup


def _runs(e: np.ndarray, k: np.ndarray):
    """Start, length, entity and k of each run of equal (entity, k) in rows sorted by them."""
    new = np.r_[True, (e[1:] != e[:-1]) | (k[1:] != k[:-1])]
    starts = np.flatnonzero(new)
    lengths = np.diff(np.r_[starts, len(e)])
    return starts, lengths, e[starts], k[starts]


def _any_nan_rows(data: list[np.ndarray]) -> np.ndarray | None:
    """Rows with a NaN in any column, or None when there is none."""
    out = None
    for x in data:
        bad = np.isnan(x)
        if bad.any():
            out = bad if out is None else out | bad
    return out


def _constant_columns(e: np.ndarray, data: list[np.ndarray], columns: list, key_of) -> dict[Any, list[str]]:
    """Per entity, the columns whose (2 or more) values are all equal."""
    if not len(e):
        return {}
    starts = np.flatnonzero(np.r_[True, e[1:] != e[:-1]])
    flags = []
    for x in data:
        n = np.add.reduceat((~np.isnan(x)).astype(np.int64), starts)
        flags.append((n >= 2) & (np.fmin.reduceat(x, starts) == np.fmax.reduceat(x, starts)))
    if not flags:
        return {}
    flat = np.column_stack(flags)
    return {
        key_of(int(e[starts[i]])): [str(columns[j]) for j in np.flatnonzero(flat[i])]
        for i in np.flatnonzero(flat.any(axis=1))
    }
