"""``docs/grafana/watchkeeper.json``: a well-formed Grafana dashboard (unique panel ids, a 24-column grid
without overlaps, every query on the ``${datasource}`` variable, every variable it uses defined) whose PromQL
names only metric families ``/metrics`` writes, and, against a real Prometheus scraping a real watchkeeper
server, whose every query is accepted and answers with data once the template variables are replaced the way
Grafana's Prometheus data source replaces them."""

from __future__ import annotations

import json
import math
import re
import runpy
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.profile import Profile, Traffic, Usage
from watchkeeper.store import Batch, ProfileLog, Store
from watchkeeper.store.alerts import AlertState
from watchkeeper.store.batch import Points
from watchkeeper.store.signals import labels_key

pytest.importorskip("fastapi", reason="the server needs the dev extra")

from watchkeeper.server import create_app
from watchkeeper.server.auth import Principal
from watchkeeper.server.metrics import FAMILIES, MONITOR_FAMILIES

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "watchkeeper.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_COLUMNS = 24
BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms"}
ROWS = {"Traffic", "Latency", "Errors", "Drift", "Alerts", "Ingest health"}

_servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))  # tests/servers.py
Server, free_port, _prometheus = _servers["Server"], _servers["free_port"], _servers["prometheus"]


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, the panels inside collapsed rows included."""
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def _targets(dash: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(p, t) for p in _panels(dash) for t in p.get("targets", [])]


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def _datasource_refs(node: Any) -> Iterator[Any]:
    """Every value of a ``datasource`` key, anywhere in the dashboard."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "datasource":
                yield v
            yield from _datasource_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _datasource_refs(v)


def _query_text(variable: dict[str, Any]) -> str:
    """What a variable reads: its data source and query (not its saved current value)."""
    return json.dumps([variable.get(k) for k in ("datasource", "definition", "query")])


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")


def _variables_used(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in _VARIABLE.finditer(text)}


# -- PromQL: the metric names and label names an expression uses ------------------------------------------

_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"(?:[^"\\]|\\.)*"')
_RANGE = re.compile(r"\[[^\]]*\]")
_NUMBER = re.compile(r"(?<![\w:])\d[\w.]*")  # numbers and durations (0.99, 1e3, offset 1h)
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*(\(?))")
_KEYWORDS = {"and", "or", "unless", "bool", "offset"}


def promql_names(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """``({metric: label names in its matchers}, labels in by/without/on/ignoring clauses)``.

    >>> expr = 'sum by (le) (rate(a_bucket{x=~"1|2", y="b"}[5m])) / on() b or f() offset 1h'
    >>> metrics, grouping = promql_names(expr)
    >>> {name: sorted(labels) for name, labels in metrics.items()}, grouping
    ({'a_bucket': ['x', 'y'], 'b': []}, {'le'})
    """
    grouping = {name.strip() for m in _GROUPING.finditer(expr) for name in m[1].split(",") if name.strip()}
    rest = _GROUPING.sub(" ", expr)
    metrics: dict[str, set[str]] = {}
    for m in _SELECTOR.finditer(rest):
        assert m[1], f"a selector without a metric name in {expr!r}"
        metrics.setdefault(m[1], set()).update(_MATCHER.findall(m[2]))
    rest = _NUMBER.sub(" ", _RANGE.sub(" ", _SELECTOR.sub(lambda m: f" {m[1]} ", rest)))
    for m in _IDENT.finditer(rest):
        if not m[1] and m[0] not in _KEYWORDS:  # a name not followed by "(" is a metric
            metrics.setdefault(m[0], set())
    return dict(sorted(metrics.items())), grouping


def _exposed_names() -> set[str]:
    """Every sample name /metrics can write: the families, with a histogram's three series."""
    names = {"watchkeeper_alerts", *MONITOR_FAMILIES}
    for name, (kind, _) in FAMILIES.items():
        names |= {f"{name}{s}" for s in ("_bucket", "_sum", "_count")} if kind == "histogram" else {name}
    return names


# -- the dashboard on its own -------------------------------------------------------------------------------


def test_the_dashboard_is_well_formed_json_of_a_recent_schema():
    dash = _dashboard()
    assert dash["schemaVersion"] >= 39
    assert dash.get("id") is None and dash["uid"] and dash["title"]
    panels = _panels(dash)
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(ids) == len(set(ids)), ids
    assert {p["title"] for p in panels if p["type"] == "row"} >= ROWS
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["y"] >= 0 and g["w"] >= 1 and g["h"] >= 1, p["title"]
        assert g["x"] + g["w"] <= GRID_COLUMNS, f"{p['title']!r} reaches column {g['x'] + g['w']}"
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r} at {(x, y)}"
                cells[(x, y)] = p["title"]


def test_every_query_uses_the_datasource_variable_and_no_datasource_uid_is_hard_coded():
    dash = _dashboard()
    (ds,) = [v for v in dash["templating"]["list"] if v["name"] == "datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    for p in _panels(dash):
        if p["type"] == "row":
            continue
        assert p["datasource"] == DATASOURCE, p["title"]
        assert p["targets"], f"{p['title']!r} has no query"
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"]), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE, (p["title"], t["refId"])
            assert t["expr"].strip(), (p["title"], t["refId"])
        assert p["fieldConfig"]["defaults"].get("unit"), f"{p['title']!r} has no unit"
    refs = list(_datasource_refs(dash))
    assert refs and all(r == DATASOURCE for r in refs), [r for r in refs if r != DATASOURCE]
    assert "__inputs" not in dash  # no DS_... placeholder to fill at import


def test_every_variable_used_is_defined_before_use_and_every_defined_one_is_used():
    dash = _dashboard()
    variables = dash["templating"]["list"]
    defined = [v["name"] for v in variables]
    assert len(defined) == len(set(defined)) and {"project", "model", "version"} <= set(defined)
    for i, v in enumerate(variables):  # a chained variable reads only the ones above it
        assert _variables_used(_query_text(v)) <= set(defined[:i]), v["name"]
    used = set().union(*(_variables_used(s) for s in _strings(dash["panels"])))
    assert used - BUILTINS <= set(defined), used - BUILTINS - set(defined)
    used |= set().union(*(_variables_used(_query_text(v)) for v in variables))
    assert set(defined) <= used, set(defined) - used


def test_variables_are_label_values_of_our_metrics_and_every_expr_names_exposed_metrics():
    dash = _dashboard()
    exposed = _exposed_names()
    for v in dash["templating"]["list"]:
        if v["type"] != "query":
            continue
        assert v["datasource"] == DATASOURCE, v["name"]
        m = re.fullmatch(r"label_values\((\w+)(\{.*\})?, *(\w+)\)", v["definition"])
        assert m and m[1] in exposed and m[3] == v["name"], v["definition"]
        assert v["query"]["query"] == v["definition"]
    for p, t in _targets(dash):
        metrics, _ = promql_names(t["expr"])
        assert metrics, (p["title"], t["expr"])
        assert set(metrics) <= exposed, (p["title"], set(metrics) - exposed)


# -- against a real Prometheus ------------------------------------------------------------------------------

SUBJECT = "model:fraud-clf@1.3.0"
DURATIONS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def _traffic() -> Traffic:
    t = Traffic()
    t.endpoint("predict", "function").update(
        [0.003, 0.04, 0.04, 0.2, 2.0], ["TimeoutError", None, None, None, "ValueError"]
    )
    t.endpoint("POST /predict", "http").update(
        [0.07, 0.08, 0.3], [None, None, "HTTPError"], statuses=[200, 200, 503]
    )
    t.stage("feature_fetch").update([0.001, 0.002, 0.004])
    t.usage["gpt-4o"] = Usage(calls=3, input_tokens=120, output_tokens=40, cost=0.012, unpriced=1)
    t.count_problem("missing_input", 2)
    t.dropped = 5
    return t


def _windows(start: float) -> Batch:
    """One 60 s window of the model (two endpoints, a stage, an LLM, problems, drops), one of a bare run,
    and one of a project the scraping token may not read."""
    logs = []
    for project, subject in (("p", SUBJECT), ("p", "run-1"), ("q", "model:other@1")):
        t = _traffic()
        p = Profile({}, rows=t.calls.requests + t.http.requests, traffic=t)
        logs.append(
            ProfileLog(project, subject, "window", start, start + 60, p.rows, p.to_bytes(), p.format_version)
        )
    return Batch(profiles=logs)


def _monitors_and_alerts(store: Store, now: float) -> None:
    """Drift of two features, the dataset's drift share, and three alerts of project p: one firing on a
    feature, one pending on an endpoint, one firing whose labels have no model or version."""
    drift = [
        Points("p", SUBJECT, ["drift_score"], [None], [now], [v], labels={"feature": f})
        for f, v in (("amount", 0.31), ("country", 12.5))
    ]
    share = Points("p", SUBJECT, ["dataset_drift_share"], [None], [now], [0.5])
    store.write(Batch(points=[*drift, share]))
    ids = store.alerts.sync_rules([(None, "FeatureDrift", {}), ("p", "HighLatency", {}), ("p", "Budget", {})])
    base = {"project": "p", "model": "fraud-clf", "version": "1.3.0"}
    states = [
        ("FeatureDrift", None, {**base, "feature": "amount", "severity": "warning"}, "firing"),
        ("HighLatency", "p", {**base, "endpoint": "predict", "severity": "critical"}, "pending"),
        ("Budget", "p", {"project": "p", "severity": "info"}, "firing"),
    ]
    store.alerts.save(
        AlertState(
            ids[(project, name)],
            labels_key(labels := {"alertname": name, **extra}),
            labels,
            state,
            now - 120,
            now - 60 if state == "firing" else None,
        )
        for name, project, extra, state in states
    )


def _api(httpx: Any, url: str, path: str, **params: Any) -> Any:
    r = httpx.get(f"{url}/api/v1/{path}", params=params, timeout=5)
    assert r.status_code == 200, f"{path} {params}: {r.status_code} {r.text}"
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]


def _wait_for(httpx: Any, url: str, promql: str, value: float, tmp_path: Path) -> None:
    """Poll Prometheus until ``promql`` has ``value`` (bounded: a broken setup fails with its log)."""
    deadline, last = time.monotonic() + 30, None
    while time.monotonic() < deadline:
        try:
            last = _api(httpx, url, "query", query=promql)["result"]
            if last and float(last[0]["value"][1]) == value:
                return
        except httpx.HTTPError as exc:  # not listening yet
            last = exc
        time.sleep(0.2)
    log = (tmp_path / "prometheus.log").read_text()[-3000:]
    pytest.fail(f"Prometheus never saw {promql} == {value} (last answer {last!r}); its log:\n{log}")


def grafana_regex_value(values: list[str]) -> str:
    r"""Values of a multi-value variable as Grafana's Prometheus data source writes them into a query
    (``prometheusSpecialRegexEscape``): regex metacharacters escaped for a PromQL string, several values
    as ``(a|b)``.

    >>> print(grafana_regex_value(["1.3.0"]), grafana_regex_value(["a", "b(c)"]))
    1\\.3\\.0 (a|b\\(c\\))
    """
    escaped = [re.sub(r"([$^*{}\[\]'+?.()|])", r"\\\\\1", v.replace("\\", "\\\\\\\\")) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _substitute(expr: str, values: dict[str, str]) -> str:
    for name, duration in DURATIONS.items():
        expr = expr.replace(name, duration)
    return re.sub(r"\$\{?(\w+)\}?", lambda m: values[m[1]], expr)


def _exposed_labels(text: str) -> dict[str, set[str]]:
    """{sample name: every label name it carries} of an exposition."""
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, labels = line.partition("{")
            out.setdefault(name, set()).update(re.findall(r'([a-zA-Z_]\w*)="(?:[^"\\]|\\.)*"', labels))
    return out


def test_every_panel_query_answers_on_a_real_prometheus_scraping_watchkeeper(sqlite_uri, tmp_path):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip(
            "the prometheus server is not installed (Debian package prometheus: apt-get install prometheus)"
        )
    httpx = pytest.importorskip("httpx", reason="the test queries Prometheus over HTTP with httpx")
    pytest.importorskip("uvicorn", reason="the server needs the dev extra")
    dash = _dashboard()
    now = time.time()
    store = Store(sqlite_uri)
    try:
        store.write(_windows(now - 120))
        _monitors_and_alerts(store, now)
        app = create_app(store, verify_token={"tok-p": Principal(frozenset({"p"}), "read")}.get)
        with (
            Server(app, lifespan="off") as server,
            _prometheus(binary, tmp_path, server.port, "tok-p") as url,
        ):
            _wait_for(httpx, url, "sum(watchkeeper_windows_total)", 2, tmp_path)
            store.write(_windows(now - 60))  # the counters move between scrapes: rates are above 0
            _wait_for(httpx, url, "sum(watchkeeper_windows_total)", 4, tmp_path)
            r = httpx.get(f"{server.url}/metrics", headers={"authorization": "Bearer tok-p"}, timeout=5)
            assert r.status_code == 200
            exposed = _exposed_labels(r.text)

            # the variables, in order, as Grafana resolves label_values(selector, label)
            chosen: dict[str, str] = {}
            found: dict[str, list[str]] = {}
            for v in dash["templating"]["list"]:
                if v["type"] != "query":
                    continue
                selector, label = re.fullmatch(r"label_values\((.*), *(\w+)\)", v["definition"]).groups()
                found[v["name"]] = _api(
                    httpx, url, f"label/{label}/values", **{"match[]": _substitute(selector, chosen)}
                )
                assert found[v["name"]], f"variable {v['name']} has no value"
                chosen[v["name"]] = grafana_regex_value(found[v["name"]])
            assert found["project"] == ["p"]  # the token's project only
            assert (found["model"], found["version"]) == (["fraud-clf"], ["1.3.0"])
            assert found["endpoint"] == ["POST /predict", "predict"]
            everything = {name: ".*" for name in chosen}  # "All" is allValue .*

            answers: dict[tuple[str, str, str], list[dict]] = {}
            for p, t in _targets(dash):
                metrics, grouping = promql_names(t["expr"])
                for metric, matched in metrics.items():
                    assert metric in exposed, f"{p['title']!r}: {metric} is not in the exposition"
                    assert matched <= exposed[metric], (p["title"], metric, matched - exposed[metric])
                carried = set().union(*(exposed[m] for m in metrics))
                assert grouping <= carried, (p["title"], grouping - carried)
                for selection, values in (("chosen", chosen), ("all", everything)):
                    result = _api(httpx, url, "query", query=_substitute(t["expr"], values))["result"]
                    finite = [s for s in result if math.isfinite(float(s["value"][1]))]
                    assert finite, f"{p['title']!r} {t['refId']} ({selection}) has no data: {result}"
                    answers[(p["title"], t["refId"], selection)] = result
    finally:
        store.close()

    def values(title: str, ref: str = "A", selection: str = "chosen") -> dict[str, float]:
        return {
            " ".join(f"{k}={v}" for k, v in sorted(s["metric"].items())): float(s["value"][1])
            for s in answers[(title, ref, selection)]
        }

    # spot checks of what the panels show: the fill's numbers, not just any series
    assert values("Latest drift score per feature") == {"feature=amount": 0.31, "feature=country": 12.5}
    assert values("Dataset drift share") == {"model=fraud-clf version=1.3.0": 0.5}
    assert values("Alerts firing / pending") == {"": 2.0} and values("Alerts firing / pending", "B") == {
        "": 1
    }
    assert values("Alert states") == {
        "alertname=Budget": 2,
        "alertname=FeatureDrift": 2,
        "alertname=HighLatency": 1,
    }
    assert len(answers[("Pending and firing alerts", "A", "chosen")]) == 3  # Budget has no model label
    errors = values("Errors by type (time range)", selection="all")
    assert set(errors) == {"error_type=TimeoutError", "error_type=ValueError", "error_type=HTTPError"}
    assert len(set(errors.values())) == 1 and min(errors.values()) >= 2  # one of each per window and subject
    assert set(values("HTTP responses by status code")) == {"code=200", "code=503"}
    # a window's 8 calls: 0.003, 0.04, 0.04, 0.07, 0.08, 0.2, 0.3, 2.0 s, none within 2% of a bucket bound, so
    # the counts per bucket are exact and histogram_quantile interpolates inside (0.05, 0.1] and (1, 2.5]
    latency = "Latency p50 / p95 / p99 (selection)"
    assert values(latency)[""] == pytest.approx(0.05 + 0.05 * (4 - 3) / (5 - 3), rel=1e-9)
    assert values(latency, "C")[""] == pytest.approx(1.0 + 1.5 * (0.99 * 8 - 7) / (8 - 7), rel=1e-9)
    assert values(latency, "D")[""] == pytest.approx(sum([0.003, 0.04, 0.04, 0.07, 0.08, 0.2, 0.3, 2.0]) / 8)
