"""One simulated deployment served by a real server for every dashboard test: 100 minutes of a fraud
classifier's traffic (two versions, an incident, drift, late labels), monitored and stepped through
tests/dashboard/rules.yaml so alerts have fired and resolved. Built once per session (about 30 s)."""

from __future__ import annotations

import runpy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.simulate import Scenario, Simulated, simulate
from watchkeeper.store import Store

_servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))
Server = _servers["Server"]

RULES = Path(__file__).with_name("rules.yaml")
MINUTES = 100


@dataclass
class Dashboard:
    url: str
    store: Store
    sim: Simulated
    start: float
    end: float

    def page(self, fragment: str) -> str:
        """The dashboard address of a page, e.g. ``page("/p/payments")``."""
        return f"{self.url}/#{fragment}"


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    path = tmp_path_factory.mktemp("dashboard") / "wk.db"
    end = (time.time() // 60) * 60
    start = end - MINUTES * 60
    store = Store(f"sqlite:///{path}")
    sc = Scenario(start=start, end=end, incident=(0.25, 0.4), drift_at=0.5, label_delay=(600.0, 1800.0))
    sim = simulate(store, sc, rules=[RULES], eval_every=300.0)
    try:
        with Server(store) as server:
            yield Dashboard(server.url, store, sim, start, end)
    finally:
        store.close()


def wait_ready(driver: Any, timeout: float = 20.0) -> None:
    """Wait until the page has drawn (the shell sets body[data-ready] once the page's render returns)."""
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.body.dataset.ready === '1'")
    )


@pytest.fixture
def ready() -> Any:
    """``ready(driver)``: waits until the page has drawn (see :func:`wait_ready`)."""
    return wait_ready
