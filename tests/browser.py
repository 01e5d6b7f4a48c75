"""A real browser for the tests that must click: headless Chromium driven through Selenium, for the drift
report's sortable table now and the web dashboard later.

``browser`` is a function-scoped fixture: a fresh Chromium and a fresh profile per test, quit at teardown
whatever the test did. Starting one takes 1.0 to 1.3 s and quitting 0.2 to 0.5 s here (Chromium 156,
measured), cheap enough that tests need not share a browser, and so share no cookies, storage, tabs or
console log. It uses Debian's
``chromium`` and ``chromium-driver`` packages, found on PATH, never Selenium Manager (which downloads
drivers); without them, or without selenium, the test skips and says which one is missing and how to
install it.

No network: the browser opens ``file://`` pages and servers on 127.0.0.1. Every other address goes to a
proxy on 127.0.0.1:9, where nothing listens, so it fails at once (Chromium never proxies loopback
addresses), and the background services that would phone home are switched off.

How a test module gets the fixture. The tests run with ``--import-mode=importlib`` and ``tests/`` has no
``__init__.py``, so, as pytest's documentation says of that mode, modules in the tests folder are not
importable (``from tests.browser import browser`` happens to work under ``python -m pytest``, which puts
the working directory on ``sys.path``, and through a side effect of how pytest registers parent folders,
neither of which is promised). So a test module loads this file by its path and binds the names it needs;
pytest finds a fixture by scanning the module's globals, whatever module defined it::

    import runpy
    from pathlib import Path

    _browser = runpy.run_path(str(Path(__file__).parents[1] / "browser.py"))  # tests/browser.py
    browser, save_screenshot = _browser["browser"], _browser["save_screenshot"]

    def test_page(browser, tmp_path): ...

Each module that does this runs this file once; keep it a module of functions, with no state of its own.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

WINDOW_SIZE = (1400, 1000)  # the outer window; the page's viewport is about 140 px shorter
INSTALL_BROWSER = "apt-get install chromium chromium-driver (.ci/run does)"
INSTALL_SELENIUM = "pip install 'selenium>=4.20' (the dev extra has it)"

# Switches off what Chromium does on its own over the network; the proxy catches anything left.
QUIET_FLAGS = (
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--proxy-server=http://127.0.0.1:9",
)


def chromium_binary() -> str | None:
    """The Chromium on PATH (Debian calls it ``chromium``, older Ubuntu ``chromium-browser``)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def missing_requirements() -> str | None:
    """Why a browser cannot start here, and how to fix it; None when everything it needs is installed."""
    missing, install = [], []
    if chromium_binary() is None:
        missing.append("chromium")
    if shutil.which("chromedriver") is None:
        missing.append("chromedriver")
    if missing:
        install.append(INSTALL_BROWSER)
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium")
        install.append(INSTALL_SELENIUM)
    if not missing:
        return None
    return f"no headless Chromium for this test: {', '.join(missing)} missing; install: {'; '.join(install)}"


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium (a ``selenium.webdriver.Chrome``) with a 1400x1000 window and its console log
    kept; skips when Chromium, chromedriver or selenium is missing."""
    reason = missing_requirements()
    if reason is not None:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium_binary()
    for flag in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root, where Chromium's sandbox refuses to start
        "--disable-gpu",
        "--disable-dev-shm-usage",  # containers often give /dev/shm only 64 MB
        "--lang=en-US",  # the table sorter's localeCompare follows the browser's language
        "--window-size={},{}".format(*WINDOW_SIZE),
        *QUIET_FLAGS,
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A driver path given to Service means Selenium Manager is never asked for one.
    service = Service(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)  # quits itself if the session fails
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def screenshot_dir(default: Path) -> Path:
    """Where screenshots go: ``$WATCHKEEPER_SCREENSHOTS`` when set (created if needed), else ``default``,
    normally the test's ``tmp_path``."""
    directory = Path(os.environ.get("WATCHKEEPER_SCREENSHOTS") or default)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def save_screenshot(driver: Any, name: str, default_dir: Path) -> Path:
    """A PNG of the browser's window, saved as ``name`` (".png" added) into ``screenshot_dir(default_dir)``;
    returns its path."""
    path = screenshot_dir(default_dir) / (name if name.endswith(".png") else f"{name}.png")
    if not driver.save_screenshot(str(path)):
        raise OSError(f"the browser did not write a screenshot to {path}")
    return path


def console_errors(driver: Any) -> list[str] | None:
    """The browser console's error entries (uncaught exceptions, console.error, failed loads) since the last
    call, or None when this driver does not give its log. A page served over HTTP also logs its missing
    /favicon.ico here."""
    from selenium.common.exceptions import WebDriverException

    try:
        entries = driver.get_log("browser")
    except (AttributeError, WebDriverException):  # a driver without the log endpoint: nothing to check
        return None
    return [entry["message"] for entry in entries if entry.get("level") == "SEVERE"]
