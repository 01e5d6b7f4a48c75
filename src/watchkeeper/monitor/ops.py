"""Operational signals of a window: traffic, latency and errors, per endpoint and in total.

Per endpoint (label ``endpoint=<name>``: a watched function or an HTTP route) and once for the whole
deployment without an ``endpoint`` label — the merge of its HTTP routes when the window has any (what the
deployment's clients saw), else of its watched functions:

* ``requests`` and ``request_rate`` (requests per second of the window: ``requests / (end - start)``);
* ``latency_p50_ms``, ``latency_p95_ms``, ``latency_p99_ms``: quantiles of the merged latency sketch
  (DDSketch, within its relative error ``alpha`` (1%) of the exact order statistic of rank
  ``floor(q * (n - 1))``, see :mod:`watchkeeper.sketch.latency`); ``latency_mean_ms`` (exact: the sketch
  keeps the sum) and ``latency_max_ms`` (exact). The sketch holds seconds; signals are milliseconds. NaN
  when no request has a latency;
* ``errors`` and ``error_rate = errors / requests``; ``error_type_rate{error_type=...}`` per error type
  (an exception's class name, ``HTTP 503`` for a server error of a route). The per-type rate has its own
  name so that a rule on ``error_rate`` matches the overall rate only.

And for the window as a whole: ``stage_latency_p95_ms`` per named stage (label ``stage``),
``dropped_calls`` (calls the SDK dropped because its queue was full) and ``input_problems{problem=...}``
(inputs or outputs it could not read, by kind).

A window without a traffic section (a profile logged from data, not from serving) gives nothing here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np

from watchkeeper.monitor.base import Derived, WindowContext
from watchkeeper.profile.traffic import Endpoint
from watchkeeper.sketch import LatencySketch

LATENCY_QUANTILES = (("latency_p50_ms", 0.5), ("latency_p95_ms", 0.95), ("latency_p99_ms", 0.99))
STAGE_QUANTILES = (("stage_latency_p95_ms", 0.95),)


def derive(ctx: WindowContext) -> Iterator[Derived]:
    prof = ctx.profile
    if prof is None or prof.traffic is None:
        return
    traffic = prof.traffic
    seconds = ctx.seconds
    if traffic.endpoints:
        for name in sorted(traffic.endpoints):
            yield from endpoint_signals(traffic.endpoints[name], seconds, {"endpoint": name})
        has_http = any(ep.kind == "http" for ep in traffic.endpoints.values())
        yield from endpoint_signals(traffic.http if has_http else traffic.calls, seconds, {})
    for stage in sorted(traffic.stages):
        for name, value in zip(
            (n for n, _ in STAGE_QUANTILES),
            _quantiles_ms(traffic.stages[stage], STAGE_QUANTILES),
            strict=True,
        ):
            yield Derived(name, value, {"stage": stage})
    yield Derived("dropped_calls", float(traffic.dropped))
    for problem in sorted(traffic.quality):
        yield Derived("input_problems", float(traffic.quality[problem]), {"problem": problem})


def endpoint_signals(ep: Endpoint, seconds: float, labels: Mapping[str, str]) -> Iterator[Derived]:
    """The signals of one endpoint (or of a total) over a window of ``seconds``."""
    labels = dict(labels)
    requests = ep.requests
    yield Derived("requests", float(requests), labels)
    yield Derived("request_rate", requests / seconds if seconds > 0 else math.nan, labels)
    sk = ep.latency
    for (name, _), value in zip(LATENCY_QUANTILES, _quantiles_ms(sk, LATENCY_QUANTILES), strict=True):
        yield Derived(name, value, labels)
    yield Derived("latency_mean_ms", sk.sum / sk.count * 1e3 if sk.count else math.nan, labels)
    yield Derived("latency_max_ms", sk.max * 1e3 if sk.count else math.nan, labels)
    errors = ep.error_count
    yield Derived("errors", float(errors), labels)
    yield Derived("error_rate", errors / requests if requests else math.nan, labels)
    for error_type in sorted(ep.errors):
        rate = ep.errors[error_type] / requests if requests else math.nan
        yield Derived("error_type_rate", rate, {**labels, "error_type": error_type})


def _quantiles_ms(sk: LatencySketch, which: tuple[tuple[str, float], ...]) -> list[float]:
    if not sk.count:
        return [math.nan] * len(which)
    return (np.asarray(sk.quantile(np.array([q for _, q in which]))) * 1e3).tolist()
