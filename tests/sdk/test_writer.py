"""The background writer: retries a failing store, applies every batch once, and never raises into log()."""

from __future__ import annotations

import logging
import threading

import pytest

import watchkeeper as wk
from watchkeeper.errors import StoreError
from watchkeeper.sdk.run import Run
from watchkeeper.sdk.transport import LocalTransport
from watchkeeper.store import Batch, Store, WriteResult


class FlakyTransport(LocalTransport):
    """Fails the first ``failures`` sends; every other one applies the batch but loses the acknowledgement,
    so the writer must resend, and the store must recognise the resend."""

    def __init__(self, store: Store, failures: int) -> None:
        super().__init__(store)
        self.failures = failures
        self.calls = 0
        self.lock = threading.Lock()

    def send(self, batch: Batch) -> WriteResult:
        with self.lock:
            self.calls += 1
            n = self.calls
        if n == 1:
            return super().send(batch)  # the run start
        if n <= 1 + self.failures:
            raise StoreError("database is locked (simulated)")
        if n % 2 == 0:
            super().send(batch)
            raise StoreError("connection reset after commit (simulated)")
        return super().send(batch)


def test_failing_store_then_recovery_loses_nothing_and_duplicates_nothing(store_uri, caplog):
    store = Store(store_uri)
    transport = FlakyTransport(Store(store_uri), failures=3)
    run = Run(transport, project="p", flush_interval=0.01)
    with caplog.at_level(logging.WARNING, logger="watchkeeper"):
        for i in range(30_000):
            run.log({"x": i})
        run.finish()
    assert "could not write to the store" in caplog.text
    (s,) = store.signals.summaries(run.id)
    assert (s.count, s.min, s.max) == (30_000, 0.0, 29_999.0)
    assert store.runs.get(run.id).status == "finished"


def test_a_store_that_never_recovers_does_not_raise_and_says_what_was_lost(store_uri, caplog):
    transport = FlakyTransport(Store(store_uri), failures=10**9)
    run = Run(transport, project="p", flush_interval=0.01, finish_timeout=0.3)
    with caplog.at_level(logging.WARNING, logger="watchkeeper"):
        for i in range(1000):
            run.log({"x": i})
        run.finish()  # returns after the timeout, no exception
    assert "1000 points could not be written" in caplog.text


def test_a_full_queue_drops_counts_and_reports(store_uri, caplog):
    transport = FlakyTransport(Store(store_uri), failures=0)
    run = Run(transport, project="p", max_queue=100, flush_interval=3600)
    with caplog.at_level(logging.WARNING, logger="watchkeeper"):
        for i in range(250):
            run.log({"x": i})
    assert "dropping new steps" in caplog.text
    run.finish()
    info = Store(store_uri).runs.get(run.id)
    assert info.summary["_dropped_steps"] == 150
    assert Store(store_uri).signals.summaries(run.id)[0].count == 100


def test_logging_from_several_threads_keeps_every_point(store_uri):
    run = wk.init(project="p", uri=store_uri, flush_interval=0.01)

    def work(k: int) -> None:
        for i in range(5000):
            run.log({f"t{k}": i})

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.finish()
    counts = {s.name: s.count for s in Store(store_uri).signals.summaries(run.id)}
    assert counts == {f"t{k}": 5000 for k in range(4)}


def test_a_forked_child_does_not_write_or_hang(store_uri):
    import os

    run = wk.init(project="p", uri=store_uri)
    run.log({"x": 1})
    pid = os.fork()
    if pid == 0:  # child: logging must neither raise nor block, and exit must be clean
        try:
            run.log({"x": 2})
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    run.finish()
    assert Store(store_uri).signals.summaries(run.id)[0].count == 1


@pytest.mark.parametrize("bad_uri", ["mysql://x@y/z", "not a uri"])
def test_bad_store_uri_is_a_clear_error(bad_uri):
    with pytest.raises(StoreError, match=r"sqlite|database URL"):
        wk.init(project="p", uri=bad_uri)


def test_heartbeats_go_out_even_with_a_long_flush_interval(store_uri, monkeypatch):
    import time

    from watchkeeper.sdk import run as run_module

    monkeypatch.setattr(run_module, "HEARTBEAT_EVERY", 0.05)
    run = wk.init(project="p", uri=store_uri, flush_interval=3600)
    first = Store(store_uri).runs.get(run.id).heartbeat_at
    deadline = time.time() + 10
    while Store(store_uri).runs.get(run.id).heartbeat_at == first and time.time() < deadline:
        time.sleep(0.05)
    assert Store(store_uri).runs.get(run.id).heartbeat_at > first
    run.finish()


class PoisonTransport(LocalTransport):
    """Refuses every third batch that carries points for good, as a constraint violation in one of its
    points would; a batch of run records alone (what the writer resends of a refused one) goes through."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.calls = 0

    def send(self, batch: Batch) -> WriteResult:
        if batch.points:
            self.calls += 1
            if self.calls % 3 == 0:
                raise StoreError("FOREIGN KEY constraint failed (simulated)", transient=False)
        return super().send(batch)


def test_a_batch_refused_for_good_is_dropped_and_the_rest_still_arrive(store_uri, caplog):
    import time

    store = Store(store_uri)
    run = Run(PoisonTransport(Store(store_uri)), project="p", flush_interval=0.01)
    with caplog.at_level(logging.ERROR, logger="watchkeeper"):
        for i in range(2000):
            run.log({"x": i})
            if i % 200 == 0:
                time.sleep(0.03)  # several batches
        run.finish()
    assert "the store refused a batch" in caplog.text
    assert run._writer.rejected >= 1
    assert 0 < store.signals.summaries(run.id)[0].count < 2000
    assert store.runs.get(run.id).status == "finished"  # the final batch still went through
