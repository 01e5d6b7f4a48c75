"""Failover of the monitors and alert rules between server replicas over one PostgreSQL database.

Two ``watchkeeper server`` processes (the real command, ``--rules``, a 3-s monitor lease, passes every half
second) share the session's PostgreSQL database; a webhook receiver on 127.0.0.1 stands for the on-call
channel. Exactly one replica holds the lease and runs the monitors: a window of a deployment whose p99
latency went bad becomes signals and one notification. Then:

* the owner is killed (SIGKILL: no clean-up, the lease is left to expire); the standby takes over within the
  lease's time-to-live plus one renewal period, monitors the windows written since, and does not announce the
  alert that was already firing (it read the states its predecessor saved);
* a third replica starts, and the owner is stopped cleanly (SIGTERM): it gives the lease up, and the third one
  takes over at its next request, well before the lease would have expired.

Every window is monitored: each has its signal, once. About 25 s. Skips without PostgreSQL (``pg_uri``).
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from watchkeeper.profile import Profile, Traffic
from watchkeeper.store import Batch, ProfileLog, Store

httpx = pytest.importorskip("httpx", reason="the server tests need httpx (the dev extra)")
pytest.importorskip("uvicorn", reason="the server needs uvicorn (the dev extra)")

_servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))  # tests/servers.py
_replicas = runpy.run_path(str(Path(__file__).with_name("test_replicas.py")))
free_port, Sink = _servers["free_port"], _servers["WebhookSink"]
_command, _stop, _wait_healthy = _replicas["_command"], _replicas["_stop"], _replicas["_wait_healthy"]

TTL = 3.0
SUBJECT = "model:fraud-clf@1"


def _slow_window(start: float, n: int = 200) -> ProfileLog:
    """A minute of ``predict`` calls taking about 800 ms (p99 far above the rule's 500 ms)."""
    traffic = Traffic()
    traffic.endpoint("predict").update(np.linspace(0.7, 0.9, n), [None] * n)
    prof = Profile({}, rows=n, traffic=traffic)
    return ProfileLog("shop", SUBJECT, "window", start, start + 60.0, n, prof.to_bytes(), prof.format_version)


class Replica:
    def __init__(self, pg_uri: str, rules: Path, tmp_path: Path, name: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("WATCHKEEPER_URI", "WATCHKEEPER_TOKEN")}
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = tmp_path / f"{name}.log"
        cmd = [
            *_command(),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            self.url.rsplit(":", 1)[1],
            "--uri",
            pg_uri,
            "--no-auth",
            "--rules",
            str(rules),
            "--lease-ttl",
            str(TTL),
            "--monitor-interval",
            "0.5",
            "--eval-interval",
            "0.5",
        ]
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, cwd=tmp_path)
        _wait_healthy(self.url, self.proc, self.log)

    @property
    def pid(self) -> int:
        return self.proc.pid


def _holder_pid(store: Store) -> int | None:
    holder = store.leases.holder("monitor")
    return None if holder is None else int(holder.split(":")[1])


def _wait(what: str, check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")


def _p99_points(store: Store) -> dict[float, list[float]]:
    """The deployment's p99 latency per window end (all endpoints), every point stored."""
    out: dict[float, list[float]] = {}
    for s in store.signals.series("shop", name="latency_p99_ms"):
        if s.labels.get("endpoint", "") != "":
            continue
        pts = store.signals.points_in(s.id)
        for t, v in zip(pts.t.tolist(), pts.value.tolist(), strict=True):
            out.setdefault(t, []).append(v)
    return out


def _firing(sink) -> list[dict]:
    alerts = []
    for _, body in sink.requests:
        alerts += [a for a in json.loads(body)["alerts"] if a["status"] == "firing"]
    return alerts


def test_the_monitor_lease_fails_over_when_the_owner_dies_or_stops(pg_uri, tmp_path):
    sink = Sink()
    rules = tmp_path / "rules.yml"
    rules.write_text(
        f"""
notifiers:
  - {{name: hook, type: webhook, url: "{sink.url}"}}
route:
  notifiers: [hook]
  group_by: [alertname]
  group_wait: 0s
rules:
  - name: HighP99Latency
    expr: latency_p99_ms{{model="fraud-clf", endpoint=""}} > 500
    lookback: 1h
"""
    )
    store = Store(pg_uri)
    replicas: list[Replica] = []
    # windows that closed long enough ago for the runner's 30-s settling time
    base = (time.time() // 60) * 60 - 600.0
    try:
        replicas = [Replica(pg_uri, rules, tmp_path, f"r{i}") for i in range(2)]
        owner_pid = _wait("a replica to take the lease", lambda: _holder_pid(store))
        assert owner_pid in {r.pid for r in replicas}
        owner = next(r for r in replicas if r.pid == owner_pid)
        standby = next(r for r in replicas if r.pid != owner_pid)

        store.write(Batch(profiles=[_slow_window(base)]))
        _wait("the first window's signal", lambda: base + 60.0 in _p99_points(store))
        _wait("the firing notification", lambda: _firing(sink))
        assert [a["labels"]["alertname"] for a in _firing(sink)] == ["HighP99Latency"]

        # the owner dies: nothing releases the lease, the standby takes it once it has expired
        owner.proc.send_signal(signal.SIGKILL)
        owner.proc.wait(10)
        killed = time.monotonic()
        store.write(Batch(profiles=[_slow_window(base + 60.0)]))
        _wait("the standby to take the lease", lambda: _holder_pid(store) == standby.pid, timeout=TTL * 4)
        took = time.monotonic() - killed
        assert took <= TTL + TTL / 3 + 2.0, took  # expiry, then at most one renewal period (and slack)
        _wait("the window written after the kill", lambda: base + 120.0 in _p99_points(store))

        # a clean stop gives the lease up: the third replica takes over at its next request
        third = Replica(pg_uri, rules, tmp_path, "r2")
        replicas.append(third)
        assert _holder_pid(store) == standby.pid  # a new replica does not take a held lease
        standby.proc.send_signal(signal.SIGTERM)
        standby.proc.wait(30)
        stopped = time.monotonic()
        _wait("the third replica to take the lease", lambda: _holder_pid(store) == third.pid, timeout=TTL * 4)
        assert time.monotonic() - stopped < TTL, "a released lease is taken at once, not after expiry"
        store.write(Batch(profiles=[_slow_window(base + 120.0)]))
        _wait("the window written after the stop", lambda: base + 180.0 in _p99_points(store))
        time.sleep(1.5)  # three more evaluations of the rule by the third replica

        points = _p99_points(store)
        assert sorted(points) == [base + 60.0, base + 120.0, base + 180.0]
        for t, values in points.items():
            assert len(values) == 1 and 700.0 <= values[0] <= 910.0, (t, values)  # within DDSketch's 1%
        # the alert fired once, and neither successor announced it again
        assert len(_firing(sink)) == 1, sink.requests
        lease = store.leases.get("monitor")
        assert lease is not None and lease.epoch == 3  # r0 or r1, then the standby, then the third
    finally:
        for r in replicas:
            _stop(r.proc)
        store.close()
        sink.close()
