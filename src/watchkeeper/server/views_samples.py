"""``GET /api/v1/views/samples``: what the samples tab of a deployment needs beside its rows, which it reads
from ``GET /api/v1/samples``: the routes (endpoints) the deployment serves and how many sampled rows each
has in the range, by status ("ok" or the error's type), so the page can offer them as filters with counts.

A route is an endpoint the SDK keeps samples of under the key ``samples/<endpoint>``, or one the monitors
write per-endpoint series for (label ``endpoint``): a route appears even when none of its rows were sampled
in the range. The counts are of the deployment's sampled rows in ``[start, end)`` (rows of the runs that
wrote the deployment's window profiles, as ``/api/v1/samples?subject=`` selects them), at most the newest
:data:`COUNT_LIMIT` of them, so an answer reads a bounded number of rows whatever the range; past that the
answer says ``capped`` and the page shows the counts as lower bounds (30 days of one-minute windows with
ten rows each are 432,000 rows).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from watchkeeper.server.auth import Principal, principal
from watchkeeper.server.query import _bad
from watchkeeper.server.schema import problems
from watchkeeper.server.views import DEFAULT_RANGE, MAX_RANGE, Seconds, SeriesReader, deployment, time_range
from watchkeeper.store import Store
from watchkeeper.store.schema import profiles, projects, samples

router = APIRouter(prefix="/api/v1/views", tags=["dashboard"], responses=problems(401, 503))

Who = Annotated[Principal, Depends(principal)]
PREFIX = "samples/"
COUNT_LIMIT = 5_000
"""Sampled rows counted at most per answer (the newest): past it the counts say ``capped``."""


class StatusCount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(description='"ok" or the error type')
    rows: int


class RouteCount(BaseModel):
    model_config = ConfigDict(extra="forbid")
    route: str
    rows: int = Field(description="Sampled rows in the range")
    errors: int = Field(description="Of them, rows whose status is not ok")


class SamplesViewOut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: str
    model: str
    version: str
    subject: str
    start: float
    end: float
    rows: int = Field(description="Sampled rows of the deployment in [start, end) counted")
    capped: bool = Field(description=f"More rows matched: the counts are of the newest {COUNT_LIMIT:,}")
    errors: int
    routes: list[RouteCount] = Field(description="By name; routes with series but no sampled rows count 0")
    statuses: list[StatusCount] = Field(description="Most rows first")


@router.get("/samples", response_model=SamplesViewOut, responses=problems(403))
def samples_view(
    request: Request,
    who: Who,
    project: str,
    model: str,
    version: str,
    start: Seconds = None,
    end: Seconds = None,
) -> dict[str, Any]:
    """The routes of a deployment and its sampled rows in ``[start, end)`` counted by route and status:
    the filters of the samples tab. ``end`` defaults to now and ``start`` to a day before it; unlike the
    charts' routes the range is not widened to whole steps, so the counts are those of
    ``/api/v1/samples`` over the same range."""
    store: Store = request.app.state.store
    who.check_read(project)
    subject = deployment(project, model, version)
    end = time.time() if end is None else end
    start = end - DEFAULT_RANGE if start is None else start
    if not start < end:
        raise _bad("start", f"start ({start:g}) must be before end ({end:g})")
    if end - start > MAX_RANGE:
        raise _bad("start", f"the range is {(end - start) / 86400:.0f} days; at most {MAX_RANGE / 86400:.0f}")

    counts, capped = _counts(store, project, subject, start, end)
    routes: dict[str, dict[str, int]] = {}
    statuses: dict[str, int] = {}
    for key, status, n in counts:
        route = routes.setdefault(key.removeprefix(PREFIX), {"rows": 0, "errors": 0})
        route["rows"] += n
        label = "ok" if status == "ok" else (status or "unknown")
        # as /api/v1/samples?status=error: a row with a status other than ok (a row without one is neither)
        route["errors"] += 0 if status in ("ok", None) else n
        statuses[label] = statuses.get(label, 0) + n
    # endpoints the monitors saw but the sampler kept nothing of in the range are routes too
    reader = SeriesReader(store, project, subject, time_range(start, end))
    for info in reader.infos(["request_rate"]):
        endpoint = info.labels.get("endpoint")
        if endpoint:
            routes.setdefault(endpoint, {"rows": 0, "errors": 0})
    total = sum(statuses.values())
    return {
        "project": project,
        "model": model,
        "version": version,
        "subject": subject,
        "start": start,
        "end": end,
        "rows": total,
        "capped": capped,
        "errors": sum(r["errors"] for r in routes.values()),
        "routes": [{"route": r, **c} for r, c in sorted(routes.items())],
        "statuses": [
            {"status": s, "rows": n}
            for s, n in sorted(statuses.items(), key=lambda item: (-item[1], item[0]))
        ],
    }


def _counts(
    store: Store, project: str, subject: str, start: float, end: float
) -> tuple[list[tuple[str, Any, int]], bool]:
    """``(key, status, rows)`` of the newest :data:`COUNT_LIMIT` sampled rows of the deployment with their
    time in ``[start, end)``, and whether more matched."""
    with store.connect() as conn:
        project_id = conn.execute(sa.select(projects.c.id).where(projects.c.name == project)).scalar()
        if project_id is None:
            return [], False
        runs = sorted(
            conn.execute(
                sa.select(profiles.c.run_id)
                .where(
                    profiles.c.project_id == project_id,
                    profiles.c.subject == subject,
                    profiles.c.run_id.is_not(None),
                )
                .distinct()
            ).scalars()
        )
        if not runs:
            return [], False
        q = (
            sa.select(samples.c.key, samples.c.data["status"].as_string())
            .where(
                samples.c.project_id == project_id,
                # newest first through the (project_id, row_t) index, stopping at the limit
                samples.c.row_t >= start,
                samples.c.row_t < end,
                # through coalesce, so that no index on run_id serves this test (through it SQLite would
                # read every row of the runs and sort them)
                sa.func.coalesce(samples.c.run_id, "").in_(runs),
                # substr, not LIKE: SQLite's LIKE ignores case and treats _ as a wildcard
                sa.func.substr(samples.c.key, 1, len(PREFIX)) == PREFIX,
            )
            .order_by(samples.c.row_t.desc(), samples.c.id.desc())
            .limit(COUNT_LIMIT + 1)
        )
        found = conn.execute(q).all()
    counts = Counter((key, status) for key, status in found[:COUNT_LIMIT])
    return [(key, status, n) for (key, status), n in counts.items()], len(found) > COUNT_LIMIT
