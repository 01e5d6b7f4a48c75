"""``GET /api/v1/...``: the queries the dashboard and the CLI read the store through.

Projects, runs, signals (raw over ``[start, end)``, or aggregated per bucket in SQL), window profiles merged
over any range (percentiles from merged sketches, never averaged), sampled requests with filters, reference
profiles, and alert states. Every route checks that the caller's principal may read the project it touches;
a run id's project is read from the store. Times are seconds since the epoch, in and out.

JSON has no NaN or infinity: a signal value or statistic that is NaN is ``null`` and ±infinity is the string
``"inf"`` / ``"-inf"`` (the ingest wire's rule); config, summaries and sample cells keep the tagged form of
:mod:`watchkeeper.store.codec` (``{"$float": "nan"}``), as they are stored. The routes and their answers are
described in ``docs/server.md`` ("Query API").
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
import sqlalchemy as sa
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import Field

from watchkeeper.profile import Profile
from watchkeeper.server.auth import Principal, principal
from watchkeeper.server.schema import (
    BINARY,
    AlertsOut,
    MergedProfileOut,
    ProjectsOut,
    ReferencesOut,
    RunDetailOut,
    RunsOut,
    SamplesOut,
    SeriesNamesOut,
    SignalsOut,
    problems,
)
from watchkeeper.store import RunInfo, Store, codec
from watchkeeper.store.runs import STATUSES
from watchkeeper.store.samples import SCAN_LIMIT
from watchkeeper.store.schema import projects, runs

router = APIRouter(prefix="/api/v1", tags=["query"], responses=problems(401, 503))

Who = Annotated[Principal, Depends(principal)]
Time = Annotated[
    float | None, Query(allow_inf_nan=False, description="Seconds since the epoch; the range is [start, end)")
]
MAX_POINTS = 10_000
"""Raw points per series in one answer (the default and the most); past it the answer says ``truncated``."""
MAX_RUNS = 1000
MAX_SAMPLES = 1000
ALERT_STATES = ("inactive", "pending", "firing", "resolved")


# -- helpers -------------------------------------------------------------------------------------------------


def _store(request: Request) -> Store:
    return request.app.state.store


def _bad(field: str, message: str) -> HTTPException:
    """A 422 in the shape of the app's validation errors: the parameter and what was wrong."""
    return HTTPException(422, [{"field": f"query.{field}", "message": message}])


def _num(x: Any) -> Any:
    """A float for JSON: NaN is null, the infinities are "inf" and "-inf"."""
    if x is None:
        return None
    x = float(x)
    if math.isfinite(x):
        return x
    return None if x != x else ("inf" if x > 0 else "-inf")


def _nums(values: np.ndarray) -> list[Any]:
    out = values.tolist()
    if np.isfinite(values).all():
        return out
    return [_num(v) for v in out]


def _clean(value: Any) -> Any:
    """Statistics summaries (``to_dict()``) for JSON: non-finite floats as :func:`_num` writes them."""
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value


def _check_range(start: float | None, end: float | None) -> None:
    if start is not None and end is not None and start > end:
        raise _bad("start", f"start ({start:g}) is after end ({end:g})")


def _run_project(store: Store, run_id: str, who: Principal) -> str:
    """The project of run ``run_id`` once the caller may read it; 404 for an unknown run."""
    project = store.runs.projects_of([run_id]).get(run_id)
    if project is None:
        raise HTTPException(404, f"no run with id {run_id!r}")
    who.check_read(project)
    return project


def _run(info: RunInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "project": info.project,
        "name": info.name,
        "status": info.status,
        "job_type": info.job_type,
        "group": info.group,
        "tags": info.tags,
        "notes": info.notes,
        "model": info.model,
        "version": info.version,
        "created_at": info.created_at,
        "heartbeat_at": info.heartbeat_at,
        "ended_at": info.ended_at,
        "duration": info.duration,
        "exit_code": info.exit_code,
        "error": info.error,
        "last_step": info.last_step,
        "host": info.host,
        "pid": info.pid,
        "config": codec.encode(info.config),
        "summary": codec.encode(info.summary),
    }


# -- projects and runs ---------------------------------------------------------------------------------------


@router.get("/projects", response_model=ProjectsOut)
def list_projects(request: Request, who: Who) -> dict[str, Any]:
    """The projects the caller may read, by name, with their run counts."""
    count = (
        sa.select(sa.func.count())
        .where(runs.c.project_id == projects.c.id)
        .correlate(projects)
        .scalar_subquery()
    )
    q = sa.select(projects.c.name, projects.c.created_at, count).order_by(projects.c.name)
    if who.projects is not None:
        q = q.where(projects.c.name.in_(sorted(who.projects)))
    with _store(request).connect() as conn:
        rows = conn.execute(q).all()
    return {"projects": [{"name": r[0], "created_at": r[1], "runs": r[2]} for r in rows]}


@router.get("/runs", response_model=RunsOut, responses=problems(403))
def list_runs(
    request: Request,
    who: Who,
    project: str | None = None,
    status: Literal[STATUSES] | None = None,  # type: ignore[valid-type]
    job_type: str | None = None,
    model: str | None = None,
    version: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RUNS)] = 100,
) -> dict[str, Any]:
    """Runs, newest first: of ``project``, or of every project the caller may read."""
    if project is not None:
        who.check_read(project)
    found = _store(request).runs.list(
        project if project is not None else who.projects,
        status=status,
        job_type=job_type,
        model=model,
        version=version,
        limit=limit + 1,
    )
    return {"runs": [_run(r) for r in found[:limit]], "truncated": len(found) > limit, "limit": limit}


@router.get("/runs/{run_id}", response_model=RunDetailOut, responses=problems(403, 404))
def get_run(run_id: str, request: Request, who: Who) -> dict[str, Any]:
    """One run with what ``watchkeeper runs show`` prints: its fields, config and summary, the last value
    of every logged key, its tables, the reference profiles it logged and its artifacts."""
    store = _store(request)
    project = _run_project(store, run_id, who)
    info = store.runs.get(run_id)
    out = _run(info)
    out["series"] = [
        {
            "name": s.name,
            "step": s.step,
            "t": s.t,
            "last": _num(s.last),
            "count": s.count,
            "min": _num(s.min),
            "max": _num(s.max),
        }
        for s in store.signals.summaries(run_id)
    ]
    out["tables"] = [{"key": t.key, "step": t.step, "rows": t.rows} for t in store.samples.tables(run_id)]
    out["references"] = [
        {"model": r.model, "version": r.version, "name": r.name, "rows": r.rows, "created_at": r.created_at}
        for r in store.profiles.references(project)
        if r.run_id == run_id
    ]
    out["artifacts"] = [
        {
            "ref": a.ref,
            "name": a.name,
            "version": a.version,
            "type": a.type,
            "digest": a.digest,
            "size": a.size,
            "file_count": a.file_count,
            "created_by": a.created_by,
            "created_at": a.created_at,
            "metadata": codec.encode(a.metadata),
        }
        for a in store.artifacts.list(run_id=run_id)
    ]
    return out


# -- signals -------------------------------------------------------------------------------------------------


def _series_scope(
    store: Store, who: Principal, project: str | None, subject: str | None, run_id: str | None
) -> dict[str, Any]:
    """The series filter of a signals request: a run, or a project's subject."""
    if run_id is not None:
        return {"project": _run_project(store, run_id, who), "run_id": run_id, "subject": subject}
    if subject is None:
        raise _bad("subject", "give run_id, or project and subject")
    if project is None:
        raise _bad("project", "a subject is looked up within a project: give project too")
    who.check_read(project)
    return {"project": project, "subject": subject}


@router.get("/signals", response_model=SignalsOut, responses=problems(403, 404))
def signals(
    request: Request,
    who: Who,
    name: Annotated[str, Query(min_length=1)],
    project: str | None = None,
    subject: str | None = None,
    run_id: str | None = None,
    start: Time = None,
    end: Time = None,
    bucket: Annotated[
        float | None,
        Query(gt=0, allow_inf_nan=False, description="Seconds; aggregate per bucket floor(t / bucket)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_POINTS)] = MAX_POINTS,
) -> dict[str, Any]:
    """The series ``name`` of a run or a subject (one per label set) over ``[start, end)``: raw points, at
    most ``limit`` per series (oldest first), or with ``bucket`` one row per non-empty bucket."""
    _check_range(start, end)
    store = _store(request)
    scope = _series_scope(store, who, project, subject, run_id)
    found = store.signals.series(name=name, **scope)
    out: dict[str, Any] = {
        "name": name,
        "start": start,
        "end": end,
        "bucket": bucket,
        "limit": None if bucket else limit,
        "truncated": False,
        "series": [],
    }
    if bucket is not None:
        try:
            aggregated = store.signals.buckets([s.id for s in found], bucket, start, end)
        except ValueError as exc:
            raise _bad("bucket", str(exc).removeprefix("bucket: ")) from exc
    for s in found:
        item: dict[str, Any] = {"subject": s.subject, "run_id": s.run_id, "labels": s.labels}
        if bucket is not None:
            b = aggregated[s.id]
            item.update(
                t=b.start.tolist(),
                count=b.count.tolist(),
                nan=b.nan.tolist(),
                mean=_nums(b.mean),
                min=_nums(b.min),
                max=_nums(b.max),
                last=_nums(b.last),
            )
        else:
            data = store.signals.points_in(s.id, start, end, limit + 1)
            more = len(data) > limit
            out["truncated"] |= more
            item.update(
                t=data.t[:limit].tolist(),
                step=[None if x < 0 else x for x in data.step[:limit].tolist()],
                value=_nums(data.value[:limit]),
                truncated=more,
            )
        out["series"].append(item)
    return out


@router.get("/signals/names", response_model=SeriesNamesOut, responses=problems(403, 404))
def signal_names(
    request: Request,
    who: Who,
    project: str | None = None,
    subject: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The series of a run or a subject: name, labels, point count and last point."""
    store = _store(request)
    scope = _series_scope(store, who, project, subject, run_id)
    return {
        "series": [
            {
                "name": s.name,
                "labels": s.labels,
                "subject": s.subject,
                "run_id": s.run_id,
                "count": s.count,
                "t": s.t,
                "step": s.step,
                "last": _num(s.last) if s.count else None,
            }
            for s in store.signals.series(stats=True, **scope)
        ]
    }


# -- profiles ------------------------------------------------------------------------------------------------


@router.get(
    "/profiles/merged",
    response_model=MergedProfileOut,
    responses={
        **problems(403),
        200: {
            "description": "A JSON summary, or with format=binary the merged profile's bytes",
            "content": {"application/octet-stream": BINARY},
        },
    },
)
def merged_profile(
    request: Request,
    who: Who,
    project: str,
    subject: str,
    start: Time = None,
    end: Time = None,
    format: Literal["json", "binary"] = "json",
    q: Annotated[
        list[Annotated[float, Field(ge=0, le=1)]],
        Query(description="Latency quantiles to report (repeat: q=0.5&q=0.99)"),
    ] = [0.5, 0.9, 0.95, 0.99],  # noqa: B006 - FastAPI copies query defaults
) -> dict[str, Any] | Response:
    """The window profiles of ``subject`` overlapping ``[start, end)`` merged into one (of every run that
    served it): a JSON summary, or the merged profile's bytes, which a client can merge further."""
    _check_range(start, end)
    who.check_read(project)
    windows = _store(request).profiles.windows(project, subject, start, end)
    merged = Profile()
    for w in windows:
        try:
            merged = merged.merge(Profile.from_bytes(w.data))
        except ValueError as exc:
            raise HTTPException(500, f"window profile {w.id} of {subject!r} cannot be read: {exc}") from exc
    if format == "binary":
        return Response(
            merged.to_bytes(),
            media_type="application/octet-stream",
            headers={"X-Watchkeeper-Windows": str(len(windows)), "X-Watchkeeper-Rows": str(merged.rows)},
        )
    qs = np.asarray(q, dtype=np.float64)
    traffic = merged.traffic

    def ms(sketch: Any) -> list[Any]:
        return _nums(np.atleast_1d(sketch.quantile(qs)) * 1e3)

    return {
        "project": project,
        "subject": subject,
        "start": start,
        "end": end,
        "windows": len(windows),
        "rows": merged.rows,
        "runs": sorted({w.run_id for w in windows if w.run_id is not None}),
        "window_start": min((w.window_start for w in windows), default=None),
        "window_end": max((w.window_end for w in windows), default=None),
        "columns": {
            name: {"role": merged.role(name), **_clean(col.to_dict())} for name, col in merged.columns.items()
        },
        "traffic": None if traffic is None else _clean(traffic.to_dict()),
        "latency_quantiles": {
            "q": qs.tolist(),
            "calls": None if traffic is None else ms(traffic.calls.latency),
            "http": None if traffic is None else ms(traffic.http.latency),
            "endpoints": {} if traffic is None else {n: ms(e.latency) for n, e in traffic.endpoints.items()},
            "stages": {} if traffic is None else {n: ms(s) for n, s in traffic.stages.items()},
        },
    }


@router.get("/profiles/references", response_model=ReferencesOut, responses=problems(403))
def references(
    request: Request, who: Who, project: str | None = None, model: str | None = None
) -> dict[str, Any]:
    """Reference profiles (a model version's baseline), of ``project`` or of every readable project."""
    if project is not None:
        who.check_read(project)
    found = _store(request).profiles.references(project, model)
    return {
        "references": [
            {
                "project": r.project,
                "model": r.model,
                "version": r.version,
                "name": r.name,
                "profile_id": r.profile_id,
                "rows": r.rows,
                "run_id": r.run_id,
                "created_at": r.created_at,
            }
            for r in found
            if who.can_read(r.project)
        ]
    }


# -- samples -------------------------------------------------------------------------------------------------


@router.get("/samples", response_model=SamplesOut, responses=problems(403, 404))
def samples(
    request: Request,
    who: Who,
    run_id: str | None = None,
    project: str | None = None,
    subject: str | None = None,
    key: str | None = None,
    route: Annotated[str | None, Query(description="An endpoint: the key samples/<route>")] = None,
    start: Time = None,
    end: Time = None,
    status: Literal["ok", "error"] | None = None,
    label: Annotated[
        str | None, Query(description="The outputs' label, as text (filtered in Python)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SAMPLES)] = 100,
) -> dict[str, Any]:
    """Sampled request rows (keys ``samples/<endpoint>``, or any logged table with ``key``), newest first.

    run, project, subject, key/route, time and status are filtered in SQL; ``label`` (the outputs'
    ``label``) in Python over at most the newest 10,000 rows that pass the other filters."""
    _check_range(start, end)
    store = _store(request)
    if run_id is not None:
        project = _run_project(store, run_id, who)
    elif project is None:
        raise _bad("project", "give run_id, or project (and optionally subject)")
    else:
        who.check_read(project)
    if key is not None and route is not None:
        raise _bad("route", "give key or route, not both (route R is the key samples/R)")
    if route is not None:
        key = f"samples/{route}"
    found = store.samples.query(
        project=project,
        run_ids=None if run_id is None else [run_id],
        subject=subject,
        key=key,
        key_prefix="samples/" if key is None else None,
        start=start,
        end=end,
        status=status,
        label=label,
        limit=limit,
    )
    return {
        "rows": [
            {
                "sample_id": r.id,
                "run_id": r.run_id,
                "key": r.key,
                "endpoint": r.key.removeprefix("samples/") if r.key.startswith("samples/") else None,
                "step": r.step,
                "t": r.t,
                "data": codec.encode(r.data),
            }
            for r in found.rows
        ],
        "limit": limit,
        "truncated": found.truncated,
        "filtered_in_python": ["label"] if label is not None else [],
        "scanned": found.scanned if label is not None else None,
        "scan_limit": SCAN_LIMIT if label is not None else None,
        "scan_limited": found.scan_limited,
    }


# -- alerts --------------------------------------------------------------------------------------------------


@router.get("/alerts", response_model=AlertsOut, responses=problems(403))
def alerts(
    request: Request,
    who: Who,
    project: str | None = None,
    state: Literal[ALERT_STATES] | None = None,  # type: ignore[valid-type]
) -> dict[str, Any]:
    """The state of every alert series, with its rule; a rule of no project (global) shows to a caller
    who may read every project, or the project named by the series' ``project`` label."""
    if project is not None:
        who.check_read(project)
    out = []
    for m in _store(request).alerts.instances(None if state is None else [state]):
        labels, owner = m["labels"], m["owner"]
        if project is not None and owner != project:
            continue
        if who.projects is not None and (owner is None or not who.can_read(owner)):
            continue
        out.append(
            {
                "rule": {
                    "id": m["rule_id"],
                    "name": m["rule_name"],
                    "project": m["project"],
                    "enabled": bool(m["enabled"]),
                    "spec": m["spec"],
                },
                "labels": labels,
                "state": m["state"],
                "active_at": m["active_at"],
                "fired_at": m["fired_at"],
                "resolved_at": m["resolved_at"],
                "last_value": _num(m["last_value"]),
                "last_notified_at": m["last_notified_at"],
            }
        )
    return {"alerts": out}


# -- a reference profile's bytes -----------------------------------------------------------------------------


@router.get(
    "/profiles/reference",
    response_class=Response,
    responses={
        **problems(403, 404),
        200: {"description": "The profile's bytes", "content": {"application/octet-stream": BINARY}},
    },
)
def reference_profile(
    request: Request,
    who: Who,
    project: str,
    model: str,
    version: str,
    name: str = "train",
) -> Response:
    """The bytes of the reference profile ``name`` of a model version (read with ``Profile.from_bytes``),
    what ``wk.load_reference`` returns; 404 when there is none."""
    who.check_read(project)
    try:
        stored = _store(request).profiles.reference(project, model, version, name)
    except KeyError as exc:
        raise HTTPException(404, exc.args[0]) from exc
    return Response(
        stored.data, media_type="application/octet-stream", headers={"X-Watchkeeper-Rows": str(stored.rows)}
    )
