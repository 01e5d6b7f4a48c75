"""The alert engine: the state machine, grouping, repeat and resolution, silences, restarts, failing
notifiers and refused rule files, on an injected clock over in-memory or stored signals."""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from watchkeeper.alerting.engine import AlertEngine
from watchkeeper.alerting.model import NotifyError
from watchkeeper.alerting.source import MemorySource
from watchkeeper.store.batch import Batch, Points

M = 60.0


class Recorder:
    def __init__(self, name: str = "rec", fail: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.got: list = []
        self.lock = threading.Lock()

    def notify(self, notification) -> None:
        if self.fail:
            raise NotifyError("HTTP 400 from the receiver", transient=False)
        with self.lock:
            self.got.append(notification)


def write(tmp_path, text: str, name: str = "rules.yml"):
    p = tmp_path / name
    p.write_text(text)
    return p


ROUTED = """
notifiers:
  - {{name: rec, type: webhook, url: "http://127.0.0.1:9/unused"}}
route:
  notifiers: [rec]
  group_by: [alertname, model]
  repeat_interval: {repeat}
rules:
{rules}
"""


def engine_for(tmp_path, rules: str, series, *, repeat="1h", store=None, recorder=None):
    rec = recorder or Recorder()
    source = MemorySource(series) if store is None else None
    eng = AlertEngine(
        store,
        source=source,
        notifiers={"rec": rec},
        known_signals=lambda: {"latency_p99_ms", "drift_score", "request_rate"},
    )
    # the file's webhook named "rec" is replaced by the recorder passed in: notifiers given in code win
    errors = eng.load(write(tmp_path, ROUTED.format(repeat=repeat, rules=rules)))
    assert errors == {}
    return eng, rec


def series_of(values, name="latency_p99_ms", labels=None, step=M):
    t = np.arange(len(values)) * step
    return [(name, labels or {"model": "m", "project": "p"}, t, np.asarray(values, dtype=float))]


def run(eng, until: float, step: float = M):
    out = []
    t = 0.0
    while t <= until:
        out.append(eng.evaluate(t))
        t += step
    eng.flush(5)
    return out


P99 = """  - name: HighP99
    expr: latency_p99_ms > 500
    for: 5m
    annotations: {summary: "p99 {{ $value }} ms on {{ $labels.model }}"}"""


def test_pending_for_five_minutes_then_firing_once(tmp_path):
    eng, rec = engine_for(tmp_path, P99, series_of([600] * 20))
    evals = run(eng, 10 * M)
    states = [[(tr.old, tr.new) for tr in e.transitions] for e in evals]
    assert states[0] == [("inactive", "pending")]
    assert states[5] == [("pending", "firing")] and all(s == [] for s in states[1:5] + states[6:])
    assert len(rec.got) == 1
    (alert,) = rec.got[0].alerts
    assert alert.annotations["summary"] == "p99 600 ms on m"
    assert dict(alert.labels) == {"alertname": "HighP99", "severity": "warning", "model": "m", "project": "p"}


def test_a_pending_alert_that_stops_holding_never_fires(tmp_path):
    eng, rec = engine_for(tmp_path, P99, series_of([600, 600, 600, 100, 100, 100, 100, 100, 100]))
    evals = run(eng, 8 * M)
    flat = [(tr.old, tr.new) for e in evals for tr in e.transitions]
    assert flat == [("inactive", "pending"), ("pending", "inactive")]
    assert rec.got == [] and eng.alerts() == []


def test_keep_firing_for_holds_the_alert_then_resolves_and_says_so(tmp_path):
    rules = """  - name: HighP99
    expr: latency_p99_ms > 500
    keep_firing_for: 2m"""
    eng, rec = engine_for(tmp_path, rules, series_of([600, 600, 100, 100, 100, 100]))
    evals = run(eng, 5 * M)
    moves = {e.t: [(tr.old, tr.new) for tr in e.transitions] for e in evals}
    assert moves[0] == [("inactive", "firing")]
    assert moves[2 * M] == [] and moves[3 * M] == []  # condition false since 2m: still firing for 2m
    assert moves[4 * M] == [("firing", "resolved")]
    assert [n.status for n in rec.got] == ["firing", "resolved"]


def test_a_storm_of_drifting_features_is_one_notification(tmp_path):
    rules = """  - name: FeatureDrift
    expr: drift_score > 0.2"""
    series = [
        ("drift_score", {"model": "m", "project": "p", "feature": f"f{i:03d}"}, [0.0], [0.5])
        for i in range(200)
    ] + [("drift_score", {"model": "other", "project": "p", "feature": "x"}, [0.0], [0.9])]
    eng, rec = engine_for(tmp_path, rules, series)
    run(eng, 0)
    assert sorted(len(n.alerts) for n in rec.got) == [1, 200]
    big = next(n for n in rec.got if len(n.alerts) == 200)
    assert dict(big.group_labels) == {"alertname": "FeatureDrift", "model": "m"}
    assert big.title() == "[FIRING:200] FeatureDrift (m)"


def test_repeat_interval_resends_a_firing_group_and_not_sooner(tmp_path):
    rules = """  - name: HighP99
    expr: latency_p99_ms > 500"""
    eng, rec = engine_for(tmp_path, rules, series_of([600] * 40), repeat="10m")
    run(eng, 35 * M)
    assert [n.t for n in rec.got] == [0.0, 10 * M, 20 * M, 30 * M]


def test_a_silence_holds_notifications_until_it_ends(tmp_path):
    rules = """  - name: HighP99
    expr: latency_p99_ms > 500"""
    eng, rec = engine_for(tmp_path, rules, series_of([600] * 20))
    from watchkeeper.store.alerts import Silence

    eng.states_backend.add(
        Silence("s1", [{"label": "model", "op": "=", "value": "m"}], 0.0, 5 * M, "me", "", 0.0)
    )
    run(eng, 8 * M)
    assert [n.t for n in rec.got] == [5 * M]
    assert [s.state for _, s in eng.alerts()] == ["firing"]  # silenced alerts still move


def test_a_restart_neither_forgets_a_firing_alert_nor_resends_it(tmp_path, store):
    rules = """  - name: HighP99
    expr: latency_p99_ms{project="p"} > 500"""
    values = [600.0] * 10 + [100.0] * 5
    store.write(
        Batch(
            points=[
                Points(
                    "p",
                    "model:m@1",
                    ["latency_p99_ms"] * len(values),
                    [None] * len(values),
                    [i * M for i in range(len(values))],
                    values,
                )
            ]
        )
    )
    eng, rec = engine_for(tmp_path, rules, None, store=store)
    for t in range(0, 5):
        eng.evaluate(t * M)
    eng.close()
    assert len(rec.got) == 1
    # a new engine on the same store (a restart): the alert is still firing and is not sent again
    eng2, rec2 = engine_for(tmp_path, rules, None, store=store)
    assert [(r.name, s.state, s.fired_at) for r, s in eng2.alerts()] == [("HighP99", "firing", 0.0)]
    for t in range(5, 14):
        eng2.evaluate(t * M)
    eng2.flush(5)
    assert [n.status for n in rec2.got] == ["resolved"]
    (alert,) = rec2.got[0].alerts
    assert dict(alert.labels)["version"] == "1" and alert.resolved_at == 10 * M
    sent = store.alerts.notifications()
    assert [r.status for r in sent] == ["sent", "sent"] and {r.notifier for r in sent} == {"rec"}
    eng2.close()


def test_a_failing_notifier_is_logged_as_a_signal_and_does_not_stop_another(tmp_path, store, caplog):
    text = """
notifiers:
  - {name: bad, type: webhook, url: "http://127.0.0.1:9/unused"}
  - {name: good, type: webhook, url: "http://127.0.0.1:9/unused"}
route:
  notifiers: [bad, good]
rules:
  - name: HighP99
    expr: latency_p99_ms > 500
"""
    store.write(Batch(points=[Points("p", "model:m@1", ["latency_p99_ms"], [None], [0.0], [900.0])]))
    bad, good = Recorder("bad", fail=True), Recorder("good")
    eng = AlertEngine(store, notifiers={"bad": bad, "good": good}, known_signals=lambda: {"latency_p99_ms"})
    assert eng.load(write(tmp_path, text)) == {}
    with caplog.at_level(logging.WARNING, logger="watchkeeper.alerting"):
        eng.evaluate(10.0)
        eng.flush(5)
    assert len(good.got) == 1
    outcomes = {r.notifier: (r.status, r.error) for r in store.alerts.notifications()}
    assert outcomes["good"] == ("sent", None)
    assert outcomes["bad"][0] == "failed" and "HTTP 400" in outcomes["bad"][1]
    assert any("bad" in r.getMessage() for r in caplog.records)
    (info,) = store.signals.series("p", name="notifier_failures")
    assert info.labels == {"notifier": "bad"} and store.signals.points_in(info.id).value.tolist() == [1.0]
    eng.close()


def test_rules_of_one_project_do_not_see_another(tmp_path):
    rules = """  - name: HighP99
    project: a
    expr: latency_p99_ms > 500"""
    series = [
        *series_of([600], labels={"model": "m", "project": "a"}),
        ("latency_p99_ms", {"model": "m", "project": "b"}, [0.0], [900.0]),
    ]
    eng, rec = engine_for(tmp_path, rules, series)
    run(eng, 0)
    assert [dict(a.labels)["project"] for n in rec.got for a in n.alerts] == ["a"]


def test_a_refused_file_keeps_the_rules_it_had_loaded(tmp_path):
    eng, _ = engine_for(tmp_path, P99, series_of([600]))
    bad = ROUTED.format(repeat="1h", rules="  - name: HighP99\n    expr: latency_p99_ms > > 500")
    path = write(tmp_path, bad)
    errors = eng.load(path)
    (err,) = errors.values()
    (problem,) = err.problems
    line = bad.splitlines().index("    expr: latency_p99_ms > > 500") + 1
    assert problem.line == line and problem.column == len("    expr: latency_p99_ms > ") + 1
    assert [r.name for r in eng.rules] == ["HighP99"] and eng.rules[0].for_seconds == 300.0


@pytest.mark.parametrize(
    ("rule", "message", "column"),
    [
        ("expr: nosuch_fn(latency_p99_ms) > 1", "unknown function", 11),
        ("expr: latency_p99_msec > 1", "no signal named 'latency_p99_msec'", 11),
        ("expr: latency_p99_ms > 1\n    for: soon", "expected a duration", 10),
    ],
)
def test_bad_rules_are_refused_with_line_and_column(tmp_path, rule, message, column):
    eng, _ = engine_for(tmp_path, P99, series_of([600]))
    text = ROUTED.format(repeat="1h", rules=f"  - name: Other\n    {rule}")
    (err,) = eng.load(write(tmp_path, text, "other.yml")).values()
    (problem,) = err.problems
    assert message in problem.message
    assert problem.column == column
    assert [r.name for r in eng.rules] == ["HighP99"]


def test_absent_may_name_a_signal_that_does_not_exist_yet(tmp_path):
    rules = """  - name: NoTraffic
    expr: absent(request_rate_v2{model="m"}, 10m)"""
    eng, rec = engine_for(tmp_path, rules, series_of([1.0], name="request_rate"))
    run(eng, 0)
    (n,) = rec.got
    assert dict(n.alerts[0].labels) == {"alertname": "NoTraffic", "severity": "warning", "model": "m"}


# -- the history of alert events -----------------------------------------------------------------------------


def test_pending_firing_resolved_leaves_three_events_that_outlive_the_state(tmp_path, store):
    rules = """  - name: HighP99
    expr: latency_p99_ms{project="p"} > 500
    for: 2m"""
    values = [600.0, 650.0, 700.0, 800.0, 900.0, 100.0, 100.0]
    t0 = 1_700_000_000.0
    times = [t0 + i * M for i in range(len(values))]
    store.write(Batch(points=[Points("p", "model:m@1", ["latency_p99_ms"] * 7, [None] * 7, times, values)]))
    now = [t0]
    eng = AlertEngine(
        store, notifiers={"rec": Recorder()}, clock=lambda: now[0], known_signals=lambda: {"latency_p99_ms"}
    )
    assert eng.load(write(tmp_path, ROUTED.format(repeat="1h", rules=rules))) == {}
    for t in times:
        now[0] = t
        eng.evaluate()  # no time given: the injected clock's
    events = store.alerts.events()
    assert [(e.from_state, e.to_state, e.t, e.value) for e in events] == [
        ("firing", "resolved", t0 + 5 * M, 900.0),  # the last value that held
        ("pending", "firing", t0 + 2 * M, 700.0),  # held for 2m since t0
        ("inactive", "pending", t0, 600.0),
    ]
    (rule_id,) = store.alerts.sync_rules([(None, "HighP99", {})]).values()
    labels = {"alertname": "HighP99", "severity": "warning", "project": "p", "model": "m", "version": "1"}
    for e in events:
        assert (e.rule_id, e.rule_name, e.project) == (rule_id, "HighP99", "p")
        assert {k: e.labels[k] for k in labels} == labels
    # a week later the resolved state is dropped; its history stays
    now[0] = t0 + 5 * M + 7 * 86400.0 + 1
    eng.evaluate()
    assert store.alerts.instances() == [] and len(store.alerts.events()) == 3
    eng.close()


def test_a_pending_alert_that_stops_and_a_resolved_one_that_returns_are_in_the_history(tmp_path):
    rules = """  - name: HighP99
    expr: latency_p99_ms > 500
    for: 1m"""
    eng, _ = engine_for(tmp_path, rules, series_of([600, 100, 600, 600, 100, 600, 600, 600]))
    run(eng, 7 * M)
    moves = [(e.from_state, e.to_state, e.t) for e in eng.states_backend.events]
    assert moves == [
        ("inactive", "pending", 0.0),
        ("pending", "inactive", 1 * M),
        ("inactive", "pending", 2 * M),
        ("pending", "firing", 3 * M),
        ("firing", "resolved", 4 * M),
        ("resolved", "pending", 5 * M),  # came back: the history says from where
        ("pending", "firing", 6 * M),
    ]
    assert {e.project for e in eng.states_backend.events} == {"p"}


def test_events_the_store_could_not_take_are_saved_with_the_next_evaluation(tmp_path, store, monkeypatch):
    rules = """  - name: HighP99
    expr: latency_p99_ms > 500
    for: 1m"""
    store.write(
        Batch(
            points=[Points("p", "model:m@1", ["latency_p99_ms"] * 3, [None] * 3, [0, M, 2 * M], [600.0] * 3)]
        )
    )
    eng, _ = engine_for(tmp_path, rules, None, store=store)
    save = store.alerts.save
    calls = []

    def failing_once(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise OSError("disk full")
        return save(*args, **kwargs)

    monkeypatch.setattr(store.alerts, "save", failing_once)
    eng.evaluate(0.0)  # inactive -> pending, not stored
    assert store.alerts.events() == []
    eng.evaluate(M)  # pending -> firing; both stored now, in order
    assert [(e.to_state, e.t) for e in store.alerts.events()] == [("firing", M), ("pending", 0.0)]
    eng.close()
