"""``GET /api/v1/views/predictions``: the predictions and performance page of a deployment.

The panels read the signals of :mod:`watchkeeper.monitor.predictions`, ``performance`` and
``ground_truth`` bucketed over the range through :class:`~watchkeeper.server.views.SeriesReader` (the
store's roll-ups); a point is the mean of its bucket's windows (so a percentile point is the mean of the
windows' percentiles, not the percentile of the merged windows). A panel whose signals the deployment
never had comes with no series, and the page says so: a model whose outputs are numbers has no
``class_share``, a classifier no ``rmse``, a deployment without labels no performance.

The answer also holds the distribution of every output in the newest bucket that has windows, against the
reference's column of the same name when there is one (a reference logged with its target ``label``
compares the training labels with the predicted ones; a score the reference lacks is shown alone): the
window profiles merged as the drift page merges them, at most
:data:`HISTOGRAM_WINDOWS` of them, and the same common cells.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from watchkeeper.server.schema import problems
from watchkeeper.server.views import (
    AlertMarkOut,
    Page,
    PanelOut,
    RangeOut,
    SeriesReader,
    alert_events,
    last_value,
    merged_windows,
    open_alerts,
    status_of,
)
from watchkeeper.server.views_drift import (
    DriftTestOut,
    PlotOut,
    WindowsOut,
    _reference,
    distribution_of,
)
from watchkeeper.store import Store

router = APIRouter(prefix="/api/v1/views", tags=["dashboard"], responses=problems(401, 503))

HISTOGRAM_WINDOWS = 12
"""Window profiles merged at most (evenly spread) for the newest bucket's output histograms: the page's
heaviest part, bounded so a month's hourly bucket (60 windows) costs what 12 do."""

PANELS = (
    (
        "confidence",
        "Confidence of the predictions",
        "",
        ("confidence_p50", "confidence_p25", "confidence_p75", "confidence_mean"),
    ),
    (
        "outputs",
        "Mean prediction and positive rate",
        "",
        ("prediction_mean", "positive_rate", "low_confidence_rate"),
    ),
    ("classes", "Class shares", "share", ("class_share",)),
    (
        "accuracy",
        "Accuracy (labelled)",
        "",
        ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "accuracy_baseline"),
    ),
    (
        "roc_auc",
        "ROC AUC (labelled)",
        "",
        ("roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "roc_auc_baseline"),
    ),
    ("prf", "Precision, recall, F1 (labelled)", "", ("f1", "precision", "recall", "f1_baseline")),
    (
        "regression",
        "Errors (labelled regression)",
        "",
        ("mae", "mae_ci_low", "mae_ci_high", "rmse", "mae_baseline", "rmse_baseline"),
    ),
    ("labelled", "Labelled predictions per window", "", ("labelled_rows",)),
    ("pending", "Awaiting labels", "share", ("label_pending_rate",)),
)
"""The panels: key, title, unit, signals (the first is the panel's headline value)."""


class OutputColumnOut(BaseModel):
    output: str
    kind: str
    test: DriftTestOut | None
    plot: PlotOut | None
    message: str


class NewestOutputsOut(BaseModel):
    start: float
    end: float
    windows: WindowsOut
    columns: list[OutputColumnOut]


class PredictionsOut(RangeOut):
    project: str
    model: str
    version: str
    subject: str
    panels: list[PanelOut]
    outputs: NewestOutputsOut | None
    events: list[AlertMarkOut]


@router.get("/predictions", response_model=PredictionsOut, responses=problems(403))
def predictions(
    page: Page,
) -> dict[str, Any]:
    """What the model answered over the range (confidence quartiles, mean prediction, low-confidence rate,
    class shares and positive rate), its labelled performance with the 95% intervals and the training
    baselines, labelled rows and the share still awaiting a label; each panel with its newest value and a
    status from the alerts on its signals; the outputs' distributions in the newest bucket; the alert
    state changes in the range."""
    store, who, project, model, version = page.store, page.who, page.project, page.model, page.version
    subject, rng = page.subject, page.rng
    reader = SeriesReader(store, project, subject, rng)
    alerts = [
        a for a in open_alerts(store, who, project, model) if a["labels"].get("version") in (None, version)
    ]
    panels = []
    for key, title, unit, names in PANELS:
        data = reader.read(names)
        series = [{"name": n, **s} for n in names for s in data[n] if any(v is not None for v in s["v"])]
        main = [s for s in series if s["name"] == names[0]]
        panels.append(
            {
                "key": key,
                "title": title,
                "unit": unit,
                "series": series,
                "current": last_value(main),
                "status": status_of(alerts, names, version) if series else "none",
            }
        )
    return {
        **rng.out(),
        "project": project,
        "model": model,
        "version": version,
        "subject": subject,
        "panels": panels,
        "outputs": _newest_outputs(store, project, model, version, subject, reader),
        "events": alert_events(store, who, project, rng, model=model, version=version),
    }


def _newest_outputs(
    store: Store, project: str, model: str, version: str, subject: str, reader: SeriesReader
) -> dict[str, Any] | None:
    """The outputs' distributions in the newest bucket of the range that has windows (found from the
    ``requests`` series, one per window), against the reference; None when the range has no window."""
    rng = reader.range
    newest = None
    for s in reader.read(["requests"], "last")["requests"]:
        if not s["labels"] and s["t"]:
            newest = s["t"][-1]
    if newest is None:
        return None
    window = (newest, min(newest + rng.step, rng.end))
    cur, counts = merged_windows(store, project, subject, *window, HISTOGRAM_WINDOWS)
    merged, total = counts["merged"], counts["total"]
    if not merged:
        return None
    ref = _reference(store, project, model, version)
    columns = []
    for name in cur.outputs():
        found = distribution_of(ref, cur, name)
        columns.append({"output": name, "kind": cur[name].kind, **found})
    return {
        "start": window[0],
        "end": window[1],
        "windows": {"merged": merged, "total": total, "cap": HISTOGRAM_WINDOWS},
        "columns": columns,
    }
