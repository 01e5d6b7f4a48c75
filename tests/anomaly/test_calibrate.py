"""Threshold calibration: percentile of normal scores, or the best operating point on the ROC curve,
against numpy and scikit-learn; and where the figures are logged."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from watchkeeper.anomaly import PCADetector, calibrate_threshold


def test_percentile_is_numpys_and_ignores_nan():
    s = np.r_[np.arange(1000.0), np.nan]
    cal = calibrate_threshold(s, percentile=99.0)
    assert cal.method == "percentile" and cal.n == 1000
    assert cal.threshold == np.percentile(np.arange(1000.0), 99.0)


@pytest.mark.parametrize("criterion", ["f1", "youden"])
def test_roc_operating_point_is_the_best_over_every_threshold(criterion):
    rng = np.random.default_rng(4)
    y = rng.random(2000) < 0.1
    s = np.round(rng.normal(size=2000) + 1.5 * y, 2)  # rounded: many ties
    cal = calibrate_threshold(s, y, criterion=criterion)
    assert cal.auc == pytest.approx(roc_auc_score(y, s))
    flagged = s > cal.threshold
    assert cal.precision == pytest.approx(precision_score(y, flagged))
    assert cal.recall == pytest.approx(recall_score(y, flagged))
    assert cal.f1 == pytest.approx(f1_score(y, flagged))
    assert cal.fpr == pytest.approx((flagged & ~y).sum() / (~y).sum())

    def crit(t):
        f = s > t
        if criterion == "f1":
            return f1_score(y, f, zero_division=0.0)
        return f[y].mean() - f[~y].mean()

    candidates = np.r_[np.unique(s), s.min() - 1]
    assert crit(cal.threshold) == pytest.approx(max(crit(t) for t in candidates))


def test_labels_must_be_binary_and_hold_both_classes():
    with pytest.raises(ValueError, match="both normal and anomalous"):
        calibrate_threshold([0.1, 0.2], [0, 0])
    with pytest.raises(ValueError, match="0/1 or booleans"):
        calibrate_threshold([0.1, 0.2, 0.3], [0, 1, 2])
    with pytest.raises(ValueError, match="one value per row"):
        calibrate_threshold([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="criterion must be"):
        calibrate_threshold([0.1, 0.2], [0, 1], criterion="auc")


class RecordingRun:
    def __init__(self):
        self.config, self.summary = {}, {}


def test_calibration_is_logged_to_the_run_the_detector_was_fitted_with():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = np.zeros(400, dtype=int)
    X[:20] += 6
    y[:20] = 1
    run = RecordingRun()
    det = PCADetector(n_components=2).fit(X[20:], run=run)
    assert run.config["anomaly/pca"] == det.params()
    cal = det.calibrate(X, labels=y)  # no run= here: the fit's run gets it
    assert run.summary["anomaly/pca/auc"] == cal.auc == pytest.approx(roc_auc_score(y, det.score(X)))
    assert run.summary["anomaly/pca/threshold"] == det.threshold
    other = RecordingRun()
    det.calibrate(X, percentile=95, run=other)
    assert other.summary["anomaly/pca/percentile"] == 95
