"""The demo behind ``watchkeeper demo``: a simulated training run of a KPI autoencoder, logged the way a
user would log a real one (config, per-epoch curves, a table of examples with images, a model artifact,
summary values)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
from rich.progress import track

import watchkeeper as wk


def train(uri: str, epochs: int = 30, seed: int = 0) -> str:
    """Run the simulated training into the store at ``uri``; returns the run id."""
    rng = np.random.default_rng(seed)
    config = {"lr": 1e-3, "epochs": epochs, "hidden": [64, 32], "batch_size": 256, "window": "10min"}
    with wk.init(
        project="network-anomaly",
        name="autoencoder-demo",
        job_type="train",
        config=config,
        tags=["demo", "v1"],
        model="kpi-ae",
        version="1",
        uri=uri,
    ) as run:
        best_auc = 0.0
        for epoch in track(range(epochs), description="training (simulated)"):
            train_loss = 0.5 * np.exp(-epoch / 8) + 0.02 + 0.005 * rng.standard_normal()
            val_loss = train_loss * 1.1 + 0.01 * abs(rng.standard_normal())
            auc = 0.97 - 0.4 * np.exp(-epoch / 6) + 0.005 * rng.standard_normal()
            best_auc = max(best_auc, auc)
            run.log(
                {
                    "epoch": epoch,
                    "train": {"reconstruction_loss": train_loss},
                    "val": {"reconstruction_loss": val_loss, "roc_auc": auc},
                    "lr": config["lr"] * 0.95**epoch,
                }
            )
        rows = []
        for i in range(8):
            kpi = np.clip(rng.normal(0.5, 0.15, size=(16, 48)), 0, 1)
            score = float(rng.uniform(0, 1))
            rows.append([f"device-{i:02d}", wk.Image(kpi, caption="KPI window"), score, score > 0.8])
        run.log({"examples": wk.Table(columns=["device", "window", "anomaly_score", "flagged"], data=rows)})
        # the profile of the training windows: the baseline the production monitor of kpi-ae v1 compares with
        kpis = {
            "latency_ms_mean": rng.lognormal(3.0, 0.4, 20_000),
            "throughput_mbps_mean": rng.normal(420.0, 60.0, 20_000),
            "packet_loss_max": rng.beta(1.0, 200.0, 20_000),
            "device_type": rng.choice(
                ["edge-router", "core-switch", "access-point"], 20_000, p=[0.5, 0.2, 0.3]
            ),
        }
        run.log_reference(kpis)
        run.summary["best_val_roc_auc"] = best_auc
        run.summary["threshold"] = 0.8
        with tempfile.TemporaryDirectory() as tmp:
            model = Path(tmp) / "kpi-ae.json"
            model.write_text(json.dumps({"weights": rng.normal(size=64).round(4).tolist()}))
            run.log_artifact(model, name="kpi-ae", type="model", metadata={"val_roc_auc": best_auc})
        return run.id


def drift_report(path: str, seed: int = 1) -> wk.DriftResult:
    """A week of simulated traffic for kpi-ae v1, compared with its training reference: latency has crept up
    and a new device type is taking traffic share. Writes the HTML report to ``path``."""
    rng = np.random.default_rng(seed)
    n = 20_000
    reference = {
        "latency_ms_mean": rng.lognormal(3.0, 0.4, n),
        "throughput_mbps_mean": rng.normal(420.0, 60.0, n),
        "packet_loss_max": rng.beta(1.0, 200.0, n),
        "device_type": rng.choice(["edge-router", "core-switch", "access-point"], n, p=[0.5, 0.2, 0.3]),
    }
    traffic = {
        "latency_ms_mean": rng.lognormal(3.15, 0.45, n),
        "throughput_mbps_mean": rng.normal(421.0, 60.0, n),
        "packet_loss_max": rng.beta(1.0, 200.0, n),
        "device_type": rng.choice(["edge-router", "core-switch", "access-point"], n, p=[0.42, 0.2, 0.38]),
    }
    result = wk.drift(wk.profile(reference), wk.profile(traffic))
    result.to_html(path, title="Drift: kpi-ae v1 traffic against its training reference")
    return result
