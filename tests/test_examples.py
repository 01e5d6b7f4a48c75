"""The examples in examples/ run and do what they say (the KPI anomaly pipeline end to end)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_kpi_anomaly_example_trains_validates_exports_watches_and_alerts(tmp_path):
    pytest.importorskip("torch", reason="the example's autoencoder needs torch (watchkeeper[torch])")
    got = _load("kpi_anomaly").main(["--dir", str(tmp_path), "--devices", "12", "--epochs", "20"])
    assert got["auc"] > 0.95  # validation on the labelled third day
    assert got["incidents"] >= 1 and got["found"] == got["incidents"]  # every live incident flagged
    # the rule over the live signal notified exactly the devices whose windows were flagged, as run.alert did
    assert got["notified"]
    assert sorted(t.removeprefix("kpi-ae: anomaly on ") for t in got["run_alerts"]) == got["notified"]
    assert (tmp_path / "kpi-ae.pt").is_file()
