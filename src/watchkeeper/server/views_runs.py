"""``GET /api/v1/views/runs``: training runs compared the way Weights & Biases shows them.

Without ``ids``: a project's runs, newest first (name, state, job type, model version, times, summary).
With ``ids`` (at most :data:`MAX_COMPARED`): also, for those runs, every logged key's series by step (one
chart per key, the runs overlaid), and their config and summary side by side, the keys whose values differ
between the runs marked.

Bounded work: a run's logged scalars have no roll-ups (``watchkeeper.store.signals``), so a series of more
than :data:`MAX_POINTS` points is aggregated in SQL into at most that many buckets of consecutive steps
(``floor(step / width)``, the width a whole number of steps): each point is then a bucket's mean, at its
first step and time, with the bucket's min and max beside it. Short series are read whole. Nested config
is flattened to dotted keys (``optimizer.lr``), as W&B shows it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np
import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from watchkeeper.server import views
from watchkeeper.server.query import _bad, _nums
from watchkeeper.server.schema import problems
from watchkeeper.store import RunInfo, Store, codec
from watchkeeper.store.schema import points
from watchkeeper.store.signals import SeriesInfo, labels_key

router = APIRouter(prefix="/api/v1/views", tags=["dashboard"], responses=problems(401, 503))

MAX_COMPARED = 10
"""Runs compared at once (charts stay readable, and the answer bounded)."""
MAX_POINTS = 1000
"""Points per series in the answer; longer series are aggregated into this many buckets of steps."""
MAX_LISTED = 200
"""Runs in the list (newest first)."""


class ListedRunOut(BaseModel):
    id: str
    project: str
    name: str
    state: str
    job_type: str | None
    group: str | None
    tags: list[str]
    model: str | None
    version: str | None
    created_at: float
    ended_at: float | None
    duration: float
    last_step: int | None
    summary: dict[str, Any] = Field(
        description="In the tagged JSON form of the store (NaN as {'$float': 'nan'})"
    )


class RunSeriesOut(BaseModel):
    """One run's points of a key: every point, or (``width`` > 1) one per bucket of ``width`` steps."""

    run_id: str
    name: str
    labels: dict[str, str]
    step: list[int | None]
    t: list[float]
    v: list[views.Num]
    min: list[views.Num] | None = None
    max: list[views.Num] | None = None
    points: int = Field(description="Points the run logged for the key")
    width: int = Field(description="Steps per point of the answer (1: every point)")


class KeyOut(BaseModel):
    key: str
    group: str = Field(description="The key's prefix up to its first '/', or '' (one section of charts each)")
    runs: list[RunSeriesOut]


class SideBySideOut(BaseModel):
    key: str
    values: dict[str, Any] = Field(
        description="Per run id, its value (tagged JSON), null when it lacks the key"
    )
    missing: list[str]
    differs: bool


class RunsViewOut(BaseModel):
    project: str | None
    runs: list[ListedRunOut]
    truncated: bool
    limit: int
    max_compared: int
    max_points: int
    selected: list[ListedRunOut]
    keys: list[KeyOut]
    config: list[SideBySideOut]
    summary: list[SideBySideOut]


def parse_ids(ids: str | None) -> list[str]:
    """The run ids of ``ids=a,b,c`` in order, blanks and repeats dropped; 422 naming ``ids`` past
    :data:`MAX_COMPARED`."""
    if ids is None:
        return []
    out = list(dict.fromkeys(i.strip() for i in ids.split(",") if i.strip()))
    if len(out) > MAX_COMPARED:
        raise _bad("ids", f"at most {MAX_COMPARED} runs are compared at once, got {len(out)}")
    return out


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys; lists and scalars are leaves.

    >>> flatten({"opt": {"lr": 0.1, "betas": [0.9, 0.99]}, "epochs": 3})
    {'opt.lr': 0.1, 'opt.betas': [0.9, 0.99], 'epochs': 3}
    """
    out: dict[str, Any] = {}
    for k, v in value.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            out.update(flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def _same(values: list[Any]) -> bool:
    # compared as canonical JSON of the stored (tagged) form, so 1 == 1.0 but NaN equals NaN and "1" != 1
    texts = {json.dumps(v, sort_keys=True, default=str) for v in values}
    return len(texts) == 1


def side_by_side(maps: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ``{key, values: {run id: value or None}, missing: [run ids], differs}`` over the union of the
    keys, in key order; a key differs when some run lacks it or two runs' values are not equal."""
    keys = sorted({k for m in maps.values() for k in m})
    rows = []
    for key in keys:
        values = {rid: codec.encode(m[key]) if key in m else None for rid, m in maps.items()}
        missing = [rid for rid, m in maps.items() if key not in m]
        present = [values[rid] for rid, m in maps.items() if key in m]
        differs = len(maps) > 1 and (bool(missing) or not _same(present))
        rows.append({"key": key, "values": values, "missing": missing, "differs": differs})
    return rows


def key_name(s: SeriesInfo) -> str:
    """A chart's key: the logged name, with its labels when it has any (``gpu_util{gpu=0}``)."""
    return f"{s.name}{{{labels_key(s.labels)}}}" if s.labels else s.name


def key_group(name: str) -> str:
    """The section a key is charted in: its prefix up to the first ``/`` (``train/loss`` -> ``train``), or
    "" for a key without one."""
    head, slash, _ = name.partition("/")
    return head if slash and head else ""


def _whole(store: Store, ids: list[int]) -> dict[int, dict[str, Any]]:
    """Every point of the series ``ids``, by step then time."""
    out: dict[int, dict[str, Any]] = {}
    if not ids:
        return out
    q = (
        sa.select(points.c.series_id, points.c.step, points.c.t, points.c.value)
        .where(points.c.series_id.in_(ids))
        .order_by(points.c.series_id, points.c.step.nulls_first(), points.c.t)
    )
    rows: dict[int, list[Any]] = {i: [] for i in ids}
    with store.connect() as conn:
        for r in conn.execute(q):
            rows[r[0]].append(r)
    for sid, rs in rows.items():
        value = np.array([math.nan if r[3] is None else r[3] for r in rs], dtype=np.float64)
        out[sid] = {
            "step": [r[1] for r in rs],
            "t": [r[2] for r in rs],
            "v": _nums(value),
            "points": len(rs),
            "width": 1,
        }
    return out


def _bucketed(store: Store, sid: int, count: int) -> dict[str, Any]:
    """One long series as at most :data:`MAX_POINTS` buckets of consecutive steps (points without a step
    are left out: they have no place on a step axis)."""
    with store.connect() as conn:
        lo, hi = conn.execute(
            sa.select(sa.func.min(points.c.step), sa.func.max(points.c.step)).where(
                points.c.series_id == sid, points.c.step.is_not(None)
            )
        ).one()
        if lo is None:
            return {"step": [], "t": [], "v": [], "min": [], "max": [], "points": count, "width": 1}
        width = max(1, math.ceil((hi - lo + 1) / MAX_POINTS))
        k = (points.c.step - lo) // width
        q = (
            sa.select(
                k.label("k"),
                sa.func.min(points.c.step),
                sa.func.min(points.c.t),
                sa.func.avg(points.c.value),
                sa.func.min(points.c.value),
                sa.func.max(points.c.value),
            )
            .where(points.c.series_id == sid, points.c.step.is_not(None))
            .group_by(k)
            .order_by(k)
        )
        rows = conn.execute(q).all()

    def col(i: int) -> list[Any]:
        return _nums(np.array([math.nan if r[i] is None else r[i] for r in rows], dtype=np.float64))

    return {
        "step": [int(r[1]) for r in rows],
        "t": [float(r[2]) for r in rows],
        "v": col(3),
        "min": col(4),
        "max": col(5),
        "points": count,
        "width": width,
    }


def run_series(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    """Every logged key of a run: ``{key: {"name", "labels", "step", "t", "v", "points", "width"}}``,
    ``width`` the steps per point (1: every point)."""
    found = [s for s in store.signals.series(run_id=run_id, stats=True) if s.run_id == run_id]
    short = [s.id for s in found if (s.count or 0) <= MAX_POINTS]
    data = _whole(store, short)
    out = {}
    for s in found:
        d = data[s.id] if s.id in data else _bucketed(store, s.id, s.count or 0)
        out[key_name(s)] = {"name": s.name, "labels": s.labels, **d}
    return out


def _listed(info: RunInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "project": info.project,
        "name": info.name,
        "state": info.status,
        "job_type": info.job_type,
        "group": info.group,
        "tags": info.tags,
        "model": info.model,
        "version": info.version,
        "created_at": info.created_at,
        "ended_at": info.ended_at,
        "duration": info.duration,
        "last_step": info.last_step,
        "summary": codec.encode(info.summary),
    }


@router.get("/runs", response_model=RunsViewOut, response_model_exclude_unset=True, responses=problems(403))
def runs_view(
    request: Request,
    who: views.Who,
    project: str | None = None,
    ids: Annotated[
        str | None, Query(description=f"Run ids to compare, comma-separated (at most {MAX_COMPARED})")
    ] = None,
    job_type: str | None = None,
) -> dict[str, Any]:
    """The runs of ``project`` (or of every readable project), newest first; and for the runs ``ids``,
    their logged keys' series by step grouped by prefix, and their config and summary side by side with
    the keys that differ marked."""
    store: Store = request.app.state.store
    if project is not None:
        if not project:
            raise _bad("project", "expected a non-empty name")
        who.check_read(project)
    chosen = parse_ids(ids)
    listed = store.runs.list(
        project if project is not None else who.projects, job_type=job_type or None, limit=MAX_LISTED + 1
    )
    out: dict[str, Any] = {
        "project": project,
        "runs": [_listed(r) for r in listed[:MAX_LISTED]],
        "truncated": len(listed) > MAX_LISTED,
        "limit": MAX_LISTED,
        "max_compared": MAX_COMPARED,
        "max_points": MAX_POINTS,
        "selected": [],
        "keys": [],
        "config": [],
        "summary": [],
    }
    if not chosen:
        return out
    owners = store.runs.projects_of(chosen)
    unknown = [i for i in chosen if i not in owners]
    if unknown:
        raise _bad("ids", f"no run with id {', '.join(repr(i) for i in unknown)}")
    if project is not None:
        elsewhere = [i for i in chosen if owners[i] != project]
        if elsewhere:
            raise _bad("ids", f"run {elsewhere[0]!r} is of project {owners[elsewhere[0]]!r}, not {project!r}")
    for p in sorted(set(owners.values())):
        who.check_read(p)
    infos = {i: store.runs.get(i) for i in chosen}
    out["selected"] = [_listed(infos[i]) for i in chosen]
    by_key: dict[str, list[dict[str, Any]]] = {}
    for rid in chosen:
        for key, s in run_series(store, rid).items():
            by_key.setdefault(key, []).append({"run_id": rid, **s})
    out["keys"] = [
        {"key": key, "group": key_group(key), "runs": by_key[key]}
        for key in sorted(by_key, key=lambda k: (key_group(k) == "", key_group(k), k))
    ]
    out["config"] = side_by_side({i: flatten(infos[i].config) for i in chosen})
    out["summary"] = side_by_side({i: flatten(infos[i].summary) for i in chosen})
    return out
