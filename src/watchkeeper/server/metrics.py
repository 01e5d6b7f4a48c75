r"""``GET /metrics``: the traffic of every deployment in the Prometheus text exposition format.

The format is the text format 0.0.4 of the Prometheus documentation, "Exposition formats":
https://prometheus.io/docs/instrumenting/exposition_formats/ . One ``# HELP`` and one ``# TYPE`` line per
metric family, then its samples ``name{label="value",...} number``; label values escape backslash, double
quote and line feed as ``\\``, ``\"`` and ``\n`` (HELP text escapes backslash and line feed); a histogram
is the series ``<name>_bucket{le="b"}`` of cumulative counts for increasing bounds, ending with
``le="+Inf"`` whose value is ``<name>_count``, beside ``<name>_sum``; a counter's name ends in ``_total``.
Written here by hand (``prometheus_client`` is only an anchor in ``bench/``), checked by
``promtool check metrics`` and by a real Prometheus scrape in the tests.

Metric families (``project``, ``model`` and ``version`` label every series; a run without a model has
``run`` in place of ``model`` and ``version``; ``endpoint`` is a watched function or an HTTP route and
``kind`` is ``function`` or ``http``):

======================================================  =========  ===========================================
name                                                    type       extra labels
======================================================  =========  ===========================================
``watchkeeper_requests_total``                          counter    endpoint, kind
``watchkeeper_errors_total``                            counter    endpoint, kind, error_type
``watchkeeper_responses_total``                         counter    endpoint, kind, code (HTTP status)
``watchkeeper_request_duration_seconds``                histogram  endpoint, kind
``watchkeeper_stage_duration_seconds``                  histogram  stage
``watchkeeper_llm_calls_total``                         counter    llm
``watchkeeper_tokens_total``                            counter    llm, direction (input or output)
``watchkeeper_cost_total``                              counter    llm (the priced calls' cost, as logged)
``watchkeeper_unpriced_llm_calls_total``                counter    llm
``watchkeeper_input_problems_total``                    counter    problem
``watchkeeper_dropped_records_total``                   counter
``watchkeeper_windows_total``                           counter
``watchkeeper_requests_per_second``                     gauge      endpoint, kind
``watchkeeper_last_window_timestamp_seconds``           gauge
======================================================  =========  ===========================================

Where the numbers come from. Counters and histograms are the totals of every window profile in the store (kind
``window``, and on the first read after a start, the roll-ups that old windows were merged into: see
:mod:`watchkeeper.monitor.retention`), kept in memory by :class:`TrafficTotals` and advanced incrementally:
the profiles table is read by row id above a watermark, so a scrape costs O(windows written since the last
one), and every server process or replica reports the same totals (they are a function of the store, not of
what one process saw). After a restart the totals are rebuilt from all stored windows, so a counter may start
again at a higher value than it had; Prometheus handles a counter that resets, and this one never goes down
while a process runs. On PostgreSQL a transaction can commit a lower id after a higher one became visible; ids
skipped over are looked for again on every scrape for ``GAP_SECONDS`` (rolled-back transactions leave ids that
never appear).

Histograms have fixed bounds, ``BOUNDS`` (1 ms to 60 s), the same on every scrape so that ``rate()`` and
``histogram_quantile()`` work. Each window's latency sketch (DDSketch, 1% relative accuracy, see
:mod:`watchkeeper.sketch.latency`) gives its cumulative counts at those bounds with
``LatencySketch.prometheus_buckets(BOUNDS)``, and the exposed counts are the sums over windows. That sum
never decreases, unlike the same estimate taken on the merged sketch, which can move down when a slower
request raises the merged maximum. The error at a bound ``b`` is at most the number of requests in the
sketch buckets straddling ``b``, i.e. requests within a factor ``gamma = 1.01/0.99`` (about 2%) of ``b``;
every other request is counted in exactly the bucket its duration falls in.

``watchkeeper_requests_per_second`` is the throughput of the latest closed window of a deployment: over the
window profiles that end latest, the sum of ``requests / (window_end - window_start)``, so replicas add up
(a replica whose window arrives later is added when it arrives). ``rate(watchkeeper_requests_total[5m])`` is
the steadier figure.

The monitors' and the alert engine's results are gauges read at each scrape: ``watchkeeper_drift_score``
and ``watchkeeper_dataset_drift_share`` are the latest values of the signals of those names (per feature),
and ``watchkeeper_alerts`` is 1 per pending or firing alert instance with its labels and ``alertstate``, as
Prometheus' own ``ALERTS`` series.

Access: a read or write token sees the series of its own project only; ``--no-auth`` sees every project.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import numpy as np
import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from watchkeeper.profile import Profile, Usage
from watchkeeper.server.auth import Principal, principal
from watchkeeper.server.schema import problems
from watchkeeper.store.profiles import parse_model_subject
from watchkeeper.store.schema import profiles, projects

if TYPE_CHECKING:
    from watchkeeper.sketch import LatencySketch
    from watchkeeper.store import Store

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BOUNDS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Upper bounds (seconds) of the latency histograms' buckets, besides ``+Inf``."""
GAP_SECONDS = 300.0
"""How long a profile id skipped over by the watermark is looked for again (a transaction still open)."""
MAX_GAPS = 10_000
"""At most this many skipped ids are remembered; a larger jump (a sequence moved on) is not tracked."""
CHUNK = 500
"""Profiles read per query while catching up, so a rebuild after a restart holds few blobs at once."""

FAMILIES: dict[str, tuple[str, str]] = {
    "watchkeeper_requests_total": ("counter", "Requests to a watched function or HTTP route."),
    "watchkeeper_errors_total": ("counter", "Requests that raised or failed, by error type."),
    "watchkeeper_responses_total": ("counter", "HTTP responses by status code."),
    "watchkeeper_request_duration_seconds": (
        "histogram",
        "Request latency, seconds (window sketches).",
    ),
    "watchkeeper_stage_duration_seconds": ("histogram", "Latency of a named stage of a request, seconds."),
    "watchkeeper_llm_calls_total": ("counter", "Calls to an LLM or priced model."),
    "watchkeeper_tokens_total": ("counter", "Tokens sent to (input) and received from (output) an LLM."),
    "watchkeeper_cost_total": ("counter", "Cost of the priced LLM calls, in the unit their prices use."),
    "watchkeeper_unpriced_llm_calls_total": ("counter", "LLM calls without a price (not in the cost)."),
    "watchkeeper_input_problems_total": ("counter", "Inputs or outputs the SDK could not read, by kind."),
    "watchkeeper_dropped_records_total": ("counter", "Records the SDK dropped because its queue was full."),
    "watchkeeper_windows_total": ("counter", "Window profiles stored for the deployment."),
    "watchkeeper_requests_per_second": ("gauge", "Throughput over the latest closed window."),
    "watchkeeper_last_window_timestamp_seconds": ("gauge", "End of the latest window, Unix seconds."),
}
"""Every metric family: its type and HELP text, in the order of the exposition."""

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        **problems(401, 503),
        200: {
            "description": "The text exposition format 0.0.4",
            "content": {CONTENT_TYPE: {"schema": {"type": "string"}}},
        },
    },
)
def metrics(request: Request, who: Annotated[Principal, Depends(principal)]) -> Response:
    """The exposition of every project the caller may read."""
    totals: TrafficTotals = request.app.state.traffic_totals
    return Response(totals.exposition(who.can_read), media_type=CONTENT_TYPE)


# -- exposition -------------------------------------------------------------------------------------------


def escape_label(value: str) -> str:
    r"""A label value as the text format writes it between double quotes.

    >>> print(escape_label('a "b" \\ c\nd'))
    a \"b\" \\ c\nd
    """
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers as such, floats in shortest round-trip form, ``+Inf``, ``-Inf``, ``NaN``.

    >>> [format_value(v) for v in (3, 0.25, 1e-05, float("inf"), float("nan"))]
    ['3', '0.25', '1e-05', '+Inf', 'NaN']
    """
    if isinstance(value, int | np.integer):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


Labels = tuple[tuple[str, str], ...]


class Exposition:
    """Metric families written in the order they are declared, each family's samples together."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, str, list[str]]] = {}

    def family(self, name: str, kind: str, help_text: str) -> None:
        self._families[name] = (kind, help_text, [])

    def sample(self, family: str, labels: Labels, value: float, suffix: str = "") -> None:
        inner = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels)
        self._families[family][2].append(f"{family}{suffix}{{{inner}}} {format_value(value)}")

    def histogram(self, family: str, labels: Labels, hist: Histogram, bounds: Iterable[float]) -> None:
        for b, n in zip(bounds, hist.buckets.tolist(), strict=True):
            self.sample(family, (*labels, ("le", format_value(float(b)))), n, "_bucket")
        self.sample(family, (*labels, ("le", "+Inf")), hist.count, "_bucket")
        self.sample(family, labels, hist.sum, "_sum")
        self.sample(family, labels, hist.count, "_count")

    def text(self) -> str:
        """The exposition; families without samples are left out."""
        out = []
        for name, (kind, help_text, lines) in self._families.items():
            if lines:
                out += [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} {kind}", *lines]
        return "\n".join(out) + "\n" if out else ""


# -- totals -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Histogram:
    """Cumulative counts at fixed bounds (``+Inf`` excluded), with the count and sum of the durations."""

    buckets: np.ndarray
    count: int = 0
    sum: float = 0.0

    def add(self, sketch: LatencySketch, bounds: tuple[float, ...]) -> None:
        pairs = sketch.prometheus_buckets(bounds)
        self.buckets += np.fromiter((n for _, n in pairs[:-1]), dtype=np.int64, count=len(bounds))
        self.count += sketch.count
        self.sum += sketch.sum


@dataclass(slots=True)
class EndpointTotals:
    kind: str
    latency: Histogram
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)


@dataclass(slots=True)
class Deployment:
    """Everything the windows of one (project, subject) added up to, and its latest window."""

    project: str
    subject: str
    endpoints: dict[str, EndpointTotals] = field(default_factory=dict)
    stages: dict[str, Histogram] = field(default_factory=dict)
    usage: dict[str, Usage] = field(default_factory=dict)
    quality: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    windows: int = 0
    last_end: float = -math.inf
    last_rate: dict[str, float] = field(default_factory=dict)  # endpoint -> requests/s, latest windows

    @property
    def labels(self) -> Labels:
        """``model`` and ``version`` from a subject ``model:<name>@<version>``; else the run id as ``run``."""
        deployment = parse_model_subject(self.subject)
        if deployment is not None:
            return (("project", self.project), ("model", deployment[0]), ("version", deployment[1]))
        return (("project", self.project), ("run", self.subject))


def _add(into: dict, other: Mapping) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


class TrafficTotals:
    """The running totals of every window profile in ``store``, advanced by profile id on each scrape."""

    def __init__(self, store: Store, bounds: tuple[float, ...] = BOUNDS) -> None:
        if list(bounds) != sorted(set(bounds)) or not all(0 < b < math.inf for b in bounds):
            raise ValueError(f"bounds must be increasing, positive and finite (got {bounds!r})")
        self.store = store
        self.bounds = tuple(float(b) for b in bounds)
        self.watermark = 0  # the highest profile id read
        self._first_scan = True
        self.gaps: dict[int, float] = {}  # ids below the watermark not seen yet -> when first missed
        self.deployments: dict[tuple[str, str], Deployment] = {}
        self._lock = threading.Lock()

    def _histogram(self) -> Histogram:
        return Histogram(np.zeros(len(self.bounds), dtype=np.int64))

    # -- reading the store -----------------------------------------------------------------------------

    def advance(self) -> int:
        """Read the profiles written since the last call; returns how many windows were added."""
        with self._lock:
            return self._advance()

    def _advance(self) -> int:
        q = sa.select(
            profiles.c.id,
            projects.c.name,
            profiles.c.subject,
            profiles.c.kind,
            profiles.c.window_start,
            profiles.c.window_end,
            # only windows' blobs: a reference profile can be large and is of no use here
            sa.case((profiles.c.kind.in_(("window", "rollup")), profiles.c.data), else_=sa.null()),
        ).join(projects, projects.c.id == profiles.c.project_id)
        # roll-ups (old windows merged, see watchkeeper.monitor.retention) are read on the first scan only:
        # later, a roll-up written is made of windows already counted
        self._first_scan = self.watermark == 0
        added = 0
        now = time.monotonic()
        self.gaps = {i: t for i, t in self.gaps.items() if now - t < GAP_SECONDS}
        with self.store.connect() as conn:
            missing = sorted(self.gaps)
            for i in range(0, len(missing), CHUNK):
                for row in conn.execute(q.where(profiles.c.id.in_(missing[i : i + CHUNK]))):
                    del self.gaps[row[0]]
                    added += self._read(row)
            while True:
                after = q.where(profiles.c.id > self.watermark).order_by(profiles.c.id).limit(CHUNK)
                rows = conn.execute(after)
                n = 0
                for row in rows:
                    n += 1
                    skipped = row[0] - self.watermark - 1
                    if skipped > 0 and len(self.gaps) + skipped <= MAX_GAPS:
                        self.gaps.update(dict.fromkeys(range(self.watermark + 1, row[0]), now))
                    self.watermark = row[0]
                    added += self._read(row)
                if n < CHUNK:
                    break
        return added

    def _read(self, row: sa.Row) -> int:
        pid, project, subject, kind, start, end, data = row
        if kind != "window" and not (kind == "rollup" and self._first_scan):
            return 0
        try:
            traffic = Profile.from_bytes(data).traffic
        except ValueError as exc:  # a corrupt blob must not stop the scrapes
            log.warning(
                "metrics: window profile %d (%s, %s) unreadable, skipped: %s", pid, project, subject, exc
            )
            return 0
        dep = self.deployments.get((project, subject))
        if dep is None:
            dep = self.deployments[(project, subject)] = Deployment(project, subject)
        dep.windows += 1
        if end > dep.last_end:
            dep.last_end = end
            dep.last_rate = dict.fromkeys(dep.last_rate, 0.0)
        if traffic is None:
            return 1
        for name, ep in traffic.endpoints.items():
            tot = dep.endpoints.get(name)
            if tot is None:
                tot = dep.endpoints[name] = EndpointTotals(ep.kind, self._histogram())
                dep.last_rate.setdefault(name, 0.0)
            tot.requests += ep.requests
            _add(tot.errors, ep.errors)
            _add(tot.statuses, ep.statuses)
            tot.latency.add(ep.latency, self.bounds)
            if end == dep.last_end and end > start:
                dep.last_rate[name] += ep.requests / (end - start)
        for name, sketch in traffic.stages.items():
            if name not in dep.stages:
                dep.stages[name] = self._histogram()
            dep.stages[name].add(sketch, self.bounds)
        for name, use in traffic.usage.items():
            dep.usage[name] = use if name not in dep.usage else dep.usage[name].merge(use)
        _add(dep.quality, traffic.quality)
        dep.dropped += traffic.dropped
        return 1

    # -- writing the exposition ------------------------------------------------------------------------

    def exposition(self, can_read: Callable[[str], bool] = lambda project: True) -> str:
        """Advance, then write the families of the deployments whose project ``can_read`` accepts, then the
        monitors' drift gauges and the alert states."""
        with self._lock:
            self._advance()
            text = self._render([d for _, d in sorted(self.deployments.items()) if can_read(d.project)])
        return text + monitoring_exposition(self.store, can_read)

    def _render(self, deployments: list[Deployment]) -> str:
        out = Exposition()
        for name, (kind, help_text) in FAMILIES.items():
            out.family(name, kind, help_text)
        p = "watchkeeper_"
        for dep in deployments:
            base = dep.labels
            for name, ep in sorted(dep.endpoints.items()):
                labels = (*base, ("endpoint", name), ("kind", ep.kind))
                out.sample(f"{p}requests_total", labels, ep.requests)
                for err, n in sorted(ep.errors.items()):
                    out.sample(f"{p}errors_total", (*labels, ("error_type", err)), n)
                for code, n in sorted(ep.statuses.items()):
                    out.sample(f"{p}responses_total", (*labels, ("code", str(code))), n)
                out.histogram(f"{p}request_duration_seconds", labels, ep.latency, self.bounds)
                out.sample(f"{p}requests_per_second", labels, float(dep.last_rate.get(name, 0.0)))
            for name, hist in sorted(dep.stages.items()):
                out.histogram(f"{p}stage_duration_seconds", (*base, ("stage", name)), hist, self.bounds)
            for name, use in sorted(dep.usage.items()):
                labels = (*base, ("llm", name))
                out.sample(f"{p}llm_calls_total", labels, use.calls)
                out.sample(f"{p}tokens_total", (*labels, ("direction", "input")), use.input_tokens)
                out.sample(f"{p}tokens_total", (*labels, ("direction", "output")), use.output_tokens)
                out.sample(f"{p}cost_total", labels, float(use.cost))
                out.sample(f"{p}unpriced_llm_calls_total", labels, use.unpriced)
            for problem, n in sorted(dep.quality.items()):
                out.sample(f"{p}input_problems_total", (*base, ("problem", problem)), n)
            out.sample(f"{p}dropped_records_total", base, dep.dropped)
            out.sample(f"{p}windows_total", base, dep.windows)
            out.sample(f"{p}last_window_timestamp_seconds", base, float(dep.last_end))
        return out.text()


# -- monitors and alerts ----------------------------------------------------------------------------------

MONITOR_FAMILIES: dict[str, tuple[str, str, str]] = {
    # exposed name: (signal name, type, HELP)
    "watchkeeper_drift_score": (
        "drift_score",
        "gauge",
        "Latest drift statistic of a feature vs the reference.",
    ),
    "watchkeeper_dataset_drift_share": ("dataset_drift_share", "gauge", "Latest share of drifted features."),
}


def monitoring_exposition(store: Store, can_read: Callable[[str], bool]) -> str:
    """The latest drift signals of every deployment and the pending or firing alerts, as gauges."""
    out = Exposition()
    for family, (signal, kind, help_text) in MONITOR_FAMILIES.items():
        out.family(family, kind, help_text)
        for info in store.signals.series(name=signal, stats=True):
            deployment = parse_model_subject(info.subject)
            if deployment is None or not can_read(info.project) or info.count == 0:
                continue
            model, version = deployment
            labels = (("project", info.project), ("model", model), ("version", version))
            extra = {_label_name(k): v for k, v in info.labels.items() if k not in dict(labels)}
            labels += tuple(sorted(extra.items()))
            out.sample(family, labels, info.last)
    out.family(
        "watchkeeper_alerts", "gauge", "1 per pending or firing alert instance, as Prometheus' ALERTS."
    )
    for m in store.alerts.instances(("pending", "firing")):
        if not m["enabled"] or m["owner"] is None or not can_read(m["owner"]):
            continue
        labels = {_label_name(k): v for k, v in m["labels"].items()}
        out.sample("watchkeeper_alerts", tuple(sorted({**labels, "alertstate": m["state"]}.items())), 1.0)
    return out.text()


def _label_name(key: str) -> str:
    """A valid Prometheus label name: [a-zA-Z_][a-zA-Z0-9_]*, other characters replaced by ``_``."""
    name = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in key)
    return name if name and not name[0].isdigit() else f"_{name}"
