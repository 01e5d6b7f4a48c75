"""Production monitoring from inside the serving process: ``run.watch``, ``run.watching``, stages, usage and
labels, and the aggregator that turns them into window profiles.

The request path records only what it must, into one deque: the start and end time (``perf_counter_ns``),
the outcome (None, or the exception, which is re-raised unchanged) and references to the arguments and the
result. That costs about as much as one ``Counter.inc`` of prometheus_client. Everything else happens in
the aggregator, which runs on the run's writer thread every flush interval, on all waiting records at once:

* extractors (``features=``, ``outputs=``, ``id=``) are called there, not in the request;
* records are assigned to wall-clock windows (``window`` seconds, aligned to multiples of it) by the time
  they completed, and turned into columns: one ``pa.array`` per feature for the whole batch, then the
  column profiles' vectorised sketch updates;
* latencies go to DDSketches per endpoint and per stage, errors are counted by exception class;
* the sampler (:mod:`watchkeeper.sdk.sampler`) picks the rows kept as samples; ids of predictions are kept
  (all, or a deterministic share by hash of the id) for joining with labels that arrive later.

A window closes ``grace`` seconds after its end, or on ``finish()``: its profile (columns with roles, and
the traffic section) goes to the store as a ``window`` profile of the subject ``model:<name>@<version>``,
with its samples and predictions in the same batch. A record arriving after its window closed starts a
second profile of the same window; views merge them like the windows of other replicas.

Nothing here raises into the host: input the extractors cannot read is counted in the window's quality
counts (and logged once per window); when more than ``max_queue`` records wait, new ones are dropped and
counted (``Traffic.dropped``, and one warning).
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import math
import random
import time
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from time import perf_counter_ns
from typing import Any

import numpy as np
import pyarrow as pa

from watchkeeper.profile import ColumnProfile, Profile, Traffic
from watchkeeper.profile.frames import as_frame
from watchkeeper.sdk.sampler import SamplerConfig, WindowSampler, _check_rate
from watchkeeper.store import ProfileLog, SampleRows, codec
from watchkeeper.store.batch import LabelRows, PredictionRows

log = logging.getLogger("watchkeeper")

_current_call: contextvars.ContextVar[int | None] = contextvars.ContextVar("watchkeeper_call", default=None)
"""The start time (ns) of the watched call this context is inside, so stages attach to it."""

MAX_CELL_CHARS = 4096
"""A sampled input or output larger than this (as JSON) is kept as a truncated text."""
_FLOAT, _INT, _NUMBER = {float}, {int}, {float, int}
CHUNK = 32_768
"""Calls aggregated in one vectorised step."""
MAX_ROUTES = 200
"""Distinct endpoints per window; more (e.g. unrouted paths) are counted under ``other``."""


class _Kind:
    """Record kinds other than calls; a call record starts with its ``_Spec``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


_STAGE, _HTTP, _USAGE = _Kind("stage"), _Kind("http"), _Kind("usage")
_FAILED = _Kind("failed")  # what an extractor that raised gave (the failure is already counted)


@dataclass(slots=True)
class _Spec:
    """What to read from the calls of one watched endpoint."""

    name: str
    features: Callable[..., Any] | None
    outputs: Callable[[Any], Any] | None
    id: Callable[..., Any] | None
    batch: bool
    direct: bool  # watching(): features and id are given as values, not extractors
    sampler: SamplerConfig
    keep_predictions: float
    stratify: str | None
    queue: deque[tuple] = field(default_factory=deque)  # (t0, t1, exc, args, kwargs, result) per call


def _error_name(exc: BaseException) -> str:
    return type(exc).__name__


@dataclass(slots=True)
class _Window:
    start: float
    end: float
    rows: int = 0
    columns: dict[str, ColumnProfile] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    traffic: Traffic = field(default_factory=Traffic)
    samplers: dict[str, WindowSampler] = field(default_factory=dict)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    pred_ids: list[str] = field(default_factory=list)
    pred_t: list[float] = field(default_factory=list)
    pred_values: list[dict[str, Any]] = field(default_factory=list)

    def column(self, name: str, role: str) -> ColumnProfile:
        col = self.columns.get(name)
        if col is None:
            col = self.columns[name] = ColumnProfile(name)
            if role != "input":
                self.roles[name] = role
        return col


@dataclass
class Drained:
    """What one aggregation produced for the next batch."""

    profiles: list[ProfileLog] = field(default_factory=list)
    samples: list[SampleRows] = field(default_factory=list)
    predictions: list[PredictionRows] = field(default_factory=list)
    labels: list[LabelRows] = field(default_factory=list)


class Call:
    """One watched unit of work, from ``run.watching()``: set ``outputs`` (and ``id``) inside the block.

    >>> import watchkeeper as wk
    >>> run = wk.init(project="doc", mode="disabled")
    >>> with run.watching(features={"x": 1.0}) as call:
    ...     with call.stage("inference"):
    ...         call.outputs = {"score": 0.7}
    >>> run.finish()
    """

    __slots__ = ("_spec", "_t0", "_token", "_watcher", "features", "id", "outputs")

    def __init__(self, watcher: Watcher | None, spec: _Spec | None, features: Any, id: Any) -> None:
        self._watcher = watcher
        self._spec = spec
        self.features = features
        self.id = id
        self.outputs: Any = None
        self._t0 = 0
        self._token: contextvars.Token | None = None

    def __enter__(self) -> Call:
        self._t0 = perf_counter_ns()
        self._token = _current_call.set(self._t0)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        t1 = perf_counter_ns()
        if self._token is not None:
            _current_call.reset(self._token)
        w = self._watcher
        if w is not None:
            w._put((self._t0, t1, exc, (self.features, self.id), None, self.outputs), w._register(self._spec))

    def stage(self, name: str) -> Stage:
        """Time a part of this call (``with call.stage("preprocess"): ...``)."""
        return Stage(self._watcher, name, self._t0)


class Stage:
    """A timed part of a watched call; also usable on its own (``with run.stage("fetch"):``)."""

    __slots__ = ("_call_t0", "_name", "_t0", "_watcher")

    def __init__(self, watcher: Watcher | None, name: str, call_t0: int | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"stage name must be a non-empty string, got {name!r}")
        self._watcher = watcher
        self._name = name
        self._call_t0 = call_t0
        self._t0 = 0

    def __enter__(self) -> Stage:
        self._t0 = perf_counter_ns()
        return self

    def __exit__(self, *exc: Any) -> None:
        t1 = perf_counter_ns()
        w = self._watcher
        if w is not None:
            call = self._call_t0 if self._call_t0 is not None else _current_call.get()
            w._put((_STAGE, self._t0, t1, self._name, call))


class Watcher:
    """The per-run aggregator of watched calls. Created by the run on first use; see the module docstring."""

    def __init__(
        self,
        *,
        project: str,
        subject: str,
        run_id: str,
        window: float = 60.0,
        grace: float = 1.0,
        max_queue: int = 500_000,
        wake: Callable[[], None] | None = None,
        wake_at: int = 4096,
        seed: int | None = None,
    ) -> None:
        if not (isinstance(window, int | float) and math.isfinite(window) and window > 0):
            raise ValueError(f"window must be a positive number of seconds, got {window!r}")
        self.project = project
        self.subject = subject
        self.run_id = run_id
        self.window = float(window)
        self.grace = grace
        self.max_queue = max_queue
        self._wake = wake
        self._wake_at = wake_at
        self._fast = [wake_at]  # the queue length below which a call appends without further checks
        self._woken = False
        self.closed = False
        self._queue: deque[tuple] = deque()  # stages, HTTP requests, usage
        self._specs: dict[int, _Spec] = {}
        self._labels: deque[tuple[str, Any, float]] = deque()
        self._dropped = 0
        self._windows: dict[int, _Window] = {}
        self._prices: dict[str, tuple[float, float]] = {}
        self._rng = random.Random(seed)
        self._warned_quality: set[str] = set()
        self._stage_times: dict[int, dict[str, float]] = {}

    # -- the request path ----------------------------------------------------------------------------------

    def _put(self, record: tuple, q: deque[tuple] | None = None) -> None:
        if q is None:
            q = self._queue
        n = len(q)
        if n >= self._wake_at:
            if n >= self.max_queue:
                self._drop()
                return
            if self._wake is not None and not self._woken:
                self._woken = True  # once per drain: setting an Event takes a lock
                self._wake()
        q.append(record)

    def _register(self, spec: _Spec) -> deque[tuple]:
        self._specs[id(spec)] = spec
        return spec.queue

    def _drop(self) -> None:
        self._dropped += 1
        if self._dropped == 1:
            if self.closed:
                log.warning(
                    "watchkeeper: run %s is finished: calls to its watched functions are no longer recorded",
                    self.run_id,
                )
            else:
                log.warning(
                    "watchkeeper: %d calls of a watched endpoint wait to be aggregated; dropping new ones "
                    "(they are counted as dropped in the window's traffic)",
                    self.max_queue,
                )

    def restart(self, *, run_id: str) -> None:
        """Start over for another run (in a forked child): what the parent had queued or half-aggregated is
        the parent's to write."""
        self.run_id = run_id
        self._queue.clear()
        for spec in self._specs.values():
            spec.queue.clear()
        self._labels.clear()
        self._windows.clear()
        self._dropped = 0

    def close(self) -> None:
        """Stop recording: after the run's last drain, calls go through unrecorded (counted, warned once)."""
        self.closed = True
        self.max_queue = 0
        self._wake_at = 0
        self._fast[0] = 0
        self._queue.clear()
        for spec in self._specs.values():
            spec.queue.clear()
        self._dropped = 0

    @staticmethod
    def spec(
        name: str,
        *,
        features: Callable[..., Any] | None = None,
        outputs: Callable[[Any], Any] | None = None,
        id: Callable[..., Any] | None = None,
        batch: bool = False,
        direct: bool = False,
        sample_rate: float = 0.01,
        max_samples: int = 200,
        keep_predictions: float = 1.0,
        stratify: str | None = "label",
    ) -> _Spec:
        for field_name, fn in (("features", features), ("outputs", outputs), ("id", id)):
            if fn is not None and not callable(fn) and not (direct and field_name != "outputs"):
                raise TypeError(
                    f"watch: {field_name}= must be a function of the call's arguments, got {fn!r}"
                )
        return _Spec(
            name=name,
            features=features,
            outputs=outputs,
            id=id,
            batch=bool(batch),
            direct=direct,
            sampler=SamplerConfig(rate=sample_rate, max_rows=max_samples),
            keep_predictions=_check_rate("keep_predictions", keep_predictions),
            stratify=stratify,
        )

    def wrap(self, fn: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
        """``fn`` with its calls recorded (sync and async functions)."""
        q = self._register(spec)
        put = self._put
        fast = self._fast

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def watched_async(*args: Any, **kwargs: Any) -> Any:
                t0 = perf_counter_ns()
                token = _current_call.set(t0)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    put((t0, perf_counter_ns(), exc, args, kwargs or None, None), q)
                    raise
                finally:
                    _current_call.reset(token)
                put((t0, perf_counter_ns(), None, args, kwargs or None, result), q)
                return result

            return watched_async

        @functools.wraps(fn)
        def watched(*args: Any, **kwargs: Any) -> Any:
            t0 = perf_counter_ns()
            token = _current_call.set(t0)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                put((t0, perf_counter_ns(), exc, args, kwargs or None, None), q)
                raise
            finally:
                _current_call.reset(token)
            record = (t0, perf_counter_ns(), None, args, kwargs or None, result)
            if len(q) < fast[0]:
                q.append(record)
            else:
                put(record, q)
            return result

        return watched

    def record_http(
        self, t0: int, t1: int, method: str, route: Any, status: int, exc: BaseException | None
    ) -> None:
        """One HTTP request, from the ASGI middleware; ``route`` is its path template, or the framework's
        route object (read into its template here, off the request path), or None when no route matched."""
        self._put((_HTTP, t0, t1, exc, method, route, status))

    def log_usage(self, model: str, input_tokens: int, output_tokens: int, cost: float | None) -> None:
        """One metered call; priced now, with the prices in force when it happened."""
        if cost is None and model in self._prices:
            price_in, price_out = self._prices[model]
            cost = input_tokens * price_in + output_tokens * price_out
        self._put((_USAGE, perf_counter_ns(), model, input_tokens, output_tokens, cost))

    def log_label(self, prediction_id: str, value: Any, t: float) -> None:
        self._labels.append((prediction_id, value, t))

    def set_price(self, model: str, input_per_token: float, output_per_token: float) -> None:
        self._prices[model] = (input_per_token, output_per_token)

    # -- the aggregator --------------------------------------------------------------------------------------

    def drain(self, final: bool = False) -> Drained:
        """Aggregate every waiting record; emit the windows that are over (all of them when ``final``)."""
        out = Drained()
        self._woken = False
        offset_ns = time.time_ns() - perf_counter_ns()
        try:
            self._aggregate(offset_ns)
        except Exception:  # a bug here must not stop the writer; the records are lost, and said so
            log.exception("watchkeeper: could not aggregate watched calls; they are lost")
        if self._dropped:
            self._window_at(time.time()).traffic.dropped += self._dropped
            self._dropped = 0
        self._drain_labels(out)
        now = time.time()
        for idx in sorted(self._windows):
            win = self._windows[idx]
            if final or now >= win.end + self.grace:
                del self._windows[idx]
                self._emit(win, out)
        return out

    def _window_at(self, wall: float) -> _Window:
        idx = math.floor(wall / self.window)
        win = self._windows.get(idx)
        if win is None:
            win = self._windows[idx] = _Window(idx * self.window, (idx + 1) * self.window)
        return win

    def _aggregate(self, offset_ns: int) -> None:
        q = self._queue
        stages: list[tuple] = []
        http: list[tuple] = []
        usage: list[tuple] = []
        for _ in range(len(q)):
            rec = q.popleft()
            kind = rec[0]
            if kind is _STAGE:
                stages.append(rec)
            elif kind is _HTTP:
                http.append(rec)
            else:
                usage.append(rec)
        # a stage ends before its call: keep the last drain's stage timings for calls that end in this one
        fresh: dict[int, dict[str, float]] = {}
        grouped: dict[tuple[int, str], list[float]] = {}
        width_ns = self.window * 1e9
        for _, t0, t1, name, call_t0 in stages:
            grouped.setdefault((math.floor((t1 + offset_ns) / width_ns), name), []).append((t1 - t0) / 1e9)
            if call_t0 is not None:
                fresh.setdefault(call_t0, {})[name] = (t1 - t0) / 1e6
        for (i, name), seconds in grouped.items():
            self._window_at((i + 0.5) * self.window).traffic.stage(name).update(seconds)
        stage_times = {**self._stage_times, **fresh}
        self._stage_times = fresh
        for spec in list(self._specs.values()):
            sq = spec.queue
            if not sq:
                continue
            recs = [sq.popleft() for _ in range(len(sq))]
            t1 = np.fromiter((r[1] for r in recs), dtype=np.int64, count=len(recs))
            idx = np.floor((t1 + offset_ns) / width_ns).astype(np.int64)
            first, last = int(idx[0]), int(idx[-1])
            if first == last and (idx == first).all():
                groups = [(first, recs)]
            else:
                groups = [(int(i), [recs[j] for j in np.flatnonzero(idx == i)]) for i in np.unique(idx)]
            for i, group in groups:
                win = self._window_at((i + 0.5) * self.window)
                if spec.batch:
                    for rec in group:
                        self._batch_call(win, spec, rec, offset_ns, stage_times)
                else:
                    # in chunks, so the temporary arrays of one step stay small (~10 MB for 20 features)
                    for j in range(0, len(group), CHUNK):
                        self._calls(win, spec, group[j : j + CHUNK], offset_ns, stage_times)
        requests: dict[tuple[int, str], tuple[list[float], list[str | None], list[int]]] = {}
        for _, t0, t1, exc, method, route, status in http:
            if not isinstance(route, str):
                route = _route_template(route)
            key = (math.floor((t1 + offset_ns) / width_ns), f"{method} {route}")
            seconds, errors, statuses = requests.setdefault(key, ([], [], []))
            seconds.append((t1 - t0) / 1e9)
            if exc is not None:
                errors.append(_error_name(exc))
            else:
                errors.append(f"HTTP {status}" if status >= 500 else None)
            statuses.append(status)
        for (i, name), (seconds, errors, statuses) in requests.items():
            win = self._window_at((i + 0.5) * self.window)
            if name not in win.traffic.endpoints and len(win.traffic.endpoints) >= MAX_ROUTES:
                name = "other"
            win.traffic.endpoint(name, "http").update(seconds, errors, statuses)
        for _, t, model, tokens_in, tokens_out, cost in usage:
            win = self._window_at((t + offset_ns) / 1e9)
            self._usage(win, model, tokens_in, tokens_out, cost)

    def _usage(self, win: _Window, model: str, tokens_in: int, tokens_out: int, cost: float | None) -> None:
        from watchkeeper.profile.traffic import Usage

        use = win.traffic.usage.get(model)
        if use is None:
            use = win.traffic.usage[model] = Usage()
        use.calls += 1
        use.input_tokens += tokens_in
        use.output_tokens += tokens_out
        if cost is None:
            use.unpriced += 1
        else:
            use.cost += cost

    def _calls(
        self,
        win: _Window,
        spec: _Spec,
        recs: list[tuple],
        offset_ns: int,
        stage_times: dict[int, dict[str, float]],
    ) -> None:
        n = len(recs)
        t0 = np.fromiter((r[0] for r in recs), dtype=np.int64, count=n)
        t1 = np.fromiter((r[1] for r in recs), dtype=np.int64, count=n)
        excs = [r[2] for r in recs]
        errors = [None if e is None else _error_name(e) for e in excs]
        if len(win.traffic.endpoints) >= MAX_ROUTES and spec.name not in win.traffic.endpoints:
            endpoint = win.traffic.endpoint("other")
        else:
            endpoint = win.traffic.endpoint(spec.name)
        endpoint.update((t1 - t0) / 1e9, errors)
        win.rows += n
        problems = win.traffic.count_problem

        # inputs
        feats: list[Any] | None = None
        if spec.direct:
            feats = [r[3][0] for r in recs]
        elif spec.features is not None:
            feats = _extract(spec.features, recs, problems, "features")
        feature_names: set[str] = set()
        if feats is not None:
            feature_names = self._profile_rows(win, feats, "input", problems, "features")
            feats = [None if f is _FAILED else f for f in feats]

        # outputs, of the calls that returned
        ok = [i for i in range(n) if excs[i] is None]
        outs: list[Any] = [None] * n
        if ok:
            results = [recs[i][5] for i in ok]
            if spec.outputs is not None:
                got = _extract_results(spec.outputs, results, problems)
            else:
                got = [_auto_outputs(r, problems) for r in results]
            for i, o in zip(ok, got, strict=True):
                outs[i] = None if o is _FAILED else o
            mapped = [o for o in got if o is not None and o is not _FAILED]
            if mapped:
                self._profile_rows(win, mapped, "output", problems, "outputs", clash=feature_names)

        # ids
        ids: list[Any] = [None] * n
        if spec.direct:
            ids = [None if r[3][1] is None else str(r[3][1]) for r in recs]
        elif spec.id is not None:
            got_ids = _extract(spec.id, recs, problems, "id")
            ids = [None if v is None or v is _FAILED else str(v) for v in got_ids]
        wall = (t1 + offset_ns) / 1e9
        keep = spec.keep_predictions
        for i in ok:
            rid = ids[i]
            if rid is None or outs[i] is None or not _kept(rid, keep):
                continue
            win.pred_ids.append(rid)
            win.pred_t.append(float(wall[i]))
            win.pred_values.append(_encoded(outs[i], "outputs"))

        # samples
        sampler = win.samplers.get(spec.name)
        if sampler is None:
            sampler = win.samplers[spec.name] = WindowSampler(spec.sampler, self._rng)
        labels = None
        if spec.stratify:
            key = spec.stratify
            labels = [
                o.get(key) if type(o) is dict or (o is not None and isinstance(o, Mapping)) else None
                for o in outs
            ]
        chosen = sampler.choose([e is not None for e in excs], labels)
        rows = win.samples.setdefault(spec.name, [])
        lat_ms = (t1 - t0) / 1e6
        for i in range(n):
            if not chosen[i]:
                continue
            exc = excs[i]
            rows.append(
                {
                    "t": float(wall[i]),
                    "id": ids[i],
                    "latency_ms": float(lat_ms[i]),
                    "status": "ok" if exc is None else errors[i],
                    "error": None if exc is None else _cell(str(exc)),
                    "inputs": None if feats is None else _cell(feats[i]),
                    "outputs": None if outs[i] is None else _cell(outs[i]),
                    "stages": stage_times.get(int(t0[i])),
                }
            )

    def _profile_rows(
        self,
        win: _Window,
        rows: list[Any],
        role: str,
        problems: Callable[[str], None],
        what: str,
        clash: set[str] | None = None,
    ) -> set[str]:
        """Profile a list of per-call mappings as columns; returns the column names seen.

        A 1-D array or list of numbers is read as a mapping from positions ("0", "1", ...) to values, and a
        pandas Series as its dict.
        """
        plain = all(type(r) is dict for r in rows)
        if not plain:
            rows = [_as_mapping(r) for r in rows]
        good = rows if plain else [r for r in rows if isinstance(r, Mapping)]
        if len(good) < len(rows):
            missing = sum(1 for r in rows if r is None)
            bad = sum(1 for r in rows if r is not None and r is not _FAILED and not isinstance(r, Mapping))
            if missing:
                problems(f"{what}: None", missing)
            if bad:
                problems(f"{what}: not a mapping", bad)
        if not good:
            return set()
        names = list(good[0])
        getter = itemgetter(*names) if names else None
        columns: list[Any]
        try:
            if getter is None or set(map(len, good)) != {len(names)}:
                raise KeyError
            values = list(map(getter, good))
            columns = None
            if len(names) > 1:
                # all numbers: one conversion of the whole batch (numpy infers float or int only when every
                # value is a number; a string, None or a list makes it fall back to per-column reading)
                matrix = np.array(values)
                if matrix.dtype.kind in "fi" and matrix.shape == (len(good), len(names)):
                    columns = list(np.ascontiguousarray(matrix.T))
                else:
                    columns = list(zip(*values, strict=True))
            else:
                columns = [values]
        except (KeyError, TypeError):
            union: dict[Any, None] = {}
            for r in good:
                union.update(dict.fromkeys(r))
            names = list(union)
            problems(f"{what}: keys differ between calls")
            columns = [[r.get(k) for r in good] for k in names]
        seen = set()
        for name, col in zip(names, columns, strict=True):
            cname = str(name)
            if clash and cname in clash:
                problems(f"{what}: {cname!r} is also a feature name; kept as 'output.{cname}'")
                cname = f"output.{cname}"
            seen.add(cname)
            if type(col) is np.ndarray:
                win.column(cname, role).update(col)
                continue
            types = set(map(type, col))
            if types in (_FLOAT, _INT, _NUMBER):
                try:  # ~5x faster than pa.array on Python objects
                    dtype = np.float64 if float in types else np.int64
                    win.column(cname, role).update(np.array(col, dtype=dtype))
                    continue
                except OverflowError:
                    pass
            try:
                values = pa.array(col)
                if pa.types.is_null(values.type):
                    win.column(cname, role).update(values)
                    continue
            except (
                pa.ArrowInvalid,
                pa.ArrowTypeError,
                pa.ArrowNotImplementedError,
                OverflowError,
                TypeError,
            ):
                values = np.array(list(col), dtype=object)  # mixed types: the profile counts each type
                problems(f"{what}: {cname!r} mixes value types")
            try:
                win.column(cname, role).update(values)
                if role == "output" and (pa.types.is_list(getattr(values, "type", None) or pa.null())):
                    self._confidence(win, cname, values)
            except Exception as exc:
                problems(f"{what}: {cname!r} could not be profiled ({type(exc).__name__})")
        return seen

    def _confidence(self, win: _Window, name: str, values: pa.Array) -> None:
        """A vector output (class probabilities) also gives ``<name>.confidence``, its largest component."""
        best = [max(v) if v else None for v in values.to_pylist() if v is not None]
        win.column(f"{name}.confidence", "output").update(pa.array(best, type=pa.float64()))

    def _batch_call(
        self,
        win: _Window,
        spec: _Spec,
        rec: tuple,
        offset_ns: int,
        stage_times: dict[int, dict[str, float]],
    ) -> None:
        """One call that scored many rows: features and outputs are frames (or dicts of arrays)."""
        t0, t1, exc, args, kwargs, result = rec
        error = None if exc is None else _error_name(exc)
        win.traffic.endpoint(spec.name).update([(t1 - t0) / 1e9], [error])
        problems = win.traffic.count_problem
        wall = (t1 + offset_ns) / 1e9
        rows = 0
        feature_names: set[str] = set()
        if spec.direct or spec.features is not None:
            try:
                data = args[0] if spec.direct else spec.features(*args, **(kwargs or {}))
                frame = as_frame(data)
                rows = frame.rows
                for name, values in frame.columns():
                    win.column(name, "input").update(values)
                    feature_names.add(name)
            except Exception as exc2:
                problems(f"features: batch could not be read ({type(exc2).__name__})")
        out_frame = None
        if exc is None and result is not None:
            try:
                data = spec.outputs(result) if spec.outputs is not None else result
                if not isinstance(data, Mapping) and not hasattr(data, "columns"):
                    data = {"output": data}
                out_frame = as_frame(data)
                rows = rows or out_frame.rows
                for name, values in out_frame.columns():
                    cname = f"output.{name}" if name in feature_names else name
                    win.column(cname, "output").update(values)
            except Exception as exc2:
                problems(f"outputs: batch could not be read ({type(exc2).__name__})")
        win.rows += rows
        ids = None
        if spec.direct and args[1] is not None:
            ids = [str(v) for v in args[1]]
        elif spec.id is not None and not spec.direct:
            try:
                ids = [str(v) for v in spec.id(*args, **(kwargs or {}))]
            except Exception as exc2:
                problems(f"id: could not be read ({type(exc2).__name__})")
        if ids is not None and out_frame is not None:
            if len(ids) != out_frame.rows:
                problems(f"id: {len(ids)} ids for {out_frame.rows} predictions")
            else:
                cols = {name: _pylist(v) for name, v in out_frame.columns()}
                for i, rid in enumerate(ids):
                    if _kept(rid, spec.keep_predictions):
                        win.pred_ids.append(rid)
                        win.pred_t.append(wall)
                        win.pred_values.append(_encoded({k: c[i] for k, c in cols.items()}, "outputs"))
        sampler = win.samplers.get(spec.name)
        if sampler is None:
            sampler = win.samplers[spec.name] = WindowSampler(spec.sampler, self._rng)
        if sampler.choose([exc is not None])[0]:
            win.samples.setdefault(spec.name, []).append(
                {
                    "t": wall,
                    "id": None,
                    "latency_ms": (t1 - t0) / 1e6,
                    "status": "ok" if exc is None else error,
                    "error": None if exc is None else _cell(str(exc)),
                    "inputs": f"batch of {rows} rows",
                    "outputs": None,
                    "stages": stage_times.get(t0),
                }
            )

    def _drain_labels(self, out: Drained) -> None:
        q = self._labels
        if not q:
            return
        items = [q.popleft() for _ in range(len(q))]
        out.labels.append(
            LabelRows(
                project=self.project,
                subject=self.subject,
                ids=[i for i, _, _ in items],
                values=[_encoded(v, "label") for _, v, _ in items],
                t=[t for _, _, t in items],
            )
        )

    def _emit(self, win: _Window, out: Drained) -> None:
        traffic = win.traffic
        if traffic.quality:
            fresh = sorted(set(traffic.quality) - self._warned_quality)
            if fresh:
                log.warning(
                    "watchkeeper: window %s: input problems: %s",
                    time.strftime("%H:%M:%S", time.localtime(win.start)),
                    "; ".join(f"{k} ({traffic.quality[k]}x)" for k in sorted(traffic.quality)),
                )
                self._warned_quality.update(fresh)
        prof = Profile(win.columns, rows=win.rows, traffic=traffic, roles=win.roles)
        out.profiles.append(
            ProfileLog(
                project=self.project,
                subject=self.subject,
                kind="window",
                window_start=win.start,
                window_end=win.end,
                rows=win.rows,
                data=prof.to_bytes(),
                format_version=prof.format_version,
                run_id=self.run_id,
            )
        )
        for endpoint, rows in win.samples.items():
            if rows:
                out.samples.append(
                    SampleRows(
                        project=self.project,
                        key=f"samples/{endpoint}",
                        t=win.start,
                        rows=rows,
                        run_id=self.run_id,
                    )
                )
        if win.pred_ids:
            out.predictions.append(
                PredictionRows(
                    project=self.project,
                    subject=self.subject,
                    ids=win.pred_ids,
                    t=win.pred_t,
                    values=win.pred_values,
                    run_id=self.run_id,
                )
            )


def _as_mapping(row: Any) -> Any:
    """A per-call value in mapping form where it has one: positions of a vector, a Series' dict."""
    if isinstance(row, np.ndarray) and row.ndim == 1:
        return dict(zip(map(str, range(row.size)), row.tolist(), strict=True))
    if isinstance(row, list | tuple) and row and all(isinstance(v, int | float) for v in row):
        return dict(zip(map(str, range(len(row))), row, strict=True))
    if not isinstance(row, Mapping) and hasattr(row, "to_dict") and hasattr(row, "index"):
        try:
            return {str(k): v for k, v in row.to_dict().items()}  # a pandas Series
        except (TypeError, ValueError):
            return row
    return row


def _route_template(route: Any) -> str:
    """An ASGI route object's path template (see watchkeeper.integrations.fastapi), ``unmatched`` if none."""
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


def _kept(rid: str, rate: float) -> bool:
    """The same ids are kept in every process: a hash of the id, not a random draw."""
    if rate >= 1.0:
        return True
    return zlib.crc32(rid.encode()) % 1_000_000 < rate * 1_000_000


def _extract(
    fn: Callable[..., Any], recs: list[tuple], problems: Callable[..., None], what: str
) -> list[Any]:
    out: list[Any] = []
    for r in recs:
        try:
            out.append(fn(*r[3], **r[4]) if r[4] else fn(*r[3]))
        except Exception as exc:
            problems(f"{what}: extractor raised {type(exc).__name__}")
            out.append(_FAILED)
    return out


def _extract_results(
    fn: Callable[[Any], Any], results: list[Any], problems: Callable[..., None]
) -> list[Any]:
    out = []
    for r in results:
        try:
            got = fn(r)
        except Exception as exc:
            problems(f"outputs: extractor raised {type(exc).__name__}")
            got = _FAILED
        if got is not None and got is not _FAILED and type(got) is not dict and not isinstance(got, Mapping):
            got = {"output": got}
        out.append(got)
    return out


def _auto_outputs(result: Any, problems: Callable[..., None]) -> Any:
    """Outputs read without an extractor: a mapping as is, a scalar or a 1-D array as ``output``."""
    if result is None or isinstance(result, Mapping):
        return result
    if isinstance(result, bool | int | float | str | np.generic):
        return {"output": result}
    if isinstance(result, list | tuple | np.ndarray):
        arr = np.asarray(result)
        if arr.ndim == 1 and arr.dtype.kind in "biuf":
            return {"output": arr.tolist()}
    problems(f"outputs: cannot read a {type(result).__name__} without outputs=")
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _encoded(value: Any, where: str) -> Any:
    """``value`` in stored JSON form (NaN and infinities tagged); what JSON cannot hold becomes its repr."""
    try:
        return codec.encode(_jsonable(value), where=where)
    except (TypeError, ValueError, RecursionError):
        return repr(value)[:MAX_CELL_CHARS]


def _cell(value: Any) -> Any:
    """A sampled value as stored: JSON, and no larger than MAX_CELL_CHARS (else a truncated text)."""
    v = _encoded(value, "sample")
    text = json.dumps(v, separators=(",", ":"))
    if len(text) > MAX_CELL_CHARS:
        return {"_truncated": True, "chars": len(text), "head": text[:MAX_CELL_CHARS]}
    return v


def _pylist(values: Any) -> list[Any]:
    if isinstance(values, pa.ChunkedArray | pa.Array):
        return values.to_pylist()
    return list(values)
