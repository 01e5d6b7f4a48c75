"""Choosing an anomaly threshold: a percentile of scores of normal data, or an operating point on the ROC
curve of labelled validation data.

With labels, every distinct score is a candidate (a row is flagged when its score is strictly above the
threshold, so each candidate lies just below a distinct score); at each, ``TPR = TP / P``,
``FPR = FP / N``, ``precision = TP / (TP + FP)`` and ``F1 = 2 P R / (P + R)``. The threshold maximises
F1 (the default) or Youden's J = TPR - FPR (W. J. Youden, "Index for rating diagnostic tests", Cancer
3(1), 1950). The ROC AUC is scikit-learn's ``roc_auc_score`` (the Mann-Whitney U statistic over
``P N``, ties counted half).

>>> import numpy as np
>>> cal = calibrate_threshold(np.array([0.1, 0.2, 0.3, 0.9, 0.8]), np.array([0, 0, 0, 1, 1]))
>>> cal.threshold, cal.auc, cal.precision, cal.recall
(0.3, 1.0, 1.0, 1.0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Calibration:
    """How a threshold was chosen and how it performs on the data it was chosen on."""

    threshold: float
    method: str  # "percentile" or "roc"
    n: int  # rows with a score
    percentile: float | None = None
    criterion: str | None = None
    auc: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    fpr: float | None = None
    n_anomalies: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        if self.method == "percentile":
            return f"threshold {self.threshold:.6g} (percentile {self.percentile:g} of {self.n} scores)"
        return (
            f"threshold {self.threshold:.6g}: ROC AUC {self.auc:.3f}, precision {self.precision:.3f}, "
            f"recall {self.recall:.3f}, F1 {self.f1:.3f}, FPR {self.fpr:.4f} "
            f"({self.n_anomalies} anomalies in {self.n} rows; best {self.criterion})"
        )


def calibrate_threshold(
    scores: Any, labels: Any = None, *, percentile: float = 99.0, criterion: str = "f1"
) -> Calibration:
    """A threshold for ``scores`` (NaN scores are left out): the ``percentile`` without labels, the best
    ``criterion`` ("f1" or "youden") on the ROC curve with them."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    if labels is None:
        if not 0 < percentile <= 100:
            raise ValueError(f"calibrate: percentile must be in (0, 100], got {percentile!r}")
        ok = s[~np.isnan(s)]
        if len(ok) == 0:
            raise ValueError("calibrate: no finite scores to choose a threshold from")
        return Calibration(
            threshold=float(np.percentile(ok, percentile)),
            method="percentile",
            n=len(ok),
            percentile=percentile,
        )
    if criterion not in ("f1", "youden"):
        raise ValueError(f"calibrate: criterion must be 'f1' or 'youden', got {criterion!r}")
    y = np.asarray(labels).ravel()
    if len(y) != len(s):
        raise ValueError(f"calibrate: labels must have one value per row (expected {len(s)}, got {len(y)})")
    try:
        y = y.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("calibrate: labels must be 0/1 or booleans") from exc
    keep = ~np.isnan(s) & ~np.isnan(y)
    s, y = s[keep], y[keep]
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"calibrate: labels must be 0/1 or booleans, got values {np.unique(y)[:5].tolist()}")
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        raise ValueError(
            f"calibrate: labels need both normal and anomalous rows to draw a ROC curve (got {pos} anomalies "
            f"in {len(y)} rows); without anomalies, calibrate with a percentile (labels=None)"
        )
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(y, s))
    # Thresholds: flag rows strictly above t. Candidates are the distinct scores, highest first; flagging
    # everything above the k-th distinct score counts the rows of the first k-1 distinct values.
    order = np.argsort(-s, kind="stable")
    ss, yy = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(ss))[0], len(ss) - 1]  # last index of each run of equal scores
    tp_at = np.cumsum(yy)[distinct]  # flagging rows >= ss[distinct]
    fp_at = (distinct + 1) - tp_at
    # "above t" with t = the next lower distinct score flags exactly the rows >= the current one
    thr = np.r_[ss[distinct[1:]], ss[-1] - max(1e-12, abs(ss[-1]) * 1e-12)]
    tpr = tp_at / pos
    fpr = fp_at / neg
    precision = tp_at / (tp_at + fp_at)
    f1 = np.where(tp_at > 0, 2 * precision * tpr / np.maximum(precision + tpr, 1e-300), 0.0)
    best = int(np.argmax(f1 if criterion == "f1" else tpr - fpr))
    return Calibration(
        threshold=float(thr[best]),
        method="roc",
        n=len(s),
        criterion=criterion,
        auc=auc,
        precision=float(precision[best]),
        recall=float(tpr[best]),
        f1=float(f1[best]),
        fpr=float(fpr[best]),
        n_anomalies=pos,
    )
