"""The detector seam: ``fit`` on normal data, ``score`` rows (higher is more anomalous), ``calibrate`` a
threshold, ``predict`` against it; ``update`` where the method can learn one row at a time.

A detector is fed a feature matrix: a pandas or polars DataFrame (its columns are remembered at ``fit`` and
required, by name, at ``score``), or a 2-D array. Rows with a NaN feature (a window with no data, a gap that
the windowing flagged) cannot be scored by most methods; they get a NaN score, are never predicted
anomalous and never reach the model, so one bad window does not poison the rest. Subclasses implement
``_fit`` and ``_score`` on clean float64 matrices; the base class does the input checks, the NaN handling and
the calibration, once.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import Any, Self

import numpy as np

from watchkeeper.anomaly.calibrate import Calibration, calibrate_threshold


def as_matrix(
    X: Any, columns: Sequence[str] | None = None, *, where: str = "X"
) -> tuple[np.ndarray, list[str]]:
    """``X`` as a float64 (rows, features) matrix and its column names.

    DataFrames (pandas, polars) give their column names; with ``columns`` given, those columns are taken by
    name and a missing one is an error naming it. Arrays are taken as they are (1-D is one feature); their
    names are ``x0, x1, ...`` and only their width is checked against ``columns``.
    """
    names: list[str]
    if hasattr(X, "columns") and hasattr(X, "to_numpy"):
        have = [str(c) for c in X.columns]
        if columns is not None:
            missing = [c for c in columns if c not in have]
            if missing:
                raise ValueError(
                    f"{where}: missing feature column(s) {missing[:5]} (expected the {len(columns)} columns "
                    f"the detector was fitted on, got {have[:8]}{'...' if len(have) > 8 else ''})"
                )
            if have != list(columns):
                X = X[list(columns)]
            names = list(columns)
        else:
            names = have
        try:
            m = np.asarray(X.to_numpy(), dtype=np.float64)
        except (TypeError, ValueError) as exc:
            bad = [c for c in names if not _numeric(X[c])]
            raise ValueError(f"{where}: feature columns must be numeric, got non-numeric {bad[:5]}") from exc
    else:
        try:
            m = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{where}: expected a DataFrame or a 2-D array of numbers, got {type(X).__name__}"
            ) from exc
        if m.ndim == 1:
            m = m[:, None]
        if m.ndim != 2:
            raise ValueError(f"{where}: expected a 2-D array (rows, features), got {m.ndim} dimensions")
        if columns is not None and m.shape[1] != len(columns):
            raise ValueError(f"{where}: expected {len(columns)} feature columns, got {m.shape[1]}")
        names = list(columns) if columns is not None else [f"x{i}" for i in range(m.shape[1])]
    if m.shape[1] == 0:
        raise ValueError(f"{where}: no feature columns")
    if np.isinf(m).any():
        m = np.where(np.isinf(m), np.nan, m)  # an infinite feature is as unscorable as a missing one
    return m, names


def _numeric(col: Any) -> bool:
    try:
        np.asarray(col.to_numpy(), dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


#: the run each detector was last fitted with, so that calibrate() logs there too (held weakly, and
#: outside the detector, so that pickling a detector never tries to pickle a run)
_FIT_RUNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Detector:
    """Base of every detector. Subclasses set ``name`` and implement ``_fit(X)`` and ``_score(X)`` on
    NaN-free float64 matrices, and ``_update(X)`` (score each row, then learn it) where the method allows.
    """

    name: str = "detector"
    #: scores above this are anomalies; set by :meth:`calibrate` (or by hand)
    threshold: float | None = None
    calibration: Calibration | None = None
    columns: list[str] | None = None

    # -- the public surface --------------------------------------------------------------------------------

    def fit(self, X: Any, *, run: Any = None) -> Self:
        """Learn normal behaviour from ``X`` (rows with a NaN feature are left out). ``run``: a watchkeeper
        run to log the training to (detectors with a training curve log it; the rest log their settings)."""
        m, names = as_matrix(X, where=f"{self.name}.fit")
        clean = m[~np.isnan(m).any(axis=1)]
        if len(clean) < 2:
            raise ValueError(
                f"{self.name}.fit: need at least 2 rows without NaN features, got {len(clean)} of {len(m)}"
            )
        self.columns = names
        self._fit(clean, run=run)
        if run is not None:
            _safe_log(run, config={f"anomaly/{self.name}": self.params()})
            _FIT_RUNS[self] = run
        else:
            _FIT_RUNS.pop(self, None)
        return self

    def score(self, X: Any) -> np.ndarray:
        """One score per row, higher is more anomalous; NaN for a row with a NaN feature."""
        m = self._matrix(X, "score")
        ok = ~np.isnan(m).any(axis=1)
        if ok.all():  # the usual case: no copy of the rows
            return np.asarray(self._score(m), dtype=np.float64)
        out = np.full(len(m), np.nan)
        if ok.any():
            out[ok] = self._score(m[ok])
        return out

    def update(self, X: Any) -> np.ndarray:
        """Streaming: score each row with what was learnt before it, then learn it. Rows with a NaN feature
        score NaN and are not learnt."""
        m = self._matrix(X, "update")
        out = np.full(len(m), np.nan)
        ok = ~np.isnan(m).any(axis=1)
        if ok.any():
            out[ok] = self._update(m[ok])
        return out

    def predict(self, X: Any) -> np.ndarray:
        """True where the score is above the threshold (never for a NaN score)."""
        if self.threshold is None:
            raise ValueError(f"{self.name}.predict: no threshold; call calibrate() or set .threshold first")
        s = self.score(X)
        with np.errstate(invalid="ignore"):
            return s > self.threshold

    def calibrate(
        self,
        X: Any,
        labels: Any = None,
        *,
        percentile: float = 99.0,
        criterion: str = "f1",
        run: Any = None,
    ) -> Calibration:
        """Choose :attr:`threshold` from the scores of ``X``.

        Without ``labels``: the ``percentile`` of the scores (data assumed normal: ``100 - percentile`` % of
        normal rows will be flagged). With ``labels`` (1/True = anomaly): the operating point on the ROC
        curve that maximises ``criterion`` (``"f1"`` or ``"youden"``, TPR - FPR); the ROC AUC, precision and
        recall there are reported, and logged to ``run`` (by default the run the detector was fitted with).
        """
        s = self.score(X)
        cal = calibrate_threshold(s, labels, percentile=percentile, criterion=criterion)
        self.threshold = cal.threshold
        self.calibration = cal
        if run is None:
            run = _FIT_RUNS.get(self)
        if run is not None:
            _safe_log(run, summary={f"anomaly/{self.name}/{k}": v for k, v in cal.as_dict().items()})
        return cal

    def params(self) -> dict[str, Any]:
        """The settings that define this detector (logged to a run's config, saved with it)."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    # -- for subclasses ------------------------------------------------------------------------------------

    def _fit(self, X: np.ndarray, *, run: Any = None) -> None:
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _update(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not learn one row at a time; refit it instead")

    def _matrix(self, X: Any, what: str) -> np.ndarray:
        if self.columns is None:
            raise ValueError(f"{self.name}.{what}: the detector is not fitted; call fit() first")
        m, _ = as_matrix(X, self.columns, where=f"{self.name}.{what}")
        return m


def _safe_log(run: Any, *, config: dict | None = None, summary: dict | None = None) -> None:
    """Record on a run without ever failing the caller's training over it."""
    import logging

    try:
        if config:
            for k, v in config.items():
                run.config[k] = v
        if summary:
            for k, v in summary.items():
                if isinstance(v, float) and not math.isfinite(v):
                    continue
                run.summary[k] = v
    except Exception:
        logging.getLogger(__name__).warning("watchkeeper.anomaly: could not record on the run", exc_info=True)
