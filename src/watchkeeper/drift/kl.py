"""Kullback-Leibler divergence ``D(ref || cur)`` between the binned or per-category distributions.

With reference shares ``p_i`` and current shares ``q_i`` over the same cells (see
:mod:`watchkeeper.drift.binning`)::

    KL(p || q) = sum_i p_i * ln(p_i / q_i)          (nats)

It is >= 0 and 0 only for equal distributions; it is not symmetric (PSI is its symmetrised form). Shares
below ``epsilon = 1e-4`` are raised to it and renormalised, so a cell the current sample left empty gives a
large, finite term. Equal to ``scipy.stats.entropy(p, q)`` on the smoothed shares.

Reference: S. Kullback, R. A. Leibler, "On information and sufficiency", Annals of Mathematical Statistics
22(1), 1951.

On profiles (numeric): stated bound ``|on_profiles - exact| <= 0.015 + 0.15 x KL`` (k >= 350; measured on the
same cases as PSI: the error grows with the divergence, as for PSI). Categorical profiles are exact up to
1024 categories.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from watchkeeper.drift.base import CATEGORICAL, NUMERIC
from watchkeeper.drift.binning import EPSILON, BinnedDistance

__all__ = ["KL"]


class KL(BinnedDistance, name="kl", kinds=(NUMERIC, CATEGORICAL)):
    """KL divergence ``sum p ln(p / q)`` of the reference from the current distribution (nats).

    >>> rng = np.random.default_rng(0)
    >>> ref, cur = rng.normal(0, 1, 50_000), rng.normal(0.5, 1, 50_000)
    >>> round(KL().exact(ref, cur).statistic, 3)
    0.119
    >>> KL().exact(np.array(["a", "a", "b"]), np.array(["a", "b", "b"])).statistic  # ln(2/1)/3 + ln(1/2)*2/3
    0.23104906018664842
    """

    default_epsilon: ClassVar[float] = EPSILON
    numeric_bound: ClassVar[float] = 0.015
    numeric_relative_bound: ClassVar[float] = 0.15

    @staticmethod
    def distance(p: np.ndarray, q: np.ndarray) -> float:
        return float(np.sum(p * np.log(p / q)))
