"""The alerts page's routes through FastAPI's TestClient, over a store a real engine wrote: the history of
states (pending, firing, resolved), the log of notifications a webhook receiver on 127.0.0.1 got, silences
created, listed and expired (a silenced alert is not notified, and is once its silence ends), who may see
and write what, and 422s naming the field at fault."""

from __future__ import annotations

import runpy
import time
from pathlib import Path

import pytest

from watchkeeper.alerting.engine import AlertEngine
from watchkeeper.store.batch import Batch, Points

pytest.importorskip("fastapi", reason="the server needs the dev extra")
from fastapi.testclient import TestClient

from watchkeeper.server import create_app
from watchkeeper.server.auth import EVERYTHING, token_verifier

M = 60.0
ADMIN = "test-admin-token"


_servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))  # tests/servers.py
Sink = _servers["WebhookSink"]


def _models(sink) -> list[tuple[str, str]]:
    """(status, model) of every alert the sink received, in order."""
    return [(a["status"], a["labels"]["model"]) for b in sink.bodies for a in b["alerts"]]


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def t0() -> float:
    # the engine's clock starts at the wall clock's second: silences made by the routes use the wall clock
    return float(int(time.time()))


@pytest.fixture
def engine(store, sink, tmp_path, t0):
    """An engine over ``store``: p99 of model m (project p) above 500 for three minutes then below, and of
    model n (project q) above 500 throughout; a one-minute ``for``; a webhook to the sink."""

    def points(project, subject, values):
        n = len(values)
        return Points(
            project, subject, ["latency_p99_ms"] * n, [None] * n, [t0 + i * M for i in range(n)], values
        )

    store.write(
        Batch(
            points=[
                points("p", "model:m@1", [600.0, 650.0, 700.0, 100.0, 100.0, 100.0]),
                points("q", "model:n@1", [900.0] * 6),
            ]
        )
    )
    rules = tmp_path / "alerts.yml"
    rules.write_text(
        f"""
notifiers:
  - {{name: hook, type: webhook, url: "{sink.url}"}}
route:
  notifiers: [hook]
  group_by: [alertname, model]
  group_interval: 1m
rules:
  - name: HighP99
    expr: latency_p99_ms > 500
    for: 1m
"""
    )
    now = [t0]
    # the dispatcher logs deliveries on the engine's clock, so the log's times are the evaluations'
    clock = {"clock": lambda: now[0], "known_signals": lambda: {"latency_p99_ms"}}
    eng = AlertEngine(
        store,
        clock=clock["clock"],
        known_signals=clock["known_signals"],
        dispatcher_options={"clock": clock["clock"]},
    )
    assert eng.load(rules) == {}

    def run(minutes) -> None:
        for i in minutes:
            now[0] = t0 + i * M
            eng.evaluate()
            assert eng.flush(10)  # delivered (and logged) at this evaluation's time

    eng.run = run
    yield eng
    eng.close()


@pytest.fixture
def app(store):
    """The app with tokens: ``ADMIN`` may do everything; tokens of the store reach their one project."""
    real = token_verifier(store.tokens)
    return create_app(store, verify_token=lambda t: EVERYTHING if t == ADMIN else real(t))


@pytest.fixture
def client(app):
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _as(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _problems(r) -> dict[str, str]:
    assert r.status_code == 422, r.text
    return {p["field"]: p["message"] for p in r.json()["detail"]}


def _silence(**kw) -> dict:
    return {
        "matchers": [{"label": "model", "op": "=", "value": "n"}],
        "duration": 3600,
        "created_by": "ops",
        **kw,
    }


def test_the_history_lists_pending_firing_resolved_newest_first(client, engine, t0):
    engine.run(range(6))
    r = client.get("/api/v1/alerts/history", params={"project": "p"}, headers=_as(ADMIN))
    assert r.status_code == 200, r.text
    events = r.json()["events"]
    assert [(e["from_state"], e["to_state"], e["t"], e["value"]) for e in events] == [
        ("firing", "resolved", t0 + 3 * M, 700.0),
        ("pending", "firing", t0 + M, 650.0),
        ("inactive", "pending", t0, 600.0),
    ]
    assert {(e["rule"], e["project"], e["labels"]["model"]) for e in events} == {("HighP99", "p", "m")}
    every = client.get("/api/v1/alerts/history", headers=_as(ADMIN)).json()["events"]
    assert sorted((e["project"], e["to_state"]) for e in every) == [
        ("p", "firing"),
        ("p", "pending"),
        ("p", "resolved"),
        ("q", "firing"),
        ("q", "pending"),
    ]
    # [start, end), and the newest `limit` of them with `truncated`
    window = {"start": t0 + M, "end": t0 + 3 * M}
    got = client.get("/api/v1/alerts/history", params=window, headers=_as(ADMIN)).json()["events"]
    assert sorted((e["project"], e["to_state"], e["t"]) for e in got) == [
        ("p", "firing", t0 + M),
        ("q", "firing", t0 + M),
    ]
    one = client.get("/api/v1/alerts/history", params={"limit": 1}, headers=_as(ADMIN)).json()
    assert one["truncated"] and [e["to_state"] for e in one["events"]] == ["resolved"]
    assert client.get("/api/v1/alerts/history", params={"rule": "Other"}, headers=_as(ADMIN)).json() == {
        "events": [],
        "truncated": False,
    }


def test_notifications_list_what_the_receiver_got(client, engine, sink, t0):
    engine.run(range(6))
    assert sorted(_models(sink)) == [("firing", "m"), ("firing", "n"), ("resolved", "m")]
    got = client.get("/api/v1/alerts/notifications", headers=_as(ADMIN)).json()["notifications"]
    assert (got[0]["t"], got[0]["status"], got[0]["labels"]["model"]) == (t0 + 3 * M, "sent", "m")
    assert sorted((n["t"] - t0, n["labels"]["model"], n["payload"]["status"]) for n in got) == [
        (M, "m", "firing"),
        (M, "n", "firing"),
        (3 * M, "m", "resolved"),
    ]
    first = got[0]
    assert first["rule"] == "HighP99" and first["notifier"] == "hook" and first["error"] is None
    assert first["projects"] == ["p"] and first["payload"]["alerts"][0]["value"] == 700.0
    only_q = client.get("/api/v1/alerts/notifications", params={"project": "q"}, headers=_as(ADMIN)).json()
    assert [n["labels"]["model"] for n in only_q["notifications"]] == ["n"]
    early = {"end": t0 + 2 * M, "limit": 1}
    page = client.get("/api/v1/alerts/notifications", params=early, headers=_as(ADMIN)).json()
    assert page["truncated"] and [n["t"] for n in page["notifications"]] == [t0 + M]


def test_a_silenced_alert_moves_but_is_not_notified_until_its_silence_is_expired(client, engine, sink, t0):
    r = client.post(
        "/api/v1/silences", json=_silence(project="q", starts_at=t0 - 1, comment="deploy"), headers=_as(ADMIN)
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["state"] == "active" and made["ends_at"] == t0 - 1 + 3600 and made["comment"] == "deploy"
    assert client.get("/api/v1/silences", params={"active": True}, headers=_as(ADMIN)).json()["silences"] == [
        made
    ]
    engine.run(range(5))
    assert sorted(_models(sink)) == [("firing", "m"), ("resolved", "m")]  # nothing about model n
    logged = client.get("/api/v1/alerts/notifications", headers=_as(ADMIN)).json()["notifications"]
    assert {n["labels"]["model"] for n in logged} == {"m"}
    history = client.get("/api/v1/alerts/history", params={"project": "q"}, headers=_as(ADMIN)).json()
    assert [e["to_state"] for e in history["events"]] == ["firing", "pending"]  # it still moved

    assert client.delete(f"/api/v1/silences/{made['id']}", headers=_as(ADMIN)).status_code == 204
    (expired,) = client.get("/api/v1/silences", params={"active": False}, headers=_as(ADMIN)).json()[
        "silences"
    ]
    assert expired["id"] == made["id"] and expired["state"] == "expired" and expired["ends_at"] <= time.time()
    assert client.get("/api/v1/silences", params={"active": True}, headers=_as(ADMIN)).json() == {
        "silences": []
    }
    engine.run([5])
    assert sorted(_models(sink)) == [("firing", "m"), ("firing", "n"), ("resolved", "m")]
    # expiring twice changes nothing; an unknown id is a 404
    assert client.delete(f"/api/v1/silences/{made['id']}", headers=_as(ADMIN)).status_code == 204
    r = client.delete("/api/v1/silences/nosuchsilence", headers=_as(ADMIN))
    assert r.status_code == 404 and "nosuchsilence" in r.json()["detail"]


def test_a_silence_may_end_at_a_time_and_a_future_one_is_pending(client, t0):
    later = {"starts_at": t0 + 3600, "ends_at": t0 + 7200}
    r = client.post("/api/v1/silences", json={**_silence(), **later, "duration": None}, headers=_as(ADMIN))
    assert r.status_code == 201, r.text
    assert (r.json()["state"], r.json()["project"], r.json()["ends_at"]) == ("pending", None, t0 + 7200)
    assert client.get("/api/v1/silences", params={"active": False}, headers=_as(ADMIN)).json()[
        "silences"
    ] == [r.json()]


def test_who_may_read_and_write_what(client, store, engine):
    engine.run(range(6))
    read_p = store.tokens.create("p", "read")[1]
    write_p = store.tokens.create("p", "write")[1]
    # history and notifications: a token of p sees p's only, and may not ask for q's
    seen = client.get("/api/v1/alerts/history", headers=_as(read_p)).json()["events"]
    assert len(seen) == 3 and {e["project"] for e in seen} == {"p"}
    assert (
        client.get("/api/v1/alerts/history", params={"project": "q"}, headers=_as(read_p)).status_code == 403
    )
    notes = client.get("/api/v1/alerts/notifications", headers=_as(read_p)).json()["notifications"]
    assert len(notes) == 2 and all(n["projects"] == ["p"] for n in notes)
    r = client.get("/api/v1/alerts/notifications", params={"project": "q"}, headers=_as(read_p))
    assert r.status_code == 403
    assert client.get("/api/v1/alerts/history").status_code == 401

    # silences: a read token writes none; a write token of p writes p's only
    r = client.post("/api/v1/silences", json=_silence(project="p"), headers=_as(read_p))
    assert r.status_code == 403 and "read scope" in r.json()["detail"]
    assert (
        client.post("/api/v1/silences", json=_silence(project="q"), headers=_as(write_p)).status_code == 403
    )
    r = client.post("/api/v1/silences", json=_silence(), headers=_as(write_p))
    assert r.status_code == 403 and "every project" in r.json()["detail"]
    mine = client.post("/api/v1/silences", json=_silence(project="p"), headers=_as(write_p)).json()
    theirs = client.post("/api/v1/silences", json=_silence(project="q"), headers=_as(ADMIN)).json()
    everyone = client.post("/api/v1/silences", json=_silence(), headers=_as(ADMIN)).json()
    listed = client.get("/api/v1/silences", headers=_as(read_p)).json()["silences"]
    assert {s["id"] for s in listed} == {mine["id"], everyone["id"]}  # a silence of no project applies to p
    assert len(client.get("/api/v1/silences", headers=_as(ADMIN)).json()["silences"]) == 3
    assert client.get("/api/v1/silences", params={"project": "q"}, headers=_as(read_p)).status_code == 403
    assert client.delete(f"/api/v1/silences/{theirs['id']}", headers=_as(write_p)).status_code == 403
    assert client.delete(f"/api/v1/silences/{everyone['id']}", headers=_as(write_p)).status_code == 403
    assert client.delete(f"/api/v1/silences/{mine['id']}", headers=_as(read_p)).status_code == 403
    assert client.delete(f"/api/v1/silences/{mine['id']}", headers=_as(write_p)).status_code == 204
    still = {s.id for s in store.alerts.silences(active_at=time.time() + 1)}
    assert still == {theirs["id"], everyone["id"]}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            {"matchers": [{"label": "model", "op": "=~", "value": "fraud-(clf"}]},
            "matchers[0].value",
            "regular expression",
        ),
        (
            {"matchers": [{"label": "model", "op": "~", "value": "x"}]},
            "matchers[0].op",
            "'=', '!=', '=~' or '!~'",
        ),
        ({"matchers": [{"label": "", "op": "=", "value": "x"}]}, "matchers[0].label", "at least 1 character"),
        (
            {"matchers": [{"label": "a", "op": "=", "value": "x", "extra": 1}]},
            "matchers[0].extra",
            "not permitted",
        ),
        ({"matchers": []}, "matchers", "at least 1 item"),
        ({"ends_at": 2e9}, "ends_at", "one of them"),
        ({"duration": None}, "ends_at", "one of them"),
        ({"duration": 0}, "duration", "greater than 0"),
        ({"duration": None, "ends_at": 1000.0, "starts_at": 10.0}, "ends_at", "in the past"),
        ({"duration": None, "ends_at": 5.0, "starts_at": 10.0}, "ends_at", "expected an end after starts_at"),
        ({"duration": 1.7e308, "starts_at": 1.7e308}, "duration", "past the largest time"),
        ({"created_by": ""}, "created_by", "at least 1 character"),
        ({"created_by": " \t "}, "created_by", "got only whitespace"),
        ({"project": "x" * 129}, "project", "at most 128 characters"),
        ({"comment": "a\x00b"}, "comment", "NUL character"),
    ],
)
def test_a_bad_silence_is_a_422_naming_the_field(client, change, field, message):
    r = client.post("/api/v1/silences", json=_silence(**change), headers=_as(ADMIN))
    found = _problems(r)
    assert list(found) == [field] and message in found[field]
    assert client.get("/api/v1/silences", headers=_as(ADMIN)).json() == {"silences": []}


def test_a_range_that_ends_before_it_starts_is_a_422(client):
    for url in ("/api/v1/alerts/history", "/api/v1/alerts/notifications"):
        r = client.get(url, params={"start": 10, "end": 5}, headers=_as(ADMIN))
        assert _problems(r) == {"query.start": "start (10) is after end (5)"}
