"""The dispatcher with a fake sleep and clock, so retries take no time: full-jitter backoff delays for a
seeded rng, attempt counts, what stops retrying, on_result and logging, per-notifier isolation, flush and
close. (The same dispatcher against a real HTTP receiver is in test_notifiers.py.)"""

from __future__ import annotations

import random
import threading

import pytest

from watchkeeper.alerting.dispatch import Delivery, Dispatcher
from watchkeeper.alerting.model import Alert, Notification, NotifyError


def note(receiver: str = "hook", key: str = "g") -> Notification:
    alert = Alert(
        rule="Drift",
        labels={"alertname": "Drift", "severity": "warning"},
        annotations={},
        status="firing",
        value=1.0,
        active_at=0.0,
        fired_at=0.0,
    )
    return Notification(
        receiver=receiver, group_key=key, group_labels={"alertname": "Drift"}, alerts=[alert], t=0
    )


class Scripted:
    """A notifier that raises the given errors in order, then succeeds; records each call."""

    def __init__(self, name: str, *errors: BaseException) -> None:
        self.name = name
        self.errors = list(errors)
        self.calls: list[Notification] = []

    def notify(self, notification: Notification) -> None:
        self.calls.append(notification)
        if self.errors:
            raise self.errors.pop(0)


class Blocking:
    """A notifier that waits until released (a receiver that hangs)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.entered = threading.Event()
        self.release = threading.Event()

    def notify(self, notification: Notification) -> None:
        self.entered.set()
        assert self.release.wait(30)


class Harness:
    def __init__(self, notifiers: dict, **kw) -> None:
        self.results: list[Delivery] = []
        self.sleeps: list[float] = []
        self.now = 1000.0
        kw.setdefault("sleep", self.sleeps.append)
        self.d = Dispatcher(notifiers, on_result=self.results.append, clock=lambda: self.now, **kw)

    def run(self, *notifications: Notification) -> list[Delivery]:
        for n in notifications:
            self.d.submit(n)
        assert self.d.flush(10)
        return self.results


def transient(i: int) -> NotifyError:
    return NotifyError(f"503 number {i}", transient=True)


def test_first_try_success() -> None:
    h = Harness({"hook": Scripted("hook")})
    n = note()
    (d,) = h.run(n)
    assert d == Delivery("hook", n, "sent", 1, None, 1000.0)
    assert h.sleeps == []


def test_backoff_is_full_jitter_within_bounds_for_a_seeded_rng() -> None:
    h = Harness(
        {"hook": Scripted("hook", *(transient(i) for i in range(8)))},
        attempts=8,
        base_delay=0.5,
        max_delay=10.0,
        rng=random.Random(7).random,
    )
    (d,) = h.run(note())
    assert (d.status, d.attempts, d.error) == ("failed", 8, "503 number 7")
    caps = [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]  # min(10, 0.5 * 2**k), k = 0..6
    assert len(h.sleeps) == 7
    assert all(0.0 <= s <= cap for s, cap in zip(h.sleeps, caps, strict=True))
    draws = random.Random(7)
    assert h.sleeps == pytest.approx([draws.random() * cap for cap in caps], rel=1e-12)
    # With rng at its top the delays are the caps themselves; at zero there is no wait at all.
    top = Harness(
        {"hook": Scripted("hook", *(transient(i) for i in range(5)))}, max_delay=10.0, rng=lambda: 1.0
    )
    assert top.run(note())[0].attempts == 6
    assert top.sleeps == [1.0, 2.0, 4.0, 8.0, 10.0]
    assert Dispatcher({}, rng=lambda: 0.0).delay(3) == 0.0


def test_transient_errors_then_success_counts_attempts() -> None:
    hook = Scripted("hook", transient(0), OSError("connection reset"), transient(2))
    h = Harness({"hook": hook}, rng=lambda: 0.5)
    (d,) = h.run(note())
    assert (d.status, d.attempts, d.error) == ("sent", 4, None)
    assert len(hook.calls) == 4 and h.sleeps == [0.5, 1.0, 2.0]


def test_non_transient_error_stops_at_once(caplog: pytest.LogCaptureFixture) -> None:
    hook = Scripted("hook", NotifyError("400 Bad Request: 'no channel'", transient=False))
    h = Harness({"hook": hook})
    with caplog.at_level("WARNING", logger="watchkeeper.alerting"):
        (d,) = h.run(note())
    assert (d.status, d.attempts, d.error) == ("failed", 1, "400 Bad Request: 'no channel'")
    assert h.sleeps == [] and len(hook.calls) == 1
    (record,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert record.name == "watchkeeper.alerting"
    assert "'hook'" in record.getMessage() and "no channel" in record.getMessage()


def test_a_bug_in_a_notifier_is_not_retried() -> None:
    h = Harness({"hook": Scripted("hook", KeyError("summary"))})
    (d,) = h.run(note())
    assert (d.status, d.attempts, d.error) == ("failed", 1, "KeyError: 'summary'")


def test_attempts_exhausted() -> None:
    h = Harness({"hook": Scripted("hook", *(transient(i) for i in range(10)))}, attempts=3, rng=lambda: 1.0)
    (d,) = h.run(note())
    assert (d.status, d.attempts, d.error) == ("failed", 3, "503 number 2")
    assert h.sleeps == [1.0, 2.0]


def test_unknown_receiver_is_a_failed_delivery_not_an_error() -> None:
    h = Harness({"hook": Scripted("hook")})
    n = note(receiver="nope")
    (d,) = h.run(n)
    assert (d.notifier, d.status, d.attempts) == ("nope", "failed", 0)
    assert d.error == "no notifier named 'nope' (known: hook)"


def test_on_result_raising_does_not_stop_deliveries() -> None:
    seen: list[Delivery] = []

    def on_result(d: Delivery) -> None:
        seen.append(d)
        raise RuntimeError("the store is down")

    d = Dispatcher({"hook": Scripted("hook")}, on_result=on_result, workers=1, sleep=lambda s: None)
    d.submit(note(key="a"))
    d.submit(note(key="b"))
    assert d.flush(10)
    d.close()
    assert [x.notification.group_key for x in seen] == ["a", "b"]


def test_one_worker_keeps_order() -> None:
    hook = Scripted("hook")
    h = Harness({"hook": hook}, workers=1)
    h.run(*(note(key=str(i)) for i in range(50)))
    assert [n.group_key for n in hook.calls] == [str(i) for i in range(50)]
    assert [d.notification.group_key for d in h.results] == [str(i) for i in range(50)]


def test_a_hung_notifier_does_not_delay_another() -> None:
    slow, fast = Blocking("slow"), Scripted("fast")
    h = Harness({"slow": slow, "fast": fast}, workers=1)
    h.d.submit(note("slow"))
    assert slow.entered.wait(10)
    h.d.submit(note("slow", key="queued behind"))
    h.d.submit(note("fast"))
    assert not h.d.flush(0.05)  # the slow deliveries cannot finish
    assert [(d.notifier, d.status) for d in h.results] == [("fast", "sent")]
    slow.release.set()
    assert h.d.flush(10)
    assert sorted(d.notifier for d in h.results) == ["fast", "slow", "slow"]


def test_close_fails_what_is_left_and_refuses_more() -> None:
    slow = Blocking("slow")
    h = Harness({"slow": slow}, workers=1)
    h.d.submit(note("slow", key="in flight"))
    assert slow.entered.wait(10)
    h.d.submit(note("slow", key="queued"))
    closer = threading.Thread(target=h.d.close, kwargs={"timeout": 10})
    closer.start()
    slow.release.set()
    closer.join(20)
    assert not closer.is_alive()
    outcome = {d.notification.group_key: (d.status, d.attempts) for d in h.results}
    # close() first waits for the queue, so both were delivered once the receiver answered.
    assert outcome == {"in flight": ("sent", 1), "queued": ("sent", 1)}
    h.d.submit(note("slow", key="late"))
    assert (h.results[-1].status, h.results[-1].error) == ("failed", "the dispatcher is closed")


def test_close_with_timeout_reports_undelivered() -> None:
    slow = Blocking("slow")
    h = Harness({"slow": slow}, workers=1)
    h.d.submit(note("slow", key="in flight"))
    assert slow.entered.wait(10)
    h.d.submit(note("slow", key="queued"))
    closer = threading.Thread(target=h.d.close, kwargs={"timeout": 0.05})
    closer.start()
    closer.join(10)  # returns after its timeout although the worker is stuck
    assert not closer.is_alive()
    slow.release.set()
    assert h.d.flush(10)
    outcome = {d.notification.group_key: (d.status, d.error) for d in h.results}
    assert outcome == {
        "in flight": ("sent", None),
        "queued": ("failed", "the dispatcher closed before delivery"),
    }


def test_close_interrupts_a_backoff_wait() -> None:
    # The default sleep is a wait that close() cuts short: a 60 s backoff does not hold close up.
    hook = Scripted("hook", transient(0))
    results: list[Delivery] = []
    d = Dispatcher({"hook": hook}, on_result=results.append, base_delay=60, max_delay=60, rng=lambda: 1.0)
    d.submit(note())
    assert not d.flush(0.05)
    d.close(timeout=0)
    assert d.flush(10)
    (r,) = results
    assert (r.status, r.attempts) == ("failed", 1)
    assert r.error == "503 number 0 (the dispatcher closed before the next attempt)"


def test_full_queue_fails_at_once() -> None:
    slow = Blocking("slow")
    h = Harness({"slow": slow}, workers=1, max_queue=2)
    h.d.submit(note("slow", key="0"))
    assert slow.entered.wait(10)
    for i in range(1, 4):
        h.d.submit(note("slow", key=str(i)))
    assert [(d.notification.group_key, d.error) for d in h.results] == [("3", "queue full (2 waiting)")]
    slow.release.set()
    assert h.d.flush(10)
    assert sorted(d.notification.group_key for d in h.results if d.status == "sent") == ["0", "1", "2"]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"attempts": 0}, "attempts: expected at least 1, got 0"),
        ({"workers": 0}, "workers: expected at least 1, got 0"),
        ({"base_delay": -1.0}, "base_delay, max_delay: expected >= 0"),
        ({"max_queue": 0}, "max_queue: expected at least 1, got 0"),
    ],
)
def test_bad_settings(kw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Dispatcher({}, **kw)
