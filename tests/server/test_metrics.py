"""``GET /metrics``: the exposition is exact on hand-computed windows, its counters never go down while new
windows arrive, access follows the token's project, ``promtool check metrics`` accepts it, and a real
Prometheus scraping it answers ``histogram_quantile(0.99, ...)`` with the p99 the latency sketch reports."""

from __future__ import annotations

import math
import re
import runpy
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from watchkeeper.profile import Profile, Traffic, Usage
from watchkeeper.sketch import LatencySketch
from watchkeeper.store import Batch, ProfileLog, Store
from watchkeeper.store.schema import profiles

fastapi = pytest.importorskip("fastapi", reason="the server needs the dev extra")
from fastapi.testclient import TestClient  # noqa: E402

from watchkeeper.server import create_app  # noqa: E402
from watchkeeper.server.auth import Principal  # noqa: E402
from watchkeeper.server.metrics import BOUNDS, TrafficTotals  # noqa: E402

REQ = "watchkeeper_requests_total"
HIST = "watchkeeper_request_duration_seconds"


def _traffic(seconds=(), errors=(), endpoint="predict", kind="function", statuses=()) -> Traffic:
    t = Traffic()
    t.endpoint(endpoint, kind).update(seconds, list(errors) or [None] * len(seconds), statuses)
    return t


def _window(project: str, subject: str, start: float, traffic: Traffic, length: float = 60.0) -> ProfileLog:
    p = Profile({}, rows=traffic.calls.requests + traffic.http.requests, traffic=traffic)
    return ProfileLog(
        project, subject, "window", start, start + length, p.rows, p.to_bytes(), p.format_version
    )


def _write(store: Store, *logs: ProfileLog) -> None:
    store.write(Batch(profiles=list(logs)))


_SAMPLE = re.compile(r"^([a-z_]+)\{(.*)\} (\S+)$")
_LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    """{(name, labels): value} of an exposition (label values left escaped)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        out[(m[1], frozenset(_LABEL.findall(m[2])))] = float(m[3])
    return out


def _get(samples, name: str, **labels: str) -> list[float]:
    want = set(labels.items())
    return [v for (n, lab), v in sorted(samples.items(), key=str) if n == name and want <= lab]


def _buckets(samples, name: str, **labels: str) -> list[tuple[float, float]]:
    """Sorted (le, count) of one histogram series."""
    want = set(labels.items())
    return sorted(
        (float(dict(lab)["le"]), v)
        for (n, lab), v in samples.items()
        if n == f"{name}_bucket" and want <= lab
    )


@pytest.fixture
def store(store_uri, tmp_path) -> Iterator[Store]:
    s = Store(store_uri, artifact_root=tmp_path / "artifacts")
    yield s
    s.close()


def _scrape(client, token: str | None = None) -> str:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    r = client.get("/metrics", headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return r.text


# -- exposition ---------------------------------------------------------------------------------------------


def test_label_values_escape_quotes_backslashes_and_newlines(store):
    _write(store, _window("p", 'model:m "x"@1', 0.0, _traffic([0.01], ['a"b\\c\nd'])))
    text = TrafficTotals(store).exposition()
    lines = text.splitlines()
    assert (
        'watchkeeper_errors_total{project="p",model="m \\"x\\"",version="1",endpoint="predict",'
        'kind="function",error_type="a\\"b\\\\c\\nd"} 1'
    ) in lines
    assert "# TYPE watchkeeper_errors_total counter" in lines
    assert lines.index(
        "# HELP watchkeeper_errors_total Requests that raised or failed, by error type."
    ) + 1 == (lines.index("# TYPE watchkeeper_errors_total counter"))


def test_histogram_buckets_are_cumulative_hand_counted_and_end_in_inf_equal_to_count(store):
    seconds = [0.0005, 0.003, 0.003, 0.04, 0.7, 7.0, 100.0]  # none within 2% of a bound: counts are exact
    _write(store, _window("p", "model:m@1", 0.0, _traffic(seconds)))
    s = _samples(TrafficTotals(store).exposition())
    got = _buckets(s, HIST, endpoint="predict")
    assert [le for le, _ in got] == [*BOUNDS, math.inf]
    assert [n for _, n in got] == [1, 1, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 6, 6, 6, 7]
    assert _get(s, f"{HIST}_count", endpoint="predict") == [7]
    assert _get(s, f"{HIST}_sum", endpoint="predict") == [pytest.approx(sum(seconds))]
    assert _get(s, REQ, endpoint="predict") == [7]


def test_counters_never_go_down_across_scrapes_with_new_windows_between(store):
    with TestClient(create_app(store)) as client:
        # 100 requests just under the 10 ms bound, then one slow request in a later window: on the merged
        # sketch the estimate at le=0.01 would drop from 100 to 75; the per-window sum stays at 100
        _write(store, _window("p", "model:m@1", 0.0, _traffic([0.0099] * 100, ["E"] * 3 + [None] * 97)))
        first = _samples(_scrape(client))
        _write(store, _window("p", "model:m@1", 60.0, _traffic([1.5], ["E"])))
        second = _samples(_scrape(client))
        third = _samples(_scrape(client))  # nothing new: nothing changes
    assert _get(first, REQ) == [100] and _get(second, REQ) == [101]
    assert _get(first, "watchkeeper_errors_total", error_type="E") == [3]
    assert _get(second, "watchkeeper_errors_total", error_type="E") == [4]
    assert dict(_buckets(first, HIST))[0.01] == 100 and dict(_buckets(second, HIST))[0.01] == 100
    assert dict(_buckets(first, HIST))[1.0] == 100 and dict(_buckets(second, HIST))[2.5] == 101
    for key, value in first.items():
        if key[0].endswith(("_total", "_bucket", "_count", "_sum")):
            assert second[key] >= value, key
    assert third == second
    assert _get(second, "watchkeeper_windows_total") == [2]
    assert _get(second, "watchkeeper_last_window_timestamp_seconds") == [120.0]
    assert _get(first, "watchkeeper_requests_per_second") == [pytest.approx(100 / 60)]
    assert _get(second, "watchkeeper_requests_per_second") == [pytest.approx(1 / 60)]


def test_versions_projects_stages_and_usage_are_kept_apart(store):
    t = _traffic([0.02] * 3)
    t.stage("inference").update([0.002, 0.02])
    t.usage["gpt"] = Usage(calls=2, input_tokens=30, output_tokens=7, cost=0.25, unpriced=1)
    _write(
        store,
        _window("p", "model:m@1", 0.0, t),
        _window("p", "model:m@2", 0.0, _traffic([0.5] * 5)),
        _window("q", "model:m@1", 0.0, _traffic([0.5] * 11)),
        # a replica's window of the same minute, and an HTTP route with statuses
        _window("p", "model:m@2", 0.0, _traffic([0.1], endpoint="GET /x", kind="http", statuses=[503])),
    )
    s = _samples(TrafficTotals(store).exposition())
    assert _get(s, REQ, project="p", version="1") == [3]
    assert _get(s, REQ, project="p", version="2", endpoint="predict") == [5]
    assert _get(s, REQ, project="q", version="1") == [11]
    assert _get(s, "watchkeeper_responses_total", version="2", code="503", kind="http") == [1]
    assert _get(s, "watchkeeper_requests_per_second", project="p", version="2", endpoint="predict") == [
        5 / 60
    ]
    assert _get(s, f"{HIST}_count", project="p", version="2", endpoint="predict") == [5]
    assert [n for _, n in _buckets(s, "watchkeeper_stage_duration_seconds", stage="inference")][:5] == [
        0, 1, 1, 1, 2  # le 0.001, 0.0025, 0.005, 0.01, 0.025
    ]  # fmt: skip
    assert _get(s, "watchkeeper_tokens_total", direction="input", llm="gpt") == [30]
    assert _get(s, "watchkeeper_tokens_total", direction="output", llm="gpt") == [7]
    assert _get(s, "watchkeeper_cost_total", llm="gpt") == [0.25]
    assert _get(s, "watchkeeper_unpriced_llm_calls_total", llm="gpt") == [1]


def test_a_run_without_a_model_is_labelled_by_run(store):
    _write(store, _window("p", "run-7", 0.0, _traffic([0.01])))
    assert 'watchkeeper_requests_total{project="p",run="run-7",endpoint="predict",kind="function"} 1' in (
        TrafficTotals(store).exposition().splitlines()
    )


def test_a_read_token_sees_only_its_projects_series(store):
    _write(
        store,
        _window("A", "model:m@1", 0.0, _traffic([0.01])),
        _window("B", "model:m@1", 0.0, _traffic([0.2])),
    )
    tokens = {"tA": Principal(frozenset({"A"}), "read"), "tC": Principal(frozenset({"C"}), "read")}
    with TestClient(create_app(store, verify_token=tokens.get)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"authorization": "Bearer nope"}).status_code == 401
        seen_a = _samples(_scrape(client, "tA"))
        assert _scrape(client, "tC") == ""
    assert seen_a and {dict(lab)["project"] for _, lab in seen_a} == {"A"}
    with TestClient(create_app(store)) as client:  # --no-auth: every project
        assert {dict(lab)["project"] for _, lab in _samples(_scrape(client))} == {"A", "B"}


def test_a_restart_rebuilds_the_same_totals_and_a_late_lower_id_is_still_counted(store):
    _write(store, _window("p", "model:m@1", 0.0, _traffic([0.01] * 4)))
    totals = TrafficTotals(store)
    totals.advance()
    # a transaction that took id 100 commits while one holding a lower id (50) is still open
    data = _window("p", "model:m@1", 60.0, _traffic([0.01] * 2))
    late = _window("p", "model:m@1", 120.0, _traffic([0.01] * 3))
    with store.begin_write() as conn:
        pid = store.project_id(conn, "p")
        row = {"project_id": pid, "subject": "model:m@1", "kind": "window", "rows": 2, "format_version": 2}
        conn.execute(
            profiles.insert(),
            [{**row, "id": 100, "window_start": 60.0, "window_end": 120.0, "data": data.data}],
        )
    assert totals.advance() == 1 and 50 in totals.gaps
    with store.begin_write() as conn:
        conn.execute(
            profiles.insert(),
            [{**row, "id": 50, "window_start": 120.0, "window_end": 180.0, "data": late.data}],
        )
        if conn.dialect.name == "postgresql":  # keep the sequence ahead of the ids written by hand
            conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('profiles', 'id'), 100)"))
    assert totals.advance() == 1 and 50 not in totals.gaps
    assert _get(_samples(totals.exposition()), REQ) == [9]
    assert _get(_samples(TrafficTotals(store).exposition()), REQ) == [9]  # a new process: same totals


# -- promtool and a real Prometheus --------------------------------------------------------------------------


def _rich_store(store: Store) -> None:
    t = _traffic([0.003, 0.04, 0.04, 2.0], ["TimeoutError", None, None, 'Bad "input"\n'])
    t.endpoint("POST /predict", "http").update([0.05, 0.06], statuses=[200, 500])
    t.stage("feature_fetch").update([0.001, 0.002])
    t.usage["gpt-4o"] = Usage(calls=3, input_tokens=120, output_tokens=40, cost=0.012, unpriced=0)
    t.count_problem("missing_input", 2)
    t.dropped = 5
    _write(store, _window("p", "model:fraud-clf@1.3.0", 0.0, t), _window("p", "run-1", 0.0, _traffic([0.2])))
    _drift_and_alerts(store)


def _drift_and_alerts(store: Store) -> None:
    """Monitor output (drift per feature, an older and a newer point) and alert states of two projects."""
    from watchkeeper.store.alerts import AlertState
    from watchkeeper.store.batch import Batch, Points

    store.write(
        Batch(
            points=[
                Points(
                    "p",
                    "model:fraud-clf@1.3.0",
                    ["drift_score"] * 2,
                    [None] * 2,
                    [60.0, 120.0],
                    [0.1, 0.31],
                    labels={"feature": "amount"},
                ),
                Points("p", "model:fraud-clf@1.3.0", ["dataset_drift_share"], [None], [120.0], [0.5]),
                Points(
                    "q", "model:other@1", ["drift_score"], [None], [120.0], [0.9], labels={"feature": "x"}
                ),
            ]
        )
    )
    ids = store.alerts.sync_rules([(None, "FeatureDrift", {}), ("q", "Other", {})])
    store.alerts.save(
        [
            AlertState(
                ids[(None, "FeatureDrift")],
                "a",
                {"alertname": "FeatureDrift", "project": "p", "feature": "amount", "severity": "warning"},
                "firing",
                60.0,
                60.0,
            ),
            AlertState(
                ids[(None, "FeatureDrift")],
                "b",
                {"alertname": "FeatureDrift", "project": "p", "feature": "old"},
                "resolved",
                0.0,
                0.0,
                30.0,
            ),
            AlertState(ids[("q", "Other")], "c", {"alertname": "Other"}, "pending", 60.0),
        ]
    )


def test_windows_rolled_up_still_count_after_a_restart_and_are_not_counted_twice(store):
    """Old windows merged into a roll-up (watchkeeper.monitor.retention): a running process, which counted
    the windows, does not count the roll-up again; a new process counts the roll-up instead of the windows."""
    from watchkeeper.monitor.retention import RetentionPolicy, rollup

    day = 86_400.0
    old = (time.time() // day - 20) * day
    _write(store, *(_window("p", "model:m@1", old + 60.0 * k, _traffic([0.01] * (k + 1))) for k in range(5)))
    running = TrafficTotals(store)
    assert _get(_samples(running.exposition()), REQ) == [15]
    result = rollup(store, RetentionPolicy.parse("8d:1h"))
    assert result.buckets == 1 and result.profiles_deleted == 5
    _write(store, _window("p", "model:m@1", time.time() // 60 * 60, _traffic([0.02] * 2)))
    assert _get(_samples(running.exposition()), REQ) == [17]  # the new window, not the roll-up again
    restarted = _samples(TrafficTotals(store).exposition())
    assert _get(restarted, REQ) == [17]
    assert _buckets(restarted, HIST) == _buckets(_samples(running.exposition()), HIST)


def test_drift_gauges_and_alert_states_follow_the_latest_values_and_the_tokens_project(store):
    _drift_and_alerts(store)
    tokens = {"tp": Principal(frozenset({"p"}), "read")}
    with TestClient(create_app(store, verify_token=tokens.get)) as client:
        mine = _samples(_scrape(client, "tp"))
    with TestClient(create_app(store)) as client:
        every = _samples(_scrape(client))
    assert _get(mine, "watchkeeper_drift_score", feature="amount", model="fraud-clf", version="1.3.0") == [
        0.31
    ]
    assert _get(mine, "watchkeeper_dataset_drift_share", project="p") == [0.5]
    assert _get(mine, "watchkeeper_drift_score", project="q") == []
    assert _get(
        mine, "watchkeeper_alerts", alertname="FeatureDrift", alertstate="firing", feature="amount"
    ) == [1.0]
    assert _get(mine, "watchkeeper_alerts", alertname="FeatureDrift", feature="old") == []  # resolved: gone
    assert _get(mine, "watchkeeper_alerts", alertname="Other") == []
    assert _get(every, "watchkeeper_alerts", alertname="Other", alertstate="pending") == [1.0]
    assert _get(every, "watchkeeper_drift_score", project="q", feature="x") == [0.9]


def test_promtool_check_metrics_accepts_a_real_scrape(store):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus: apt-get install prometheus)")
    _rich_store(store)
    with TestClient(create_app(store)) as client:
        text = _scrape(client)
    for family in ("requests_total", "errors_total", "responses_total", "tokens_total", "cost_total"):
        assert f"# TYPE watchkeeper_{family} counter" in text
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


_servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))  # tests/servers.py
Server, _free_port, _prometheus = _servers["Server"], _servers["free_port"], _servers["prometheus"]


@contextmanager
def _serve(app) -> Iterator[int]:
    """The app under uvicorn on 127.0.0.1 in a background thread; yields its port."""
    pytest.importorskip("uvicorn", reason="the server needs the dev extra")
    with Server(app, lifespan="off") as server:
        yield server.port


def _query(httpx, url: str, promql: str) -> list[dict]:
    r = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    r.raise_for_status()
    return r.json()["data"]["result"]


def _wait_for(httpx, url: str, promql: str, value: float, tmp_path) -> None:
    """Poll Prometheus until ``promql`` has ``value`` (bounded: a broken setup fails with its log)."""
    deadline, last = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        try:
            last = _query(httpx, url, promql)
            if last and float(last[0]["value"][1]) == value:
                return
        except httpx.HTTPError as exc:  # not listening yet
            last = exc
        time.sleep(0.25)
    log = (tmp_path / "prometheus.log").read_text()[-3000:]
    pytest.fail(f"Prometheus never saw {promql} == {value} (last answer {last!r}); its log:\n{log}")


def _prom_quantile(q: float, values: np.ndarray) -> float:
    """What histogram_quantile computes on exact bucket counts at BOUNDS: linear inside the bucket."""
    counts = [int(np.count_nonzero(values <= b)) for b in BOUNDS]
    rank = q * len(values)
    i = next(i for i, c in enumerate(counts) if c >= rank)
    lower, below = (0.0, 0) if i == 0 else (BOUNDS[i - 1], counts[i - 1])
    return lower + (BOUNDS[i] - lower) * (rank - below) / (counts[i] - below)


def test_a_real_prometheus_scrapes_it_and_its_p99_is_the_sketchs(sqlite_uri, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip(
            "the prometheus server is not installed (Debian package prometheus: apt-get install prometheus)"
        )
    httpx = pytest.importorskip("httpx", reason="the test queries Prometheus over HTTP with httpx")
    rng = np.random.default_rng(7)
    # two windows, fast requests around 20 ms and a slow tail in (0.25 s, 0.5 s]; no value within 2% of a
    # bound, so the bucket counts are exact and Prometheus' answer is known by hand
    first = np.concatenate([rng.uniform(0.011, 0.024, 985), rng.uniform(0.27, 0.48, 15)])
    second = np.concatenate([rng.uniform(0.011, 0.024, 492), rng.uniform(0.26, 0.49, 8)])
    store = Store(sqlite_uri)
    try:
        _write(store, _window("A", "model:m@1", 0.0, _traffic(first)))
        _write(store, _window("B", "model:m@1", 0.0, _traffic([5.0] * 10)))
        app = create_app(store, verify_token={"tok-A": Principal(frozenset({"A"}), "read")}.get)
        with _serve(app) as port, _prometheus(binary, tmp_path, port, "tok-A") as url:
            series = 'watchkeeper_request_duration_seconds_count{project="A",model="m",version="1"}'
            _wait_for(httpx, url, series, 1000, tmp_path)
            _write(store, _window("A", "model:m@1", 60.0, _traffic(second)))
            _wait_for(httpx, url, series, 1500, tmp_path)
            _wait_for(httpx, url, 'watchkeeper_requests_total{project="A"}', 1500, tmp_path)
            (answer,) = _query(
                httpx,
                url,
                'histogram_quantile(0.99, watchkeeper_request_duration_seconds_bucket{project="A"})',
            )
            assert _query(httpx, url, '{project="B"}') == []  # the token of A: no series of B scraped
            assert _query(httpx, url, 'up{job="watchkeeper"}')[0]["value"][1] == "1"
    finally:
        store.close()
    got = float(answer["value"][1])
    both = np.concatenate([first, second])
    sketch = LatencySketch().update(first).merge(LatencySketch().update(second))
    p99 = sketch.quantile(0.99)
    assert got == pytest.approx(_prom_quantile(0.99, both), rel=1e-9)
    assert 0.25 < p99 <= 0.5 and 0.25 < got <= 0.5  # the same bucket of BOUNDS: its resolution
    assert abs(p99 - np.quantile(both, 0.99, method="lower")) <= 0.01 * p99
