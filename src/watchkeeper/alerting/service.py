"""Monitors and alert rules running together beside a store: what ``watchkeeper server --rules`` and
``watchkeeper monitor`` start. The monitor runner turns closed windows into signals every
``monitor_interval`` seconds; the alert engine evaluates the rules every ``eval_interval`` seconds; both on
daemon threads that log and carry on after an error."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from watchkeeper.alerting.engine import AlertEngine
from watchkeeper.alerting.rules import RuleFileError

if TYPE_CHECKING:
    from watchkeeper.monitor.base import MonitorSettings
    from watchkeeper.store.store import Store

log = logging.getLogger("watchkeeper.alerting")


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
    ) -> None:
        from watchkeeper.monitor.base import MonitorSettings
        from watchkeeper.monitor.runner import MonitorRunner

        self.store = store
        self.runner = MonitorRunner(store, settings or MonitorSettings())
        self.engine = AlertEngine(store, external_url=external_url)
        self.monitor_interval = monitor_interval
        self.eval_interval = eval_interval
        self.rule_files = [str(p) for p in rule_files]
        self.errors: dict[str, RuleFileError] = self.engine.load(*self.rule_files) if self.rule_files else {}

    def start(self) -> None:
        self.runner.start(self.monitor_interval)
        self.engine.start(self.eval_interval)

    def reload(self) -> dict[str, RuleFileError]:
        """Read the rule files again; a refused file keeps its earlier rules (see ``AlertEngine.load``)."""
        self.errors = self.engine.load(*self.rule_files) if self.rule_files else {}
        return self.errors

    def stop(self) -> None:
        self.runner.stop()
        self.engine.close()
