"""``GET /api/v1/views/drift`` and ``/distribution``: the drift page of a deployment.

``/drift`` is the heatmap of feature x bucket. A cell is the worst window of its bucket: the largest
``drift_score`` in magnitude (the maximum for the non-negative KS ``D`` and chi-squared statistics; the
boolean features' z statistic is signed, so its cell is ``max(max, -min)``), read with the bucket's
``drift_detected`` (1 when any window of the bucket drifted) from the store's roll-ups in one query, like
every chart of :mod:`watchkeeper.server.views`. The features come most drifted first: by the buckets in
which they drifted, then by their newest p-value. Each feature also gets its newest score, p-value and
verdict, and the statistic its test reports (from the reference column's kind, as
:data:`watchkeeper.drift.dataset.DEFAULT_TESTS` chooses it), since the statistics of different tests are
on different scales and a page must not colour them on one.

``/distribution`` is one feature's reference and current distributions on common cells, with the drift
test of the two. The current side is the window profiles overlapping ``[start, end)`` merged; at most
:data:`MAX_MERGED_WINDOWS` of them, evenly spread over the range (the answer says how many of how many),
so the work is bounded whatever the range. The cells and the test are those of
:func:`watchkeeper.drift.drift` on the two profiles (its ``plot``): numbers on equal-width bins between the
two sketches' 0.5% and 99.5% quantiles, categories as the most frequent ones (the rest as one cell). For an
input feature the test runs over all of the window's inputs, as the monitor does, so that the verdict
includes the same multiple-testing correction as ``drift_detected``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from watchkeeper.drift import drift
from watchkeeper.drift.binning import bin_categorical_profiles
from watchkeeper.drift.dataset import DEFAULT_TESTS, _categorical_plot, _quantile_plot
from watchkeeper.monitor.base import MonitorSettings
from watchkeeper.profile import Profile
from watchkeeper.server.query import _bad, _num, _nums
from watchkeeper.server.schema import problems
from watchkeeper.server.views import (
    MAX_RANGE,
    AlertMarkOut,
    Num,
    Page,
    RangeOut,
    Seconds,
    SeriesReader,
    Who,
    alert_events,
    deployment,
    merged_windows,
)
from watchkeeper.store import Store

router = APIRouter(prefix="/api/v1/views", tags=["dashboard"], responses=problems(401, 503))

MAX_MERGED_WINDOWS = 30
"""Window profiles merged for one distribution. Merging costs about 1.5 ms per window of ten columns here
(parsing and copying the sketches), so 30 keep a distribution of 25 features near 100 ms; 30 windows of a
bucket hold thousands of rows, plenty for a histogram of 30 bins."""

STATISTICS = {"ks+welch": "KS D", "chi2": "chi-squared", "ztest": "z", "mean_shift": "mean shift"}
"""What ``drift_score`` is for each default test (the drift module's ``statistic``)."""

HEATMAP_SIGNALS = ("drift_score", "drift_detected", "dataset_drift_share")
"""Read per bucket; each feature's newest p-value is read as the last point of its series alone."""


# -- answers -------------------------------------------------------------------------------------------


class NewestOut(BaseModel):
    t: float | None = Field(description="Start of the newest bucket with a point")
    score: Num
    p_value: Num
    detected: bool | None


class FeatureDriftOut(BaseModel):
    feature: str
    test: str | None = Field(description="The default test of the reference column's kind")
    statistic: str = Field(description="What drift_score is for that test: KS D, chi-squared, z")
    worst: list[Num] = Field(description="Per bucket of t: the largest |drift_score| of its windows")
    detected: list[Num] = Field(description="Per bucket of t: 1 when a window of it drifted, else 0")
    drifted_buckets: int
    newest: NewestOut


class DriftOut(RangeOut):
    project: str
    model: str
    version: str
    subject: str
    reference: bool = Field(description="Whether the version has a reference profile")
    t: list[float] = Field(description="Every bucket's start over the range")
    features: list[FeatureDriftOut] = Field(description="Most drifted first")
    dataset_drift_share: list[Num] = Field(description="Per bucket of t: its worst window's share")
    events: list[AlertMarkOut]


class DriftTestOut(BaseModel):
    method: str | None
    statistic_name: str
    statistic: Num
    p_value: Num
    p_adjusted: Num
    effect_name: str | None
    effect: Num
    detected: bool | None
    status: str
    columns_tested: int = Field(description="Columns in the multiple-testing family")
    alpha: float


class PlotOut(BaseModel):
    type: str = Field(description='"histogram" (edges, shares and densities per bin) or "bars" (categories)')
    reference: list[Num] | None = Field(description="Shares per cell")
    current: list[Num] | None
    edges: list[Num] | None = None
    reference_density: list[Num] | None = None
    current_density: list[Num] | None = None
    categories: list[str] | None = None
    label: str | None = None


class WindowsOut(BaseModel):
    merged: int
    total: int = Field(description="Windows overlapping the range")
    cap: int


class RowsOut(BaseModel):
    reference: int | None
    current: int


class DistributionOut(BaseModel):
    project: str
    model: str
    version: str
    feature: str
    kind: str
    role: str
    start: float
    end: float
    windows: WindowsOut
    rows: RowsOut
    reference: bool
    test: DriftTestOut | None
    plot: PlotOut | None
    message: str


def _reference(store: Store, project: str, model: str, version: str) -> Profile | None:
    try:
        stored = store.profiles.reference(project, model, version, MonitorSettings().reference)
    except KeyError:
        return None
    return Profile.from_bytes(stored.data)


def _test_of(ref: Profile | None, feature: str) -> str | None:
    if ref is None or feature not in ref:
        return None
    kind = ref[feature].kind
    return DEFAULT_TESTS.get("numeric" if kind == "datetime" else kind)


@router.get("/drift", response_model=DriftOut, responses=problems(403))
def drift_heatmap(
    page: Page,
) -> dict[str, Any]:
    """Drift of each feature per bucket (the worst window's score, and whether any window drifted), the
    features most drifted first with their newest score, p-value, test and verdict, the share of drifted
    features per bucket (its worst window), and the alert state changes in the range."""
    store, who, project, model, version = page.store, page.who, page.project, page.model, page.version
    subject, rng = page.subject, page.rng
    reader = SeriesReader(store, project, subject, rng)
    infos = reader.infos(HEATMAP_SIGNALS)
    buckets = store.signals.buckets([s.id for s in infos], rng.step, rng.start, rng.end) if infos else {}
    grid = np.arange(rng.start, rng.end, rng.step, dtype=np.float64)

    def on_grid(bucket_starts: np.ndarray, values: np.ndarray) -> np.ndarray:
        out = np.full(grid.size, np.nan)
        at = np.rint((bucket_starts - rng.start) / rng.step).astype(np.int64)
        ok = (at >= 0) & (at < grid.size)
        out[at[ok]] = values[ok]
        return out

    ref = _reference(store, project, model, version)
    features: dict[str, dict[str, Any]] = {}
    share: list[Any] = [None] * grid.size
    by_id = {s.id: s.labels["feature"] for s in reader.infos(["drift_p_value"]) if "feature" in s.labels}
    for sid, (_, p_value) in store.signals.last_in(list(by_id), rng.start, rng.end).items():
        features.setdefault(by_id[sid], {"feature": by_id[sid]})["p_value"] = p_value
    for s in infos:
        b = buckets[s.id]
        if s.name == "dataset_drift_share":
            if not s.labels:
                share = _nums(on_grid(b.start, b.max))
            continue
        name = s.labels.get("feature")
        if name is None:
            continue
        f = features.setdefault(name, {"feature": name})
        if s.name == "drift_score":
            with np.errstate(invalid="ignore"):
                worst = np.fmax(b.max, -b.min)  # the largest magnitude: z is signed, KS D and chi2 are not
            f["worst"] = on_grid(b.start, worst)
            f["newest_t"], f["score"] = _newest(b.start, b.last)
        else:
            f["detected_grid"] = on_grid(b.start, b.max)
            f["detected"] = _newest(b.start, b.last)[1]
    rows = []
    for name, f in features.items():
        worst = f.get("worst", np.full(grid.size, np.nan))
        detected = f.get("detected_grid", np.full(grid.size, np.nan))
        test = _test_of(ref, name)
        p = f.get("p_value")
        rows.append(
            {
                "feature": name,
                "test": test,
                "statistic": STATISTICS.get(test or "", "drift score"),
                "worst": _nums(worst),
                "detected": _nums(detected),
                "drifted_buckets": int(np.nansum(detected > 0.5)),
                "newest": {
                    "t": f.get("newest_t"),
                    "score": _num(f.get("score")),
                    "p_value": _num(p),
                    "detected": None if f.get("detected") is None else bool(f["detected"] > 0.5),
                },
            }
        )
    rows.sort(
        key=lambda r: (
            -r["drifted_buckets"],
            -(r["newest"]["detected"] or 0),
            r["newest"]["p_value"] if isinstance(r["newest"]["p_value"], float) else 2.0,
            r["feature"],
        )
    )
    return {
        **rng.out(),
        "project": project,
        "model": model,
        "version": version,
        "subject": subject,
        "reference": ref is not None,
        "t": grid.tolist(),
        "features": rows,
        "dataset_drift_share": share,
        "events": alert_events(store, who, project, rng, model=model, version=version),
    }


def _newest(starts: np.ndarray, last: np.ndarray) -> tuple[float | None, float | None]:
    """The start of the newest bucket with a value and its newest window's value."""
    ok = np.flatnonzero(~np.isnan(last))
    if not ok.size:
        return None, None
    return float(starts[ok[-1]]), float(last[ok[-1]])


# -- one feature's distributions --------------------------------------------------------------------------


def one_side(col: Any) -> dict[str, Any] | None:
    """The distribution of one column alone, on the cells the drift module would use for it against
    itself (for an output the reference lacks, or a deployment without a reference)."""
    kind = col.kind
    if kind in ("numeric", "datetime") and col.numeric is not None and col.numeric.quantiles.n:
        return _quantile_plot(col.numeric.quantiles, col.numeric.quantiles)
    if kind in ("categorical", "boolean"):
        try:
            binned = bin_categorical_profiles(col, col)
        except ValueError:
            return None
        labels = ["(other values)" if c is None else c for c in binned.categories or []]
        return _categorical_plot(labels, binned.p, binned.q)
    return None


def distribution_of(ref: Profile | None, cur: Profile, feature: str) -> dict[str, Any]:
    """``{"test": ..., "plot": ...}`` of ``feature``: the drift result and its common cells when both sides
    have it, else the current side alone."""
    if ref is None or feature not in ref:
        plot = one_side(cur[feature])
        message = "no reference for this version" if ref is None else "the reference has no such column"
        return {"test": None, "plot": _plot_out(plot, with_reference=False), "message": message}
    inputs = cur.inputs()
    columns = [c for c in inputs if c in ref] if feature in inputs else [feature]
    col = drift(ref, cur, columns=columns, alpha=MonitorSettings().alpha)[feature]
    test = {
        "method": col.method,
        "statistic_name": STATISTICS.get(col.method or "", "statistic"),
        "statistic": _num(col.statistic),
        "p_value": _num(col.p_value),
        "p_adjusted": _num(col.p_adjusted),
        "effect_name": col.effect_name,
        "effect": _num(col.effect),
        "detected": col.drifted,
        "status": col.status,
        "columns_tested": len(columns),
        "alpha": MonitorSettings().alpha,
    }
    return {"test": test, "plot": _plot_out(col.plot, with_reference=True), "message": col.message}


def _plot_out(
    plot: dict[str, Any] | None, *, with_reference: bool, alone: str = "current"
) -> dict[str, Any] | None:
    """The drift module's plot as the page draws it: shares per cell (and densities per unit for bins).
    Without ``with_reference`` the plot is of one side, ``alone`` (its shares are in ``cur``)."""
    if plot is None:
        return None
    one = np.asarray(plot["cur"], dtype=np.float64)
    ref = np.asarray(plot["ref"], dtype=np.float64) if with_reference else None
    cur: np.ndarray | None = one
    if not with_reference and alone == "reference":
        ref, cur = one, None
    out: dict[str, Any] = {"type": plot["type"]}
    if plot["type"] == "histogram":
        edges = np.asarray(plot["edges"], dtype=np.float64)
        width = np.diff(edges)
        out["edges"] = _nums(edges)
    for side, shares in (("reference", ref), ("current", cur)):
        out[side] = None if shares is None else _nums(shares)
        if plot["type"] == "histogram":
            out[f"{side}_density"] = None if shares is None else _nums(shares / width)
    if plot["type"] != "histogram":
        out["categories"] = [str(c) for c in plot["categories"]]
    if "label" in plot:
        out["label"] = plot["label"]
    return out


@router.get("/distribution", response_model=DistributionOut, responses=problems(403, 404))
def distribution(
    request: Request,
    who: Who,
    project: str,
    model: str,
    version: str,
    feature: str,
    start: Seconds = None,
    end: Seconds = None,
) -> dict[str, Any]:
    """One feature's distribution in the reference and in the windows of ``[start, end)`` (at most
    :data:`MAX_MERGED_WINDOWS` merged, evenly spread; the answer says how many of how many), on common
    cells, with the drift test of the two profiles. 404 when no window of the deployment overlaps the
    range; 422 naming ``feature`` when neither side has it."""
    store: Store = request.app.state.store
    who.check_read(project)
    subject = deployment(project, model, version)
    if not feature:
        raise _bad("feature", "expected a feature name")
    end = time.time() if end is None else end
    start = end - 3600.0 if start is None else start
    if not start < end:
        raise _bad("start", f"start ({start:g}) must be before end ({end:g})")
    if end - start > MAX_RANGE:
        raise _bad("start", f"the range is {(end - start) / 86400:.0f} days; at most {MAX_RANGE / 86400:.0f}")
    cur, counts = merged_windows(store, project, subject, start, end, MAX_MERGED_WINDOWS)
    merged, total = counts["merged"], counts["total"]
    cur = cur if merged else None
    ref = _reference(store, project, model, version)
    known = set(cur.columns if cur is not None else ()) | set(ref.columns if ref is not None else ())
    if feature not in known:
        if not known:
            raise HTTPException(404, f"neither a reference nor windows of {subject!r} in project {project!r}")
        names = sorted(known)
        shown = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
        raise _bad(
            "feature", f"no column {feature!r} in this deployment's reference or windows; known: {shown}"
        )
    if cur is None or feature not in cur:
        assert ref is not None
        found = {
            "test": None,
            "plot": _plot_out(one_side(ref[feature]), with_reference=False, alone="reference"),
            "message": "no window in this range holds the column" if cur else "no window in this range",
        }
    else:
        found = distribution_of(ref, cur, feature)
    col = cur[feature] if cur is not None and feature in cur else ref[feature]  # type: ignore[index]
    return {
        "project": project,
        "model": model,
        "version": version,
        "feature": feature,
        "kind": col.kind,
        "role": cur.role(feature) if cur is not None else "input",
        "start": start,
        "end": end,
        "windows": {"merged": merged, "total": total, "cap": MAX_MERGED_WINDOWS},
        "rows": {
            "reference": ref[feature].count if ref is not None and feature in ref else None,
            "current": cur[feature].count if cur is not None and feature in cur else 0,
        },
        "reference": ref is not None,
        **found,
    }
