"""A streaming univariate anomaly scorer: how far the latest stretch of a KPI lies from every stretch seen
before it, turned into a tail probability and held quiet after an alarm.

For each scale ``(m, w, L)`` of :class:`ContextScale` and each row ``i`` (rows ``0..i`` only):

1. Context distance (the KNN-CAD / matrix-profile idea). The context is the embedded recent subsequence
   ``c_i = (x[i-m+1], ..., x[i])``. Its nonconformity is the mean Euclidean distance to its ``k`` nearest
   earlier contexts ``c_j``, ``i - W <= j <= i - m - 1`` (earlier contexts that do not overlap ``c_i``):
   ``a_i = mean(k smallest ||c_i - c_j||_2)``. Burnaev & Ishimtsev, "Conformalized density- and
   distance-based anomaly detection in time-series data", arXiv:1608.04585 (2016); the nearest non-trivial
   match is the matrix profile of Yeh et al., "Matrix Profile I", IEEE ICDM 2016.
2. Probability stage (after Numenta's anomaly likelihood: Ahmad et al., "Unsupervised real-time anomaly
   detection for streaming data", Neurocomputing 262, 2017). With ``mu, sd`` the mean and (population)
   standard deviation of the earlier distances ``a`` (the last ``L``, or all of them when ``L`` is None)
   and ``abar_i`` the mean of the last ``w`` distances, ``z_i = (abar_i - mu) / sd`` and the scale's score
   is ``s_i = 1 - Q(z_i) ** (1 / 10)``, ``Q`` the standard normal upper tail: a monotone map of the tail
   probability onto [0, 1] that rounds to 1 only beyond ``z = 27`` (``1 - Phi(z)`` does beyond 8);
   ``s = 0.45`` is ``Q = 2.5e-3``, ``z = 2.8``; ``z = 0`` gives ``1 - 0.5 ** 0.1 = 0.067``. With
   ``sd = 0`` (a constant past), ``z = 0`` if ``abar_i <= mu``, else ``+inf`` (score 1).
3. The row's candidate score is the largest ``s_i`` over the scales.
4. Rest period (the post-processing of contextOSE, NAB's detector by M. Smirnov): if any candidate score
   of the previous ``rest`` rows reached ``alarm`` the row scores 0, otherwise its candidate score. NAB
   credits only the first detection in a window and charges every later one outside it.

:meth:`ContextDistanceScorer.log_tail` returns steps 1-3 alone, as ``ln Q`` of the most surprising scale
(before the rest period), which :mod:`watchkeeper.anomaly.ensemble` pools with the rank likelihoods.

Scale-free: distances scale with the values and ``z`` does not. A scale scores 0 until it has
``neighbours + 5`` earlier contexts and ``min_history`` distances. A NaN (or infinite) value scores 0 and
leaves the state untouched: it is not stored, and does not count toward ``rest``.

NAB (v1 rules, :mod:`watchkeeper.anomaly.nab`; realAWSCloudwatch, realTraffic and artificialWithAnomaly,
30 files, 107,596 rows, one threshold per profile over all of them), default settings, normalised scores:

==================  =========  =====  =======  ==========  ==================================
profile             threshold  AWS    Traffic  Artificial  leave-one-folder-out (A / T / Art)
==================  =========  =====  =======  ==========  ==================================
standard            0.4410     71.79  77.67    75.90       71.79 / 71.15 / 75.90
reward_low_FP_rate  0.4555     68.94  69.96    73.63       65.63 / 69.96 / 73.63
reward_low_FN_rate  0.4410     75.65  80.37    78.39       60.65 / 73.63 / 78.39
==================  =========  =====  =======  ==========  ==================================

Numenta HTM's published standard figures on the same folders are 73.42 / 82.51 / 70.22 and contextOSE's
71.52 / 91.17 / 73.0 (with each file's whole-file min and max given in advance, which a causal scorer does
not have). The settings were chosen on these 30 files (about 200 configurations of scales, window, k,
alarm and rest tried), so the figures are optimistic; the leave-one-folder-out column picks the
threshold on the two other folders.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import log_ndtr

_TAIL_ROOT = 10.0  # s = 1 - Q ** (1 / _TAIL_ROOT)


@dataclass(frozen=True, slots=True)
class ContextScale:
    """One embedding scale: context ``length`` m, ``smoothing`` w (rows averaged before the tail
    probability) and ``memory`` L (earlier distances the tail is taken against; None: all of them)."""

    length: int
    smoothing: int = 1
    memory: int | None = None

    def __post_init__(self) -> None:
        for name in ("length", "smoothing"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"ContextScale.{name}: expected an integer >= 1, got {v!r}")
        if self.memory is not None and (not isinstance(self.memory, int) or self.memory < 2):
            raise ValueError(f"ContextScale.memory: expected None or an integer >= 2, got {self.memory!r}")


DEFAULT_SCALES = (ContextScale(5, 5, None), ContextScale(20, 10, 2000))


class _ScaleState:
    """The distance history of one scale: Welford sums (all history) or a ring of the last L distances,
    plus the last w distances for smoothing."""

    __slots__ = ("count", "m2", "mean", "recent", "ring", "scale")

    def __init__(self, scale: ContextScale) -> None:
        self.scale = scale
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.ring = np.empty(scale.memory or 0)
        self.recent = np.empty(scale.smoothing)

    def stats(self) -> tuple[float, float]:
        if self.scale.memory is None:
            return self.mean, math.sqrt(max(self.m2 / self.count, 0.0))
        past = self.ring[: min(self.count, self.scale.memory)]
        return float(past.mean()), float(past.std())

    def push(self, a: float) -> None:
        if self.scale.memory is None:
            d = a - self.mean
            self.mean += d / (self.count + 1)
            self.m2 += d * (a - self.mean)
        else:
            self.ring[self.count % self.scale.memory] = a
        self.recent[self.count % self.scale.smoothing] = a
        self.count += 1

    def smoothed(self) -> float:
        return float(self.recent[: min(self.count, self.scale.smoothing)].mean())


def _log_tail(z: float) -> float:
    """``ln Q(z)``, ``Q`` the standard normal upper tail (``-inf`` for ``z = +inf``, 0 for ``-inf``)."""
    if math.isinf(z):
        return -math.inf if z > 0 else 0.0
    return float(log_ndtr(-z))


def tail_score(z: float) -> float:
    """``1 - Q(z) ** (1/10)``, with ``Q`` the standard normal upper tail (``z = +inf`` gives 1)."""
    return float(-math.expm1(_log_tail(z) / _TAIL_ROOT))


def context_distance(history: np.ndarray, context: np.ndarray, neighbours: int) -> float:
    """Mean Euclidean distance from ``context`` (length m) to its ``neighbours`` nearest length-m
    subsequences of ``history`` (all of them, every start)."""
    m = len(context)
    count = len(history) - m + 1
    d2 = np.zeros(count)
    for t in range(m):  # one lag at a time: cheaper than an (count, m) temporary
        step = history[t : t + count] - context[t]
        d2 += step * step
    k = min(neighbours, count)
    return float(np.sqrt(np.partition(d2, k - 1)[:k]).mean())


class ContextDistanceScorer:
    """Streaming anomaly scores in [0, 1] from the distance of the recent context to its nearest earlier
    contexts (see the module docstring for the formulas). Feed rows with :meth:`update` or a whole series
    with :meth:`score_series`; both give the same scores."""

    def __init__(
        self,
        scales: tuple[ContextScale, ...] = DEFAULT_SCALES,
        window: int = 5000,
        neighbours: int = 1,
        min_history: int = 30,
        alarm: float = 0.45,
        rest: int = 100,
    ) -> None:
        scales = tuple(scales)
        if not scales or not all(isinstance(s, ContextScale) for s in scales):
            raise ValueError(f"scales: expected a non-empty tuple of ContextScale, got {scales!r}")
        for name, v, least in (
            ("window", window, 2),
            ("neighbours", neighbours, 1),
            ("min_history", min_history, 2),
            ("rest", rest, 0),
        ):
            if not isinstance(v, int) or isinstance(v, bool) or v < least:
                raise ValueError(f"{name}: expected an integer >= {least}, got {v!r}")
        if not 0.0 < alarm <= 1.0:
            raise ValueError(f"alarm: expected a score in (0, 1], got {alarm!r}")
        self.scales = scales
        self.window = window
        self.neighbours = neighbours
        self.min_history = min_history
        self.alarm = float(alarm)
        self.rest = rest
        self.reset()

    def params(self) -> dict[str, Any]:
        """The settings, as plain data."""
        return {
            "scales": [asdict(s) for s in self.scales],
            "window": self.window,
            "neighbours": self.neighbours,
            "min_history": self.min_history,
            "alarm": self.alarm,
            "rest": self.rest,
        }

    def reset(self) -> None:
        """Forget every row seen."""
        longest = max(s.length for s in self.scales)
        self._keep = self.window + 2 * longest + 1  # values a context and all its candidates span
        self._buf = np.empty(2 * self._keep)
        self._len = 0  # values held in _buf
        self._seen = 0  # valid rows seen
        self._states = [_ScaleState(s) for s in self.scales]
        self._since_alarm = self.rest  # rows since a candidate score reached `alarm`

    def update(self, value: float, t: Any = None) -> float:
        """Score one row (``t``, its timestamp, is accepted and unused) and learn it."""
        log_q = self.log_tail(value)
        if log_q is None:
            return 0.0
        candidate = -math.expm1(log_q / _TAIL_ROOT)  # the largest s over the scales (step 3)
        score = candidate if self._since_alarm >= self.rest else 0.0
        self._since_alarm = 0 if candidate >= self.alarm else self._since_alarm + 1
        return score

    def log_tail(self, value: float) -> float | None:
        """Learn one row and return ``ln Q(z)`` of its most surprising scale (steps 1-2 of the module
        docstring, before the rest period; 0 while no scale scores, ``-inf`` for ``z = +inf``), or None for
        a NaN or infinite value (nothing learnt). :meth:`update` is this plus the rest period; use one or the
        other on a scorer, not both."""
        x = float(value)
        if not math.isfinite(x):
            return None
        if self._len == len(self._buf):
            self._buf[: self._keep - 1] = self._buf[self._len - self._keep + 1 : self._len]
            self._len = self._keep - 1
        self._buf[self._len] = x
        self._len += 1
        i = self._seen
        self._seen += 1
        log_q = 0.0
        for st in self._states:
            m = st.scale.length
            first = max(m - 1, i - self.window)  # earliest candidate context end
            last = i - m - 1  # latest context end not overlapping the current one
            if last - first + 1 < self.neighbours + 5:
                continue
            end = self._len  # buffer position one past row i
            hist = self._buf[end - 1 - (i - first) - (m - 1) : end - 1 - (i - last) + 1]
            a = context_distance(hist, self._buf[end - m : end], self.neighbours)
            if st.count >= self.min_history:
                mu, sd = st.stats()
                st.push(a)
                abar = st.smoothed()
                # a constant past (sd = 0): any larger distance is infinitely surprising
                z = (abar - mu) / sd if sd > 0 else (0.0 if abar <= mu else math.inf)
                log_q = min(log_q, _log_tail(z))
            else:
                st.push(a)
        return log_q

    def score_series(self, values: Any, timestamps: Any = None) -> np.ndarray:
        """Scores of a whole series, from a fresh state (this scorer's own state is not touched)."""
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"values: expected a 1-D series, got shape {x.shape}")
        fresh = ContextDistanceScorer(
            self.scales, self.window, self.neighbours, self.min_history, self.alarm, self.rest
        )
        return np.array([fresh.update(v) for v in x], dtype=np.float64)
