"""Drift detection: one method per module (formula and reference in its docstring), exact on raw data and
approximate on profiles; the default decision in ``decide``; ``drift()`` for whole datasets."""

# each method registers itself with DriftMethod on import
from watchkeeper.drift import (  # noqa: F401
    chi2,
    hellinger,
    js,
    kl,
    ks,
    linf,
    psi,
    tv,
    wasserstein,
    welch,
    ztest,
)
from watchkeeper.drift.base import DriftMethod, DriftStatistic
from watchkeeper.drift.dataset import ColumnDrift, DriftResult, drift
from watchkeeper.drift.decide import DriftPolicy, adjust_p_values

__all__ = [
    "ColumnDrift",
    "DriftMethod",
    "DriftPolicy",
    "DriftResult",
    "DriftStatistic",
    "adjust_p_values",
    "drift",
]
