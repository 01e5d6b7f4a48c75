"""The monitoring service and its lease, in one process: who runs, who stands by, standing down when the
lease cannot be renewed, and ``watchkeeper monitor --once`` beside a replica that holds the lease."""

from __future__ import annotations

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
