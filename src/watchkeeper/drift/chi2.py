"""Chi-square test of homogeneity of a categorical column's distribution (reference vs current).

On the 2 x k contingency table of counts ``O`` (rows: reference, current; columns: the categories seen on
either side), with expected counts ``E_rj = row_r * col_j / N``::

    X^2 = sum_rj (O_rj - E_rj)^2 / E_rj,      df = k - 1,      p = P(chi2_df >= X^2)

equal to ``scipy.stats.chi2_contingency(table, correction=False)`` (tested to 1e-9). No continuity correction
by default: Yates' correction only ever applies to a 2 x 2 table (two categories), where it makes the test
conservative, and at monitoring sample sizes it changes nothing that matters; ``Chi2(correction=True)``
applies it exactly as scipy does. With a single category on both sides (``df = 0``) the result is
``X^2 = 0, p = 1``, as in scipy.

Reference: K. Pearson, "On the criterion that a given system of deviations from the probable in the case of
a correlated system of variables is such that it can be reasonably supposed to have arisen from random
sampling", Philosophical Magazine 50(302), 1900; F. Yates, "Contingency tables involving small numbers and
the chi-square test", Supplement to the Journal of the Royal Statistical Society 1(2), 1934.

On profiles: the counts come from both columns' ``FrequentItems`` (booleans from their true/false counts).
While each side holds at most 1024 distinct values they are exact, and so is the test (``bound = 0``).
Beyond that, categories tracked on both sides keep their cells and everything else shares one "other" cell
(see :mod:`watchkeeper.drift.binning`); the test is then a valid test of homogeneity of that coarser table,
which has less power than the full one, and the tracked counts are lower bounds short by at most the
sketch's error. Such results carry ``bound=None`` and ``details["exact"] = False``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from watchkeeper.drift.base import BOOLEAN, CATEGORICAL, DriftMethod, DriftStatistic
from watchkeeper.drift.binning import (
    Binned,
    bin_categorical,
    bin_categorical_profiles,
    profile_kind,
    sample_kind,
)

__all__ = ["Chi2", "chi2_homogeneity"]


def chi2_homogeneity(
    ref_counts: np.ndarray, cur_counts: np.ndarray, correction: bool = False
) -> tuple[float, float, int, np.ndarray]:
    """``(X^2, p, df, expected)`` of the 2 x k table ``[ref_counts, cur_counts]``; cells empty on both sides
    are dropped first (they carry no information and would divide by zero)."""
    observed = np.vstack((ref_counts, cur_counts)).astype(np.float64)
    observed = observed[:, observed.sum(axis=0) > 0]
    total = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / total
    dof = observed.shape[1] - 1
    if dof <= 0:
        return 0.0, 1.0, 0, expected
    if correction and dof == 1:
        # Yates: move each observed count half a unit towards its expected count (not past it).
        diff = expected - observed
        observed = observed + np.sign(diff) * np.minimum(0.5, np.abs(diff))
    x2 = float(np.sum((observed - expected) ** 2 / expected))
    from scipy import stats  # here, not at import: scipy.stats costs ~0.5 s

    return x2, float(stats.chi2.sf(x2, dof)), dof, expected


class Chi2(DriftMethod, name="chi2", kinds=(CATEGORICAL,)):
    """Pearson's chi-square test of homogeneity on the 2 x k table of category counts.

    >>> ref = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    >>> cur = np.array(["a"] * 30 + ["b"] * 40 + ["c"] * 30)
    >>> s = Chi2().exact(ref, cur)
    >>> from scipy import stats
    >>> res = stats.chi2_contingency([[50, 30, 20], [30, 40, 30]], correction=False)
    >>> bool(np.isclose(s.statistic, res.statistic) and np.isclose(s.p_value, res.pvalue)), s.details["dof"]
    (True, 2)
    """

    is_test: ClassVar[bool] = True

    def __init__(self, correction: bool = False) -> None:
        self.correction = bool(correction)

    def __repr__(self) -> str:
        return f"Chi2(correction={self.correction})"

    def exact(self, ref: np.ndarray, cur: np.ndarray, *, kind: str | None = None) -> DriftStatistic:
        """On raw labels (str, int codes, bool, object; None/NaN skipped)."""
        self._check_kind(kind or sample_kind(ref))
        return self._result(bin_categorical(ref, cur), 0.0)

    def on_profiles(self, ref: Any, cur: Any, *, kind: str | None = None) -> DriftStatistic:
        self._check_kind(kind or profile_kind(ref))
        binned = bin_categorical_profiles(ref, cur)
        return self._result(binned, 0.0 if binned.exact else None)

    def _check_kind(self, kind: str) -> None:
        # Numbers are accepted too: they may be integer codes of categories.
        if kind not in (CATEGORICAL, BOOLEAN, "numeric"):
            raise ValueError(f"chi2 compares categorical columns, not {kind}")

    def _result(self, binned: Binned, bound: float | None) -> DriftStatistic:
        x2, p, dof, _ = chi2_homogeneity(binned.ref_counts, binned.cur_counts, self.correction)
        details = binned.details()
        details.update(dof=dof, correction=self.correction and dof == 1)
        return DriftStatistic(self.name, x2, p, bound, details)
