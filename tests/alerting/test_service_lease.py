"""The monitoring service and its lease, in one process: who runs, who stands by, standing down when the
lease cannot be renewed, and ``watchkeeper monitor --once`` beside a replica that holds the lease."""

from __future__ import annotations

import re
import time

import pytest
from typer.testing import CliRunner

from watchkeeper.alerting.service import LEASE, MonitoringService
from watchkeeper.cli import app
from watchkeeper.store import Store


def _running(service: MonitoringService) -> bool:
    thread = service.runner._thread
    return thread is not None and thread.is_alive() and service.engine._thread is not None


def test_one_service_runs_the_other_stands_by_and_takes_over_when_it_stops(store_uri):
    a = MonitoringService(Store(store_uri), lease_ttl=2.0, holder="a", monitor_interval=60)
    b = MonitoringService(Store(store_uri), lease_ttl=2.0, holder="b", monitor_interval=60)
    try:
        assert a.tick() and a.active and _running(a)
        assert not b.tick() and not b.active and not _running(b)
        a.stop()  # gives the lease up
        assert not _running(a) and a.store.leases.holder(LEASE) is None
        assert b.tick() and _running(b)
        assert b.lease is not None and b.lease.epoch == 2
    finally:
        for s in (a, b):
            s.stop()
            s.store.close()


def test_a_holder_that_cannot_renew_stands_down_and_the_lease_passes_on(store_uri, monkeypatch):
    a = MonitoringService(Store(store_uri), lease_ttl=1.0, holder="a", monitor_interval=60)
    b = MonitoringService(Store(store_uri), lease_ttl=1.0, holder="b", monitor_interval=60)
    try:
        assert a.tick()

        def away(*args, **kwargs):
            raise ConnectionError("the database is away")

        monkeypatch.setattr(a.store.leases, "acquire", away)
        assert not a.tick() and not a.active and not _running(a)  # cannot prove it: stops at once
        assert not b.tick()  # a's lease has not expired yet
        time.sleep(1.1)
        assert b.tick() and _running(b)
    finally:
        for s in (a, b):
            s.stop()
            s.store.close()


def test_without_a_lease_the_service_runs_unconditionally(sqlite_uri):
    s = MonitoringService(Store(sqlite_uri), lease_ttl=None, monitor_interval=60)
    try:
        s.start()
        assert s.active and _running(s)
        assert s.store.leases.get(LEASE) is None  # it never asked
    finally:
        s.stop()
        s.store.close()


def test_monitor_once_does_nothing_while_a_replica_holds_the_lease(sqlite_uri):
    store = Store(sqlite_uri)
    try:
        assert store.leases.acquire(LEASE, "vm:123:replica", 60.0) is not None
        out = CliRunner().invoke(app, ["monitor", "--once", "--uri", sqlite_uri])
        assert out.exit_code == 0, out.output
        assert "vm:123:replica holds the 'monitor' lease" in out.output and "nothing done" in out.output
        assert store.leases.release(LEASE, "vm:123:replica")
        out = CliRunner().invoke(app, ["monitor", "--once", "--uri", sqlite_uri])
        assert out.exit_code == 0 and "window(s) monitored" in out.output, out.output
        assert store.leases.holder(LEASE) is None  # --once gave it up on its way out
    finally:
        store.close()


@pytest.mark.parametrize("bad", [0, -1.0, float("inf")])
def test_a_bad_ttl_is_refused(sqlite_uri, bad):
    store = Store(sqlite_uri)
    try:
        with pytest.raises(ValueError, match="lease_ttl"):
            MonitoringService(store, lease_ttl=bad)
    finally:
        store.close()


def test_the_holder_rolls_old_windows_up_by_the_settings_policy(sqlite_uri):
    import numpy as np

    from watchkeeper.monitor.base import MonitorSettings
    from watchkeeper.profile import profile
    from watchkeeper.store import Batch, ProfileLog

    rng = np.random.default_rng(0)
    day = 86_400.0
    start = (time.time() // day - 20) * day  # 20 days ago, a UTC midnight
    logs = []
    for k in range(6):  # six 10-minute windows in the first hour of that day
        p = profile({"x": rng.normal(size=100)})
        t = start + 600.0 * k
        logs.append(
            ProfileLog("p", "model:m@1", "window", t, t + 600.0, p.rows, p.to_bytes(), p.format_version)
        )
    store = Store(sqlite_uri)
    store.write(Batch(profiles=logs))
    settings = MonitorSettings.from_mapping({"retention": "8d:1h", "label_horizon": "7d"})
    service = MonitoringService(store, settings=settings, lease_ttl=None)
    try:
        result = service.rollup_once()
        assert result is not None and result.buckets == 1
        (merged,) = store.profiles.windows("p", "model:m@1")
        assert (merged.kind, merged.window_start, merged.window_end, merged.rows) == (
            "rollup",
            start,
            start + 3600.0,
            600,
        )
        assert service.rollup_once().buckets == 0  # nothing left to do
    finally:
        service.stop()
        store.close()


def test_a_bad_retention_setting_names_itself():
    from watchkeeper.monitor.base import MonitorSettings

    with pytest.raises(ValueError, match=r"monitor\.retention"):
        MonitorSettings.from_mapping({"retention": "8d"})
    with pytest.raises(ValueError, match=r"monitor\.retention"):
        MonitorSettings.from_mapping({"retention": "1d:1h"})  # younger than the label horizon
    # a longer label horizon alone: the default retention no longer fits, and the error says what to set
    with pytest.raises(ValueError, match="set retention to levels older than it"):
        MonitorSettings.from_mapping({"label_horizon": "30d"})
    assert MonitorSettings.from_mapping({"label_horizon": "30d", "retention": "31d:1h"}).retention == "31d:1h"


def test_shards_hold_leases_of_their_own_and_only_shard_0_runs_the_rules(store_uri):
    services = [
        MonitoringService(Store(store_uri), lease_ttl=5.0, holder=f"r{k}", monitor_interval=60, shard=(k, 2))
        for k in range(2)
    ]
    spare = MonitoringService(
        Store(store_uri), lease_ttl=5.0, holder="spare", monitor_interval=60, shard=(1, 2)
    )
    try:
        assert [s.tick() for s in services] == [True, True]  # two shards, two holders at once
        assert not spare.tick()  # shard 1 is held
        assert [s.lease_name for s in services] == ["monitor:0/2", "monitor:1/2"]
        assert services[0].engine._thread is not None and services[1].engine._thread is None
        assert services[0].store.leases.holder("monitor:1/2") == "r1"
        assert services[0].store.leases.holder(LEASE) is None  # the unsharded lease is another one
        services[1].stop()
        assert spare.tick() and spare.lease_name == "monitor:1/2"
    finally:
        for s in (*services, spare):
            s.stop()
            s.store.close()


def test_db_leases_shows_who_holds_each_lease(sqlite_uri):
    store = Store(sqlite_uri)
    try:
        assert store.leases.acquire("monitor:0/2", "vm:101:aa", 60.0) is not None
        assert store.leases.acquire("monitor:1/2", "vm:102:bb", 60.0) is not None
        assert store.leases.release("monitor:1/2", "vm:102:bb")
        assert [(x.name, x.holder, x.epoch) for x in store.leases.list()] == [
            ("monitor:0/2", "vm:101:aa", 1),
            ("monitor:1/2", "vm:102:bb", 1),
        ]
    finally:
        store.close()
    out = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["db", "leases", "--uri", sqlite_uri])
    assert out.exit_code == 0, out.output
    rows = {line.split("│")[1].strip(): line for line in out.output.splitlines() if "monitor:" in line}
    assert "vm:101:aa" in rows["monitor:0/2"]
    assert re.search(r"held, expires in (4\d|5\d)s", rows["monitor:0/2"])  # a 60-s lease, seconds ago
    assert re.search(r"free \(expired or given up \d+s ago\)", rows["monitor:1/2"])
