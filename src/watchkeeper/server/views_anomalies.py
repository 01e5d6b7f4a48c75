"""``GET /api/v1/views/anomalies``: the anomalies page of a deployment.

It reads the signals ``run.watch_anomalies`` writes on the deployment's subject
(:mod:`watchkeeper.sdk.anomalies`): ``anomaly_score{detector, entity}`` (a scored window's score at the
window's end), ``anomaly{detector, entity}`` (1 when that score was above the detector's threshold then, else
0), ``anomaly_threshold{detector}`` and ``anomaly_late_rows{detector}``. Per detector the answer holds:

- its newest threshold (the newest point at or before the range's end) and its newest count of late rows;
- per entity, the windows scored in the range, the windows above the threshold (the sum of the ``anomaly``
  points: a bucket's mean times its count), the largest and the newest score;
- the entities ranked by windows above the threshold, then by largest score (then by name), all of them in
  the table up to :data:`TABLE_ENTITIES`, and the first :data:`CHART_ENTITIES` (plus the one the ``entity``
  parameter names) charted: per bucket of the range the largest score (the worst window, which a mean would
  hide when zoomed out) and how many of the bucket's windows were above the threshold.

Both signals of every entity of the chosen detectors are read in one bucketed store query at the chart's
step (roll-ups from five minutes up, as the other pages), so the work grows with entities times points,
and the ranking needs every entity's counts: a detector over thousands of entities costs that many series.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from watchkeeper.sdk.anomalies import FLAG, LATE, SCORE, THRESHOLD
from watchkeeper.server.query import _bad, _num, _nums
from watchkeeper.server.schema import problems
from watchkeeper.server.views import (
    AlertMarkOut,
    Num,
    Page,
    RangeOut,
    SeriesReader,
    alert_events,
)
from watchkeeper.store.signals import Buckets

router = APIRouter(prefix="/api/v1/views", tags=["dashboard"], responses=problems(401, 503))


CHART_ENTITIES = 20
"""Entities charted per detector at most (the highest ranked): more lines than this are unreadable."""
TABLE_ENTITIES = 500
"""Entities listed per detector at most (the highest ranked); the answer says how many there were."""


class EntityOut(BaseModel):
    entity: str = Field(description='The entity label ("/"-joined when several columns; "" without one)')
    anomalies: int = Field(description="Windows in the range whose score was above the threshold")
    windows: int = Field(description="Windows scored in the range")
    max_score: Num
    newest_score: Num = Field(description="The score of the newest window in the range that has one")
    newest_t: float | None = Field(description="Start of the bucket holding that window")


class EntitySeriesOut(BaseModel):
    """One entity's scores over the range: ``v[i]`` is the largest score in the bucket starting at ``t[i]``
    and ``anomalies[i]`` its windows above the threshold (only buckets with windows)."""

    entity: str
    t: list[float]
    v: list[Num]
    anomalies: list[int]


class DetectorOut(BaseModel):
    detector: str
    threshold: Num = Field(description="The newest threshold reported at or before the range's end")
    late_rows: int | None = Field(description="Late rows dropped, as the newest report in the range counts")
    entities: int = Field(description="Entities with windows in the range")
    windows: int
    anomalies: int
    series: list[EntitySeriesOut] = Field(description="The charted entities, highest ranked first")
    series_capped: bool = Field(description=f"Whether entities were left out of the chart ({CHART_ENTITIES})")
    table: list[EntityOut] = Field(description="Entities by anomalies, then largest score, then name")
    table_capped: bool = Field(description=f"Whether entities were left out of the table ({TABLE_ENTITIES})")


class AnomaliesOut(RangeOut):
    project: str
    model: str
    version: str
    subject: str
    detectors: list[str] = Field(description="Every detector that reported scores on this deployment")
    detector: str | None
    entity: str | None
    panels: list[DetectorOut]
    events: list[AlertMarkOut]


@router.get("/anomalies", response_model=AnomaliesOut, responses=problems(403))
def anomalies(
    page: Page,
    detector: Annotated[str | None, Query(description="Only this detector (default: every one)")] = None,
    entity: Annotated[
        str | None, Query(description="Chart this entity too, whatever its rank (default: the top ones)")
    ] = None,
) -> dict[str, Any]:
    """The anomaly detectors of a deployment over the range (``run.watch_anomalies``): per detector its
    threshold, its entities ranked by windows above the threshold then largest score, with their counts,
    largest and newest score, and the top entities' largest score per bucket with the windows above the
    threshold marked; the alert state changes in the range."""
    store, who, project, model, version = page.store, page.who, page.project, page.model, page.version
    subject, rng = page.subject, page.rng
    if detector is not None and not detector:
        raise _bad("detector", "expected a detector name (or no detector parameter for every detector)")
    reader = SeriesReader(store, project, subject, rng)
    infos = reader.infos([SCORE, FLAG, THRESHOLD, LATE])
    names = sorted({s.labels["detector"] for s in infos if s.name == SCORE and "detector" in s.labels})
    chosen = [d for d in names if detector is None or d == detector]

    per_entity = [s for s in infos if s.name in (SCORE, FLAG) and s.labels.get("detector") in chosen]
    buckets = (
        store.signals.buckets([s.id for s in per_entity], rng.step, rng.start, rng.end) if per_entity else {}
    )
    thr_ids = {s.labels["detector"]: s.id for s in infos if s.name == THRESHOLD and s.labels.get("detector")}
    late_ids = {s.labels["detector"]: s.id for s in infos if s.name == LATE and s.labels.get("detector")}
    # the threshold in force at the range's end may have been reported before the range began
    thresholds = store.signals.last_in([thr_ids[d] for d in chosen if d in thr_ids], None, rng.end)
    lates = store.signals.last_in([late_ids[d] for d in chosen if d in late_ids], rng.start, rng.end)

    panels = []
    for name in chosen:
        scores: dict[str, Buckets] = {}
        flags: dict[str, Buckets] = {}
        for s in per_entity:
            if s.labels.get("detector") == name:
                (scores if s.name == SCORE else flags)[s.labels.get("entity", "")] = buckets[s.id]
        thr = thresholds.get(thr_ids.get(name, -1))
        late = lates.get(late_ids.get(name, -1))
        panels.append(
            _detector(
                name,
                scores,
                flags,
                threshold=None if thr is None else thr[1],
                late_rows=None if late is None or math.isnan(late[1]) else round(late[1]),
                entity=entity or None,
            )
        )
    return {
        **rng.out(),
        "project": project,
        "model": model,
        "version": version,
        "subject": subject,
        "detectors": names,
        "detector": detector,
        "entity": entity or None,
        "panels": panels,
        "events": alert_events(store, who, project, rng, model=model, version=version),
    }


def _above(b: Buckets | None) -> dict[float, int]:
    """Windows above the threshold per bucket start: the sum of the bucket's 0/1 ``anomaly`` points."""
    if b is None or not len(b):
        return {}
    with np.errstate(invalid="ignore"):
        sums = np.where(b.count > 0, np.nan_to_num(b.mean) * b.count, 0.0)
    return {float(t): round(float(x)) for t, x in zip(b.start, sums, strict=True)}


def _detector(
    name: str,
    scores: dict[str, Buckets],
    flags: dict[str, Buckets],
    *,
    threshold: float | None,
    late_rows: int | None,
    entity: str | None,
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    marks: dict[str, list[int]] = {}
    for ent, b in scores.items():
        if not len(b):
            continue  # no window of this entity in the range
        above = _above(flags.get(ent))
        marks[ent] = [above.get(float(t), 0) for t in b.start]
        ok = np.flatnonzero(~np.isnan(b.last))
        top = float(np.nanmax(b.max)) if not np.isnan(b.max).all() else math.nan
        rows.append(
            {
                "entity": ent,
                "anomalies": sum(above.values()),
                "windows": int(b.count.sum() + b.nan.sum()),
                "max_score": _num(top),
                "newest_score": _num(b.last[ok[-1]]) if ok.size else None,
                "newest_t": float(b.start[ok[-1]]) if ok.size else None,
                "_max": top,
            }
        )
    rows.sort(
        key=lambda r: (-r["anomalies"], -r["_max"] if not math.isnan(r["_max"]) else math.inf, r["entity"])
    )
    charted = [r["entity"] for r in rows[:CHART_ENTITIES]]
    if entity is not None and entity in marks and entity not in charted:
        charted.append(entity)
    series = [
        {"entity": e, "t": scores[e].start.tolist(), "v": _nums(scores[e].max), "anomalies": marks[e]}
        for e in charted
    ]
    for r in rows:
        del r["_max"]
    return {
        "detector": name,
        "threshold": _num(threshold),
        "late_rows": late_rows,
        "entities": len(rows),
        "windows": sum(r["windows"] for r in rows),
        "anomalies": sum(r["anomalies"] for r in rows),
        "series": series,
        "series_capped": len(rows) > CHART_ENTITIES,
        "table": rows[:TABLE_ENTITIES],
        "table_capped": len(rows) > TABLE_ENTITIES,
    }
