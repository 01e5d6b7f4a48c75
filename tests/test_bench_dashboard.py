"""The dashboard benchmark (``bench/bench_dashboard.py``) runs end to end in its quick mode: it builds 3 days
of data, starts the real server, times every page data route it finds and prints a line per route and range
with a verdict, and the Prometheus anchor's table (or why it was left out).

It takes several minutes (the data, a server, a Prometheus TSDB built and compacted), so it runs only when
``WATCHKEEPER_RUN_BENCH=1``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_dashboard.py"

pytestmark = pytest.mark.skipif(
    os.environ.get("WATCHKEEPER_RUN_BENCH") != "1",
    reason="a benchmark of several minutes: set WATCHKEEPER_RUN_BENCH=1 to run it",
)


def test_quick_mode_prints_a_line_per_route(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--repeats", "3", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]

    # the data: 3 days of 1-minute windows of two versions, every series at every window
    data = re.search(r"data: 3 days .*?, (\d+) series and ([\d,]+) points", out)
    assert data is not None, out[:2000]
    series, points = int(data[1]), int(data[2].replace(",", ""))
    assert series > 150  # 25 features x 5 signals alone are 125
    assert points == 2 * series * 3 * 1440

    # every route the server listed is timed: one line per range (or one, without a range), with a verdict
    listed = re.search(r"^routes: (.*?)(?:; skipped: .*)?$", out, re.M)
    assert listed is not None, out[:2000]
    routes = listed[1].split(", ")
    assert "/views/overview" in routes and "/views/deployments" in routes and "/samples" in routes
    rows = [ln.split() for ln in out.splitlines() if ln.startswith("/")]
    for route in routes:
        mine = [r for r in rows if r[0] == route]
        ranges = {r[1] for r in mine}
        assert ranges in ({"1h", "24h", "7d", "30d"}, {"-"}), (route, mine)
        for r in mine:
            assert r[-1] in ("PASS", "MISS"), (route, r)
            p50, p95, top = map(float, r[3:6])
            assert 0 <= p50 <= p95 <= top, (route, r)
            # printed to the ms: a p95 of 299.6 shows as 300 and passes
            assert p95 <= 300 if r[-1] == "PASS" else p95 >= 300, (route, r)

    # the anchor ran, or the output says why not
    if "Prometheus anchor left out" not in out:
        anchor = [ln.split() for ln in out.splitlines() if ln.startswith(("overview ", "drift "))]
        assert {(a[0], a[1]) for a in anchor} == {
            (page, rng) for page in ("overview", "drift") for rng in ("1h", "24h", "7d", "30d")
        }
        steps = {a[1]: int(a[2]) for a in anchor if a[0] == "overview"}
        assert steps == {"1h": 60, "24h": 300, "7d": 1800, "30d": 3600}  # views.pick_step's choice
