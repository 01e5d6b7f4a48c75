"""Welch's t-test for a change of the mean (numeric).

With reference and current means m1, m2, sample variances s1², s2² (ddof=1) and sizes n1, n2::

    t = (m2 - m1) / sqrt(s1²/n1 + s2²/n2)
    df = (s1²/n1 + s2²/n2)² / ((s1²/n1)²/(n1-1) + (s2²/n2)²/(n2-1))      (Welch-Satterthwaite)
    p = 2 * sf(|t|, df)   (Student's t)

B. L. Welch, "The generalization of 'Student's' problem when several different population variances are
involved", Biometrika 34 (1947). It needs only counts, means and variances, which a profile's ``Moments``
hold exactly, so the estimate from profiles equals the exact test up to floating-point rounding
(``bound`` = 0). It is the most powerful of the catalogue's tests for a shift of the mean, which is why the
default decision pairs it with KS (see ``watchkeeper.drift.decide``).

>>> import numpy as np
>>> from scipy import stats
>>> rng = np.random.default_rng(0)
>>> ref, cur = rng.normal(0, 1, 10_000), rng.normal(0.1, 1, 10_000)
>>> s, scipy_t = Welch().exact(ref, cur), stats.ttest_ind(cur, ref, equal_var=False)
>>> bool(abs(s.statistic - scipy_t.statistic) < 1e-9 and abs(s.p_value - scipy_t.pvalue) < 1e-12)
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from watchkeeper.drift.base import NUMERIC, DriftMethod, DriftStatistic


def welch_from_moments(n1: int, m1: float, v1: float, n2: int, m2: float, v2: float) -> tuple[float, float]:
    """(t, p) from sizes, means and ddof=1 variances; (0, 1) when both variances are 0 and means agree."""
    if n1 < 2:
        raise ValueError(f"Welch's t-test needs at least 2 reference values (got {n1})")
    if n2 < 2:
        raise ValueError(f"Welch's t-test needs at least 2 current values (got {n2})")
    se2 = v1 / n1 + v2 / n2
    diff = m2 - m1
    if se2 == 0.0:
        return (0.0, 1.0) if diff == 0.0 else (math.copysign(math.inf, diff), 0.0)
    t = diff / math.sqrt(se2)
    df = se2 * se2 / ((v1 / n1) ** 2 / (n1 - 1) + (v2 / n2) ** 2 / (n2 - 1))
    from scipy import stats  # on first use: scipy.stats costs ~0.3 s to import

    return t, float(2.0 * stats.t.sf(abs(t), df))


class Welch(DriftMethod, name="welch", kinds=(NUMERIC,)):
    is_test = True

    def exact(self, ref: np.ndarray, cur: np.ndarray, *, kind: str | None = None) -> DriftStatistic:
        ref = np.asarray(ref, dtype=np.float64)
        cur = np.asarray(cur, dtype=np.float64)
        if ref.size < 2 or cur.size < 2:
            welch_from_moments(ref.size, 0.0, 0.0, cur.size, 0.0, 0.0)  # raises, naming the short side
        t, p = welch_from_moments(
            ref.size,
            float(ref.mean()),
            float(ref.var(ddof=1)),
            cur.size,
            float(cur.mean()),
            float(cur.var(ddof=1)),
        )
        return DriftStatistic("welch", t, p, None)

    def on_profiles(self, ref: Any, cur: Any, *, kind: str | None = None) -> DriftStatistic:
        a, b = ref.numeric.moments, cur.numeric.moments
        t, p = welch_from_moments(a.n, a.mean, a.variance(ddof=1), b.n, b.mean, b.variance(ddof=1))
        return DriftStatistic("welch", t, p, 0.0)
