"""Anomaly detection on KPIs: windowing, detectors, threshold calibration, and NAB evaluation."""

from __future__ import annotations

from watchkeeper.anomaly.base import Detector
from watchkeeper.anomaly.calibrate import Calibration, calibrate_threshold

__all__ = ["Calibration", "Detector", "calibrate_threshold"]
