"""``GET /api/v1/views/...``: what a page of the web dashboard shows, in one answer per page.

The dashboard reads the same store as the query API; these routes exist so that a page costs one request
whose work is bounded whatever the range: a range is cut into at most :data:`TARGET_POINTS` buckets of a
step from :data:`STEPS` (a minute to a day, then whole days), aligned to multiples of the step, so that
steps of five minutes or more read the store's roll-ups (``watchkeeper.store.signals``) rather than every
window's points. A chart point is then one bucket: the mean of the windows in it, except where a page says
it shows the worst window (latency tails, drift), whose spikes a mean would hide when zoomed out.

This module holds the shared parts (the range, series by name, alert status per signal) and the pages of
deployments: the list with sparklines (``/health``) and a deployment's overview (``/overview``). The other
pages' routes live in their own modules beside it (``views_*.py``) and use these helpers.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from watchkeeper.monitor.catalogue import SIGNALS
from watchkeeper.profile import Profile
from watchkeeper.server.auth import Principal, principal
from watchkeeper.server.query import _bad, _num, _nums
from watchkeeper.server.schema import problems
from watchkeeper.store import Store
from watchkeeper.store.profiles import TRAFFIC_KINDS, model_subject, parse_model_subject
from watchkeeper.store.schema import profiles, projects, references
from watchkeeper.store.signals import SeriesInfo

router = APIRouter(prefix="/api/v1/views", tags=["dashboard"], responses=problems(401, 503))

Who = Annotated[Principal, Depends(principal)]
Seconds = Annotated[float | None, Query(allow_inf_nan=False, description="Seconds since the epoch")]
StepParam = Annotated[
    int | None, Query(ge=1, le=86400 * 366, description="Seconds per chart point (default: from the range)")
]

STEPS = (60, 300, 600, 1800, 3600, 7200, 21600, 86400)
"""Chart steps in seconds; each coarser one a multiple of the finer roll-up widths it can be read from."""
TARGET_POINTS = 720
"""The most points a chart of a range gets (about one per two pixels of a wide chart)."""
MAX_RANGE = 400 * 86400.0
DEFAULT_RANGE = 86400.0
Agg = Literal["mean", "max", "min", "last"]


@dataclass(frozen=True, slots=True)
class Range:
    """A chart range ``[start, end)`` aligned to ``step``."""

    start: float
    end: float
    step: int

    def out(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "step": self.step}


def pick_step(span: float, target: int = TARGET_POINTS) -> int:
    """The finest step of :data:`STEPS` that cuts ``span`` seconds into at most ``target`` points; past a
    day per point, whole days.

    >>> pick_step(3600), pick_step(86400), pick_step(30 * 86400), pick_step(90 * 86400), pick_step(3e7)
    (60, 300, 3600, 21600, 86400)
    """
    for step in STEPS:
        if span / step <= target:
            return step
    return STEPS[-1] * math.ceil(span / (STEPS[-1] * target))


def time_range(start: float | None, end: float | None, step: int | None = None) -> Range:
    """The range of a request: ``end`` defaults to now and ``start`` to a day before it; both are widened to
    whole steps. Errors name the parameter."""
    end = time.time() if end is None else end
    start = end - DEFAULT_RANGE if start is None else start
    if not start < end:
        raise _bad("start", f"start ({start:g}) must be before end ({end:g})")
    if end - start > MAX_RANGE:
        raise _bad("start", f"the range is {(end - start) / 86400:.0f} days; at most {MAX_RANGE / 86400:.0f}")
    if step is None:
        step = pick_step(end - start)
    elif (end - start) / step > 5 * TARGET_POINTS:
        raise _bad(
            "step", f"{step} s steps over {end - start:g} s would be more than {5 * TARGET_POINTS} points"
        )
    return Range(math.floor(start / step) * step, math.ceil(end / step) * step, step)


def deployment(project: str, model: str, version: str) -> str:
    """The subject of a model version's traffic, checked: 422 naming the parameter when empty."""
    for field, value in (("project", project), ("model", model), ("version", version)):
        if not value:
            raise _bad(field, "expected a non-empty name")
    return model_subject(model, version)


PER_PART = frozenset({"endpoint", "stage"})
"""Labels of the series a monitor writes per endpoint or per stage beside a deployment's totals."""


class SeriesReader:
    """Series of one subject by name, bucketed over a range in one store query per call."""

    def __init__(self, store: Store, project: str, subject: str, rng: Range) -> None:
        self.store, self.project, self.subject, self.range = store, project, subject, rng
        self._all: list[SeriesInfo] | None = None

    def infos(self, names: Iterable[str] | None = None) -> list[SeriesInfo]:
        if self._all is None:
            self._all = self.store.signals.series(self.project, subject=self.subject)
        if names is None:
            return list(self._all)
        wanted = set(names)
        return [s for s in self._all if s.name in wanted]

    def read(
        self, names: Sequence[str], agg: Agg | dict[str, Agg] = "mean", *, totals: bool = False
    ) -> dict[str, list[dict[str, Any]]]:
        """``{name: [{"labels", "t", "v"}, ...]}`` per series of each name (one per label set), ``v`` the
        bucket's ``agg`` (per name when a dict), ``t`` the bucket's start. With ``totals``, only the
        deployment's totals: series without an ``endpoint`` or ``stage`` label."""
        found = self.infos(names)
        if totals:
            found = [s for s in found if not PER_PART.intersection(s.labels)]
        out: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        if not found:
            return out
        r = self.range
        buckets = self.store.signals.buckets([s.id for s in found], r.step, r.start, r.end)
        for s in found:
            b = buckets[s.id]
            how = agg.get(s.name, "mean") if isinstance(agg, dict) else agg
            out[s.name].append({"labels": s.labels, "t": b.start.tolist(), "v": _nums(getattr(b, how))})
        return out


def last_value(series: list[dict[str, Any]]) -> float | None:
    """The newest non-null value of a series (of the first label set that has one)."""
    for s in series:
        for v in reversed(s["v"]):
            if isinstance(v, int | float):
                return float(v)
    return None


# -- answers -------------------------------------------------------------------------------------------

Num = float | str | None
"""A chart value: a number, null for NaN (a gap), or "inf" / "-inf"."""


class RangeOut(BaseModel):
    start: float
    end: float
    step: int


class SeriesOut(BaseModel):
    """One series over the range: ``v[i]`` is the bucket starting at ``t[i]`` (only buckets with points)."""

    name: str | None = None
    labels: dict[str, str]
    t: list[float]
    v: list[Num]


class OpenAlertOut(BaseModel):
    rule: str
    state: str
    labels: dict[str, str]
    active_at: float | None
    fired_at: float | None
    value: Num
    signals: list[str] = Field(description="The signals the alert's rule reads")
    severity: str | None
    summary: str | None


class AlertMarkOut(BaseModel):
    """An alert state change: a marker on a chart's time axis."""

    model_config = ConfigDict(populate_by_name=True)
    rule: str
    labels: dict[str, str]
    from_: str = Field(alias="from")
    to: str
    t: float
    value: Num


class SparkOut(BaseModel):
    key: str
    title: str
    signal: str
    t: list[float]
    v: list[Num]
    current: float | None
    status: Literal["ok", "warn", "bad", "none"]


class AlertCountsOut(BaseModel):
    firing: int
    pending: int


class DeploymentOut(BaseModel):
    project: str
    model: str
    version: str
    subject: str
    windows: int
    first: float
    last: float
    reference: bool = Field(description="Whether the version has a reference profile to compare with")
    alerts: AlertCountsOut
    panels: list[SparkOut]


class DeploymentsOut(RangeOut):
    projects: list[str]
    deployments: list[DeploymentOut]


class PanelOut(BaseModel):
    key: str
    title: str
    unit: str
    series: list[SeriesOut]
    current: float | None
    status: Literal["ok", "warn", "bad", "none"]


class OverviewOut(RangeOut):
    project: str
    model: str
    version: str
    subject: str
    panels: list[PanelOut]
    drifting_features: list[str]
    alerts: list[OpenAlertOut]
    events: list[AlertMarkOut]


# -- alert status per signal -----------------------------------------------------------------------------


def open_alerts(store: Store, who: Principal, project: str, model: str | None = None) -> list[dict[str, Any]]:
    """Firing and pending alerts of ``project`` (and of a model, and then of its versions when the alert's
    labels name one), with the signals their rule reads."""
    from watchkeeper.alerting.expr import ExprError, parse

    out = []
    for m in store.alerts.instances(["firing", "pending"]):
        labels = m["labels"] or {}
        owner = m["owner"]
        if owner != project or not who.can_read(project):
            continue
        if model is not None and labels.get("model") not in (None, model):
            continue
        expr = (m["spec"] or {}).get("expr", "")
        try:
            signals = sorted(parse(expr).metric_names()) if expr else []
        except ExprError:
            signals = []
        out.append(
            {
                "rule": m["rule_name"],
                "state": m["state"],
                "labels": labels,
                "active_at": m["active_at"],
                "fired_at": m["fired_at"],
                "value": _num(m["last_value"]),
                "signals": signals,
                "severity": labels.get("severity"),
                "summary": _summary(m),
            }
        )
    return out


def _summary(m: dict[str, Any]) -> str | None:
    """The rule's summary annotation with the alert's labels and value filled in (as notifications say)."""
    from watchkeeper.alerting import template

    text = ((m["spec"] or {}).get("annotations") or {}).get("summary")
    if not text:
        return None
    value = m["last_value"]
    try:
        return template.render(text, m["labels"] or {}, math.nan if value is None else float(value))
    except (ValueError, KeyError, TypeError):
        return text


def status_of(alerts: Sequence[dict[str, Any]], names: Iterable[str], version: str | None) -> str:
    """A panel's colour from the alerts on its signals: "bad" when one fires, "warn" when one is pending,
    else "ok". An alert counts for a version when its labels name that version or no version at all."""
    names = set(names)
    state = "ok"
    for a in alerts:
        if version is not None and a["labels"].get("version") not in (None, version):
            continue
        if names.isdisjoint(a["signals"]):
            continue
        if a["state"] == "firing":
            return "bad"
        state = "warn"
    return state


# A panel's colour comes from the alerts on any of these signals, not only on those it draws: a drift panel
# charts the share of drifted features, and turns red when a rule on one feature's drift fires.
STATUS_SIGNALS = {
    "traffic": {"request_rate", "requests"},
    "latency": {n for n in SIGNALS if n.startswith(("latency_", "stage_latency"))},
    "errors": {"error_rate", "errors", "error_type_rate", "input_problems", "dropped_calls"},
    "drift": {
        "drift_score",
        "drift_p_value",
        "drift_detected",
        "dataset_drift_share",
        "dataset_drift",
        "missing_rate",
        "type_change_rate",
    },
    "performance": {
        n
        for n in SIGNALS
        if n.startswith(("accuracy", "precision", "recall", "f1", "roc_auc", "rmse", "mae"))
    },
    "labels": {n for n in SIGNALS if n.startswith(("label", "labelled"))},
}


# -- the deployments of a project, with sparklines ------------------------------------------------------

HEALTH = (
    ("traffic", "Requests / s", ("request_rate",), "mean"),
    ("latency", "p99 latency (ms)", ("latency_p99_ms",), "max"),
    ("errors", "Error rate", ("error_rate",), "mean"),
    ("drift", "Drifted features (share)", ("dataset_drift_share",), "max"),
    ("performance", "Accuracy", ("accuracy",), "mean"),
)
"""The sparklines of a deployment on the project page: key, title, signal, aggregation per point."""


@router.get("/deployments", response_model=DeploymentsOut, responses=problems(403))
def deployments(
    request: Request,
    who: Who,
    project: str | None = None,
    start: Seconds = None,
    end: Seconds = None,
    step: StepParam = None,
) -> dict[str, Any]:
    """The models and versions that served traffic (of ``project``, or every readable project), each with
    a sparkline of its key signals over the range, their newest value, a status colour from the open alerts
    on them, and its reference; plus every project the caller may read."""
    store: Store = request.app.state.store
    if project is not None:
        who.check_read(project)
    rng = time_range(start, end, step)
    found = store.profiles.deployments(None if project is None else [project])
    found = [d for d in found if who.can_read(d.project)]
    refs = {(r.project, r.model, r.version) for r in store.profiles.references(project)}
    alerts: dict[str, list[dict[str, Any]]] = {}
    items = []
    for d in found:
        parsed = parse_model_subject(d.subject)
        if parsed is None:
            continue
        model, version = parsed
        if d.project not in alerts:
            alerts[d.project] = open_alerts(store, who, d.project)
        reader = SeriesReader(store, d.project, d.subject, rng)
        panels = []
        for key, title, names, agg in HEALTH:
            data = reader.read(names, agg)
            series = [s for n in names for s in data[n] if not s["labels"]]
            panels.append(
                {
                    "key": key,
                    "title": title,
                    "signal": names[0],
                    "t": series[0]["t"] if series else [],
                    "v": series[0]["v"] if series else [],
                    "current": last_value(series),
                    "status": status_of(alerts[d.project], STATUS_SIGNALS[key], version)
                    if series
                    else "none",
                }
            )
        firing = [
            a
            for a in alerts[d.project]
            if a["labels"].get("model") in (None, model) and a["labels"].get("version") in (None, version)
        ]
        items.append(
            {
                "project": d.project,
                "model": model,
                "version": version,
                "subject": d.subject,
                "windows": d.windows,
                "first": d.first,
                "last": d.last,
                "reference": (d.project, model, version) in refs,
                "alerts": {
                    "firing": sum(a["state"] == "firing" for a in firing),
                    "pending": sum(a["state"] == "pending" for a in firing),
                },
                "panels": panels,
            }
        )
    readable = [p for p in _project_names(store) if who.can_read(p)]
    return {**rng.out(), "projects": readable, "deployments": items}


def _project_names(store: Store) -> list[str]:
    with store.connect() as conn:
        return [r[0] for r in conn.execute(sa.select(projects.c.name).order_by(projects.c.name))]


# -- a deployment's overview ----------------------------------------------------------------------------

OVERVIEW = (
    ("traffic", "Traffic", "req/s", ("request_rate",), {}),
    (
        "latency",
        "Latency p99 / p95 / p50",
        "ms",
        ("latency_p99_ms", "latency_p95_ms", "latency_p50_ms"),
        {"latency_p95_ms": "max", "latency_p99_ms": "max"},
    ),
    ("errors", "Errors by type", "share", ("error_rate", "error_type_rate"), {}),
    ("drift", "Drift", "share", ("dataset_drift_share",), {"dataset_drift_share": "max"}),
    (
        "performance",
        "Performance (labelled)",
        "",
        ("accuracy", "accuracy_ci_low", "accuracy_ci_high", "roc_auc", "accuracy_baseline"),
        {},
    ),
    ("labels", "Labels", "share", ("label_pending_rate",), {}),
)
"""The panels of a deployment's overview: key, title, unit, signals, aggregation per signal (default mean)."""


@dataclass(frozen=True, slots=True)
class DeploymentRange:
    """What a deployment page's route reads, from the parameters every such route takes: the store, the
    deployment and its subject, the checked time range (read access to the project checked first)."""

    store: Store
    who: Principal
    project: str
    model: str
    version: str
    subject: str
    rng: Range


def deployment_range(
    request: Request,
    who: Who,
    project: str,
    model: str,
    version: str,
    start: Seconds = None,
    end: Seconds = None,
    step: StepParam = None,
) -> DeploymentRange:
    who.check_read(project)
    subject = deployment(project, model, version)
    return DeploymentRange(
        request.app.state.store, who, project, model, version, subject, time_range(start, end, step)
    )


Page = Annotated[DeploymentRange, Depends(deployment_range)]
"""The parameters of a deployment page's route (project, model, version, start, end, step), resolved."""


@router.get("/overview", response_model=OverviewOut, responses=problems(403))
def overview(page: Page) -> dict[str, Any]:
    """A deployment's health over the range (its totals: per-endpoint and per-stage series are in
    ``/api/v1/signals``): traffic, latency p50/p95/p99, error rate and rate by error
    type, drift share, labelled performance with its interval, label delay; each panel with its series, its
    newest value and a status colour from the alerts on its signals; the open alerts and the alert state
    changes in the range (the charts mark them on the time axis)."""
    store, who, project, model, version = page.store, page.who, page.project, page.model, page.version
    subject, rng = page.subject, page.rng
    reader = SeriesReader(store, project, subject, rng)
    alerts = [
        a for a in open_alerts(store, who, project, model) if a["labels"].get("version") in (None, version)
    ]
    panels = []
    for key, title, unit, names, agg in OVERVIEW:
        data = reader.read(names, {n: agg.get(n, "mean") for n in names}, totals=True)
        series = [{"name": n, **s} for n in names for s in data[n]]
        main = [s for s in series if s["name"] == names[0] and not s["labels"]]
        panels.append(
            {
                "key": key,
                "title": title,
                "unit": unit,
                "series": series,
                "current": last_value(main),
                "status": status_of(alerts, STATUS_SIGNALS[key], version) if series else "none",
            }
        )
    drifting = reader.read(["drift_detected"], "last")["drift_detected"]
    return {
        **rng.out(),
        "project": project,
        "model": model,
        "version": version,
        "subject": subject,
        "panels": panels,
        "drifting_features": sorted(
            s["labels"].get("feature", "") for s in drifting if s["v"] and s["v"][-1] == 1
        ),
        "alerts": alerts,
        "events": alert_events(store, who, project, rng, model=model, version=version),
    }


def alert_events(
    store: Store,
    who: Principal,
    project: str,
    rng: Range,
    *,
    model: str | None = None,
    version: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Alert state changes of ``project`` in the range (of a model version when given: those whose labels
    name it or no model at all), oldest first: the markers on a page's time axis. Empty until the store
    keeps the history."""
    reader = getattr(store.alerts, "events", None)
    if reader is None:
        return []
    out = []
    for e in reader(project=project, start=rng.start, end=rng.end, limit=limit):
        labels = e.labels or {}
        if model is not None and labels.get("model") not in (None, model):
            continue
        if version is not None and labels.get("version") not in (None, version):
            continue
        out.append(
            {
                "rule": e.rule_name,
                "labels": labels,
                "from": e.from_state,
                "to": e.to_state,
                "t": e.t,
                "value": _num(e.value),
            }
        )
    out.sort(key=lambda e: e["t"])
    return out


# -- window profiles of a range, merged (bounded) -------------------------------------------------------


def evenly_spaced(first: float, last: float, n: int) -> list[float]:
    """``n`` times evenly spread from ``first`` to ``last``, both included (one: ``first``).

    >>> evenly_spaced(0.0, 90.0, 4), evenly_spaced(5.0, 5.0, 3), evenly_spaced(0.0, 60.0, 1)
    ([0.0, 30.0, 60.0, 90.0], [5.0], [0.0])
    """
    if n == 1 or last <= first:
        return [first]
    return [first + (last - first) * i / (n - 1) for i in range(n)]


def pick_windows(
    store: Store, project: str, subject: str, start: float, end: float, n: int
) -> tuple[list[tuple[int, int]], int]:
    """``(id, rows)`` of at most ``n`` window or roll-up profiles of ``subject`` starting in ``[start,
    end)``: all of them when there are no more than ``n``, else evenly spread in time: for ``n`` times
    evenly spaced from the first profile's start to the last one's, the first profile starting at or after
    each (repeats dropped, so a gappy range may give fewer); and how many profiles start in the range.

    Roll-ups (old windows merged by hour or day, see ``watchkeeper.monitor.retention``) are picked like
    windows, and one picked brings all of its span: when the range has no more than ``n`` profiles, all
    of them are taken and the merge is exact, whatever mix of windows and roll-ups; when it has more, the
    picks stay evenly spread in time but each roll-up weighs as its rows, so a sample that reaches into
    rolled-up history leans to it (its ``rows`` say so).

    Bounded: the count and the extent come from the (project, subject, window_start) index alone, and each
    pick is one index seek, whatever the number of windows: a month of 1-minute windows (43,200) is not
    read row by row (that took 270 ms on SQLite here, the count 15 ms). References kept under the same
    subject are left out of the count.
    """
    p = profiles.c
    project_id = sa.select(projects.c.id).where(projects.c.name == project).scalar_subquery()
    where = [p.project_id == project_id, p.subject == subject, p.window_start >= start, p.window_start < end]
    with store.connect() as conn:
        count, first, last = conn.execute(
            sa.select(sa.func.count(), sa.func.min(p.window_start), sa.func.max(p.window_start)).where(*where)
        ).one()
        if not count:
            return [], 0
        kept = (
            sa.select(sa.func.count())
            .select_from(references.join(profiles, references.c.profile_id == p.id))
            .where(*where)
        )
        count -= conn.execute(kept).scalar_one()
        if count <= n:
            # all of them: evenly spaced picks would miss some where windows and roll-ups (an hour or a
            # day each) leave the starts unevenly spread
            every = (
                sa.select(p.id, p.rows)
                .where(*where, p.kind.in_(TRAFFIC_KINDS))
                .order_by(p.window_start, p.id)
                .limit(n)
            )
            return [(int(r[0]), int(r[1])) for r in conn.execute(every)], int(count)
        seeks = [
            sa.select(p.id, p.rows, p.window_start)
            # one lower bound only: given two, SQLite seeks to ``start`` and filters its way to ``t``
            .where(*where[:2], p.window_start >= t, p.window_start < end, p.kind.in_(TRAFFIC_KINDS))
            .order_by(p.window_start, p.id)
            .limit(1)
            .subquery()
            for t in evenly_spaced(float(first), float(last), n)
        ]
        picks = sa.union_all(*(sa.select(q.c.id, q.c.rows, q.c.window_start) for q in seeks))
        rows = conn.execute(picks).all()
    picked = sorted({(r[2], int(r[0])): int(r[1]) for r in rows}.items())
    return [(pid, n_rows) for (_, pid), n_rows in picked], int(count)


def merged_windows(
    store: Store, project: str, subject: str, start: float, end: float, limit: int
) -> tuple[Profile, dict[str, int]]:
    """At most ``limit`` window or roll-up profiles of ``subject`` in the range (:func:`pick_windows`),
    merged; with the counts the answer reports: ``merged``, ``total``, ``rows`` (of the merged ones),
    ``unreadable``."""
    found, total = pick_windows(store, project, subject, start, end, limit)
    chosen = [pid for pid, _ in found]
    merged, unreadable = Profile(), 0
    if chosen:
        with store.connect() as conn:
            q = sa.select(profiles.c.id, profiles.c.data).where(profiles.c.id.in_(chosen))
            blobs = {int(r[0]): bytes(r[1]) for r in conn.execute(q)}
        for pid in chosen:
            try:
                merged = merged.merge(Profile.from_bytes(blobs[pid]))
            except (KeyError, ValueError):
                # a window another version of the library wrote, or one deleted meanwhile: left out, counted
                unreadable += 1
    counts = {"merged": len(chosen) - unreadable, "total": total, "rows": merged.rows}
    return merged, {**counts, "unreadable": unreadable}
