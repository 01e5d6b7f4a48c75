"""Anomaly detection on KPIs: windowing, detectors, threshold calibration, and NAB evaluation.

>>> import numpy as np, pandas as pd
>>> from watchkeeper.anomaly import RobustBaseline, Windows
>>> rng = np.random.default_rng(0)
>>> t = pd.date_range("2026-01-01", periods=1440, freq="10s", tz="UTC")  # 4 hours of one router
>>> latency = 10 + rng.standard_normal(1440)
>>> latency[-60:] += 20  # the last 10 minutes go bad
>>> kpi = pd.DataFrame({"timestamp": t, "device_id": "r1", "latency": latency})
>>> feats = Windows("10min", stats=["mean", "max"]).transform(kpi, by="device_id")
>>> det = RobustBaseline(method="mad", window=20).fit(feats.iloc[:20])
>>> det.score(feats.iloc[20:]).round(1)  # robust z-scores of the last four windows
array([  1.4,   1.3,   2. , 221.2])
"""

from __future__ import annotations

from watchkeeper.anomaly.autoencoder import Autoencoder
from watchkeeper.anomaly.base import Detector
from watchkeeper.anomaly.calibrate import Calibration, calibrate_threshold
from watchkeeper.anomaly.context import ContextDistanceScorer
from watchkeeper.anomaly.iforest import IsolationForestDetector
from watchkeeper.anomaly.pca import PCADetector
from watchkeeper.anomaly.presets import Preset, preset
from watchkeeper.anomaly.robust import RobustBaseline
from watchkeeper.anomaly.saved import load
from watchkeeper.anomaly.streaming import LikelihoodDetector
from watchkeeper.anomaly.windows import WindowReport, Windows, window_starts

__all__ = [
    "Autoencoder",
    "Calibration",
    "ContextDistanceScorer",
    "Detector",
    "IsolationForestDetector",
    "LikelihoodDetector",
    "PCADetector",
    "Preset",
    "RobustBaseline",
    "WindowReport",
    "Windows",
    "calibrate_threshold",
    "load",
    "preset",
    "window_starts",
]
