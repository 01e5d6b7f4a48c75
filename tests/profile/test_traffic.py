"""The traffic section of a profile (format 2): merge laws, exact latency merging, serialisation."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pyarrow as pa
import pytest

import watchkeeper as wk
from watchkeeper.profile import Profile, Traffic, Usage
from watchkeeper.sketch import LatencySketch

RNG = np.random.default_rng(5)


def _traffic(seed: int) -> Traffic:
    rng = np.random.default_rng(seed)
    t = Traffic()
    n = int(rng.integers(50, 500))
    errors = [None if u > 0.05 else ("TimeoutError" if u < 0.02 else "ValueError") for u in rng.random(n)]
    t.endpoint("predict").update(rng.lognormal(-4, 1, n), errors)
    t.endpoint("GET /items/{id}", "http").update(
        rng.lognormal(-5, 1, 20), [None] * 20, rng.choice([200, 404], 20)
    )
    t.stage("fetch").update(rng.lognormal(-6, 1, n))
    t.usage.setdefault("gpt-x", Usage(calls=3, input_tokens=100 * seed, output_tokens=7, cost=0.25))
    t.count_problem("features: None", seed)
    t.dropped = seed
    return t


def test_merge_is_associative_and_commutative_to_the_byte():
    a, b, c = _traffic(1), _traffic(2), _traffic(3)
    assert a.merge(b).encode() == b.merge(a).encode()
    assert a.merge(b).merge(c).encode() == a.merge(b.merge(c)).encode()


def test_merged_counts_and_latency_equal_one_traffic_fed_everything():
    x = RNG.lognormal(-4, 1, 3000)
    errs = [None if u > 0.1 else "KeyError" for u in RNG.random(3000)]
    parts = [Traffic() for _ in range(3)]
    for i, p in enumerate(parts):
        p.endpoint("predict").update(x[i::3], errs[i::3])
    merged = parts[0].merge(parts[1]).merge(parts[2])
    whole = Traffic()
    whole.endpoint("predict").update(x, errs)
    ep, want = merged.endpoints["predict"], whole.endpoints["predict"]
    assert ep.requests == 3000 and ep.errors == {"KeyError": errs.count("KeyError")}
    assert ep.latency == want.latency == LatencySketch().update(x)  # bucket counts add exactly
    p99 = np.quantile(x, 0.99, method="lower")
    assert abs(ep.latency.quantile(0.99) - p99) <= 0.01 * p99


def test_calls_and_http_totals_keep_functions_and_routes_apart():
    t = _traffic(4)
    assert t.calls.requests == t.endpoints["predict"].requests
    assert t.http.requests == 20 and t.http.statuses == t.endpoints["GET /items/{id}"].statuses
    d = t.to_dict()
    assert d["endpoints"]["predict"]["requests"] == t.endpoints["predict"].requests
    assert d["endpoints"]["predict"]["p99_ms"] == pytest.approx(
        t.endpoints["predict"].latency.quantile(0.99) * 1e3
    )


def test_profile_with_traffic_and_roles_round_trips_as_format_2():
    base = wk.profile(pa.table({"x": RNG.normal(size=100), "score": RNG.random(100)}))
    prof = Profile(base.columns, rows=base.rows, traffic=_traffic(6), roles={"score": "output"})
    blob = prof.to_bytes()
    assert blob[4] == 2 and prof.format_version == 2
    back = Profile.from_bytes(blob)
    assert back == prof and back.traffic == prof.traffic
    assert back.inputs() == ["x"] and back.outputs() == ["score"]
    merged = back.merge(Profile(base.columns, rows=base.rows))  # with a profile that has no traffic
    assert merged.traffic == prof.traffic and merged.rows == 200


def test_a_profile_without_traffic_is_still_written_as_format_1():
    prof = wk.profile(pa.table({"x": [1.0, 2.0]}))
    blob = prof.to_bytes()
    assert blob[4] == 1 and prof.format_version == 1 and prof.traffic is None


def test_unknown_sections_and_roles_are_refused_clearly():
    prof = Profile(wk.profile(pa.table({"x": [1.0]})).columns, rows=1, roles={"x": "output"})
    body = prof.to_bytes()[:-4]
    tampered = body.replace(b"roles", b"votes")
    tampered += struct.pack("<I", zlib.crc32(tampered))
    with pytest.raises(ValueError, match="section 'votes' is unknown: a newer watchkeeper wrote it"):
        Profile.from_bytes(tampered)
    with pytest.raises(ValueError, match="role must be one of"):
        Profile(roles={"x": "target"})
