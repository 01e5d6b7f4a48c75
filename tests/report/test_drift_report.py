"""The drift report: one self-contained file, escaped, and checked in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import watchkeeper as wk

RNG = np.random.default_rng(5)


def _result():
    n = 5000
    ref = pd.DataFrame(
        {
            "latency_ms": RNG.lognormal(3, 0.5, n),
            "<script>alert('x')</script>": RNG.normal(size=n),
            "country": RNG.choice(["de", "fr", "<b>us</b>"], n),
            "score": RNG.random(n),
        }
    )
    cur = ref.copy()
    cur["latency_ms"] = RNG.lognormal(3.4, 0.5, n)
    cur["country"] = RNG.choice(["de", "fr", "<b>us</b>"], n, p=[0.6, 0.2, 0.2])
    return wk.drift(ref, cur)


def test_report_is_self_contained_and_escapes_user_strings(tmp_path):
    html = _result().to_html(tmp_path / "drift.html")
    assert (tmp_path / "drift.html").read_text() == html
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "<b>us</b>" not in html and "&lt;b&gt;us&lt;/b&gt;" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched from the network
    assert html.count("<svg") == 4  # one chart per compared column


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_renders_in_headless_chromium(tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium); .ci/run installs it")
    res = _result()
    report = tmp_path / "drift.html"
    res.to_html(report)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    # the DOM after the page loaded: the verdict and the counts it shows match the result
    dom = subprocess.run(
        [chromium, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120
    ).stdout
    assert f"{len(res.drifted_columns)} / {len(res.compared)}" in dom
    assert ("DRIFT" if res.drifted else "no drift") in dom
    shot = Path(os.environ.get("WATCHKEEPER_SCREENSHOT_DIR", tmp_path)) / "drift-report.png"
    subprocess.run(
        [chromium, *flags, f"--screenshot={shot}", "--window-size=1280,1600", report.as_uri()],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 20_000  # a rendered page, not a blank one
