"""The store's leases: one holder at a time, renewals, release, expiry by the database's clock, and many
processes' worth of concurrent requests (threads with their own connections) granting it once, on SQLite
and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest

from watchkeeper.store import Store


def test_one_holder_renewals_release_and_takeover(store):
    first = store.leases.acquire("monitor", "a", 30.0)
    assert first is not None and first.holder == "a" and first.epoch == 1
    assert first.expires_at == pytest.approx(first.renewed_at + 30.0)
    assert store.leases.acquire("monitor", "b", 30.0) is None  # a holds it
    assert store.leases.holder("monitor") == "a"

    renewed = store.leases.acquire("monitor", "a", 30.0)
    assert renewed is not None and renewed.epoch == 1  # a renewal does not change hands
    assert renewed.acquired_at == first.acquired_at and renewed.renewed_at >= first.renewed_at

    assert not store.leases.release("monitor", "b")  # only the holder can give it up
    assert store.leases.release("monitor", "a")
    assert store.leases.holder("monitor") is None
    taken = store.leases.acquire("monitor", "b", 30.0)
    assert taken is not None and taken.holder == "b" and taken.epoch == 2
    assert store.leases.acquire("monitor", "a", 30.0) is None
    # leases are independent by name
    other = store.leases.acquire("rollup", "a", 30.0)
    assert other is not None and other.epoch == 1


def test_a_lease_not_renewed_expires_and_passes_on(store):
    assert store.leases.acquire("monitor", "a", 0.5) is not None
    assert store.leases.acquire("monitor", "b", 0.5) is None
    time.sleep(0.6)
    assert store.leases.holder("monitor") is None  # expired by the database's clock
    taken = store.leases.acquire("monitor", "b", 5.0)
    assert taken is not None and taken.holder == "b" and taken.epoch == 2
    assert store.leases.acquire("monitor", "a", 5.0) is None  # the old holder comes back too late


def test_bad_requests_name_the_field(store):
    with pytest.raises(ValueError, match="ttl"):
        store.leases.acquire("monitor", "a", 0)
    with pytest.raises(ValueError, match="ttl"):
        store.leases.acquire("monitor", "a", float("nan"))
    with pytest.raises(ValueError, match="holder"):
        store.leases.acquire("monitor", "", 1.0)


@pytest.mark.parametrize("rounds", [12])
def test_concurrent_requests_grant_the_lease_to_one(store_uri, rounds):
    """Eight stores (own engines and connections, like eight replicas) ask at the same moment, round after
    round, for a lease that is free: exactly one is granted each round."""
    stores = [Store(store_uri) for _ in range(8)]
    try:
        for r in range(rounds):
            barrier = threading.Barrier(len(stores))
            granted: list[str] = []
            errors: list[BaseException] = []

            def ask(i: int, s: Store, barrier=barrier, granted=granted, errors=errors) -> None:
                try:
                    barrier.wait(10)
                    if s.leases.acquire("monitor", f"replica-{i}", 30.0) is not None:
                        granted.append(f"replica-{i}")
                except BaseException as exc:  # reported below, not lost in the thread
                    errors.append(exc)

            threads = [threading.Thread(target=ask, args=(i, s)) for i, s in enumerate(stores)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert not errors, errors
            assert len(granted) == 1, (r, granted)
            assert stores[0].leases.holder("monitor") == granted[0]
            lease = stores[0].leases.get("monitor")
            assert lease is not None and lease.epoch == r + 1
            assert stores[0].leases.release("monitor", granted[0])
    finally:
        for s in stores:
            s.close()
