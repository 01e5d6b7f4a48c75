"""``Run``: one process's stream of records, W&B-style.

The hot path is :meth:`Run.log`: it checks the values (so a bad value fails in the caller's line), then
appends
one tuple to a deque. Turning rows into points, keeping the summary and writing happen in the background
writer (:mod:`watchkeeper.sdk.writer`).

Step semantics follow W&B: each ``log()`` commits a step and advances ``run.step``; ``commit=False``
accumulates into the current step; ``step=N`` moves to step N (committing what was pending at the earlier
step) and, as in W&B, leaves step N open until a later step arrives or ``commit=True`` is passed. A step
lower than the current one is refused with a ValueError.
"""

from __future__ import annotations

import datetime
import enum
import functools
import logging
import math
import os
import random
import re
import socket
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchkeeper.errors import UsageError
from watchkeeper.profile import Profile, profile
from watchkeeper.sdk import values as _values
from watchkeeper.sdk.image import Image
from watchkeeper.sdk.system import SystemMetrics
from watchkeeper.sdk.table import Table
from watchkeeper.sdk.transport import Transport
from watchkeeper.sdk.watcher import Call, Stage, Watcher
from watchkeeper.sdk.writer import Writer
from watchkeeper.store import (
    FAILED,
    FINISHED,
    ArtifactFile,
    ArtifactLog,
    ArtifactVersion,
    Batch,
    Points,
    ProfileLog,
    RunStart,
    RunUpdate,
    SampleRows,
    codec,
)
from watchkeeper.store.alerts import RUN_ALERTS_KEY
from watchkeeper.store.blobs import digest_file
from watchkeeper.store.profiles import model_subject

if TYPE_CHECKING:
    from watchkeeper.sdk.anomalies import AnomalyWatch
from watchkeeper.store.runs import HEARTBEAT_EVERY

log = logging.getLogger("watchkeeper")

_ACTIVE, _FINISHED, _FORKED = 0, 1, 2
_ADJECTIVES = (
    "amber brisk calm daring eager fair gentle hardy keen lively merry noble quiet rapid sturdy vivid"
)
_NOUNS = "harbor meadow river summit forest comet beacon canyon delta ember falcon glacier island lantern"
_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


def _run_id() -> str:
    return "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=8))


def _run_name(run_id: str) -> str:
    rnd = random.Random(run_id)
    return f"{rnd.choice(_ADJECTIVES.split())}-{rnd.choice(_NOUNS.split())}-{run_id[:4]}"


class Config(MutableMapping[str, Any]):
    """A run's configuration: a dict that also reads as attributes (``run.config.lr``)."""

    def __init__(self, run: Run, initial: Mapping[str, Any] | None) -> None:
        object.__setattr__(self, "_run", run)
        object.__setattr__(self, "_data", {})
        if initial:
            self.update(initial)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        codec.encode(value, where=f"config.{key}")  # refuse what cannot be stored, here and now
        with self._run._lock:
            self._data[_values.check_key(key)] = value
            self._run._config_dirty = True

    def __delitem__(self, key: str) -> None:
        with self._run._lock:
            del self._data[key]
            self._run._config_dirty = True

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"config has no key {key!r}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value

    def as_dict(self) -> dict[str, Any]:
        with self._run._lock:
            return dict(self._data)

    def __repr__(self) -> str:
        return f"Config({self._data!r})"


class Summary(MutableMapping[str, Any]):
    """A run's summary: the last logged value of every key, and whatever is set here (``run.summary["best"]
    = 0.97``). As in W&B, a key set here is overwritten if the same key is logged later."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._data: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        with self._run._lock:
            self._run._process_queue()
            return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        codec.encode(value, where=f"summary.{key}")
        with self._run._lock:
            self._run._process_queue()
            self._data[_values.check_key(key)] = value
            self._run._summary_dirty = True

    def __delitem__(self, key: str) -> None:
        with self._run._lock:
            self._run._process_queue()
            del self._data[key]
            self._run._summary_dirty = True

    def __iter__(self) -> Iterator[str]:
        with self._run._lock:
            self._run._process_queue()
            return iter(list(self._data))

    def __len__(self) -> int:
        with self._run._lock:
            self._run._process_queue()
            return len(self._data)

    def __repr__(self) -> str:
        return f"Summary({dict(self)!r})"


class Run:
    """A tracked run. Create it with :func:`watchkeeper.init`; use it as a context manager to finish it."""

    def __init__(
        self,
        transport: Transport | None,
        *,
        project: str,
        name: str | None = None,
        job_type: str | None = None,
        group: str | None = None,
        tags: list[str] | tuple[str, ...] | None = None,
        config: Mapping[str, Any] | None = None,
        notes: str | None = None,
        model: str | None = None,
        version: str | None = None,
        id: str | None = None,
        flush_interval: float = 0.5,
        max_queue: int = 1_000_000,
        finish_timeout: float = 30.0,
        window: float = 60.0,
        system_metrics: bool | float = True,
    ) -> None:
        self.id = id or _run_id()
        self.project = _check_name("project", project)
        self.name = name or _run_name(self.id)
        self.job_type = job_type
        self.group = group
        self.notes = notes
        self.model = model
        self.version = None if version is None else str(version)
        self.tags = [str(t) for t in (tags or [])]
        self._transport = transport
        self._lock = threading.RLock()
        self.config = Config(self, config)
        self.summary = Summary(self)
        self._config_dirty = False
        self._summary_dirty = False
        self._state = _ACTIVE
        self._step = 0
        self._pending: dict[str, Any] = {}
        self._pending_extras: list[tuple[str, Any]] | None = None
        self._queue: deque[tuple] = deque()
        self._known_keys: set[str] = set()
        self._max_queue = max_queue
        self._wake_at = 50_000
        self._dropped_steps = 0
        self._alerts_sent: dict[str, float] = {}
        self._last_step: int | None = None
        self._last_heartbeat = time.monotonic()
        self._finish_timeout = finish_timeout
        self._final_update: RunUpdate | None = None
        self._writer: Writer | None = None
        self._window = _check_window(window)
        self._watcher: Watcher | None = None
        self._anomaly_watches: list[AnomalyWatch] = []
        self._system: SystemMetrics | None = None
        self._system_rows: deque[tuple[float, dict[str, float]]] = deque(maxlen=10_000)
        self._reset_out()
        self._flush_interval = flush_interval
        self._system_metrics = system_metrics
        self._start()

    def _start(self) -> None:
        """Register the run with the store and start its writer (and system metrics)."""
        created = time.time()
        self.start_time = created
        transport = self._transport
        if transport is None:
            return
        start = RunStart(
            id=self.id,
            project=self.project,
            name=self.name,
            created_at=created,
            job_type=self.job_type,
            group=self.group,
            notes=self.notes,
            tags=self.tags,
            config=self.config.as_dict(),
            model=self.model,
            version=self.version,
            host=socket.gethostname(),
            pid=os.getpid(),
        )
        transport.send(Batch(runs=[start]))  # synchronous: the run is visible as soon as init returns
        self._writer = Writer(
            self._next_batch,
            transport.send,
            flush_interval=self._flush_interval,
            name=self.id,
            max_sleep=HEARTBEAT_EVERY,
        )
        self._writer.start()
        if self._system_metrics:
            interval = 10.0 if self._system_metrics is True else float(self._system_metrics)
            self._system = SystemMetrics(self._log_system, interval=interval)
            self._system.start()

    # -- the hot path -------------------------------------------------------------------------------------

    @property
    def step(self) -> int:
        """The step the next ``log()`` writes to."""
        return self._step

    def log(self, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
        """Log a dict of values at the current step (see the module docstring for step semantics).

        Raises TypeError/ValueError naming the key for a value that cannot be logged; nothing of a call that
        raises is kept, and nothing logged before it is lost.
        """
        if self._state is not _ACTIVE:
            self._log_inactive()
            return
        row: dict[str, Any] = {}
        extras = None
        known = self._known_keys
        if type(data) is not dict and not isinstance(data, Mapping):
            raise TypeError(f"log: expected a dict of values, got {type(data).__name__}")
        for k, v in data.items():
            tv = type(v)
            if (tv is float or tv is int) and k in known:
                row[k] = v
            else:
                extras = self._log_slow(k, v, row, extras)
        if step is None and commit is not False:
            if self._pending:
                self._pending.update(row)
                row = self._pending
                self._pending = {}
            if self._pending_extras:
                extras = self._pending_extras + (extras or [])
                self._pending_extras = None
            self._commit(self._step, row, extras)
            self._step += 1
            return
        self._log_step(row, extras, step, commit)

    def _commit(self, step: int, row: dict[str, Any], extras: list | None) -> None:
        q = self._queue
        if len(q) >= self._max_queue:
            self._dropped_steps += 1
            if self._dropped_steps == 1:
                log.warning(
                    "watchkeeper: run %s: %d steps are waiting to be written; dropping new steps "
                    "(the count is kept in the summary as _dropped_steps)",
                    self.id,
                    len(q),
                )
            return
        q.append((step, time.time(), row, extras))
        if len(q) >= self._wake_at and self._writer is not None:
            self._writer.wake.set()

    def _log_slow(self, key: Any, value: Any, row: dict[str, Any], extras: list | None) -> list | None:
        key = _values.check_key(key)
        if isinstance(value, Mapping):
            flat: dict[str, Any] = {}
            _values.flatten(key, value, flat)
            for k, v in flat.items():
                extras = self._log_slow(k, v, row, extras)
            return extras
        if isinstance(value, Table | Image):
            table = value if isinstance(value, Table) else Table(columns=["image"], data=[[value]])
            encoded = table.encode(key)
            return [*(extras or []), (key, encoded)]
        v = _values.scalar(key, value)
        if v is not None:
            row[key] = v
            if type(value) in (int, float):
                self._known_keys.add(key)
        return extras

    def _log_step(
        self, row: dict[str, Any], extras: list | None, step: int | None, commit: bool | None
    ) -> None:
        if step is not None:
            if isinstance(step, bool) or not hasattr(step, "__index__"):  # int, numpy ints; not bools
                raise TypeError(f"log: step must be an int, got {type(step).__name__}")
            step = int(step)
            if step < self._step:
                raise ValueError(
                    f"log: step {step} is lower than the current step {self._step}; steps must not go back "
                    "(to log a key against another axis, log that axis as a key, e.g. {'epoch': 3, ...})"
                )
            if step > self._step:
                if self._pending or self._pending_extras:
                    self._commit(self._step, self._pending, self._pending_extras)
                    self._pending, self._pending_extras = {}, None
                self._step = step
        self._pending.update(row)
        if extras:
            self._pending_extras = (self._pending_extras or []) + extras
        if commit:
            self._commit(self._step, self._pending, self._pending_extras)
            self._pending, self._pending_extras = {}, None
            self._step += 1

    def _log_inactive(self) -> None:
        if self._state == _FINISHED:
            raise UsageError(f"run {self.id} is finished; start a new one with wk.init()")
        # in a forked child the writer thread does not exist: drop quietly after one warning
        if not getattr(self, "_fork_warned", False):
            self._fork_warned = True
            log.warning(
                "watchkeeper: run %s was started before fork(); this process's logs are dropped", self.id
            )

    # -- draining into batches (writer thread, or a reader of the summary) ---------------------------------

    def _process_queue(self) -> None:
        """Move queued steps into the outgoing points and the summary. Caller holds ``self._lock``."""
        q = self._queue
        if not q:
            return
        out = self._out
        names, steps, ts, vals = out["name"], out["step"], out["t"], out["value"]
        summary = self.summary._data
        as_float = _values.as_float
        popleft = q.popleft
        for _ in range(len(q)):
            step, t, row, extras = popleft()
            if row:
                n = len(row)
                names.extend(row)
                steps.extend([step] * n)
                ts.extend([t] * n)
                try:
                    vals.extend([float(v) for v in row.values()])
                except OverflowError:
                    vals.extend([as_float(v) for v in row.values()])
                summary.update(row)
            if extras:
                for key, (rows, blobs) in extras:
                    out["samples"].append(
                        SampleRows(project=self.project, key=key, t=t, rows=rows, run_id=self.id, step=step)
                    )
                    out["blobs"].update(blobs)
                    summary[key] = {"_type": "table", "rows": len(rows), "step": step}
            self._last_step = step
        self._summary_dirty = True

    _out: dict[str, Any]

    def _reset_out(self) -> None:
        self._out = {"name": [], "step": [], "t": [], "value": [], "samples": [], "blobs": {}}

    def _log_system(self, reading: dict[str, float]) -> None:
        self._system_rows.append((time.time(), reading))

    def _next_batch(self, final: bool) -> Batch:
        watched = self._watcher.drain(final) if self._watcher is not None else None
        anomaly_points = [p for aw in list(self._anomaly_watches) for p in aw.drain(final)]
        with self._lock:
            self._process_queue()
            out = self._out
            self._reset_out()
            batch = Batch(samples=out["samples"], blobs=out["blobs"], points=anomaly_points)
            if watched is not None:
                batch.profiles.extend(watched.profiles)
                batch.samples.extend(watched.samples)
                batch.predictions.extend(watched.predictions)
                batch.labels.extend(watched.labels)
            if self._system_rows:
                names, ts, vals = [], [], []
                while self._system_rows:
                    t, reading = self._system_rows.popleft()
                    names.extend(reading)
                    ts.extend([t] * len(reading))
                    vals.extend(reading.values())
                batch.points.append(
                    Points(
                        project=self.project,
                        subject=self.id,
                        run_id=self.id,
                        name=names,
                        step=[None] * len(names),
                        t=ts,
                        value=vals,
                    )
                )
            if out["name"]:
                batch.points.append(
                    Points(
                        project=self.project,
                        subject=self.id,
                        run_id=self.id,
                        name=out["name"],
                        step=out["step"],
                        t=out["t"],
                        value=out["value"],
                    )
                )
            update = RunUpdate(id=self.id)
            now = time.monotonic()
            if final or now - self._last_heartbeat >= HEARTBEAT_EVERY:
                update.heartbeat_at = time.time()
                self._last_heartbeat = now
            if self._summary_dirty or final:
                summary = dict(self.summary._data)
                if self._dropped_steps:
                    summary["_dropped_steps"] = self._dropped_steps
                update.summary = summary
                update.last_step = self._last_step
                self._summary_dirty = False
            if self._config_dirty:
                update.config = dict(self.config._data)
                self._config_dirty = False
            if final and self._final_update is not None:
                f = self._final_update
                update.status, update.ended_at, update.exit_code, update.error = (
                    f.status,
                    f.ended_at,
                    f.exit_code,
                    f.error,
                )
            if any(getattr(update, k) is not None for k in RunUpdate.__slots__ if k != "id"):
                batch.run_updates.append(update)
            return batch

    # -- artifacts -----------------------------------------------------------------------------------------

    def log_artifact(
        self,
        path: str | os.PathLike[str],
        name: str | None = None,
        type: str = "artifact",
        metadata: Mapping[str, Any] | None = None,
    ) -> ArtifactVersion | None:
        """Store a file or a directory as a new version of artifact ``name`` (default: the file's name).

        Content identical to the latest version reuses it. Files are copied into the content-addressed
        artifact store before this returns, so the caller may delete or overwrite them afterwards.
        """
        self._check_active("log_artifact")
        src = Path(path)
        if not src.exists():
            raise FileNotFoundError(f"log_artifact: no file or directory at {src}")
        name = _check_name("artifact name", name or _NAME_RE.sub("-", src.name))
        files = []
        paths = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
        for p in paths:
            digest, size = digest_file(p)
            rel = p.name if src.is_file() else p.relative_to(src).as_posix()
            files.append((ArtifactFile(path=rel, digest=digest, size=size), p))
        if self._transport is None:
            return None
        for f, p in files:
            self._transport.put_blob(f.digest, p)
        record = ArtifactLog(
            project=self.project,
            name=name,
            type=type,
            files=[f for f, _ in files],
            run_id=self.id,
            metadata=dict(metadata or {}),
            t=time.time(),
        )
        codec.encode(record.metadata, where="metadata")
        return self._transport.send(Batch(artifacts=[record])).artifacts[0]

    def log_reference(
        self, data: Any, name: str = "train", *, schema: Mapping[str, str] | None = None
    ) -> Profile:
        """Profile ``data`` (a DataFrame, Arrow table, array, ... or a ready ``Profile``) and store it as the
        reference ``name`` of this run's model version, the baseline its production monitor compares with.

        Needs ``model`` and ``version`` in ``wk.init``. Logging the same name again replaces the reference.
        Returns the profile.
        """
        self._check_active("log_reference")
        if not self.model or not self.version:
            raise UsageError(
                "log_reference needs the run's model and version: wk.init(..., model='name', version='1')"
            )
        name = _check_name("reference name", name)
        prof = data if isinstance(data, Profile) else profile(data, schema=schema)
        if self._transport is not None:
            now = time.time()
            record = ProfileLog(
                project=self.project,
                subject=model_subject(self.model, self.version),
                kind="reference",
                window_start=now,
                window_end=now,
                rows=prof.rows,
                data=prof.to_bytes(),
                run_id=self.id,
                reference=(self.model, self.version, name),
            )
            self._transport.send(Batch(profiles=[record]))
        return prof

    def use_artifact(self, ref: str, root: str | os.PathLike[str] | None = None) -> Path:
        """Download artifact ``ref`` (``name``, ``name:latest`` or ``name:vN``) of this project into ``root``
        (default ``./artifacts/<name>-vN``) and record that this run used it; returns the directory."""
        self._check_active("use_artifact")
        if self._transport is None:
            raise UsageError("use_artifact needs a store; this run is disabled")
        from watchkeeper.store.artifacts import parse_ref

        name, version = parse_ref(ref)
        dest = Path(root) if root is not None else Path("artifacts") / f"{name}-{version or 'latest'}"
        return self._transport.download_artifact(self.project, ref, dest, self.id)

    # -- finishing -----------------------------------------------------------------------------------------

    def finish(self, exit_code: int | None = None, *, error: str | None = None) -> None:
        """Flush everything logged, mark the run finished (or failed, with a non-zero exit code), stop the
        writer. Safe to call twice."""
        if self._state != _ACTIVE:
            return
        if self._system is not None:
            self._system.stop()
        with self._lock:
            if self._pending or self._pending_extras:
                self._commit(self._step, self._pending, self._pending_extras)
                self._pending, self._pending_extras = {}, None
            self._state = _FINISHED
            self._final_update = RunUpdate(
                id=self.id,
                status=FAILED if (exit_code or error) else FINISHED,
                ended_at=time.time(),
                exit_code=exit_code,
                error=error,
            )
        if self._writer is not None and not self._writer.close(self._finish_timeout):
            log.warning(
                "watchkeeper: run %s finished, but %d points could not be written within %.0f s: %s",
                self.id,
                sum(b.point_count for b in self._writer.unsent),
                self._finish_timeout,
                self._writer.last_error,
            )
        if self._watcher is not None:
            self._watcher.close()
        if self._transport is not None:
            self._transport.close()
        from watchkeeper.sdk import api

        api._forget(self)

    def _fail_from_exception(self, exc: BaseException) -> None:
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        self.finish(exit_code=1, error=text)

    def _check_active(self, what: str) -> None:
        if self._state != _ACTIVE:
            raise UsageError(f"{what}: run {self.id} is finished")

    def _after_fork_in_child(self) -> bool:
        """In a forked child, such as a worker of a pre-forking server (gunicorn ``--preload``), a run that
        watches functions goes on as a new run of the same deployment, named after the parent run and the
        child's pid; any other run stops recording here (its parent process owns it). True if it goes on."""
        self._lock = threading.RLock()  # another thread may have held it at the fork
        self._writer = None
        self._system = None
        self._queue = deque()
        self._system_rows.clear()
        watcher = self._watcher
        if watcher is None or self._state != _ACTIVE or self._transport is None:
            self._state = _FORKED
            if watcher is not None:
                watcher.close()
            return False
        parent = self.id
        try:
            self._transport = self._transport.after_fork()
            self.id = _run_id()
            self.name = f"{self.name}-{os.getpid()}"
            self.notes = f"forked from run {parent}" if not self.notes else self.notes
            self._pending, self._pending_extras = {}, None
            self._step, self._last_step = 0, None
            self.summary._data.clear()
            self._known_keys = set()
            watcher.restart(run_id=self.id)
            self._start()
            watcher._wake = self._writer.wake.set if self._writer is not None else None
        except Exception:  # never crash a worker over monitoring
            log.exception("watchkeeper: run %s could not continue in forked process %d", parent, os.getpid())
            self._state = _FORKED
            watcher.close()
            return False
        return True

    # -- production monitoring -----------------------------------------------------------------------------

    @property
    def subject(self) -> str:
        """What this run's windows, predictions and labels are about: ``model:<name>@<version>`` when the
        run has a model, else the run id."""
        if self.model:
            return model_subject(self.model, self.version or "latest")
        return self.id

    def _watch_target(self) -> Watcher | None:
        if self._watcher is None and self._transport is not None and self._state == _ACTIVE:
            with self._lock:
                if self._watcher is None:
                    writer = self._writer
                    self._watcher = Watcher(
                        project=self.project,
                        subject=self.subject,
                        run_id=self.id,
                        window=self._window,
                        grace=max(1.0, 2 * (writer.flush_interval if writer else 0.5)),
                        wake=writer.wake.set if writer else None,
                    )
        return self._watcher

    def watch(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        features: Callable[..., Any] | None = None,
        outputs: Callable[[Any], Any] | None = None,
        id: Callable[..., Any] | None = None,
        name: str | None = None,
        batch: bool = False,
        sample_rate: float = 0.01,
        max_samples: int = 200,
        keep_predictions: float = 1.0,
        stratify: str | None = "label",
    ) -> Any:
        """Decorate a prediction function (sync or async) so that its calls are monitored.

        ``features`` and ``id`` are called with the function's arguments, ``outputs`` with its result; all
        three run in the background aggregator, not in the call. Without ``outputs``, a dict result is read
        as it is and a number, string or 1-D array as ``output``. ``batch=True``: one call scores many rows,
        ``features`` gives a frame (or dict of arrays), ``outputs`` a dict of arrays, ``id`` a list.
        ``sample_rate``: the share of successful calls kept as samples (errors are all kept, up to half of
        ``max_samples`` per window); ``stratify``: the output whose values are sampled evenly;
        ``keep_predictions``: the share of predictions with an id kept for joining with labels.
        """

        def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(f):
                raise TypeError(f"watch: expected a function, got {type(f).__name__}")
            w = self._watch_target()
            spec = Watcher.spec(
                name or getattr(f, "__name__", "call"),
                features=features,
                outputs=outputs,
                id=id,
                batch=batch,
                sample_rate=sample_rate,
                max_samples=max_samples,
                keep_predictions=keep_predictions,
                stratify=stratify,
            )
            return f if w is None else w.wrap(f, spec)

        return decorate if fn is None else decorate(fn)

    def watching(
        self,
        features: Any = None,
        *,
        id: Any = None,
        outputs: Callable[[Any], Any] | None = None,
        name: str = "call",
        batch: bool = False,
        sample_rate: float = 0.01,
        max_samples: int = 200,
        keep_predictions: float = 1.0,
        stratify: str | None = "label",
    ) -> Call:
        """A monitored block, for code that is not one function: ``with run.watching(features=x, id=rid) as
        call: ... call.outputs = y``. The same arguments as ``watch``, but ``features`` and ``id`` are the
        values themselves; ``outputs`` is an optional extractor applied to ``call.outputs``."""
        key = (name, batch, sample_rate, max_samples, keep_predictions, stratify, outputs)
        spec = self._watching_specs.get(key)
        if spec is None:
            spec = Watcher.spec(
                name,
                outputs=outputs,
                batch=batch,
                direct=True,
                sample_rate=sample_rate,
                max_samples=max_samples,
                keep_predictions=keep_predictions,
                stratify=stratify,
            )
            self._watching_specs[key] = spec
        return Call(self._watch_target(), spec, features, id)

    @functools.cached_property
    def _watching_specs(self) -> dict[tuple, Any]:
        return {}

    def stage(self, name: str) -> Stage:
        """Time a stage of the current watched call (``with run.stage("preprocess"): ...``); outside a
        watched call the stage is still timed and counted."""
        return Stage(self._watch_target(), name)

    def log_label(self, prediction_id: Any, value: Any, *, t: float | None = None) -> None:
        """The ground truth for the prediction with id ``prediction_id``, however late it arrives (a later
        label for the same id replaces this one)."""
        if prediction_id is None:
            raise ValueError("log_label: prediction_id must not be None")
        codec.encode(value, where="label")  # refuse what cannot be stored, here and now
        w = self._watch_target()
        if w is not None:
            w.log_label(str(prediction_id), value, time.time() if t is None else float(t))
        elif self._state != _ACTIVE:
            self._check_active("log_label")

    def alert(
        self,
        title: str,
        text: str,
        level: str | AlertLevel = "INFO",
        wait_duration: float | datetime.timedelta | None = None,
    ) -> None:
        """Send a notification now, as ``wandb.alert`` does: through the routes of the server's alert rules
        (Slack, email, webhook, ...), with labels ``alertname`` (the title), ``severity`` (INFO → info,
        WARN → warning, ERROR → critical), ``project`` and ``run``.

        An alert with the same title as one sent by this run less than ``wait_duration`` ago (seconds or a
        timedelta; default 60 s) is dropped, so calling this in a training loop does not flood a channel.
        """
        if not isinstance(title, str) or not title.strip():
            raise ValueError(f"alert: title must be a non-empty str, got {title!r}")
        if not isinstance(text, str):
            raise ValueError(f"alert: text must be a str, got {type(text).__name__}")
        severity = _alert_severity(level)
        wait = _wait_seconds(wait_duration)
        if self._state != _ACTIVE:
            if self._state == _FINISHED:
                self._check_active("alert")
            return  # a forked child's run records nothing
        self._queue_alert(title, text, severity, wait)

    def _queue_alert(self, title: str, text: str, severity: str, wait: float) -> None:
        now = time.time()
        with self._lock:
            last = self._alerts_sent.get(title)
            if last is not None and now - last < wait:
                return
            self._alerts_sent[title] = now
            row = {"title": title[:1000], "text": text[:10_000], "level": AlertLevel(severity).name}
            self._out["samples"].append(
                SampleRows(project=self.project, key=RUN_ALERTS_KEY, t=now, rows=[row], run_id=self.id)
            )
        if self._writer is not None:
            self._writer.wake.set()

    def watch_anomalies(
        self,
        detector: Any,
        windows: Any = None,
        *,
        by: str | list[str] | None = None,
        time: str | None = None,
        name: str | None = None,
        lateness: float = 0.0,
        alert: bool = True,
        alert_wait: float | datetime.timedelta | None = 300.0,
    ) -> AnomalyWatch:
        """Score a stream of KPI rows online with a fitted anomaly ``detector`` (see watchkeeper.anomaly).

        ``windows``: the :class:`~watchkeeper.anomaly.Windows` the detector was trained on (rows are windowed
        per ``by`` entity when their window is over), or None when the logged rows are already feature rows.
        ``time``: the rows' time column (default: the windows'). Each scored window becomes the signals
        ``anomaly_score`` and ``anomaly`` (labels ``detector`` = ``name``, ``entity``), which alert rules and
        the dashboard read; with ``alert``, a window above the detector's threshold also sends
        :meth:`alert` (level WARN, at most once per entity per ``alert_wait``). ``lateness``: seconds to wait
        past a window's end for stragglers. Returns the watch: ``aw.log(rows)`` queues rows (cheap), and
        ``aw.flush()`` scores what is ready now and returns it (the run's writer also does, in the
        background, and at finish).
        """
        from watchkeeper.sdk.anomalies import AnomalyWatch

        wait = _wait_seconds(alert_wait)

        def send(title: str, text: str) -> None:
            if self._state != _FORKED:
                self._queue_alert(title, text, "warning", wait)

        aw = AnomalyWatch(
            detector,
            windows,
            by=by,
            time=time,
            name=name,
            lateness=lateness,
            alert=send if alert else None,
            project=self.project,
            subject=self.subject,
        )
        with self._lock:
            self._anomaly_watches.append(aw)
        return aw

    def log_usage(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        *,
        model: str = "default",
        cost: float | None = None,
    ) -> None:
        """Tokens used by one call to an LLM (or any metered model); the cost comes from ``cost``, or from
        the price set with :meth:`set_price`, else the call is counted as unpriced."""
        for field_name, v in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"log_usage: {field_name} must be a non-negative int, got {v!r}")
        if cost is not None and not (isinstance(cost, int | float) and math.isfinite(cost) and cost >= 0):
            raise ValueError(f"log_usage: cost must be a non-negative number, got {cost!r}")
        w = self._watch_target()
        if w is not None:
            w.log_usage(str(model), input_tokens, output_tokens, None if cost is None else float(cost))

    def set_price(self, model: str, *, input: float, output: float, per: int = 1_000_000) -> None:
        """Prices for :meth:`log_usage`: ``input`` and ``output`` per ``per`` tokens (providers list them
        per million), in the currency you want costs in."""
        for field_name, v in (("input", input), ("output", output), ("per", per)):
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise ValueError(f"set_price: {field_name} must be a non-negative number, got {v!r}")
        if per <= 0:
            raise ValueError(f"set_price: per must be positive, got {per!r}")
        w = self._watch_target()
        if w is not None:
            w.set_price(str(model), input / per, output / per)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None and not isinstance(exc, KeyboardInterrupt | SystemExit):
            self._fail_from_exception(exc)
        else:
            self.finish()

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, project={self.project!r}, name={self.name!r}, step={self._step})"


def _check_window(window: Any) -> float:
    if (
        isinstance(window, bool)
        or not isinstance(window, int | float)
        or not math.isfinite(window)
        or window <= 0
    ):
        raise ValueError(f"window must be a positive number of seconds, got {window!r}")
    return float(window)


def _check_name(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{field} must be a non-empty string, got {value!r}")
    if len(value) > 128:
        raise ValueError(f"{field} {value[:30]!r}... is {len(value)} characters long (at most 128)")
    return value


class AlertLevel(enum.StrEnum):
    """The levels of ``run.alert``, wandb's names; the value is the severity alert rules use."""

    INFO = "info"
    WARN = "warning"
    ERROR = "critical"


def _alert_severity(level: Any) -> str:
    if isinstance(level, AlertLevel):
        return level.value
    if isinstance(level, str):
        key = level.strip().upper()
        key = {"WARNING": "WARN", "CRITICAL": "ERROR"}.get(key, key)
        if key in AlertLevel.__members__:
            return AlertLevel[key].value
    raise ValueError(f"alert: level must be INFO, WARN or ERROR (or an AlertLevel), got {level!r}")


def _wait_seconds(wait: Any) -> float:
    if wait is None:
        return 60.0
    if isinstance(wait, datetime.timedelta):
        wait = wait.total_seconds()
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not math.isfinite(wait) or wait < 0:
        raise ValueError(
            f"alert: wait_duration must be a number of seconds >= 0 or a timedelta, got {wait!r}"
        )
    return float(wait)
