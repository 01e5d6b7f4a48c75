"""``GET /api/v1/views/compare``: two versions of a model side by side (champion and challenger, A and B).

For each version, every panel of its overview (:data:`watchkeeper.server.views.OVERVIEW`) over the same
range, read by the overview's own code (bucketed through the store's roll-ups), with the newest value of
each side and their difference (B minus A); and the drift between the two versions' traffic:
:func:`watchkeeper.drift.drift` with A's merged window profiles as the reference and B's as the current
data, per column its test, statistic, p-value (raw and Holm-adjusted), effect size and verdict by the
default rule of :mod:`watchkeeper.drift.decide`.

Bounded work. Decoding and merging a window profile of 25 columns costs about 5 ms here, so a month of
1-minute windows (43,200 per version) cannot be merged per request. Each side merges at most ``windows``
of its windows in the range (default :data:`DEFAULT_WINDOWS`), evenly spread in time over them so the
whole range is represented, each found by one index seek; the answer says how many were merged of how
many there were ("12 of 43200") and how many rows that is. The drift tests are then those of two samples
of that many rows: fewer windows means less power, not a biased verdict. Quantile sketches merge with a
random compaction (KLL), so two answers over the same windows may differ slightly in the sketch-based
figures (KS statistic, Wasserstein effect), within the sketches' rank error.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from watchkeeper.drift import ColumnDrift, drift
from watchkeeper.profile import Profile
from watchkeeper.server import views
from watchkeeper.server.auth import Principal
from watchkeeper.server.query import _bad, _clean, _num
from watchkeeper.server.schema import problems
from watchkeeper.store import Store
from watchkeeper.store.profiles import model_subject

router = APIRouter(prefix="/api/v1/views", tags=["dashboard"], responses=problems(401, 503))

DEFAULT_WINDOWS = 12
"""Window profiles merged per version by default: about 250 ms for both sides and the drift tests."""
MAX_WINDOWS = 240


# -- the answer ------------------------------------------------------------------------------------------


class SideOut(BaseModel):
    series: list[views.SeriesOut]
    current: float | None
    status: Literal["ok", "warn", "bad", "none"]


class ComparePanelOut(BaseModel):
    key: str
    title: str
    unit: str
    a: SideOut
    b: SideOut
    difference: views.Num = Field(description="b's newest value minus a's (null when either has none)")


class WindowCountsOut(BaseModel):
    merged: int = Field(description="Window profiles merged")
    total: int = Field(description="Window profiles starting in the range")
    rows: int = Field(description="Rows of the merged windows")
    unreadable: int = Field(description="Chosen windows left out because they could not be read")


class DriftColumnOut(BaseModel):
    column: str
    role: str
    kind: str
    status: str
    method: str | None
    statistic: views.Num
    p_value: views.Num
    p_adjusted: views.Num
    effect_name: str | None
    effect: views.Num
    drifted: bool | None
    message: str
    ref_count: int
    cur_count: int
    plot: dict[str, Any] | None = Field(description="Both distributions: shares per bin or per category")


class DriftPolicyOut(BaseModel):
    alpha: float
    correction: str
    numeric_min_effect: float
    categorical_min_effect: float
    drift_share: float


class CompareDriftOut(BaseModel):
    reference: str
    current: str
    limit: int
    windows: dict[Literal["a", "b"], WindowCountsOut]
    columns: list[DriftColumnOut]
    message: str | None = None
    drifted: bool | None = None
    share: float | None = None
    compared: int | None = None
    drifted_columns: list[str] | None = None
    policy: DriftPolicyOut | None = None


class CompareOut(views.RangeOut):
    project: str
    model: str
    a: str
    b: str
    part: Literal["all", "panels", "drift"]
    subjects: dict[Literal["a", "b"], str] | None = None
    panels: list[ComparePanelOut] | None = None
    alerts: dict[Literal["a", "b"], list[views.OpenAlertOut]] | None = None
    drifting_features: dict[Literal["a", "b"], list[str]] | None = None
    events: list[views.AlertMarkOut] | None = None
    drift: CompareDriftOut | None = None


# -- the work ------------------------------------------------------------------------------------------------


def _column(c: ColumnDrift, role: str) -> dict[str, Any]:
    return {
        "column": c.column,
        "role": role,
        "kind": c.kind,
        "status": c.status,
        "method": c.method,
        "statistic": _num(c.statistic),
        "p_value": _num(c.p_value),
        "p_adjusted": _num(c.p_adjusted),
        "effect_name": c.effect_name,
        "effect": _num(c.effect),
        "drifted": c.drifted,
        "message": c.message,
        "ref_count": c.ref_count,
        "cur_count": c.cur_count,
        "plot": _clean(c.plot),
    }


def _score(c: ColumnDrift) -> float:
    # the effect size is on one scale for every test (about 0 to 1); statistics (KS D, chi-squared) are not
    return c.effect if c.drifted is not None and math.isfinite(c.effect) else -math.inf


def traffic_drift(reference: Profile, current: Profile) -> dict[str, Any]:
    """The drift of ``current`` against ``reference`` as the answer gives it: the dataset verdict and one
    row per column, sorted by effect size (largest first; columns not compared last)."""
    result = drift(reference, current)
    roles = {**{n: reference.role(n) for n in reference}, **{n: current.role(n) for n in current}}
    ordered = sorted(result.columns, key=lambda c: (-_score(c), c.column))
    return {
        "drifted": result.drifted,
        "share": result.share,
        "compared": len(result.compared),
        "drifted_columns": sorted(result.drifted_columns),
        "policy": {
            "alpha": result.policy.alpha,
            "correction": result.policy.correction,
            "numeric_min_effect": result.policy.numeric_min_effect,
            "categorical_min_effect": result.policy.categorical_min_effect,
            "drift_share": result.policy.drift_share,
        },
        "columns": [_column(c, roles.get(c.column, "input")) for c in ordered],
    }


def _difference(a: Any, b: Any) -> Any:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return _num(b - a)
    return None


def drift_between(
    store: Store, project: str, model: str, a: str, b: str, rng: views.Range, windows: int
) -> dict[str, Any]:
    """The ``drift`` part of the answer: b's merged windows against a's."""
    profile_a, counts_a = views.merged_windows(
        store, project, model_subject(model, a), rng.start, rng.end, windows
    )
    profile_b, counts_b = views.merged_windows(
        store, project, model_subject(model, b), rng.start, rng.end, windows
    )
    out: dict[str, Any] = {
        "reference": a,
        "current": b,
        "limit": windows,
        "windows": {"a": counts_a, "b": counts_b},
    }
    if profile_a.rows and profile_b.rows:
        out.update(traffic_drift(profile_a, profile_b))
    else:
        empty = [v for v, p in ((a, profile_a), (b, profile_b)) if not p.rows]
        out["columns"] = []
        out["message"] = "no traffic of " + " or ".join(f"v{v}" for v in empty) + " in this range"
    return out


def panels_of(
    request: Request, who: Principal, project: str, model: str, a: str, b: str, rng: views.Range
) -> dict[str, Any]:
    """The ``panels`` part of the answer: both overviews, panel by panel, and their alert markers."""
    # the overview's own code for each side, over the range already aligned (aligning it again keeps it)
    sides = {
        side: views.overview(
            views.DeploymentRange(
                request.app.state.store,
                who,
                project,
                model,
                version,
                views.deployment(project, model, version),
                rng,
            )
        )
        for side, version in (("a", a), ("b", b))
    }
    panels = []
    for pa, pb in zip(sides["a"]["panels"], sides["b"]["panels"], strict=True):
        panels.append(
            {
                "key": pa["key"],
                "title": pa["title"],
                "unit": pa["unit"],
                "a": {k: pa[k] for k in ("series", "current", "status")},
                "b": {k: pb[k] for k in ("series", "current", "status")},
                "difference": _difference(pa["current"], pb["current"]),
            }
        )
    events: dict[tuple[Any, ...], dict[str, Any]] = {}
    for side in ("a", "b"):
        for e in sides[side]["events"]:
            key = (e["rule"], e["t"], e["from"], e["to"], tuple(sorted(e["labels"].items())))
            events.setdefault(key, e)
    return {
        "subjects": {"a": sides["a"]["subject"], "b": sides["b"]["subject"]},
        "panels": panels,
        "alerts": {"a": sides["a"]["alerts"], "b": sides["b"]["alerts"]},
        "drifting_features": {"a": sides["a"]["drifting_features"], "b": sides["b"]["drifting_features"]},
        "events": sorted(events.values(), key=lambda e: e["t"]),
    }


@router.get("/compare", response_model=CompareOut, response_model_exclude_unset=True, responses=problems(403))
def compare(
    request: Request,
    who: views.Who,
    project: str,
    model: str,
    a: Annotated[str, Query(description="Version A: the reference side (the champion)")],
    b: Annotated[str, Query(description="Version B: compared with A (the challenger)")],
    start: views.Seconds = None,
    end: views.Seconds = None,
    step: views.StepParam = None,
    windows: Annotated[
        int, Query(ge=1, le=MAX_WINDOWS, description="Window profiles merged per version for the drift")
    ] = DEFAULT_WINDOWS,
    part: Annotated[
        Literal["all", "panels", "drift"],
        Query(description="The whole answer, or only its panels or only its drift (a page asks for both)"),
    ] = "all",
) -> dict[str, Any]:
    """Versions ``a`` and ``b`` of ``model`` over one range: every overview panel of each with its series,
    newest value and status, the difference of the newest values (b - a), the alert state changes of both,
    and the drift of b's traffic against a's (at most ``windows`` window profiles merged per version).
    With ``part``, only the panels or only the drift: the dashboard asks for both in parallel, so the page
    waits for the slower of the two, not their sum."""
    for field, value in (("project", project), ("model", model), ("a", a), ("b", b)):
        if not value:
            raise _bad(field, "expected a non-empty name")
    store: Store = request.app.state.store
    who.check_read(project)
    rng = views.time_range(start, end, step)
    out: dict[str, Any] = {**rng.out(), "project": project, "model": model, "a": a, "b": b, "part": part}
    if part != "drift":
        out.update(panels_of(request, who, project, model, a, b, rng))
    if part != "panels":
        out["drift"] = drift_between(store, project, model, a, b, rng, windows)
    return out
