"""A robust online baseline per feature: how many robust standard deviations each KPI is from its recent
normal, learnt one row at a time.

``method="ewma"``: exponentially weighted mean and variance, in the incremental form of T. Finch,
"Incremental calculation of weighted mean and variance" (University of Cambridge, 2009). For a row ``x_t``
with ``n`` rows learnt before it and the state ``(m, v)`` they left::

    s   = max(sqrt(v), min_scale)
    z_t = (x_t - m) / s                          (the row's score, against the state before it)
    d   = x_t - m,  clipped to [-clip s, clip s] once warm (see below)
    a   = max(alpha, 1 / (n + 1))
    m  <- m + a d
    v  <- (1 - a) (v + a d^2)

While ``1 / (n + 1)`` is above ``alpha`` these are exactly the running mean and population variance of the
rows so far (the baseline starts from all its rows, not from the first one); then old rows fade by
``1 - alpha`` per row (``halflife`` h rows means ``alpha = 1 - 2^(-1/h)``). Robustness: once ``warmup`` rows
are learnt, a row with ``|z| > clip`` is learnt as if it were ``m +- clip s`` (winsorised, a Huber-type
cleaning of the one-step-ahead error as in Gelper, Fried & Croux, "Robust forecasting with exponential and
Holt-Winters smoothing", Journal of Forecasting 29(3), 2010), so a spike moves the baseline no more than a
``clip``-sigma value would and does not inflate the variance it is judged by. A level shift is still
followed: each clipped row widens ``v`` a little, until the new level is inside ``clip`` sigmas.

``method="mad"``: the median and the median absolute deviation (MAD) of the last ``window`` rows learnt
(all of them while fewer), and the modified z-score of B. Iglewicz & D. C. Hoaglin, "How to Detect and
Handle Outliers" (ASQC, 1993)::

    z = 0.6745 (x - median) / MAD

When more than half of the window is one value the MAD is 0; then ``z = (x - median) / (1.253314 MeanAD)``
with MeanAD the mean absolute deviation from the median (the fallback IBM SPSS uses for its modified
z-score; ``1.253314 = sqrt(pi / 2)`` makes it estimate a normal sigma), and when the whole window is one
value, the scale is ``min_scale``. In both methods the scale never drops below ``min_scale`` (in the feature's
units), so a constant series scores 0 and any change from it scores large but finite.

A row's score combines the features' ``|z|``: ``"max"`` (default), ``"mean"``, or ``"rms"``
(``sqrt(mean z^2)``). Rows scored before ``warmup`` rows were learnt score NaN.

``fit(X)`` starts afresh and learns the rows of ``X`` in order; ``score(X)`` scores against what was learnt
without learning; ``update(X)`` scores each row against the state before it and then learns it, the same as
calling it one row at a time (up to floating-point rounding), but vectorised: EWMA rows run through
``scipy.signal.lfilter`` between clipped rows; MAD windows are sorted in chunks and the MAD is found by a
binary search on each sorted window.

>>> import numpy as np
>>> det = RobustBaseline(method="mad", window=5, warmup=3).fit(np.array([[1.0], [2.0], [3.0], [2.0], [1.0]]))
>>> det.score(np.array([[2.0], [10.0]])).round(3).tolist()
[0.0, 5.396]
"""

from __future__ import annotations

import math
from typing import Any, Self

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from watchkeeper.anomaly.pickled import PickledDetector

_MAD_TO_SIGMA = 0.6745  # Iglewicz & Hoaglin's constant: the 0.75 quantile of N(0, 1)
_MEANAD_TO_SIGMA = math.sqrt(math.pi / 2)  # E|X - mu| = sigma sqrt(2 / pi) for a normal X
_DEFAULT_ALPHA = 0.02
_COMBINES = ("max", "mean", "rms")
_CALM_ROWS = 64  # EWMA: rows without a clip before leaving the row-by-row loop for filtered blocks
_MAD_CHUNK = 4096  # windows sorted and searched per step: big enough to amortise numpy's per-call cost


class RobustBaseline(PickledDetector):
    """Per-feature robust z-scores against an online baseline: ``"ewma"`` (exponentially weighted mean and
    variance, spikes winsorised at ``clip``) or ``"mad"`` (rolling median and MAD over ``window`` rows).

    ``alpha`` or ``halflife`` (in rows; not both) set the EWMA memory, 0.02 (about 50 rows) when neither is
    given. ``warmup``: rows to learn before scores are given (and, in EWMA mode, before clipping starts).
    """

    name = "robust_baseline"

    def __init__(
        self,
        method: str = "ewma",
        *,
        alpha: float | None = None,
        halflife: float | None = None,
        window: int = 100,
        clip: float | None = 6.0,
        warmup: int = 20,
        combine: str = "max",
        min_scale: float = 1e-9,
    ) -> None:
        where = "RobustBaseline"
        if method not in ("ewma", "mad"):
            raise ValueError(f"{where}: method must be 'ewma' or 'mad', got {method!r}")
        if alpha is not None and halflife is not None:
            raise ValueError(
                f"{where}: give alpha or halflife, not both (got alpha={alpha!r}, halflife={halflife!r})"
            )
        if alpha is not None and not (_real(alpha) and 0 < alpha <= 1):
            raise ValueError(f"{where}: alpha must be in (0, 1], got {alpha!r}")
        if halflife is not None and not (_real(halflife) and 0 < halflife < math.inf):
            raise ValueError(f"{where}: halflife must be a positive number of rows, got {halflife!r}")
        if not (_int(window) and window >= 1):
            raise ValueError(f"{where}: window must be an int >= 1, got {window!r}")
        if clip is not None and not (_real(clip) and clip > 0):
            raise ValueError(
                f"{where}: clip must be a positive number of standard deviations or None, got {clip!r}"
            )
        if not (_int(warmup) and warmup >= 0):
            raise ValueError(f"{where}: warmup must be an int >= 0, got {warmup!r}")
        if combine not in _COMBINES:
            raise ValueError(f"{where}: combine must be one of {list(_COMBINES)}, got {combine!r}")
        if not (_real(min_scale) and 0 < min_scale < math.inf):
            raise ValueError(f"{where}: min_scale must be a positive number, got {min_scale!r}")
        self.method = method
        self.alpha = None if alpha is None else float(alpha)
        self.halflife = None if halflife is None else float(halflife)
        self.window = int(window)
        self.clip = None if clip is None else float(clip)
        self.warmup = int(warmup)
        self.combine = combine
        self.min_scale = float(min_scale)
        self._reset(0)

    @property
    def effective_alpha(self) -> float:
        """The EWMA weight of the newest row once warm: ``alpha``, or ``1 - 2^(-1/halflife)``."""
        if self.alpha is not None:
            return self.alpha
        if self.halflife is not None:
            return -math.expm1(-math.log(2.0) / self.halflife)
        return _DEFAULT_ALPHA

    @property
    def n_learnt(self) -> int:
        """Rows learnt so far (by ``fit`` and ``update``)."""
        return self._n

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {"method": self.method}
        if self.method == "ewma":
            if self.halflife is not None:
                p["halflife"] = self.halflife
            else:
                p["alpha"] = self.effective_alpha
            p["clip"] = self.clip
        else:
            p["window"] = self.window
        p.update(warmup=self.warmup, combine=self.combine, min_scale=self.min_scale)
        return p

    # -- Detector hooks --------------------------------------------------------------------------------------

    def _fit(self, X: np.ndarray, *, run: Any = None) -> None:
        self._reset(X.shape[1])
        if self.method == "ewma":
            self._learn_ewma(X)
        else:
            self._buffer = X[-self.window :].copy()
            self._n = len(X)

    def _score(self, X: np.ndarray) -> np.ndarray:
        if self._n < max(self.warmup, 1):
            return np.full(len(X), np.nan)
        if self.method == "ewma":
            center, scale = self._mean, np.maximum(np.sqrt(self._var), self.min_scale)
        else:
            center, scale = _median_and_scale(np.sort(self._buffer.T, axis=1), self.min_scale)
        return self._combine(((X - center) / scale).T)

    def _update(self, X: np.ndarray) -> np.ndarray:
        n_before = self._n + np.arange(len(X))
        z = self._learn_ewma(X) if self.method == "ewma" else self._learn_mad(X)
        out = self._combine(z)
        out[n_before < max(self.warmup, 1)] = np.nan
        return out

    def _combine(self, z: np.ndarray) -> np.ndarray:
        """One score per row from per-feature z laid out (features, rows)."""
        a = np.abs(z)
        if self.combine == "max":
            return a.max(axis=0)
        if self.combine == "mean":
            return a.mean(axis=0)
        return np.sqrt((a * a).mean(axis=0))

    def _reset(self, d: int) -> None:
        self._n = 0
        self._mean = np.zeros(d)
        self._var = np.zeros(d)
        self._buffer = np.zeros((0, d))

    # -- EWMA ------------------------------------------------------------------------------------------------

    def _learn_ewma(self, X: np.ndarray) -> np.ndarray:
        """z of each row against the state before it, as (features, rows); learns the rows."""
        N, d = X.shape
        alpha = self.effective_alpha
        clip = math.inf if self.clip is None else self.clip
        z = np.full((d, N), np.nan)
        m, v, n = self._mean.copy(), self._var.copy(), self._n
        i = 0
        # the running-mean phase (a = 1/(n+1) > alpha): one row at a time, all features at once
        while i < N and (n == 0 or 1.0 / (n + 1) > alpha):
            x = X[i]
            if n == 0:
                m, v = x.copy(), np.zeros(d)
            else:
                a = 1.0 / (n + 1)
                s = np.maximum(np.sqrt(v), self.min_scale)
                dev = x - m
                z[:, i] = dev / s
                if n >= self.warmup:
                    dev = np.clip(dev, -clip * s, clip * s)
                m = m + a * dev
                v = (1.0 - a) * (v + a * dev * dev)
            n += 1
            i += 1
        if i < N:
            cols = np.ascontiguousarray(X[i:].T)
            clip_from = max(self.warmup - n, 0)  # first row (of the rest) learnt with clipping
            for j in range(d):
                z[j, i:], m[j], v[j] = _ewma_feature(
                    cols[j], m[j], v[j], alpha, clip, clip_from, self.min_scale
                )
            n += N - i
        self._mean, self._var, self._n = m, v, n
        return z

    # -- MAD -------------------------------------------------------------------------------------------------

    def _learn_mad(self, X: np.ndarray) -> np.ndarray:
        N, d = X.shape
        w = self.window
        off = len(self._buffer)
        # the learnt rows then the new ones, one feature per row: X[i] is cols[:, off + i], and its window is
        # cols[:, max(0, off + i - w) : off + i]
        cols = np.empty((d, off + N))
        cols[:, :off] = self._buffer.T
        cols[:, off:] = X.T
        z = np.full((d, N), np.nan)
        i = 0
        while i < N and off + i < w:  # growing windows (the first rows a detector ever learns)
            if off + i > 0:
                center, scale = _median_and_scale(np.sort(cols[:, : off + i], axis=1), self.min_scale)
                z[:, i] = (X[i] - center) / scale
            i += 1
        if i < N:
            windows = sliding_window_view(cols, w, axis=1)  # windows[:, k] = cols[:, k : k + w]
            step = max(64, _MAD_CHUNK // d)  # rows per step: every feature's windows go through one search
            for a in range(i, N, step):
                b = min(N, a + step)
                sorted_w = np.sort(windows[:, off + a - w : off + b - w], axis=2).reshape(-1, w)
                center, scale = _median_and_scale(sorted_w, self.min_scale)
                z[:, a:b] = (cols[:, off + a : off + b] - center.reshape(d, -1)) / scale.reshape(d, -1)
        self._buffer = cols[:, -w:].T.copy()
        self._n += N
        return z

    # -- saving ----------------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Settings, columns, threshold and the learnt baseline (plain numbers and numpy arrays)."""
        return {
            **self.common_state(),
            "n": self._n,
            "mean": self._mean.copy(),
            "var": self._var.copy(),
            "buffer": self._buffer.copy(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        det = cls(**state["params"])
        det.restore_common(state)
        det._n = int(state["n"])
        det._mean = np.asarray(state["mean"], dtype=np.float64)
        det._var = np.asarray(state["var"], dtype=np.float64)
        det._buffer = np.asarray(state["buffer"], dtype=np.float64)
        return det


def _ewma_feature(
    x: np.ndarray, m: float, v: float, alpha: float, clip: float, clip_from: int, min_scale: float
) -> tuple[np.ndarray, float, float]:
    """z of each value of one feature against the state before it, at constant ``alpha``; the final state.

    Between clipped rows the recurrences are linear filters. The mean is filtered as its offset from the
    state it starts from, ``u_t = m_t - m_start = alpha (x_t - m_start) + (1 - alpha) u_{t-1}``, so that a
    value equal to the mean leaves it exactly unchanged (filtering ``x`` itself would drift a constant series
    by rounding, which ``min_scale`` would blow up into false alarms); then
    ``v_t = (1 - alpha) v_{t-1} + alpha (1 - alpha) d_t^2``. A block is filtered from the current state; the
    first clipped row in it ends the block and is learnt on its own. Blocks grow while no row is clipped.
    Where clips come close together (heavy tails, the rows after a level shift) a block would be refiltered
    for a handful of rows, so those stretches run as a plain loop until ``_CALM_ROWS`` rows pass unclipped.
    """
    from scipy.signal import lfilter

    q = 1.0 - alpha
    den = [1.0, -q]
    n = len(x)
    z = np.empty(n)
    pos, block = 0, 4096
    while pos < n:
        if block < _CALM_ROWS:  # clips close together: one row at a time, on Python floats
            calm, t = 0, pos
            while t < n and calm < _CALM_ROWS:
                stop = min(n, t + 4 * _CALM_ROWS)
                for xt in x[t:stop].tolist():
                    s = max(math.sqrt(v), min_scale)
                    dev = xt - m
                    zt = dev / s
                    z[t] = zt
                    if t >= clip_from and abs(zt) > clip:
                        dev = math.copysign(clip * s, dev)
                        calm = 0
                    else:
                        calm += 1
                    m += alpha * dev
                    v = q * (v + alpha * dev * dev)
                    t += 1
                    if calm >= _CALM_ROWS:
                        break
            pos, block = t, 4 * _CALM_ROWS
            continue
        end = min(n, pos + block)
        y = x[pos:end] - m
        u_after = lfilter([alpha], den, y)
        u_before = np.concatenate(([0.0], u_after[:-1]))
        dev = y - u_before
        v_after = lfilter([alpha * q], den, dev * dev, zi=[q * v])[0]
        v_before = np.concatenate(([v], v_after[:-1]))
        s = np.maximum(np.sqrt(v_before), min_scale)
        zb = dev / s
        over = np.abs(zb) > clip
        first = max(clip_from - pos, 0)
        if first:
            over[:first] = False
        hit = np.flatnonzero(over)
        if hit.size == 0:
            z[pos:end] = zb
            m, v = float(m + u_after[-1]), float(v_after[-1])
            pos = end
            block = min(block * 2, 1 << 20)
            continue
        r = int(hit[0])
        z[pos : pos + r + 1] = zb[: r + 1]
        d = math.copysign(clip * s[r], dev[r])
        m = float((m + u_before[r]) + alpha * d)
        v = float(q * (v_before[r] + alpha * d * d))
        pos += r + 1
        block = 2 * (r + 1)
    return z, m, v


def _median_and_scale(sorted_w: np.ndarray, min_scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Median and robust scale (MAD / 0.6745; 1.253314 MeanAD when the MAD is 0; at least ``min_scale``) of
    each row of ``sorted_w`` (rows sorted ascending)."""
    L = sorted_w.shape[1]
    h = L // 2
    if L % 2:
        center = sorted_w[:, h].copy()
        mad = _kth_deviations(sorted_w, center, h)[0]
    else:
        center = (sorted_w[:, h - 1] + sorted_w[:, h]) / 2
        lower, upper = _kth_deviations(sorted_w, center, h - 1, and_next=True)
        mad = (lower + upper) / 2
    scale = mad / _MAD_TO_SIGMA
    flat = mad == 0
    if flat.any():
        mean_ad = np.abs(sorted_w[flat] - center[flat, None]).mean(axis=1)
        scale[flat] = _MEANAD_TO_SIGMA * mean_ad
    return center, np.maximum(scale, min_scale)


def _kth_deviations(
    sorted_w: np.ndarray, center: np.ndarray, k: int, *, and_next: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """The k-th smallest (from 0) of ``|w - center|`` over each sorted row ``w``, and the (k+1)-th if asked.

    The k+1 values nearest the center are a run ``w[lo : lo + k + 1]`` of the sorted row, so the k-th is
    ``min over lo of max(center - w[lo], w[lo + k] - center)``. The first term falls and the second rises
    with ``lo``: a binary search for the first ``lo`` where the second reaches the first (``lo_k``) finds the
    minimum, there or one step to the left; O(log L) per row instead of a selection over the row. For k+1,
    the first such ``lo`` is ``lo_k - 1`` or ``lo_k`` (it cannot be ``lo_k - 2``: there the k-run's condition
    fails at ``lo_k - 1`` and ``w[lo_k - 2] <= w[lo_k - 1]``), so one more probe gives it.
    """
    rows, L = sorted_w.shape
    flat = sorted_w.ravel()
    starts = np.arange(rows) * L

    def right_wins(at: np.ndarray, kk: int) -> np.ndarray:
        return (flat[at + kk] - center) >= (center - flat[at])

    def kth(lo: np.ndarray, kk: int) -> np.ndarray:
        n = L - kk  # run starts 0 .. n - 1; lo == n means the left side wins everywhere
        right = np.where(lo < n, flat[starts + np.minimum(lo, n - 1) + kk] - center, np.inf)
        left = np.where(lo > 0, center - flat[starts + np.maximum(lo - 1, 0)], np.inf)
        return np.minimum(left, right)

    base = np.zeros(rows, dtype=np.intp)
    size = L - k
    while size > 1:  # invariant: the first lo where the right side wins is in [base, base + size]
        half = size // 2
        base += half * ~right_wins(starts + base + half, k)
        size -= half
    lo = base + ~right_wins(starts + base, k)
    if not and_next:
        return kth(lo, k), None
    n_next = L - k - 1  # run starts for k + 1 (k + 1 < L)
    back = lo - 1
    can = (back >= 0) & (back < n_next)
    can &= right_wins(starts + np.clip(back, 0, n_next - 1), k + 1)
    return kth(lo, k), kth(np.where(can, back, np.minimum(lo, n_next)), k + 1)


def _real(v: Any) -> bool:
    return (
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) and math.isfinite(v)
    )


def _int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)
