"""Delivers notifications to notifiers off the engine's thread, retrying with backoff.

Each notifier has its own queue served by its own worker threads (``workers`` of them, started at the first
notification for it), so a notifier that hangs or keeps failing delays only its own deliveries, never
another's. :meth:`Dispatcher.submit` only puts on a queue: it never blocks longer than that and never
raises. A notification for a receiver that does not exist, a full queue (``max_queue``) or a closed
dispatcher make a failed :class:`Delivery` at once.

A delivery is tried up to ``attempts`` times. Between tries it waits with exponential backoff and "full
jitter" (Marc Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015)::

    delay(k) = rng() * min(max_delay, base_delay * 2**k)     for the k-th retry, k = 0, 1, ...

which spreads the retries of many senders evenly instead of having them arrive together. A
``NotifyError(transient=False)`` (the receiver refused the message itself) ends the delivery at once, and so
does any exception other than ``NotifyError`` and ``OSError`` (a bug will not go away on retry). Every final
outcome is passed to ``on_result`` (to record it with the alert) and failures are logged at WARNING on the
``watchkeeper.alerting`` logger, naming the notifier and the error.

:meth:`Dispatcher.close` waits for queued deliveries up to a timeout, then stops: what is still queued, and a
delivery waiting to retry, end as failed with the reason. The default ``sleep`` is a wait that ``close``
cuts short; a ``sleep`` passed in (a fake one in tests) is called as it is.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from watchkeeper.alerting.model import Notification, Notifier, NotifyError

log = logging.getLogger("watchkeeper.alerting")

DeliveryStatus = Literal["sent", "failed"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """The final outcome of delivering one notification through one notifier. ``attempts`` counts calls to
    ``notify`` (0 when none was made); ``error`` is the last error's message, None when sent; ``t`` is when
    the outcome was known (the dispatcher's clock)."""

    notifier: str
    notification: Notification
    status: DeliveryStatus
    attempts: int
    error: str | None
    t: float


class _Lane:
    """One notifier's queue and worker threads."""

    def __init__(self, notifier: Notifier, max_queue: int) -> None:
        self.notifier = notifier
        self.queue: queue.Queue[Notification | None] = queue.Queue(maxsize=max_queue)
        self.threads: list[threading.Thread] = []


class Dispatcher:
    """Delivers each submitted notification to the notifier named by its ``receiver``."""

    def __init__(
        self,
        notifiers: Mapping[str, Notifier],
        *,
        on_result: Callable[[Delivery], None] | None = None,
        attempts: int = 6,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        workers: int = 4,
        max_queue: int = 10_000,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts: expected at least 1, got {attempts}")
        if not base_delay >= 0 or not max_delay >= 0:
            raise ValueError(f"base_delay, max_delay: expected >= 0, got {base_delay}, {max_delay}")
        if workers < 1:
            raise ValueError(f"workers: expected at least 1, got {workers}")
        if max_queue < 1:
            raise ValueError(f"max_queue: expected at least 1, got {max_queue}")
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.workers = workers
        self._on_result = on_result
        self._closed = threading.Event()
        self._sleep = sleep if sleep is not None else self._closed.wait
        self._clock = clock
        self._rng = rng
        self._lanes = {name: _Lane(n, max_queue) for name, n in notifiers.items()}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # submitted and not yet reported

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def delay(self, retry: int) -> float:
        """The wait before retry number ``retry`` (0 for the first): full jitter."""
        return self._rng() * min(self.max_delay, self.base_delay * 2.0**retry)

    def submit(self, notification: Notification) -> None:
        """Queue ``notification`` for its receiver's notifier. Never raises; never waits on a delivery."""
        name = notification.receiver
        try:
            lane = self._lanes.get(name)
            if lane is None:
                known = ", ".join(sorted(self._lanes)) or "none"
                self._report(name, notification, "failed", 0, f"no notifier named {name!r} (known: {known})")
                return
            with self._lock:
                # Under the lock, so that close() cannot slip its stop markers in before this one.
                closed = self._closed.is_set()
                if not closed:
                    if not lane.threads:
                        self._start(name, lane)
                    try:
                        lane.queue.put_nowait(notification)
                        self._pending += 1
                        return
                    except queue.Full:
                        pass
            reason = "the dispatcher is closed" if closed else f"queue full ({lane.queue.maxsize} waiting)"
            self._report(name, notification, "failed", 0, reason)
        except Exception:  # the caller is the alert engine: nothing here may stop it
            log.exception("dispatcher: submitting a notification for %r failed", name)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted notification has its outcome; False if ``timeout`` ran out first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Let queued deliveries finish for up to ``timeout`` seconds, then stop the workers; whatever is
        left ends as a failed delivery. Further submissions fail at once."""
        deadline = time.monotonic() + max(0.0, timeout)
        self.flush(timeout)
        with self._lock:
            self._closed.set()
            lanes = list(self._lanes.values())
        for lane in lanes:
            for _ in lane.threads:
                # One stop marker per worker, behind what is queued (which now ends as failed at once).
                # A worker hung in notify() may keep a full queue full: then give up, the threads are daemons.
                with contextlib.suppress(queue.Full):
                    lane.queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
        for lane in lanes:
            for t in lane.threads:
                t.join(max(0.0, deadline - time.monotonic()))

    def _start(self, name: str, lane: _Lane) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._work, args=(name, lane), name=f"notify-{name}-{i}", daemon=True)
            lane.threads.append(t)
            t.start()

    def _work(self, name: str, lane: _Lane) -> None:
        while True:
            notification = lane.queue.get()
            if notification is None:
                return
            if self._closed.is_set():
                self._finish(name, notification, "failed", 0, "the dispatcher closed before delivery")
                continue
            self._deliver(name, lane.notifier, notification)

    def _deliver(self, name: str, notifier: Notifier, notification: Notification) -> None:
        error = ""
        for attempt in range(1, self.attempts + 1):
            try:
                notifier.notify(notification)
            except NotifyError as exc:
                error, retry = str(exc), exc.transient
            except OSError as exc:
                error, retry = f"{type(exc).__name__}: {exc}", True
            except Exception as exc:
                error, retry = f"{type(exc).__name__}: {exc}", False
            else:
                self._finish(name, notification, "sent", attempt, None)
                return
            if not retry or attempt == self.attempts:
                break
            wait = self.delay(attempt - 1)
            log.info("notifier %r: attempt %d failed (%s); retrying in %.1f s", name, attempt, error, wait)
            self._sleep(wait)
            if self._closed.is_set():
                error += " (the dispatcher closed before the next attempt)"
                break
        self._finish(name, notification, "failed", attempt, error)

    def _finish(
        self, name: str, notification: Notification, status: DeliveryStatus, attempts: int, error: str | None
    ) -> None:
        try:
            self._report(name, notification, status, attempts, error)
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _report(
        self, name: str, notification: Notification, status: DeliveryStatus, attempts: int, error: str | None
    ) -> None:
        if status == "failed":
            log.warning(
                "notifier %r: delivery of %r (group %s) failed after %d attempt(s): %s",
                name,
                notification.title(),
                notification.group_key,
                attempts,
                error,
            )
        if self._on_result is None:
            return
        try:
            self._on_result(Delivery(name, notification, status, attempts, error, self._clock()))
        except Exception:
            log.exception("dispatcher: on_result raised for a delivery by notifier %r", name)
