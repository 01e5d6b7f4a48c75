"""The monitor runner: finds closed windows of every deployment in the store and turns them into signals.

A deployment's window profiles (kind ``window``, subject ``model:<model>@<version>``) arrive from each of
its replicas. The runner follows them by profile id, so a pass reads only the rows added since the last one
(their metadata; a window's profile bytes are read when it is processed):

1. every new profile marks its window ``(project, subject, window_start, window_end)`` as pending;
2. a pending window is processed once ``now >= window_end + settle`` (the replicas' profiles of it have had
   ``settle`` seconds to arrive): the profiles of every replica for that window are merged into one,
   a :class:`~watchkeeper.monitor.base.WindowContext` is built with the model version's reference and
   training run, each monitor is called (one failing monitor is logged and counted; the others' points
   are kept), and the points are written in one batch with ``replace_points`` at ``t = window_end``;
3. a profile arriving later for a window already processed makes it pending again: it is processed anew
   from all its profiles and its points replace the earlier ones (never a second point at one time);
4. late labels: every ``RELABEL_EVERY`` seconds, ``watchkeeper.monitor.performance.relabelled`` gives the
   times of predictions (within ``settings.label_horizon``) whose label was written since the last look
   (label times are compared with the runner's clock); the stored windows holding them are scored again
   by the label monitors (``performance`` and ``ground_truth``) alone, without reading their profiles.

The cursor (highest profile id seen), the pending windows and each deployment's label cursor are kept in
the store's ``monitor_state`` table, so a restarted runner neither skips nor redoes windows.

**Ids that commit out of order.** On PostgreSQL an id is taken when a row is inserted, not when its
transaction commits, so a profile with a lower id can become visible after one with a higher id. Ids
missing below the cursor are therefore remembered as gaps and looked for again on every pass for
``GAP_WAIT`` seconds (an id lost to a rolled-back transaction never appears and is then given up). On
SQLite writes are serialised and ids appear in order.

The runner writes its own health under the subject ``monitor`` of each project it monitors:
``monitor_windows`` (windows processed by the pass) and ``monitor_lag_seconds`` (now minus the end of the
newest window processed so far).

One runner per store, or per shard: two runners over the same store would each process every window (their
results agree, but the work is doubled and concurrent replacements of one window can interleave). When one
runner cannot keep up (it is one thread; a window merged from 100 replicas costs about a second), ``shard=(k,
n)`` makes it process only the deployments with ``crc32(project, subject) mod n == k`` and keep its cursor
under a state key of its own, so ``n`` runners (each the holder of its shard's lease, see
:mod:`watchkeeper.alerting.service`) share the store's deployments between them, each deployment in one.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import sqlalchemy as sa

from watchkeeper.errors import StoreError
from watchkeeper.monitor.base import Derived, Monitor, MonitorSettings, WindowContext
from watchkeeper.profile import Profile
from watchkeeper.store.batch import Batch, Points
from watchkeeper.store.engine import insert_ignore
from watchkeeper.store.profiles import ReferenceInfo, parse_model_subject
from watchkeeper.store.runs import RunInfo
from watchkeeper.store.schema import model_versions, monitor_state, profiles, projects
from watchkeeper.store.store import Store

log = logging.getLogger(__name__)

DEFAULT_MONITORS = ("ops", "data", "predictions", "cost", "staleness", "performance", "ground_truth")
LABEL_MONITORS = ("performance", "ground_truth")
STATE_KEY = "windows:cursor"
HEALTH_SUBJECT = "monitor"
GAP_WAIT = 600.0
"""Seconds an id missing below the cursor is looked for before it is taken as lost (a rolled-back insert)."""
MAX_GAPS = 1000
SCAN_ROWS = 50_000
"""Profile rows (metadata only) read per query while catching up."""
CHUNK_WINDOWS = 128
"""Windows of one deployment whose profiles are read in one query."""
SAVE_EVERY = 30.0
"""Seconds between saves of the cursor while a long pass catches up."""
RELABEL_EVERY = 60.0
"""Seconds between two looks for late labels (each reads the predictions of the label horizon)."""


class WindowKey(NamedTuple):
    project: str
    subject: str
    start: float
    end: float


@dataclass(slots=True)
class MonitorPass:
    """What one pass did: ``windows`` processed (each once, from all its profiles), ``points`` written,
    ``errors`` (monitors that raised, windows that could not be read or written), ``lag`` (now minus the
    end of the newest window processed so far; NaN before the first), ``rescored`` windows scored again
    for late labels."""

    windows: int = 0
    points: int = 0
    errors: int = 0
    lag: float = math.nan
    rescored: int = 0


@dataclass(slots=True)
class _Baseline:
    """What a model version is compared with, cached across passes and refreshed once per pass."""

    info: ReferenceInfo | None
    profile: Profile | None
    run: RunInfo | None
    checked: int  # the pass that last refreshed it


def default_monitors() -> dict[str, Monitor]:
    """The monitors of :data:`DEFAULT_MONITORS` that can be imported, by name; one that cannot is logged
    and left out, so a missing optional part does not stop the others."""
    out: dict[str, Monitor] = {}
    for name in DEFAULT_MONITORS:
        try:
            module = importlib.import_module(f"watchkeeper.monitor.{name}")
        except Exception as exc:  # missing, or broken: the other monitors still run
            log.warning(
                "watchkeeper monitor: the %s monitor is not available (%s); running without it", name, exc
            )
            continue
        fn = getattr(module, "derive", None)
        if fn is None:
            log.warning(
                "watchkeeper monitor: watchkeeper.monitor.%s has no derive(); running without it", name
            )
            continue
        out[name] = fn
    return out


def points_of(project: str, subject: str, t: float, derived: Iterable[Derived]) -> list[Points]:
    """One ``Points`` per label set (written with ``Batch.replace_points``); a name given twice with the
    same labels keeps the last."""
    groups: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
    for d in derived:
        key = tuple(sorted((str(k), str(v)) for k, v in d.labels.items()))
        groups.setdefault(key, {})[d.name] = float(d.value)
    return [
        Points(
            project=project,
            subject=subject,
            name=list(values),
            step=[None] * len(values),
            t=[t] * len(values),
            value=list(values.values()),
            labels=dict(key),
        )
        for key, values in groups.items()
    ]


class MonitorRunner:
    """Runs the monitors over every closed window of every deployment in ``store``.

    ``settle`` is how long after a window's end the runner waits for the replicas' profiles of it;
    ``clock`` gives the time (seconds since the epoch); ``monitors`` maps names to monitors (or lists
    them), default :func:`default_monitors`. The monitors named in :data:`LABEL_MONITORS` also score
    windows again when late labels arrive.
    """

    def __init__(
        self,
        store: Store,
        settings: MonitorSettings = MonitorSettings(),  # noqa: B008 - frozen, so one shared default is safe
        *,
        settle: float = 30.0,
        clock: Callable[[], float] = time.time,
        monitors: Mapping[str, Monitor] | Sequence[Monitor] | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        if not (isinstance(settle, int | float) and settle >= 0 and math.isfinite(settle)):
            raise ValueError(f"settle: expected a non-negative number of seconds, got {settle!r}")
        self.shard = check_shard(shard)
        k, n = self.shard
        self._state_key = STATE_KEY if n == 1 else f"{STATE_KEY}:{k}/{n}"
        self.store = store
        self.settings = settings
        self.settle = float(settle)
        self.clock = clock
        if monitors is None:
            self.monitors = default_monitors()
        elif isinstance(monitors, Mapping):
            self.monitors = dict(monitors)
        else:
            self.monitors = {_monitor_name(m): m for m in monitors}
        self.failures = 0  # passes of the background thread that raised
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded = False
        self._cursor = 0
        self._gaps: dict[int, float] = {}  # id -> when it was first missed
        self._pending: dict[WindowKey, None] = {}
        self._label_since: dict[tuple[str, str], float] = {}
        self._newest: dict[str, float] = {}  # project -> end of the newest processed window
        self._saved: str | None = None
        self._baselines: dict[tuple[str, str, str], _Baseline] = {}
        self._pass_no = 0
        self._pass_counts: dict[str, int] = {}  # project -> windows processed by the current pass
        self._last_relabel = -math.inf
        self._warned_relabel = False

    # -- the background thread -----------------------------------------------------------------------------

    def start(self, interval: float = 10.0) -> None:
        """Run a pass every ``interval`` seconds in a daemon thread until :meth:`stop`."""
        if not (isinstance(interval, int | float) and interval > 0 and math.isfinite(interval)):
            raise ValueError(f"interval: expected a positive number of seconds, got {interval!r}")
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(float(interval),), name="watchkeeper-monitor", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Stop the thread after the window it is processing (the rest stay pending, and are saved)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._thread = None

    def _loop(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # the thread never dies: the next pass may well succeed
                self.failures += 1
                log.exception("watchkeeper monitor: a monitor pass failed; retrying in %.0f s", interval)
            self._stop.wait(interval)

    def reload_state(self) -> None:
        """Read the cursor, pending windows and label cursors from the store again at the next pass: a
        replica taking the monitors over from another goes on from where that one saved them."""
        with self._lock:
            self._loaded = False

    # -- one pass ------------------------------------------------------------------------------------------

    def run_once(self) -> MonitorPass:
        """One pass: read new profiles, process the windows that have settled, score again the windows
        that got late labels, write the runner's health, save the cursor."""
        with self._lock:
            result = MonitorPass()
            now = float(self.clock())
            self._pass_no += 1
            self._pass_counts = {}
            if not self._loaded:
                self._load_state()
            self._scan(now)
            processed = self._process_ready(now, result)
            self._rescore(now, processed, result)
            self._write_health(now, result)
            self._save_state(now, result)
            newest = max(self._newest.values(), default=math.nan)
            result.lag = now - newest if not math.isnan(newest) else math.nan
            return result

    def _scan(self, now: float) -> None:
        """Mark the windows of profiles added since the cursor (and of late-committed gaps) pending."""
        for gid, first in list(self._gaps.items()):
            if now - first > GAP_WAIT:
                del self._gaps[gid]
        # the first scan reads every committed row: ids missing then are deleted or lost, not late
        first_scan = self._cursor == 0
        while True:
            gaps = sorted(self._gaps)
            where = profiles.c.id > self._cursor
            if gaps:
                where = sa.or_(where, profiles.c.id.in_(gaps))
            q = (
                sa.select(
                    profiles.c.id,
                    projects.c.name,
                    profiles.c.subject,
                    profiles.c.kind,
                    profiles.c.window_start,
                    profiles.c.window_end,
                )
                .join(projects, projects.c.id == profiles.c.project_id)
                .where(where)
                .order_by(profiles.c.id)
                .limit(SCAN_ROWS)
            )
            with self.store.connect() as conn:
                rows = conn.execute(q).all()
            for pid, project, subject, kind, start, end in rows:
                if pid in self._gaps:
                    del self._gaps[pid]
                elif pid > self._cursor:
                    if not first_scan:
                        for missing in range(self._cursor + 1, min(pid, self._cursor + 1 + MAX_GAPS)):
                            self._gaps[missing] = now
                    self._cursor = pid
                if (
                    kind == "window"
                    and parse_model_subject(subject) is not None
                    and self.owns(project, subject)
                ):
                    key = WindowKey(project, subject, float(start), float(end))
                    self._pending[key] = None
                    self._label_since.setdefault((project, subject), now)
            if len(self._gaps) > MAX_GAPS:
                for gid in sorted(self._gaps, key=self._gaps.__getitem__)[: len(self._gaps) - MAX_GAPS]:
                    del self._gaps[gid]
            if len(rows) < SCAN_ROWS:
                return

    def _process_ready(self, now: float, result: MonitorPass) -> set[WindowKey]:
        ready = sorted(
            (k for k in self._pending if k.end + self.settle <= now),
            key=lambda k: (k.project, k.subject, k.start),
        )
        processed: set[WindowKey] = set()
        last_save = time.monotonic()
        for chunk in _chunks(ready):
            if self._stop.is_set():
                break
            head = chunk[0]
            try:
                for key, blobs in self._windows_of(chunk):
                    if self._stop.is_set():
                        break
                    if self._process_window(key, blobs, now, result):
                        processed.add(key)
                    if time.monotonic() - last_save > SAVE_EVERY:
                        self._save_state(now, result)
                        last_save = time.monotonic()
            except Exception:
                log.exception("watchkeeper monitor: reading the profiles of %s failed", head.subject)
                result.errors += 1
                continue  # the windows not processed stay pending: read again on the next pass
        return processed

    def process_windows(
        self,
        keys: Iterable[WindowKey],
        *,
        now: float | None = None,
        on_window: Callable[[WindowKey], None] | None = None,
    ) -> MonitorPass:
        """Process the given windows at once, each from every profile stored for it (all its replicas'), as
        a pass would, and write their points (replacing what an earlier pass wrote); the runner's cursor,
        pending windows, label cursors and health signals are left as they are. This is how windows written
        in bulk (``watchkeeper monitor-batch``) are monitored without waiting for a pass.

        ``now`` is the time the monitors are told (``WindowContext.now``); None tells each window its own
        end, the time a live runner would have processed it, so that signals that depend on the time
        (staleness) read as they would have then. A window with no stored profile is skipped.
        ``on_window(key)`` is called after each window (a progress bar's hook). The model versions'
        references are read again first."""
        with self._lock:
            result = MonitorPass()
            self._pass_no += 1  # a reference logged since the last pass is picked up
            ready = sorted(set(keys), key=lambda k: (k.project, k.subject, k.start, k.end))
            newest = -math.inf
            for chunk in _chunks(ready):
                head = chunk[0]
                try:
                    for key, blobs in self._windows_of(chunk):
                        merged = self._merge(key, blobs, result)
                        if merged is not None:
                            ctx = self._context(key, merged, key.end if now is None else float(now))
                            _, written = self._write(key, self._derive(ctx, self.monitors, result), result)
                            if written:
                                result.windows += 1
                                newest = max(newest, key.end)
                        if on_window is not None:
                            on_window(key)
                except Exception:
                    log.exception("watchkeeper monitor: reading the profiles of %s failed", head.subject)
                    result.errors += 1
                    continue
            when = float(self.clock()) if now is None else float(now)
            result.lag = when - newest if newest > -math.inf else math.nan
            return result

    def _windows_of(self, chunk: list[WindowKey]) -> Iterator[tuple[WindowKey, list[bytes]]]:
        """``(key, its profiles' bytes)`` for each window of ``chunk`` (one deployment's), oldest first, the
        rows streamed in window order: one window's profiles are in memory at a time (a chunk of 128
        windows of 100 replicas' 320-KiB profiles read at once would be 4 GB). A window without a stored
        profile comes last, with none."""
        head = chunk[0]
        wanted = {(k.start, k.end): k for k in chunk}
        q = (
            sa.select(profiles.c.window_start, profiles.c.window_end, profiles.c.data)
            .join(projects, projects.c.id == profiles.c.project_id)
            .where(
                projects.c.name == head.project,
                profiles.c.subject == head.subject,
                profiles.c.kind == "window",
                profiles.c.window_start.in_(sorted({k.start for k in chunk})),
            )
            .order_by(profiles.c.window_start, profiles.c.window_end, profiles.c.id)
        )
        seen: set[tuple[float, float]] = set()
        current: tuple[float, float] | None = None
        blobs: list[bytes] = []
        with self.store.connect() as conn:
            for start, end, data in conn.execution_options(stream_results=True, yield_per=8).execute(q):
                span = (float(start), float(end))
                if span != current:
                    if current in wanted:
                        seen.add(current)
                        yield wanted[current], blobs
                    current, blobs = span, []
                blobs.append(bytes(data))
            if current in wanted:
                seen.add(current)
                yield wanted[current], blobs
        for span, key in wanted.items():
            if span not in seen:
                yield key, []

    def _process_window(self, key: WindowKey, blobs: list[bytes], now: float, result: MonitorPass) -> bool:
        """Merge, derive, write. True when the window is done (processed, or given up as unreadable)."""
        merged = self._merge(key, blobs, result)
        if merged is None:
            self._pending.pop(key, None)
            return True
        ctx = self._context(key, merged, now)
        derived = self._derive(ctx, self.monitors, result)
        done, written = self._write(key, derived, result)
        if not done:
            return False
        self._pending.pop(key, None)
        if written:
            result.windows += 1
            self._pass_counts[key.project] = self._pass_counts.get(key.project, 0) + 1
            self._newest[key.project] = max(self._newest.get(key.project, -math.inf), key.end)
        return True

    def _merge(self, key: WindowKey, blobs: list[bytes], result: MonitorPass) -> Profile | None:
        """The merge of a window's readable profiles (None without any); unreadable ones are logged."""
        merged: Profile | None = None
        for blob in blobs:
            try:
                prof = Profile.from_bytes(blob)
            except ValueError as exc:
                log.error(
                    "watchkeeper monitor: %s window [%s, %s): a profile is unreadable, left out: %s",
                    key.subject,
                    key.start,
                    key.end,
                    exc,
                )
                result.errors += 1
                continue
            merged = prof if merged is None else merged.merge(prof)
        return merged

    def _derive(
        self, ctx: WindowContext, monitors: Mapping[str, Monitor], result: MonitorPass
    ) -> list[Derived]:
        out: list[Derived] = []
        for name, monitor in monitors.items():
            try:
                out.extend(list(monitor(ctx)))  # all of a monitor's values, or none of them
            except Exception:
                result.errors += 1
                log.exception(
                    "watchkeeper monitor: the %s monitor failed on %s window [%s, %s); the other monitors' "
                    "signals are kept",
                    name,
                    ctx.subject,
                    ctx.start,
                    ctx.end,
                )
        return out

    def _write(self, key: WindowKey, derived: list[Derived], result: MonitorPass) -> tuple[bool, bool]:
        """Write a window's points in one batch; ``(done, written)``: not done after a transient failure
        (the window stays pending and is written on a later pass)."""
        pts = points_of(key.project, key.subject, key.end, derived)
        if not pts:
            return True, True
        try:
            self.store.write(Batch(points=pts, replace_points=True))
        except StoreError as exc:
            result.errors += 1
            log.error(
                "watchkeeper monitor: writing the signals of %s window [%s, %s) failed: %s",
                key.subject,
                key.start,
                key.end,
                exc,
            )
            return not exc.transient, False
        result.points += sum(len(p) for p in pts)
        return True, True

    # -- what a window is compared with ------------------------------------------------------------------

    def _context(self, key: WindowKey, merged: Profile | None, now: float) -> WindowContext:
        parsed = parse_model_subject(key.subject)
        assert parsed is not None
        model, version = parsed
        base = self._baseline(key.project, model, version)
        return WindowContext(
            store=self.store,
            project=key.project,
            model=model,
            version=version,
            subject=key.subject,
            start=key.start,
            end=key.end,
            profile=merged,
            reference=base.profile,
            reference_info=base.info,
            training_run=base.run,
            settings=self.settings,
            now=now,
        )

    def _baseline(self, project: str, model: str, version: str) -> _Baseline:
        """The model version's reference and training run; looked up once per pass (a reference logged
        again is picked up), the reference's bytes read only when it changed."""
        cache_key = (project, model, version)
        cached = self._baselines.get(cache_key)
        if cached is not None and cached.checked == self._pass_no:
            return cached
        try:
            info = next(
                (
                    r
                    for r in self.store.profiles.references(project, model)
                    if r.version == version and r.name == self.settings.reference
                ),
                None,
            )
            profile = None
            if info is not None:
                if (
                    cached is not None
                    and cached.info is not None
                    and cached.info.profile_id == info.profile_id
                ):
                    profile = cached.profile
                else:
                    stored = self.store.profiles.reference(project, model, version, self.settings.reference)
                    profile = Profile.from_bytes(stored.data)
            run = self._training_run(project, model, version, info)
        except Exception:
            log.exception("watchkeeper monitor: reading the reference of %s@%s failed", model, version)
            if cached is not None:
                return cached
            info, profile, run = None, None, None
        base = _Baseline(info, profile, run, self._pass_no)
        self._baselines[cache_key] = base
        return base

    def _training_run(
        self, project: str, model: str, version: str, info: ReferenceInfo | None
    ) -> RunInfo | None:
        run_id = info.run_id if info is not None else None
        if run_id is None:
            q = (
                sa.select(model_versions.c.training_run_id)
                .join(projects, projects.c.id == model_versions.c.project_id)
                .where(
                    projects.c.name == project,
                    model_versions.c.model == model,
                    model_versions.c.version == version,
                )
            )
            with self.store.connect() as conn:
                run_id = conn.execute(q).scalar()
        if run_id is None:
            return None
        try:
            return self.store.runs.get(run_id)
        except KeyError:
            return None

    # -- late labels -----------------------------------------------------------------------------------------

    def _relabelled_fn(self) -> Callable[..., list[float]] | None:
        try:
            module = importlib.import_module("watchkeeper.monitor.performance")
            return module.relabelled
        except Exception as exc:  # a missing or broken module must not stop the other monitors
            if not self._warned_relabel:
                log.warning("watchkeeper monitor: late labels are not re-scored: %s", exc)
                self._warned_relabel = True
            return None

    def _rescore(self, now: float, processed: set[WindowKey], result: MonitorPass) -> None:
        label_monitors = {n: m for n, m in self.monitors.items() if n in LABEL_MONITORS}
        if not label_monitors or not self._label_since or now - self._last_relabel < RELABEL_EVERY:
            return
        relabelled = self._relabelled_fn()
        if relabelled is None:
            return
        self._last_relabel = now
        horizon_start = now - self.settings.label_horizon
        for (project, subject), since in list(self._label_since.items()):
            if self._stop.is_set():
                return
            try:
                times = relabelled(self.store, project, subject, since, horizon_start)
                windows = self._windows_holding(project, subject, times) if times else []
            except Exception:
                result.errors += 1
                log.exception("watchkeeper monitor: looking for late labels of %s failed", subject)
                continue
            for key in windows:
                if key in processed or key in self._pending:
                    continue  # processed in full this pass, or about to be
                ctx = self._context(key, None, now)
                derived = self._derive(ctx, label_monitors, result)
                if self._write(key, derived, result)[1]:
                    result.rescored += 1
            self._label_since[(project, subject)] = now

    def _windows_holding(self, project: str, subject: str, times: Sequence[float]) -> list[WindowKey]:
        """The stored windows of ``subject`` that hold at least one of ``times``."""
        ts = np.sort(np.asarray(times, dtype=np.float64))
        q = (
            sa.select(profiles.c.window_start, profiles.c.window_end)
            .join(projects, projects.c.id == profiles.c.project_id)
            .where(
                projects.c.name == project,
                profiles.c.subject == subject,
                profiles.c.kind == "window",
                profiles.c.window_start <= float(ts[-1]),
                profiles.c.window_end > float(ts[0]),
            )
            .distinct()
        )
        with self.store.connect() as conn:
            spans = conn.execute(q).all()
        out = []
        for start, end in spans:
            # is any time in [start, end)?
            if np.searchsorted(ts, end, side="left") > np.searchsorted(ts, start, side="left"):
                out.append(WindowKey(project, subject, float(start), float(end)))
        return sorted(out, key=lambda k: k.start)

    # -- the runner's own health ---------------------------------------------------------------------------

    def owns(self, project: str, subject: str) -> bool:
        """Whether this runner's shard holds the deployment ``subject`` of ``project``."""
        return shard_of(project, subject, self.shard[1]) == self.shard[0]

    def _write_health(self, now: float, result: MonitorPass) -> None:
        projects_seen = sorted({p for p, _ in self._label_since} | set(self._newest))
        if not projects_seen:
            return
        counts = self._pass_counts
        batch = Batch()
        for project in projects_seen:
            names, values = ["monitor_windows"], [float(counts.get(project, 0))]
            newest = self._newest.get(project)
            if newest is not None:
                names.append("monitor_lag_seconds")
                values.append(now - newest)
            k, n = self.shard
            batch.points.append(
                Points(
                    project,
                    HEALTH_SUBJECT,
                    names,
                    [None] * len(names),
                    [now] * len(names),
                    values,
                    labels={"shard": f"{k}/{n}"} if n > 1 else {},
                )
            )
        try:
            self.store.write(batch)
        except StoreError as exc:
            result.errors += 1
            log.error("watchkeeper monitor: writing the monitor's health signals failed: %s", exc)

    # -- state kept in the store ---------------------------------------------------------------------------

    def _load_state(self) -> None:
        with self.store.connect() as conn:
            value = conn.execute(
                sa.select(monitor_state.c.value).where(monitor_state.c.key == self._state_key)
            ).scalar()
        if value is not None:
            self._cursor = int(value.get("cursor", 0))
            self._gaps = {int(i): float(t) for i, t in value.get("gaps", [])}
            self._pending = {
                WindowKey(p, s, float(a), float(b)): None for p, s, a, b in value.get("pending", [])
            }
            self._label_since = {(p, s): float(t) for p, s, t in value.get("labels", [])}
            self._newest = {p: float(t) for p, t in value.get("newest", {}).items()}
            self._saved = json.dumps(value, sort_keys=True)
        self._loaded = True

    def _state(self) -> dict[str, Any]:
        return {
            "cursor": self._cursor,
            "gaps": sorted([i, t] for i, t in self._gaps.items()),
            "pending": sorted([list(k) for k in self._pending]),
            "labels": sorted([p, s, t] for (p, s), t in self._label_since.items()),
            "newest": dict(sorted(self._newest.items())),
        }

    def _save_state(self, now: float, result: MonitorPass) -> None:
        value = self._state()
        text = json.dumps(value, sort_keys=True)
        if text == self._saved:
            return
        try:
            self._write_state(value, now)
        except Exception as exc:  # kept in memory: saved by the next pass
            result.errors += 1
            log.error("watchkeeper monitor: saving the monitor's cursor failed: %s", exc)
            return
        self._saved = text

    def _write_state(self, value: dict[str, Any], now: float) -> None:
        where = monitor_state.c.key == self._state_key
        with self.store.begin_write() as conn:
            updated = conn.execute(
                monitor_state.update().where(where).values(value=value, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(
                    insert_ignore(conn.dialect, monitor_state),
                    [{"key": self._state_key, "value": value, "updated_at": now}],
                )


def _chunks(ready: Sequence[WindowKey]) -> Iterator[list[WindowKey]]:
    """Runs of at most ``CHUNK_WINDOWS`` consecutive windows of one deployment, from windows sorted by
    deployment."""
    chunk: list[WindowKey] = []
    for key in ready:
        if chunk and (
            len(chunk) == CHUNK_WINDOWS or (key.project, key.subject) != (chunk[0].project, chunk[0].subject)
        ):
            yield chunk
            chunk = []
        chunk.append(key)
    if chunk:
        yield chunk


def check_shard(shard: Any) -> tuple[int, int]:
    """``(k, n)`` with ``0 <= k < n``; ValueError naming ``shard`` otherwise."""
    try:
        k, n = shard
    except (TypeError, ValueError):
        raise ValueError(f"shard: expected (k, n) with 0 <= k < n, got {shard!r}") from None
    if not (isinstance(k, int) and isinstance(n, int) and not isinstance(k, bool) and 0 <= k < n):
        raise ValueError(f"shard: expected (k, n) with 0 <= k < n, got {shard!r}")
    return k, n


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/8"`` -> ``(2, 8)``; ValueError naming ``shard`` otherwise."""
    k, slash, n = str(text).strip().partition("/")
    try:
        return check_shard((int(k), int(n)) if slash else None)
    except ValueError:
        raise ValueError(f"shard: expected K/N with 0 <= K < N, such as 0/4, got {text!r}") from None


def shard_of(project: str, subject: str, n: int) -> int:
    """The shard (of ``n``) that monitors deployment ``subject`` of ``project``: CRC-32 of both, mod ``n``
    (stable across processes and versions, unlike Python's ``hash``)."""
    return zlib.crc32(f"{project}\0{subject}".encode()) % n if n > 1 else 0


def _monitor_name(monitor: Monitor) -> str:
    name = getattr(monitor, "__name__", type(monitor).__name__)
    if name == "derive":  # a monitor module's derive(): named after its module
        return getattr(monitor, "__module__", "monitor").rsplit(".", 1)[-1]
    return name
