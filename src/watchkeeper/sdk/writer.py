"""The background writer: turns what ``run.log`` enqueued into batches and sends them, off the caller's
thread.

``log()`` only appends a tuple to a deque (thread-safe under the GIL, no lock). The writer wakes every
``flush_interval`` seconds, or early when the queue is long, drains the deque into one
:class:`~watchkeeper.store.Batch` and sends it: one transaction per batch. A failed send is kept and retried
with exponential backoff; the batch keeps its id, so a retry after a lost acknowledgement is not applied
twice. A batch the store refuses for good (a constraint it violates) is dropped with an error log, so one
bad batch cannot hold back the ones behind it; its run records and status updates are sent again on their
own, so a run still ends ``finished`` with its summary. Memory is bounded: past ``max_queue`` queued steps
new steps are dropped, counted and reported once (``_dropped_steps`` in the run's summary), never raised
into the application.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from watchkeeper.errors import StoreError
from watchkeeper.store import Batch

log = logging.getLogger("watchkeeper")


class Writer:
    def __init__(
        self,
        drain: Callable[[bool], Batch],
        send: Callable[[Batch], object],
        *,
        flush_interval: float,
        name: str,
        max_sleep: float = 15.0,
    ) -> None:
        self._drain = drain  # builds the next batch from the queue; True = a final drain
        self._send = send
        self.flush_interval = flush_interval
        self.max_sleep = max_sleep  # wake at least this often, so heartbeats go out whatever the interval
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._send_lock = threading.Lock()
        self.unsent: deque[Batch] = deque()
        self.failures = 0
        self.rejected = 0  # batches the store refused for good, dropped
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._loop, name=f"watchkeeper-writer-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        backoff = self.flush_interval
        while not self._stop.is_set():
            self.wake.wait(min(backoff, self.max_sleep))
            self.wake.clear()
            if self._stop.is_set():
                break
            ok = self.flush_once(final=False)
            backoff = self.flush_interval if ok else min(backoff * 2, 30.0)

    def flush_once(self, *, final: bool) -> bool:
        """Drain the queue and send everything pending, oldest first; False if a send failed."""
        with self._send_lock:
            try:
                batch = self._drain(final)
            except Exception:  # a bug in draining must not kill the writer
                log.exception("watchkeeper: could not prepare a batch; its records are lost")
                batch = Batch()
            if batch:
                self.unsent.append(batch)
            while self.unsent:
                try:
                    self._send(self.unsent[0])
                except StoreError as exc:
                    if not exc.transient:  # the store refuses this batch for good: it must not block the rest
                        lost = self.unsent.popleft()
                        self.rejected += 1
                        log.error(
                            "watchkeeper: the store refused a batch (%d points, %d table rows), dropped: %s",
                            lost.point_count,
                            sum(len(s.rows) for s in lost.samples),
                            exc,
                        )
                        if (lost.runs or lost.run_updates) and (lost.points or lost.samples or lost.profiles):
                            # the run's own records (its status, summary) are rarely the culprit: keep them
                            self.unsent.appendleft(Batch(runs=lost.runs, run_updates=lost.run_updates))
                        continue
                    self._failed(exc)
                    return False
                except Exception as exc:
                    log.exception("watchkeeper: unexpected error while writing")
                    self._failed(exc)
                    return False
                self.unsent.popleft()
                if self.failures:
                    log.warning(
                        "watchkeeper: the store is writable again after %d failed attempts", self.failures
                    )
                    self.failures = 0
            return True

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self.last_error = str(exc)
        if self.failures == 1 or self.failures % 10 == 0:
            log.warning(
                "watchkeeper: could not write to the store (attempt %d, %d batches waiting): %s",
                self.failures,
                len(self.unsent),
                exc,
            )

    def close(self, timeout: float) -> bool:
        """Stop the thread, then flush until everything is sent or ``timeout`` seconds pass."""
        self._stop.set()
        self.wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        deadline = time.monotonic() + timeout
        delay = 0.05
        final = True
        while True:
            if self.flush_once(final=final):
                return True
            final = False
            if time.monotonic() + delay > deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
