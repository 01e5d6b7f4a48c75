"""Monitors and alert rules running together beside a store: what ``watchkeeper server`` (unless
``--no-monitor``) and ``watchkeeper monitor`` start. The monitor runner turns closed windows into signals
every ``monitor_interval`` seconds; the alert engine evaluates the rules every ``eval_interval`` seconds;
both on daemon threads that log and carry on after an error.

**One of many replicas runs them.** Every process that starts a service over the same store asks for the
store's lease ``"monitor"`` (see :mod:`watchkeeper.store.leases`) every ``lease_ttl / 3`` seconds. The holder
runs the runner and the engine; the others stand by. A holder that stops gives the lease up, so a standby
takes over at its next request (within ``lease_ttl / 3``); a holder that dies stops renewing, and the lease
passes on once it has expired (within ``lease_ttl + lease_ttl / 3``). A replica that takes over first reads
the runner's cursor and the alert states its predecessor saved in the store, so no window is skipped or
processed twice and a firing alert is not announced again. A holder that cannot renew (the database away)
stands down at once rather than run on a lease it cannot prove. ``lease_ttl=None`` runs both
unconditionally (one process, no database coordination: tests and embedding).

**Shards.** One runner is one thread; when the store's deployments are more than it keeps up with, give
each service ``shard=(k, n)``: it holds the lease ``monitor:k/n`` and monitors only the deployments of shard
``k`` (see :mod:`watchkeeper.monitor.runner`), so ``n`` shards run on up to ``n`` replicas at once, each
with its own failover. The alert rules and the roll-ups run with shard 0 (they are light: rules read
signals, whichever shard wrote them).

**Retention.** The holder also merges old window profiles into roll-ups by the settings' policy
(``MonitorSettings.retention``, ``8d:1h,32d:1d`` by default; see :mod:`watchkeeper.monitor.retention`) every
``rollup_interval`` seconds (15 minutes; None: never), on a thread of its own so that renewing the lease
never waits for it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchkeeper.alerting.engine import AlertEngine, Evaluation
from watchkeeper.alerting.rules import RuleFileError

if TYPE_CHECKING:
    from watchkeeper.monitor.base import MonitorSettings
    from watchkeeper.monitor.runner import MonitorPass
    from watchkeeper.store.leases import Lease
    from watchkeeper.store.store import Store

log = logging.getLogger("watchkeeper.alerting")

LEASE = "monitor"
LEASE_TTL = 30.0
ROLLUP_INTERVAL = 900.0


class MonitoringService:
    def __init__(
        self,
        store: Store,
        rule_files: Sequence[str | Path] = (),
        *,
        settings: MonitorSettings | None = None,
        monitor_interval: float = 10.0,
        eval_interval: float = 15.0,
        external_url: str = "",
        lease_ttl: float | None = LEASE_TTL,
        holder: str | None = None,
        rollup_interval: float | None = ROLLUP_INTERVAL,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        from watchkeeper.monitor.base import MonitorSettings
        from watchkeeper.monitor.runner import MonitorRunner
        from watchkeeper.store.leases import new_holder

        if lease_ttl is not None and not (
            isinstance(lease_ttl, int | float) and 0 < lease_ttl < float("inf")
        ):
            raise ValueError(f"lease_ttl: expected a positive number of seconds or None, got {lease_ttl!r}")
        self.store = store
        self.runner = MonitorRunner(store, settings or MonitorSettings(), shard=shard)
        k, n = self.runner.shard
        self.lease_name = LEASE if n == 1 else f"{LEASE}:{k}/{n}"
        self.runs_rules = k == 0  # the alert rules and the roll-ups run with shard 0's monitors
        self.engine = AlertEngine(store, external_url=external_url)
        self.monitor_interval = monitor_interval
        self.eval_interval = eval_interval
        self.rule_files = [str(p) for p in rule_files]
        self.errors: dict[str, RuleFileError] = self.engine.load(*self.rule_files) if self.rule_files else {}
        self.retention = self.runner.settings.retention_policy()
        self.rollup_interval = rollup_interval
        self._last_rollup = -math.inf
        self._rollup_thread: threading.Thread | None = None
        self.lease_ttl = None if lease_ttl is None else float(lease_ttl)
        self.holder = holder or new_holder()
        self.lease: Lease | None = None  # while this process holds it
        self._active = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        """Whether this process runs the monitors and rules now (holds the lease, or needs none)."""
        return self._active

    def start(self) -> None:
        if self.lease_ttl is None:
            self._run()
            return
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._hold, name="watchkeeper-lease", daemon=True)
        self._thread.start()

    def _hold(self) -> None:
        assert self.lease_ttl is not None
        while not self._stop.is_set():
            if self.tick():
                self._maybe_rollup()
            self._stop.wait(self.lease_ttl / 3)

    def _maybe_rollup(self) -> None:
        """Start a roll-up of old window profiles on its own thread when one is due (the first can take
        minutes on a large store; renewing the lease must not wait for it)."""
        if not self.runs_rules or self.rollup_interval is None:
            return
        if time.monotonic() - self._last_rollup < self.rollup_interval:
            return
        if self._rollup_thread is not None and self._rollup_thread.is_alive():
            return
        self._last_rollup = time.monotonic()
        self._rollup_thread = threading.Thread(
            target=self.rollup_once, name="watchkeeper-rollup", daemon=True
        )
        self._rollup_thread.start()

    def rollup_once(self) -> Any:
        """Merge old window profiles into roll-ups by the settings' retention policy; logs and returns the
        result (None when it failed: what was committed stays, the next call goes on)."""
        from watchkeeper.monitor.retention import rollup

        try:
            result = rollup(self.store, self.retention)
        except Exception:
            log.exception("watchkeeper retention: the roll-up of old window profiles failed")
            return None
        if result.buckets:
            log.warning("watchkeeper retention: %s", result)
        return result

    def tick(self) -> bool:
        """Ask for the lease once: take over when granted, stand down when refused; returns ``active``."""
        assert self.lease_ttl is not None, "tick() is for a service with a lease"
        try:
            lease = self.store.leases.acquire(self.lease_name, self.holder, self.lease_ttl)
        except Exception as exc:  # cannot prove the lease: stand down until the database answers
            log.warning("watchkeeper monitor: could not renew the %r lease: %s", self.lease_name, exc)
            lease = None
        if lease is not None and not self._active:
            self.runner.reload_state()
            if self.runs_rules:
                self.engine.reload_states()
            self._run()
            log.warning(
                "watchkeeper monitor: %s took the %r lease (epoch %d): running the monitors and %d rule(s)",
                self.holder,
                self.lease_name,
                lease.epoch,
                len(self.engine.rules) if self.runs_rules else 0,
            )
        elif lease is None and self._active:
            self._halt()
            log.warning(
                "watchkeeper monitor: %s does not hold the %r lease any more: standing by", self.holder, LEASE
            )
        self.lease = lease
        return self._active

    def run_once(self) -> tuple[MonitorPass, Evaluation] | None:
        """One monitor pass and one rule evaluation in this thread, holding the lease while they run (given
        up by :meth:`stop`); None, having done nothing, when another process holds it."""
        if self.lease_ttl is not None:
            self.lease = self.store.leases.acquire(self.lease_name, self.holder, self.lease_ttl)
            if self.lease is None:
                return None
        done = self.runner.run_once()
        return done, self.engine.evaluate() if self.runs_rules else Evaluation(time.time())

    def _run(self) -> None:
        self.runner.start(self.monitor_interval)
        if self.runs_rules:
            self.engine.start(self.eval_interval)
        self._active = True

    def _halt(self) -> None:
        self.runner.stop()
        self.engine.stop()
        self._active = False

    def reload(self) -> dict[str, RuleFileError]:
        """Read the rule files again; a refused file keeps its earlier rules (see ``AlertEngine.load``)."""
        self.errors = self.engine.load(*self.rule_files) if self.rule_files else {}
        return self.errors

    def stop(self) -> None:
        """Stop (after the window being processed) and give the lease up, so a standby takes over now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None
        if self._active:
            self._halt()
        if self.lease is not None:
            try:
                self.store.leases.release(self.lease_name, self.holder)
            except Exception as exc:  # it will expire by itself
                log.warning("watchkeeper monitor: could not release the %r lease: %s", self.lease_name, exc)
            self.lease = None
        self.engine.close()
