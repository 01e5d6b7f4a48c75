"""Two-proportion z-test for a boolean column (share of True, reference vs current).

With ``x_r`` True values out of ``n_r`` in the reference and ``x_c`` out of ``n_c`` in the current sample,
shares ``p_r = x_r / n_r``, ``p_c = x_c / n_c`` and the pooled share ``P = (x_r + x_c) / (n_r + n_c)``::

    z = (p_c - p_r) / sqrt( P (1 - P) (1 / n_r + 1 / n_c) ),        p = 2 * (1 - Phi(|z|))

(pooled standard error, as under the null hypothesis of equal shares; two-sided). ``z`` is positive when the
current share of True is higher. This is ``statsmodels.stats.proportion.proportions_ztest([x_c, x_r],
[n_c, n_r])`` (note the order; the tests check a hand-computed case, statsmodels is not a dependency). When
both samples are all True or all False (``P`` is 0 or 1) there is no variation to test: ``z = 0, p = 1``.
``z^2`` equals the chi-square statistic of the 2 x 2 table without continuity correction.

Reference: J. L. Fleiss, B. Levin, M. C. Paik, "Statistical Methods for Rates and Proportions", 3rd ed.,
Wiley, 2003, section 2.6 (eq. 2.20, without continuity correction).

On profiles: the profile's true and false counts are exact, so the result equals the exact test
(``bound = 0``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from watchkeeper.drift.base import BOOLEAN, DriftMethod, DriftStatistic

__all__ = ["ZTest", "two_proportion_z"]


def two_proportion_z(x_ref: int, n_ref: int, x_cur: int, n_cur: int) -> tuple[float, float]:
    """``(z, two-sided p)`` of the pooled two-proportion z-test; ``(0, 1)`` if the pooled share is 0 or 1."""
    if n_ref <= 0 or n_cur <= 0:
        side = "reference" if n_ref <= 0 else "current"
        raise ValueError(f"{side} sample is empty (no boolean values)")
    pooled = (x_ref + x_cur) / (n_ref + n_cur)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n_ref + 1.0 / n_cur))
    if se == 0.0:
        return 0.0, 1.0
    z = (x_cur / n_cur - x_ref / n_ref) / se
    from scipy import stats  # here, not at import: scipy.stats costs ~0.5 s

    return z, float(2.0 * stats.norm.sf(abs(z)))


def _true_count(values: Any, side: str) -> tuple[int, int]:
    """``(True count, n)`` of booleans given as bool, 0/1 numbers or objects (None and NaN skipped)."""
    x = np.asarray(values)
    if x.ndim != 1:
        raise ValueError(f"{side} sample must be 1-D (got shape {x.shape})")
    if x.dtype.kind == "O":
        x = np.array([v for v in x.tolist() if v is not None and v == v], dtype=object)
        if x.size and not all(isinstance(v, bool | int | float | np.bool_ | np.number) for v in x.tolist()):
            raise ValueError(f"{side} sample must hold booleans (True/False or 0/1)")
        x = x.astype(np.float64) if x.size else np.zeros(0)
    elif x.dtype.kind == "f":
        x = x[~np.isnan(x)]
    elif x.dtype.kind not in "biu":
        raise ValueError(f"{side} sample must hold booleans (True/False or 0/1), got dtype {x.dtype}")
    if x.dtype.kind != "b" and x.size and not np.all((x == 0) | (x == 1)):
        raise ValueError(f"{side} sample must hold booleans: values other than 0 and 1 found")
    if x.size == 0:
        raise ValueError(f"{side} sample is empty (no boolean values)")
    return int(np.count_nonzero(x)), int(x.size)


class ZTest(DriftMethod, name="ztest", kinds=(BOOLEAN,)):
    """Pooled two-proportion z-test on the share of True; ``statistic`` is ``z``, ``p_value`` two-sided.

    >>> s = ZTest().exact(np.array([True] * 40 + [False] * 60), np.array([True] * 60 + [False] * 40))
    >>> round(s.statistic, 6), round(s.p_value, 6)     # z = 0.2 / sqrt(0.5 * 0.5 * 0.02) = 2 sqrt 2
    (2.828427, 0.004678)
    """

    is_test: ClassVar[bool] = True

    def exact(self, ref: np.ndarray, cur: np.ndarray, *, kind: str | None = None) -> DriftStatistic:
        x_r, n_r = _true_count(ref, "reference")
        x_c, n_c = _true_count(cur, "current")
        return self._result(x_r, n_r, x_c, n_c)

    def on_profiles(self, ref: Any, cur: Any, *, kind: str | None = None) -> DriftStatistic:
        x_r, n_r = ref.true_count, ref.true_count + ref.false_count
        x_c, n_c = cur.true_count, cur.true_count + cur.false_count
        for side, n, col in (("reference", n_r, ref), ("current", n_c, cur)):
            if n == 0:
                raise ValueError(f"{side} profile of column {getattr(col, 'name', '?')!r} holds no booleans")
        return self._result(x_r, n_r, x_c, n_c, bound=0.0)

    def _result(self, x_r: int, n_r: int, x_c: int, n_c: int, bound: float | None = None) -> DriftStatistic:
        z, p = two_proportion_z(x_r, n_r, x_c, n_c)
        details = {
            "true_ref": x_r,
            "n_ref": n_r,
            "true_cur": x_c,
            "n_cur": n_c,
            "p": x_r / n_r,
            "q": x_c / n_c,
        }
        return DriftStatistic(self.name, z, p, bound, details)
