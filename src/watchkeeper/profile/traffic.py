"""What a window of serving traffic did, beside what its data looked like: the traffic section of a Profile.

Per endpoint (a watched function, or an HTTP route such as ``GET /predict``): requests, errors by type,
HTTP status counts and a latency sketch (seconds, DDSketch with 1% relative error). Per named stage
(``feature_fetch``, ``inference``, ...): a latency sketch. Per LLM/model name: calls, input and output tokens
and cost. Data-quality problems met while reading inputs and outputs, by kind. Calls the SDK dropped
because its queue was full.

Everything here merges exactly: counts add, and latency sketches merge by adding bucket counts, so the p99
of a day is read from the merge of its windows (and of all replicas), never from averaged percentiles.

Binary form (inside a Profile of format version 2, see :mod:`watchkeeper.profile.dataset`), little-endian,
every map written in sorted key order so that equal contents give equal bytes whatever the merge order::

    u32 endpoints, each: text name, u8 kind, u64 requests, map errors, u32 statuses (u16 code, u64 count),
                         u32 length + latency sketch
    u32 stages, each: text name, u32 length + latency sketch
    u32 usage entries, each: text model, u64 calls, u64 input tokens, u64 output tokens, f64 cost,
                             u64 unpriced calls
    map quality
    u64 dropped
    (a map is u32 n, then n times: text key, u64 count)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from watchkeeper.sketch import LatencySketch
from watchkeeper.sketch.base import BlobReader, BlobWriter

ENDPOINT_KINDS = ("function", "http")


def _add_counts(into: dict[Any, int], other: Mapping[Any, int]) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


@dataclass(slots=True)
class Endpoint:
    """Requests to one watched function or HTTP route in a window.

    >>> e = Endpoint("predict").update([0.010, 0.020, 0.030], ["ValueError", None, None])
    >>> e.requests, e.errors, round(e.error_rate, 4)
    (3, {'ValueError': 1}, 0.3333)
    """

    name: str
    kind: str = "function"
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)
    latency: LatencySketch = field(default_factory=LatencySketch)

    def update(
        self,
        seconds: Iterable[float] | np.ndarray,
        errors: Iterable[str | None] = (),
        statuses: Iterable[int] = (),
    ) -> Endpoint:
        """Record requests: their durations in seconds, the error type of each (None when it succeeded)
        and, for HTTP, each response status."""
        x = np.asarray(seconds, dtype=np.float64)
        self.requests += int(x.size)
        self.latency.update(x)
        for err in errors:
            if err is not None:
                self.errors[err] = self.errors.get(err, 0) + 1
        for status in statuses:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        return self

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def error_rate(self) -> float:
        return self.error_count / self.requests if self.requests else float("nan")

    def merge(self, other: Endpoint) -> Endpoint:
        out = Endpoint(
            self.name,
            self.kind,
            self.requests + other.requests,
            dict(self.errors),
            dict(self.statuses),
            self.latency.merge(other.latency),
        )
        _add_counts(out.errors, other.errors)
        _add_counts(out.statuses, other.statuses)
        return out


@dataclass(slots=True)
class Usage:
    """Token use and cost of calls to one (LLM) model. ``cost`` sums the priced calls; calls without a
    price are counted in ``unpriced``, so a cost is never silently understated."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0

    def merge(self, other: Usage) -> Usage:
        return Usage(
            self.calls + other.calls,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cost + other.cost,
            self.unpriced + other.unpriced,
        )


@dataclass(slots=True)
class Traffic:
    """The traffic section of a window's profile.

    >>> a = Traffic(); _ = a.endpoint("predict").update([0.01, 0.02], [None, "TimeoutError"])
    >>> b = Traffic(); _ = b.endpoint("predict").update([0.03], [None])
    >>> t = a.merge(b)
    >>> t.calls.requests, t.calls.errors
    (3, {'TimeoutError': 1})
    >>> Traffic.decode(BlobReader(t.encode(), 0, "traffic")) == t
    True
    """

    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    stages: dict[str, LatencySketch] = field(default_factory=dict)
    usage: dict[str, Usage] = field(default_factory=dict)
    quality: dict[str, int] = field(default_factory=dict)
    dropped: int = 0

    def endpoint(self, name: str, kind: str = "function") -> Endpoint:
        """The endpoint ``name``, created empty on first use."""
        ep = self.endpoints.get(name)
        if ep is None:
            if kind not in ENDPOINT_KINDS:
                raise ValueError(f"endpoint kind must be one of {ENDPOINT_KINDS}, got {kind!r}")
            ep = self.endpoints[name] = Endpoint(name, kind)
        return ep

    def stage(self, name: str) -> LatencySketch:
        sketch = self.stages.get(name)
        if sketch is None:
            sketch = self.stages[name] = LatencySketch()
        return sketch

    def count_problem(self, problem: str, n: int = 1) -> None:
        self.quality[problem] = self.quality.get(problem, 0) + n

    def _total(self, kind: str, name: str) -> Endpoint:
        out = Endpoint(name, kind)
        for ep in self.endpoints.values():
            if ep.kind == kind:
                out = out.merge(ep)
        return out

    @property
    def calls(self) -> Endpoint:
        """All watched functions together (the model's predictions)."""
        return self._total("function", "calls")

    @property
    def http(self) -> Endpoint:
        """All HTTP routes together."""
        return self._total("http", "http")

    @property
    def empty(self) -> bool:
        return not (self.endpoints or self.stages or self.usage or self.quality or self.dropped)

    def merge(self, other: Traffic) -> Traffic:
        out = Traffic(
            dict(self.endpoints),
            dict(self.stages),
            dict(self.usage),
            dict(self.quality),
            self.dropped + other.dropped,
        )
        for name, ep in other.endpoints.items():
            mine = out.endpoints.get(name)
            out.endpoints[name] = ep if mine is None else mine.merge(ep)
        for name, sk in other.stages.items():
            mine_sk = out.stages.get(name)
            out.stages[name] = sk if mine_sk is None else mine_sk.merge(sk)
        for name, use in other.usage.items():
            mine_use = out.usage.get(name)
            out.usage[name] = use if mine_use is None else mine_use.merge(use)
        _add_counts(out.quality, other.quality)
        return out

    # -- serialisation -------------------------------------------------------------------------------------

    def encode(self) -> bytes:
        out = BlobWriter()
        out.pack("I", len(self.endpoints))
        for name in sorted(self.endpoints):
            ep = self.endpoints[name]
            out.text(name)
            out.pack("BQ", ENDPOINT_KINDS.index(ep.kind), ep.requests)
            _write_map(out, ep.errors)
            out.pack("I", len(ep.statuses))
            for code in sorted(ep.statuses):
                out.pack("HQ", code, ep.statuses[code])
            _write_blob(out, ep.latency.to_bytes())
        out.pack("I", len(self.stages))
        for name in sorted(self.stages):
            out.text(name)
            _write_blob(out, self.stages[name].to_bytes())
        out.pack("I", len(self.usage))
        for name in sorted(self.usage):
            u = self.usage[name]
            out.text(name)
            out.pack("QQQdQ", u.calls, u.input_tokens, u.output_tokens, u.cost, u.unpriced)
        _write_map(out, self.quality)
        out.pack("Q", self.dropped)
        return out.getvalue()

    @classmethod
    def decode(cls, blob: BlobReader) -> Traffic:
        out = cls()
        for _ in range(blob.one("I")):
            name = blob.text()
            kind, requests = blob.unpack("BQ")
            if kind >= len(ENDPOINT_KINDS):
                raise ValueError(f"endpoint {name!r}: unknown kind code {kind}")
            errors = _read_map(blob)
            statuses = dict(blob.unpack("HQ") for _ in range(blob.one("I")))
            latency = LatencySketch.from_bytes(blob.take(blob.one("I")))
            out.endpoints[name] = Endpoint(name, ENDPOINT_KINDS[kind], requests, errors, statuses, latency)
        for _ in range(blob.one("I")):
            name = blob.text()
            out.stages[name] = LatencySketch.from_bytes(blob.take(blob.one("I")))
        for _ in range(blob.one("I")):
            name = blob.text()
            out.usage[name] = Usage(*blob.unpack("QQQdQ"))
        out.quality = _read_map(blob)
        out.dropped = blob.one("Q")
        return out

    def to_dict(self) -> dict[str, Any]:
        """A plain summary: per endpoint requests, errors and latency percentiles in milliseconds."""

        def ms(sk: LatencySketch) -> dict[str, float]:
            q = sk.quantile(np.array([0.5, 0.95, 0.99])) * 1e3
            return {
                "p50_ms": float(q[0]),
                "p95_ms": float(q[1]),
                "p99_ms": float(q[2]),
                "mean_ms": sk.sum / sk.count * 1e3 if sk.count else float("nan"),
            }

        return {
            "endpoints": {
                n: {
                    "kind": e.kind,
                    "requests": e.requests,
                    "errors": dict(e.errors),
                    "statuses": dict(e.statuses),
                    **ms(e.latency),
                }
                for n, e in sorted(self.endpoints.items())
            },
            "stages": {n: ms(s) for n, s in sorted(self.stages.items())},
            "usage": {
                n: {
                    "calls": u.calls,
                    "input_tokens": u.input_tokens,
                    "output_tokens": u.output_tokens,
                    "cost": u.cost,
                    "unpriced": u.unpriced,
                }
                for n, u in sorted(self.usage.items())
            },
            "quality": dict(sorted(self.quality.items())),
            "dropped": self.dropped,
        }


def _write_map(out: BlobWriter, counts: Mapping[str, int]) -> None:
    out.pack("I", len(counts))
    for key in sorted(counts):
        out.text(key)
        out.pack("Q", counts[key])


def _read_map(blob: BlobReader) -> dict[str, int]:
    out = {}
    for _ in range(blob.one("I")):
        key = blob.text()
        out[key] = blob.one("Q")
    return out


def _write_blob(out: BlobWriter, data: bytes) -> None:
    out.pack("I", len(data))
    out.raw(data)
