"""``watchkeeper demo`` and the default alert rules it fires.

The rules: the packaged file loads with no problem, and each rule fires on the pattern of signals it is
meant for, after its ``for``, and not on a look-alike that should stay quiet (promtool-style rule tests on
the engine's clock). The demo: a real run of the command with half an hour of history and 20 s of serving,
checked from outside (the server answers while it runs; the store, the webhook sink's file) and inside
(no thread left behind).
"""

from __future__ import annotations

import json
import runpy
import socket
import threading
import time
from importlib.resources import files
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from watchkeeper.alerting.defaults import DEFAULT_RULES, default_rules_text, default_rules_with
from watchkeeper.alerting.rules import SEVERITIES, load_rules
from watchkeeper.alerting.ruletest import run_rule_tests
from watchkeeper.cli import app
from watchkeeper.demo import NotificationSink, demo_scenario, describe, listen
from watchkeeper.monitor.catalogue import SIGNAL_NAMES
from watchkeeper.store import Store

_servers = runpy.run_path(str(Path(__file__).parent / "servers.py"))
free_port = _servers["free_port"]

RULE_NAMES = [
    "HighP99Latency",
    "HighErrorRate",
    "FeatureDrift",
    "DatasetDrift",
    "AccuracyDrop",
    "LabelsLate",
    "KpiAnomaly",
    "MonitorLagging",
]


# -- the default rules -------------------------------------------------------------------------------------


def test_the_default_rules_ship_in_the_package_and_load_without_problems():
    assert files("watchkeeper.alerting").joinpath("default_rules.yaml").is_file()
    assert DEFAULT_RULES.is_file()
    rs = load_rules(DEFAULT_RULES, known_signals=SIGNAL_NAMES)  # raises RuleFileError on any problem
    assert [r.name for r in rs.rules] == RULE_NAMES
    assert rs.notifiers == () and rs.route.notifiers == ()
    for rule in rs.rules:
        assert rule.for_seconds >= 300, rule.name  # none fires on a single window
        assert rule.severity in SEVERITIES
        assert {"summary", "description"} <= set(rule.annotations), rule.name
        assert "$labels." in rule.annotations["summary"] + rule.annotations["description"], rule.name
    assert {r.name: r.severity for r in rs.rules if r.severity == "critical"} == {
        "HighErrorRate": "critical",
        "AccuracyDrop": "critical",
    }


def test_default_rules_with_a_notifier_routes_every_rule_to_it_and_keeps_the_lines():
    text = default_rules_with(
        [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"}],
        {"notifiers": ["hook"], "group_by": ["alertname", "model"], "group_wait": "30s"},
    )
    plain, routed = load_rules(DEFAULT_RULES), load_rules(text=text)
    assert routed.route.notifiers == ("hook",)
    assert routed.route.group_by == ("alertname", "model") and routed.route.group_wait == 30.0
    assert [n["name"] for n in routed.notifiers] == ["hook"]
    # the default file's lines come first, unchanged: a problem's line number means the same in both
    assert text.startswith(default_rules_text())
    assert [(r.name, r.line) for r in routed.rules] == [(r.name, r.line) for r in plain.rules]
    with pytest.raises(ValueError, match="route: expected a mapping"):
        default_rules_with([], ["hook"])  # type: ignore[arg-type]


def _series(name: str, values: list[float | None], **labels: str) -> dict[str, str]:
    body = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{body}}}", "values": " ".join("_" if v is None else f"{v:g}" for v in values)}


def _windows(flags: list[int], every: int = 10) -> list[float | None]:
    """A signal written once per ``every``-minute window, at the window's end: None in between."""
    out: list[float | None] = []
    for f in flags:
        out += [None] * (every - 1) + [float(f)]
    return [None, *out]  # the first value is minute 0


def _case(minute: int, rule: str, *firing: dict[str, str], annotations: dict[str, str] | None = None) -> dict:
    exp = []
    for labels in firing:
        item: dict = {"exp_labels": labels}
        if annotations is not None:
            item["exp_annotations"] = annotations
        exp.append(item)
    return {"eval_time": f"{minute}m", "alertname": rule, "exp_alerts": exp}


V1 = {"project": "payments", "model": "fraud-clf", "version": "1"}
V2 = {"project": "payments", "model": "fraud-clf", "version": "2"}


def test_each_default_rule_fires_on_its_pattern_after_its_for_and_not_on_a_look_alike(tmp_path):
    # version 1 shows each problem; version 2 is the look-alike that must stay quiet. Times in minutes.
    noisy_50 = [50.0 + (7 * i % 11) - 5 for i in range(30)]  # a healthy p99 around 50 ms
    slow_400 = [400.0 + (7 * i % 11) - 5 for i in range(60)]  # always slow, never slower
    groups = [
        {
            "name": "HighP99Latency: 300 ms from minute 30 to 39",
            "input_series": [
                _series("latency_p99_ms", [*noisy_50, *[300.0] * 10, *[50.0] * 20], **V1),
                # the endpoint's own series has the same values: the rule reads the deployment's total only
                _series("latency_p99_ms", [*noisy_50, *[300.0] * 10, *[50.0] * 20], **V1, endpoint="predict"),
                _series("latency_p99_ms", slow_400, **V2),
            ],
            "alert_rule_test": [
                _case(34, "HighP99Latency"),  # pending since 30
                _case(35, "HighP99Latency", V1, annotations=None),
                _case(
                    36,
                    "HighP99Latency",
                    V1,
                    annotations={
                        "summary": "p99 latency of fraud-clf@1 is 300 ms",
                        "description": "The 99th percentile latency of fraud-clf version 1 (project "
                        "payments) has been above 150 ms and far above its usual level for 5 minutes; now "
                        "300.0 ms. Look at the stages and the slow samples of the deployment.",
                    },
                ),
                _case(41, "HighP99Latency", V1),  # keeps firing 2 minutes after the condition stops
                _case(42, "HighP99Latency"),
            ],
        },
        {
            "name": "HighErrorRate: 10% errors from minute 30",
            "input_series": [
                _series("requests", [100.0] * 60, **V1),
                _series("errors", [0.0] * 30 + [10.0] * 30, **V1),
                _series("requests", [100.0] * 60, **V2),
                _series("errors", [1.0] * 60, **V2),  # 1%: normal
            ],
            # minute 30: 10 of 600 requests in [25m, 30m] (1.7%); minute 31: 20 of 600 (3.3%), pending
            "alert_rule_test": [_case(35, "HighErrorRate"), _case(36, "HighErrorRate", V1)],
        },
        {
            "name": "FeatureDrift and DatasetDrift: drifted in every window from minute 30",
            "input_series": [
                _series("drift_detected", [0.0] * 30 + [1.0] * 40, **V1, feature="amount"),
                # drifted in one window of three: a flicker, not a drift
                _series("drift_detected", [float(i % 3 == 0) for i in range(70)], **V1, feature="hour"),
                _series("dataset_drift", [0.0] * 30 + [1.0] * 40, **V1),
                _series("dataset_drift", [float(i % 3 == 0) for i in range(70)], **V2),
            ],
            # avg over [t-30m, t] of 31 windows passes 0.5 at minute 45 (16 drifted), then 15 minutes of `for`
            "alert_rule_test": [
                _case(59, "FeatureDrift"),
                _case(60, "FeatureDrift", {**V1, "feature": "amount"}),
                _case(59, "DatasetDrift"),
                _case(60, "DatasetDrift", V1),
            ],
        },
        {
            "name": "AccuracyDrop: 0.2 below the baseline from minute 60, labels stop at minute 89",
            "input_series": [
                _series("accuracy_drop", [0.0] * 60 + [0.2] * 29 + [None] * 30, **V1),
                _series("accuracy_drop", [0.02] * 119, **V2),
            ],
            # avg over [t-1h, t] = 0.2 (t - 59) / 61 > 0.05 from minute 75; firing 10 minutes later; still
            # firing at 110 though the newest point is 22 minutes old (a range, not the latest point)
            "alert_rule_test": [
                _case(84, "AccuracyDrop"),
                _case(85, "AccuracyDrop", V1),
                _case(110, "AccuracyDrop", V1),
            ],
        },
        {
            "name": "LabelsLate: version 2's labels never come",
            "input_series": [
                _series("label_pending_rate", [0.2] * 90, **V1),
                _series("label_pending_rate", [1.0] * 90, **V2),
            ],
            "alert_rule_test": [_case(59, "LabelsLate"), _case(60, "LabelsLate", V2)],
        },
        {
            "name": "KpiAnomaly: r1 above the threshold in the windows ending at minutes 30 and 40, r2 once",
            "input_series": [
                _series("anomaly", _windows([0, 0, 1, 1, 0, 0]), **V1, detector="kpi-ae", entity="r1"),
                _series("anomaly", _windows([0, 0, 1, 0, 0, 0]), **V1, detector="kpi-ae", entity="r2"),
            ],
            "alert_rule_test": [
                _case(44, "KpiAnomaly"),  # two windows from minute 40, pending for 5 minutes
                _case(
                    45,
                    "KpiAnomaly",
                    {**V1, "detector": "kpi-ae", "entity": "r1"},
                    annotations={
                        "summary": "kpi-ae flags r1: 2 anomalous windows in 30 min",
                        "description": "The anomaly detector kpi-ae of fraud-clf@1 (project payments) "
                        "scored 2 windows of r1 above its threshold in the last 30 minutes. Look at the KPIs "
                        "of r1 around those windows (the dashboard's Anomalies tab, or the anomaly_score "
                        "signal).",
                    },
                ),
            ],
        },
        {
            "name": "MonitorLagging: the monitor stops at minute 20",
            "input_series": [
                _series("monitor_lag_seconds", [60.0] * 20 + [660.0 + 60 * i for i in range(20)], project="p")
            ],
            "alert_rule_test": [
                _case(29, "MonitorLagging"),
                _case(30, "MonitorLagging", {"project": "p"}),
            ],
        },
    ]
    for g in groups:
        g["interval"] = "1m"
    path = tmp_path / "default_rules_test.yml"
    doc = {"rule_files": [str(DEFAULT_RULES)], "evaluation_interval": "1m", "tests": groups}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    result = run_rule_tests(path)
    assert result.errors == []
    assert result.failures == [], "\n".join(map(str, result.failures))
    assert result.checks == sum(len(g["alert_rule_test"]) for g in groups) == 20
    tested = {c["alertname"] for g in groups for c in g["alert_rule_test"]}
    assert tested == set(RULE_NAMES)


# -- the demo's parts --------------------------------------------------------------------------------------


def test_the_demo_scenario_has_an_incident_long_enough_to_fire_and_refuses_a_short_history():
    for hours in (0.5, 2.0, 3.0):
        sc = demo_scenario(1_800_000_000.0, hours)
        minutes = (sc.incident[1] - sc.incident[0]) * hours * 60
        assert minutes >= 12 - 1e-9 and sc.incident[1] < sc.drift_at < 1
    with pytest.raises(ValueError, match=r"hours: expected between 0\.5 and 48"):
        demo_scenario(1_800_000_000.0, 0.2)


def test_the_sink_keeps_each_notification_as_a_line_and_refuses_what_is_not_json(tmp_path):
    seen = []
    sink = NotificationSink(tmp_path / "n.jsonl", seen.append).start()
    try:
        payload = {
            "status": "firing",
            "groupLabels": {"alertname": "HighP99Latency"},
            "alerts": [
                {
                    "labels": {"model": "fraud-clf", "version": "2"},
                    "annotations": {"summary": "p99 <b>300</b> ms"},
                    "startsAt": "2024-05-01T12:00:00.000Z",
                }
            ],
        }
        assert httpx.post(sink.url, json=payload).status_code == 200
        assert httpx.post(sink.url, content=b"[1, 2").status_code == 400
        assert httpx.post(sink.url, json=[1, 2]).status_code == 400
    finally:
        sink.close()
    lines = (tmp_path / "n.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == [payload] == seen and sink.received == 1
    line = describe(payload)
    assert line.startswith("FIRING HighP99Latency fraud-clf@2 since ")
    assert line.endswith(": p99 <b>300</b> ms")


def test_a_taken_port_falls_back_to_a_free_one():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sock = listen(port)
        try:
            assert sock.getsockname()[0] == "127.0.0.1" and sock.getsockname()[1] not in (port, 0)
        finally:
            sock.close()


def test_the_demo_command_refuses_a_history_too_short(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path), "--hours", "0.1"])
    assert result.exit_code == 2 and "--hours" in result.output
    assert not (tmp_path / "watchkeeper.db").exists()


# -- the whole demo ----------------------------------------------------------------------------------------


def test_the_demo_serves_the_story_and_the_default_rules_notify_the_sink(tmp_path):
    port = free_port()
    directory = tmp_path / "demo"
    before = set(threading.enumerate())
    outcome: dict = {}

    def run() -> None:
        started = time.monotonic()
        outcome["result"] = CliRunner().invoke(
            app,
            ["demo", "--dir", str(directory), "--port", str(port), "--hours", "0.5", "--duration", "20"],
        )
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    health = None
    deadline = time.monotonic() + 120
    while thread.is_alive() and time.monotonic() < deadline and health is None:
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2)
            health = (r.status_code, r.json()["status"], time.monotonic())
        except httpx.TransportError:
            time.sleep(0.5)
    thread.join(150)
    assert not thread.is_alive(), "the demo did not stop after --duration"
    result = outcome["result"]
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert health is not None and health[:2] == (200, "ok"), "the server never answered while the demo ran"
    assert f"http://127.0.0.1:{port}/" in result.output
    assert "serving for 20 s" in result.output and "stopped." in result.output

    # every thread the demo started has ended: server, monitors, alert engine, dispatcher, sink, SDK writers
    time.sleep(0.2)
    left = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert left == []

    with Store(f"sqlite:///{directory / 'watchkeeper.db'}") as store:
        runs = {r.name: r for r in store.runs.list("payments")}
        assert {"train-fraud-clf-v1", "train-fraud-clf-v2"} <= set(runs)
        for version in ("1", "2"):
            subject = f"model:fraud-clf@{version}"
            windows = store.profiles.windows("payments", subject)
            by_run = {w.run_id for w in windows}
            # the simulated half hour, and the live traffic of the real SDK
            assert runs[f"serve-fraud-clf-v{version}"].id in by_run
            assert runs[f"serve-fraud-clf-v{version}-live"].id in by_run
            assert len(windows) >= 31
            names = {s.name for s in store.signals.series("payments", subject=subject)}
            assert {"latency_p99_ms", "error_rate", "drift_score", "label_pending_rate"} <= names
        assert runs["serve-fraud-clf-v1-live"].status == "finished"
        assert runs["serve-fraud-clf-v1"].status == "finished"  # the history's replica, not crashed

    lines = (directory / "notifications.jsonl").read_text().splitlines()
    notes = [json.loads(x) for x in lines]
    seen = {(n["groupLabels"]["alertname"], n["groupLabels"]["version"], n["status"]) for n in notes}
    # the incident of the history: latency and errors, firing then resolved, for both versions
    for rule in ("HighP99Latency", "HighErrorRate"):
        for version in ("1", "2"):
            assert {(rule, version, "firing"), (rule, version, "resolved")} <= seen
    assert all(n["receiver"] == "demo-sink" and n["version"] == "4" for n in notes)
    assert f"{len(notes)} notification(s)" in result.output
