"""Batch monitoring: logged predictions read from files (a data lake's daily partition) go through the same
monitors and alert rules as live traffic. What ``watchkeeper monitor-batch`` runs.

:func:`monitor_batch` does, in order:

1. **Reads the partition** (a Parquet/CSV file or a directory of them) with the local engine of
   :mod:`watchkeeper.profile.batch`: rows go to the window of their time on the UTC grid (``[s, s + window)``
   with ``s`` a multiple of ``window`` since the epoch), one profile per window. The time, id and label
   columns are not profiled; output columns get the role ``output`` (default: the columns named as in
   :data:`OUTPUT_NAMES` or starting with one of :data:`OUTPUT_PREFIXES`), every other column ``input``.
   Nothing is written before the whole partition has been read without error.
2. **Writes** under the deployment's subject ``model:<model>@<version>`` one run (job type
   ``batch-monitor``; its config records the path, each file's SHA-256 and size, the window and the
   columns), one ``window`` profile per window, and, with an id column, each row's prediction (its output
   columns as a dict, at the row's time) and, with a label column, its label (at the row's time too), so
   the performance monitors score the windows as they score live traffic.
3. **Monitors** each window with :meth:`MonitorRunner.process_windows` (the default monitors, the version's
   reference, every profile stored for the window), telling them the window's end as the time: signals at
   ``t = window end``, replacing what an earlier pass wrote.
4. **Evaluates the alert rules** (the ``rule_files``; nothing else is loaded: the engine has no default
   rules) on the grid ``first window end + k * eval_interval`` up to ``min(window, range + keep_firing_for
   + group_interval + eval_interval)`` after the last window's end (so that the last alerts resolve as they
   would have live), never past now. Live, the engine evaluates every few seconds, and a window's points
   are visible to a rule for its ``lookback``; evaluating only at window ends would let ``for:``,
   ``group_wait`` and resolutions behave unlike live. Only the instances of this deployment (labels
   ``project``, ``model``, ``version``) are evaluated and notified (``AlertEngine.evaluate(only=...)``): the
   live alerts of other deployments keep their states. Rules of other processes stay enabled.
5. **Marks the run finished**, or failed when a monitor or a rule failed (then running again retries: see
   below; the exit code of ``watchkeeper monitor-batch`` is 1).

**Idempotent.** The run id is derived from the project, the subject, the window, the columns' options and
the multiset of the files' content digests (not their names or path); every batch id from the run id. A run
that finished is "already monitored": nothing is read past the digests, nothing written, nothing notified.
A run interrupted before it finished, or that failed, is resumed by running again: its batches already
applied are skipped by their ids, the monitors replace their points, the rules are evaluated again (and
may notify again).

**Replacement.** A partition is identified by ``partition`` (default: its resolved path), the project and
the subject. When its content (or a columns' option) changed, the earlier runs of the same partition are
replaced before anything new is written: their window profiles and predictions are deleted (and the labels
they wrote, when they had a label column), every signal point of the deployment at their windows' ends is
deleted (roll-ups refreshed), and the runs are kept, marked ``replaced_by`` in their summary. The windows are
then monitored anew from what remains, so no signal is doubled and no stale one remains. Alerts are
evaluated again over the new content and may notify again. Content changed back to an earlier version is
written again under that version's run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from watchkeeper.monitor.base import MonitorSettings
from watchkeeper.monitor.runner import MonitorPass, MonitorRunner, WindowKey
from watchkeeper.profile import Profile
from watchkeeper.profile.batch import (
    BatchProfile,
    epoch_seconds,
    iter_batches,
    profile_batches,
    window_starts,
)
from watchkeeper.profile.files import FORMATS, data_files, sha256_file
from watchkeeper.store.batch import Batch, LabelRows, PredictionRows, ProfileLog, RunStart, RunUpdate
from watchkeeper.store.profiles import model_subject
from watchkeeper.store.schema import (
    alert_rules,
    labels,
    points,
    predictions,
    profiles,
    projects,
    runs,
    series,
)
from watchkeeper.store.signals import refresh_rollups
from watchkeeper.store.store import Store

log = logging.getLogger(__name__)

JOB_TYPE = "batch-monitor"
OUTPUT_NAMES = frozenset(
    [
        "prediction",
        "predictions",
        "predicted",
        "pred",
        "y_pred",
        "yhat",
        "y_hat",
        "score",
        "scores",
        "proba",
        "probability",
        "probabilities",
        "confidence",
        "output",
    ]
)
"""Column names (compared lower-case) taken as the model's outputs when ``outputs`` is not given. ``label``,
``class``, ``target`` and ``y`` are not among them: in a table of logged predictions they are usually the
ground truth (give them with ``label_column``, or as ``outputs``)."""
OUTPUT_PREFIXES = ("prediction_", "predicted_", "pred_", "proba_", "probability_")
ROWS_PER_WRITE = 50_000
"""Predictions (and labels) written per batch."""
WINDOWS_PER_WRITE = 64
"""Window profiles written per batch."""
MAX_IN = 500
"""Values per SQL ``IN`` list."""

Progress = Callable[[str, int, "int | None"], None]
"""``progress(stage, done, total)``: ``done`` so far of ``total`` (None: unknown) in a stage named
``hashing``, ``profiling``, ``predictions``, ``monitoring`` or ``alerting``."""


class BatchInputError(ValueError):
    """Bad input to :func:`monitor_batch`; ``field`` names the option at fault (``path``, ``time``,
    ``window``, ``outputs``, ``id_column``, ``label_column``, ``columns``, ``rules``, ...)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(slots=True)
class BatchMonitorResult:
    """What :func:`monitor_batch` did. ``status`` is ``monitored`` or ``already monitored`` (then every count
    is 0 but ``windows`` and ``rows``, read from the finished run). ``window_rows`` maps each window's start
    to its rows; ``predictions`` and ``labels`` count the rows this call wrote; ``points`` the signal points
    written; ``errors`` the monitors and windows that failed; ``rule_errors`` the rules that failed to
    evaluate (by name); ``replaced`` the earlier runs of the partition replaced; ``transitions`` every state
    change of the deployment's alerts, in order."""

    run_id: str
    status: str
    subject: str
    files: int = 0
    windows: int = 0
    rows: int = 0
    untimed: int = 0
    predictions: int = 0
    labels: int = 0
    points: int = 0
    errors: int = 0
    evaluations: int = 0
    alerts_fired: int = 0
    notifications: int = 0
    rule_errors: dict[str, str] = field(default_factory=dict)
    replaced: list[str] = field(default_factory=list)
    window_rows: dict[float, int] = field(default_factory=dict)
    transitions: list[Any] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.rule_errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "subject": self.subject,
            "files": self.files,
            "windows": self.windows,
            "rows": self.rows,
            "untimed": self.untimed,
            "predictions": self.predictions,
            "labels": self.labels,
            "signal_points": self.points,
            "errors": self.errors,
            "evaluations": self.evaluations,
            "alerts_fired": self.alerts_fired,
            "notifications": self.notifications,
            "rule_errors": dict(self.rule_errors),
            "replaced": list(self.replaced),
            "window_rows": {str(int(s)) if s == int(s) else str(s): n for s, n in self.window_rows.items()},
        }


# -- the plan: which columns play which part -------------------------------------------------------------


def default_outputs(columns: Iterable[str]) -> list[str]:
    """The columns taken as outputs when none are named: see :data:`OUTPUT_NAMES` and
    :data:`OUTPUT_PREFIXES`."""
    out = []
    for c in columns:
        low = c.lower()
        if low in OUTPUT_NAMES or low.startswith(OUTPUT_PREFIXES):
            out.append(c)
    return out


@dataclass(frozen=True, slots=True)
class _Plan:
    path: Path
    files: list[Path]
    digests: list[dict[str, Any]]  # {"path", "sha256", "size"} per file, in file order
    time: str
    window: float
    outputs: list[str]
    inputs: list[str]
    id_column: str | None
    label_column: str | None
    columns: list[str] | None
    partition: str


def _file_columns(f: Path) -> list[str]:
    try:
        if FORMATS[f.suffix.lower()] == "parquet":
            return list(pq.ParquetFile(f).schema_arrow.names)
        delimiter = "\t" if f.suffix.lower() == ".tsv" else ","
        return list(pacsv.open_csv(f, parse_options=pacsv.ParseOptions(delimiter=delimiter)).schema.names)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BatchInputError("path", f"{f}: cannot be read as {FORMATS[f.suffix.lower()]}: {exc}") from exc


def _plan(
    path: str | Path,
    *,
    time_column: str,
    window: float,
    outputs: Sequence[str] | None,
    id_column: str | None,
    label_column: str | None,
    columns: Sequence[str] | None,
    partition: str | None,
    progress: Progress | None,
) -> _Plan:
    if not isinstance(time_column, str) or not time_column:
        raise BatchInputError("time", f"time: expected the name of the time column, got {time_column!r}")
    if (
        isinstance(window, bool)
        or not isinstance(window, numbers.Real)
        or not (math.isfinite(window) and window > 0)
    ):
        raise BatchInputError("window", f"window: expected a positive number of seconds, got {window!r}")
    try:
        files = data_files(path)
    except (FileNotFoundError, ValueError) as exc:
        raise BatchInputError("path", f"path: {exc}") from None
    root = Path(path)
    header = {f: _file_columns(f) for f in files}
    every = [c for c in header[files[0]] if all(c in cols for cols in header.values())]
    seen = list(dict.fromkeys(c for cols in header.values() for c in cols))

    def need(name: str | None, what: str) -> None:
        if name is None:
            return
        for f, cols in header.items():
            if name not in cols:
                raise BatchInputError(
                    what, f"{what}: no column {name!r} in {f} (its columns: {', '.join(cols)})"
                )

    need(time_column, "time")
    need(id_column, "id_column")
    need(label_column, "label_column")
    special = {time_column, id_column, label_column} - {None}
    if outputs is None:
        outs = default_outputs(c for c in every if c not in special)
    else:
        outs = list(dict.fromkeys(outputs))
        for o in outs:
            if o in special:
                raise BatchInputError(
                    "outputs", f"outputs: {o!r} is the time, id or label column, not a model output"
                )
            need(o, "outputs")
    if columns is not None:
        cols = list(dict.fromkeys(columns))
        for c in cols:
            if c in special:
                raise BatchInputError(
                    "columns", f"columns: {c!r} is the time, id or label column, not an input"
                )
            need(c, "columns")
        inputs = [c for c in cols if c not in outs]
    else:
        inputs = [c for c in seen if c not in special and c not in outs]
    if id_column is not None and not outs:
        raise BatchInputError(
            "outputs",
            "outputs: an id column is given but no output column was found (default names: "
            f"{', '.join(sorted(OUTPUT_NAMES))}, or starting with {', '.join(OUTPUT_PREFIXES)}): name the "
            "model's output columns",
        )
    total = sum(f.stat().st_size for f in files)
    done = 0

    def on_bytes(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress("hashing", done, total)

    digests = []
    for f in files:
        rel = f.name if root.is_file() else f.relative_to(root).as_posix()
        digests.append({"path": rel, "sha256": sha256_file(f, on_bytes), "size": f.stat().st_size})
    return _Plan(
        path=root,
        files=files,
        digests=digests,
        time=time_column,
        window=float(window),
        outputs=outs,
        inputs=inputs,
        id_column=id_column,
        label_column=label_column,
        columns=list(columns) if columns is not None else None,
        partition=partition if partition is not None else str(root.resolve()),
    )


def _hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def run_identity(project: str, subject: str, plan: _Plan) -> tuple[str, str]:
    """``(run id, partition group)``: the run id from what the run writes (the files' content, not their
    names), the group from where the partition is."""
    options = {
        "time": plan.time,
        "window": plan.window,
        "outputs": plan.outputs,
        "inputs": plan.columns,
        "id": plan.id_column,
        "label": plan.label_column,
    }
    content = sorted(d["sha256"] for d in plan.digests)
    run_id = "bm-" + _hash("run", project, subject, options, content)[:40]
    group = "batch-monitor:" + _hash("partition", project, subject, plan.partition)[:24]
    return run_id, group


def _batch_id(run_id: str, attempt: int, part: str, i: int = 0) -> str:
    return _hash("batch", run_id, attempt, part, i)[:32]


# -- reading ---------------------------------------------------------------------------------------------


def _profile(plan: _Plan, progress: Progress | None) -> BatchProfile:
    keep = [*plan.inputs, *plan.outputs, plan.time]
    read = keep if plan.columns is not None else None
    drop = {plan.id_column, plan.label_column} - {None}
    total = _known_rows(plan.files)
    done = 0

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal done
        for _, b in iter_batches(plan.path, columns=read):
            names = [n for n in b.schema.names if n not in drop]
            yield b.select(names) if len(names) != len(b.schema.names) else b
            done += b.num_rows
            if progress is not None:
                progress("profiling", done, total)

    try:
        out = profile_batches(batches(), time=plan.time, window=plan.window)
    except (ValueError, pa.ArrowInvalid) as exc:
        raise BatchInputError("path", str(exc)) from exc
    roles = {c: "output" for c in plan.outputs}
    out.windows = {
        s: Profile(p.columns, rows=p.rows, roles={c: roles.get(c, "input") for c in p.columns})
        for s, p in out.windows.items()
    }
    return out


def _known_rows(files: Sequence[Path]) -> int | None:
    if any(FORMATS[f.suffix.lower()] != "parquet" for f in files):
        return None
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def _plain(v: Any) -> Any:
    """A cell as a JSON-encodable value (the codec handles datetimes and non-finite floats)."""
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    if hasattr(v, "isoformat"):
        return v
    try:
        return float(v)  # Decimal
    except (TypeError, ValueError):
        return str(v)


def _prediction_rows(
    plan: _Plan, project: str, subject: str, run_id: str, total: int, progress: Progress | None
) -> Iterator[tuple[PredictionRows, LabelRows | None]]:
    """Predictions (and labels) of the timed rows that have an id, ``ROWS_PER_WRITE`` at a time."""
    assert plan.id_column is not None
    read = [plan.time, plan.id_column, *plan.outputs]
    if plan.label_column is not None:
        read.append(plan.label_column)
    pending: dict[str, list[Any]] = {"ids": [], "t": [], "values": [], "lids": [], "lt": [], "lvalues": []}
    done = 0

    def flush() -> tuple[PredictionRows, LabelRows | None]:
        nonlocal pending
        p = pending
        pending = {k: [] for k in p}
        preds = PredictionRows(project, subject, p["ids"], p["t"], p["values"], run_id)
        labs = None
        if plan.label_column is not None:
            labs = LabelRows(project, subject, p["lids"], p["lvalues"], p["lt"])
        return preds, labs

    for _, b in iter_batches(plan.path, columns=read):
        t = epoch_seconds(b.column(plan.time), f"time column {plan.time!r}")
        ok = np.isfinite(window_starts(t, plan.window))
        ids = b.column(plan.id_column).to_pylist()
        outs = {o: b.column(o).to_pylist() for o in plan.outputs}
        ys = b.column(plan.label_column).to_pylist() if plan.label_column is not None else None
        for i in np.flatnonzero(ok).tolist():
            rid = ids[i]
            if rid is None or rid == "":
                continue
            rid = str(rid)
            when = float(t[i])
            pending["ids"].append(rid)
            pending["t"].append(when)
            pending["values"].append({o: _plain(col[i]) for o, col in outs.items()})
            if ys is not None and ys[i] is not None and not (isinstance(ys[i], float) and math.isnan(ys[i])):
                pending["lids"].append(rid)
                pending["lt"].append(when)
                pending["lvalues"].append(_plain(ys[i]))
            if len(pending["ids"]) >= ROWS_PER_WRITE:
                yield flush()
        done += b.num_rows
        if progress is not None:
            progress("predictions", done, total)
    if pending["ids"]:
        yield flush()


# -- the store: runs of the partition, replacement ----------------------------------------------------------


def _runs_of_group(store: Store, project: str, group: str) -> list[sa.Row]:
    q = (
        sa.select(runs.c.id, runs.c.status, runs.c.config, runs.c.summary)
        .join(projects, projects.c.id == runs.c.project_id)
        .where(projects.c.name == project, runs.c.group_name == group, runs.c.job_type == JOB_TYPE)
    )
    with store.connect() as conn:
        return list(conn.execute(q))


def _run_row(store: Store, run_id: str) -> sa.Row | None:
    q = sa.select(runs.c.id, runs.c.status, runs.c.config, runs.c.summary).where(runs.c.id == run_id)
    with store.connect() as conn:
        return conn.execute(q).first()


def _chunks(values: Sequence[Any], n: int = MAX_IN) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), n):
        yield values[i : i + n]


def _replace_runs(store: Store, project: str, subject: str, old: list[sa.Row], by: str) -> list[WindowKey]:
    """Delete what the runs ``old`` wrote for ``subject`` (window profiles, predictions, the labels they
    wrote, the deployment's signal points at their windows' ends) and mark them ``replaced_by``, in one
    transaction; returns their windows."""
    keys: set[WindowKey] = set()
    with store.begin_write() as conn:
        pid = store.project_id(conn, project)
        sids = [
            r[0]
            for r in conn.execute(
                sa.select(series.c.id).where(
                    series.c.project_id == pid, series.c.subject == subject, series.c.run_id.is_(None)
                )
            )
        ]
        for r in old:
            mine = (profiles.c.run_id == r.id, profiles.c.kind == "window", profiles.c.project_id == pid)
            spans = conn.execute(
                sa.select(profiles.c.window_start, profiles.c.window_end).where(*mine).distinct()
            ).all()
            keys.update(WindowKey(project, subject, float(a), float(b)) for a, b in spans)
            of_run = (
                predictions.c.project_id == pid,
                predictions.c.subject == subject,
                predictions.c.run_id == r.id,
            )
            if (r.config or {}).get("label_column"):
                conn.execute(
                    sa.delete(labels).where(
                        labels.c.project_id == pid,
                        labels.c.subject == subject,
                        labels.c.prediction_id.in_(sa.select(predictions.c.prediction_id).where(*of_run)),
                    )
                )
            conn.execute(sa.delete(predictions).where(*of_run))
            conn.execute(sa.delete(profiles).where(*mine))
            summary = dict(r.summary or {})
            summary["replaced_by"] = by
            summary["attempt"] = int(summary.get("attempt", 0)) + 1
            conn.execute(runs.update().where(runs.c.id == r.id).values(summary=summary))
        ends = sorted({k.end for k in keys})
        touched: dict[int, tuple[float, float]] = {}
        for sid_part in _chunks(sids):
            for end_part in _chunks(ends):
                where = (points.c.series_id.in_(list(sid_part)), points.c.t.in_(list(end_part)))
                for sid, lo, hi in conn.execute(
                    sa.select(points.c.series_id, sa.func.min(points.c.t), sa.func.max(points.c.t))
                    .where(*where)
                    .group_by(points.c.series_id)
                ):
                    a, b = touched.get(sid, (lo, hi))
                    touched[sid] = (min(a, lo), max(b, hi))
                conn.execute(sa.delete(points).where(*where))
        refresh_rollups(conn, touched)
    return sorted(keys, key=lambda k: (k.start, k.end))


def _stored_windows(store: Store, project: str, subject: str, run_id: str) -> dict[float, tuple[float, int]]:
    q = (
        sa.select(profiles.c.window_start, profiles.c.window_end, profiles.c.rows)
        .join(projects, projects.c.id == profiles.c.project_id)
        .where(
            projects.c.name == project,
            profiles.c.subject == subject,
            profiles.c.run_id == run_id,
            profiles.c.kind == "window",
        )
    )
    with store.connect() as conn:
        return {float(a): (float(b), int(n)) for a, b, n in conn.execute(q)}


class _SharedRules:
    """The store's alert states, except that loading this command's rules leaves the rules other processes
    loaded enabled (``AlertStates.sync_rules`` disables every rule it is not given)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._alerts = store.alerts

    def __getattr__(self, name: str) -> Any:
        return getattr(self._alerts, name)

    def sync_rules(
        self, specs: Iterable[tuple[str | None, str, dict[str, Any]]], now: float | None = None
    ) -> dict[tuple[str | None, str], int]:
        specs = list(specs)
        ours = {(p, n) for p, n, _ in specs}
        q = (
            sa.select(projects.c.name, alert_rules.c.name, alert_rules.c.spec)
            .select_from(alert_rules.outerjoin(projects, projects.c.id == alert_rules.c.project_id))
            .where(alert_rules.c.enabled.is_(True))
        )
        with self._store.connect() as conn:
            others = [(p, n, dict(s or {})) for p, n, s in conn.execute(q) if (p, n) not in ours]
        return self._alerts.sync_rules(specs + others, now=now)


# -- alert evaluation -------------------------------------------------------------------------------------


def _routes(route: Any) -> Iterator[Any]:
    yield route
    for child in route.routes:
        yield from _routes(child)


def evaluation_times(
    ends: Sequence[float], rulesets: Sequence[Any], window: float, eval_interval: float, now: float
) -> list[float]:
    """Times at which the rules are evaluated: every ``eval_interval`` from the first window's end, and
    each window's end, up to the tail after the last window's end (see the module's docstring), none past
    ``now``."""
    if not ends:
        return []
    reach = 0.0
    for rs in rulesets:
        for rule in rs.rules:
            reach = max(reach, rule.expr.max_range(rule.lookback) + rule.keep_firing_for)
    group = max((r.group_interval for rs in rulesets for r in _routes(rs.route)), default=0.0)
    tail = min(window, reach + group + eval_interval)
    first, last = min(ends), max(ends)
    stop = min(last + tail, now)
    n = math.floor((stop - first) / eval_interval + 1e-9) + 1 if stop >= first else 0
    grid = first + eval_interval * np.arange(max(n, 0), dtype=np.float64)
    times = set(grid.tolist()) | {e for e in ends if e <= now}
    return sorted(times)


# -- the whole -------------------------------------------------------------------------------------------


def monitor_batch(
    store: Store,
    path: str | Path,
    *,
    model: str,
    version: str,
    time_column: str,
    window: float = 3600.0,
    project: str = "default",
    outputs: Sequence[str] | None = None,
    id_column: str | None = None,
    label_column: str | None = None,
    columns: Sequence[str] | None = None,
    partition: str | None = None,
    rule_files: Sequence[str | Path] = (),
    settings: MonitorSettings | None = None,
    eval_interval: float = 60.0,
    force: bool = False,
    notifiers: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
    progress: Progress | None = None,
) -> BatchMonitorResult:
    """Monitor the logged predictions at ``path`` as deployment ``model``@``version`` of ``project``: see
    the module's docstring. Bad input raises :class:`BatchInputError` before anything is written.

    ``force`` monitors an already monitored partition again (its stored windows through the monitors and
    the rules again; nothing is read or written twice). ``notifiers`` are extra named notifiers for the
    rules' routes (as ``AlertEngine``'s). ``progress(stage, done, total)`` is called as the work goes."""
    for name, value in (("model", model), ("version", version), ("project", project)):
        if not isinstance(value, str) or not value:
            raise BatchInputError(name, f"{name}: expected a non-empty string, got {value!r}")
    if isinstance(eval_interval, bool) or not (
        isinstance(eval_interval, int | float) and math.isfinite(eval_interval) and eval_interval > 0
    ):
        raise BatchInputError(
            "eval_interval", f"eval_interval: expected a positive number of seconds, got {eval_interval!r}"
        )
    subject = model_subject(model, version)
    rulesets = _check_rules(store, rule_files)
    plan = _plan(
        path,
        time_column=time_column,
        window=window,
        outputs=outputs,
        id_column=id_column,
        label_column=label_column,
        columns=columns,
        partition=partition,
        progress=progress,
    )
    run_id, group = run_identity(project, subject, plan)
    result = BatchMonitorResult(run_id=run_id, status="monitored", subject=subject, files=len(plan.files))
    row = _run_row(store, run_id)
    summary = dict(row.summary or {}) if row is not None else {}
    finished = row is not None and row.status == "finished" and "replaced_by" not in summary
    if finished:
        stored = _stored_windows(store, project, subject, run_id)
        result.window_rows = {s: n for s, (_, n) in sorted(stored.items())}
        result.windows, result.rows = len(stored), sum(result.window_rows.values())
        if not force:
            result.status = "already monitored"
            return result
        keys = [WindowKey(project, subject, s, e) for s, (e, _) in sorted(stored.items())]
    else:
        keys = _write(
            store, plan, project, model, version, subject, run_id, group, summary, result, clock, progress
        )
    settings = settings or MonitorSettings()
    runner = MonitorRunner(store, settings, clock=clock)
    done = 0

    def on_window(_: WindowKey) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress("monitoring", done, len(keys))

    monitored: MonitorPass = runner.process_windows(keys, on_window=on_window)
    result.points, result.errors = monitored.points, monitored.errors
    if rulesets:
        _evaluate(
            store,
            rulesets,
            rule_files,
            project,
            model,
            version,
            keys,
            plan.window,
            eval_interval,
            notifiers,
            clock,
            progress,
            result,
        )
    attempt = int(summary.get("attempt", 0))
    store.write(  # a batch id of its own: a run that failed, run again, must be able to finish
        Batch(
            run_updates=[
                RunUpdate(
                    run_id,
                    heartbeat_at=clock(),
                    status="finished" if result.ok else "failed",
                    ended_at=clock(),
                    exit_code=0 if result.ok else 1,
                    summary={
                        "attempt": attempt,
                        "windows": result.windows,
                        "rows": result.rows,
                        "untimed": result.untimed,
                        "predictions": result.predictions,
                        "labels": result.labels,
                        "signal_points": result.points,
                        "alerts_fired": result.alerts_fired,
                        "notifications": result.notifications,
                        "replaced": result.replaced,
                    },
                )
            ],
        )
    )
    return result


def _check_rules(store: Store, rule_files: Sequence[str | Path]) -> list[Any]:
    """The rule files, checked as the engine loads them; the first refused one raises ``BatchInputError``."""
    if not rule_files:
        return []
    from watchkeeper.alerting.rules import RuleFileError, load_rules
    from watchkeeper.alerting.source import StoreSource
    from watchkeeper.monitor.catalogue import SIGNAL_NAMES

    known = set(SIGNAL_NAMES) | StoreSource(store).names()
    out = []
    for f in rule_files:
        try:
            out.append(load_rules(f, known_signals=known))
        except RuleFileError as exc:
            raise BatchInputError("rules", str(exc)) from None
        except OSError as exc:
            raise BatchInputError("rules", f"rules: cannot read {f}: {exc}") from None
    return out


def _write(
    store: Store,
    plan: _Plan,
    project: str,
    model: str,
    version: str,
    subject: str,
    run_id: str,
    group: str,
    summary: dict[str, Any],
    result: BatchMonitorResult,
    clock: Callable[[], float],
    progress: Progress | None,
) -> list[WindowKey]:
    """Read, replace the partition's earlier runs, write; returns the windows to monitor."""
    prof = _profile(plan, progress)
    result.rows = prof.rows - prof.untimed
    result.untimed = prof.untimed
    if not prof.windows:
        where = ", ".join(d["path"] for d in plan.digests)
        if prof.rows == 0:
            raise BatchInputError("path", f"path: the partition holds no rows ({where})")
        raise BatchInputError(
            "time",
            f"time: none of the {prof.rows} rows has a readable time in column {plan.time!r} ({where})",
        )
    result.window_rows = {s: p.rows for s, p in prof.windows.items()}
    result.windows = len(prof.windows)
    attempt = int(summary.get("attempt", 0))
    stale = [
        r
        for r in _runs_of_group(store, project, group)
        if r.id != run_id and "replaced_by" not in (r.summary or {})
    ]
    old_keys = _replace_runs(store, project, subject, stale, run_id) if stale else []
    result.replaced = [r.id for r in stale]
    now = clock()
    config = {
        "path": str(plan.path.resolve()),
        "partition": plan.partition,
        "files": plan.digests,
        "window": plan.window,
        "time_column": plan.time,
        "outputs": plan.outputs,
        "inputs": plan.inputs,
        "id_column": plan.id_column,
        "label_column": plan.label_column,
    }
    start = Batch(
        id=_batch_id(run_id, attempt, "start"),
        runs=[
            RunStart(
                id=run_id,
                project=project,
                name=f"monitor-batch {Path(plan.partition).name or plan.partition}",
                created_at=now,
                job_type=JOB_TYPE,
                group=group,
                config=config,
                model=model,
                version=version,
                host=socket.gethostname(),
                pid=os.getpid(),
            )
        ],
        run_updates=[RunUpdate(run_id, heartbeat_at=now, status="running", summary={"attempt": attempt})],
    )
    store.write(start)
    if plan.id_column is not None:
        for i, (preds, labs) in enumerate(
            _prediction_rows(plan, project, subject, run_id, prof.rows, progress)
        ):
            applied = store.write(
                Batch(
                    id=_batch_id(run_id, attempt, "predictions", i),
                    predictions=[preds],
                    labels=[labs] if labs is not None and len(labs) else [],
                )
            ).applied
            if applied:  # not when a run resumed had written them already
                result.predictions += len(preds)
                result.labels += len(labs) if labs is not None else 0
    logs = [
        ProfileLog(
            project=project,
            subject=subject,
            kind="window",
            window_start=s,
            window_end=s + plan.window,
            rows=p.rows,
            data=p.to_bytes(),
            format_version=p.format_version,
            run_id=run_id,
        )
        for s, p in prof.windows.items()
    ]
    for i in range(0, len(logs), WINDOWS_PER_WRITE):
        store.write(
            Batch(id=_batch_id(run_id, attempt, "profiles", i), profiles=logs[i : i + WINDOWS_PER_WRITE])
        )
    keys = {WindowKey(project, subject, s, s + plan.window) for s in prof.windows}
    return sorted(keys | set(old_keys), key=lambda k: (k.start, k.end))


def _evaluate(
    store: Store,
    rulesets: list[Any],
    rule_files: Sequence[str | Path],
    project: str,
    model: str,
    version: str,
    keys: list[WindowKey],
    window: float,
    eval_interval: float,
    notifiers: Mapping[str, Any] | None,
    clock: Callable[[], float],
    progress: Progress | None,
    result: BatchMonitorResult,
) -> None:
    from watchkeeper.alerting.engine import AlertEngine

    times = evaluation_times([k.end for k in keys], rulesets, window, eval_interval, clock())
    engine = AlertEngine(store, notifiers=notifiers, clock=clock, states=_SharedRules(store))
    try:
        refused = engine.load(*rule_files)
        if refused:  # checked before, so only a file changed since
            result.rule_errors.update({str(k): str(v) for k, v in refused.items()})
        only = {"project": project, "model": model, "version": version}
        for i, t in enumerate(times):
            ev = engine.evaluate(t, only=only)
            result.evaluations += 1
            result.notifications += len(ev.notifications)
            result.transitions.extend(ev.transitions)
            result.alerts_fired += sum(1 for tr in ev.transitions if tr.new == "firing")
            result.rule_errors.update(ev.errors)
            if progress is not None:
                progress("alerting", i + 1, len(times))
        engine.flush(30.0)
    finally:
        engine.close()


__all__ = [
    "JOB_TYPE",
    "OUTPUT_NAMES",
    "OUTPUT_PREFIXES",
    "BatchInputError",
    "BatchMonitorResult",
    "default_outputs",
    "evaluation_times",
    "monitor_batch",
    "run_identity",
]
