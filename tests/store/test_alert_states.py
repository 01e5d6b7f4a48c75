"""The alert engine's persistent part: rule ids that survive a reload, states, silences, the notification
log; and signal points that a monitor replaces when it recomputes a window."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from watchkeeper.store.alerts import AlertEvent, AlertState
from watchkeeper.store.batch import Batch, Points


def test_a_reloaded_rule_keeps_its_id_and_a_dropped_one_is_disabled(store):
    first = store.alerts.sync_rules([(None, "A", {"expr": "x > 1"}), ("p", "B", {"expr": "y > 2"})], now=1.0)
    again = store.alerts.sync_rules([(None, "A", {"expr": "x > 5"})], now=2.0)
    assert again[(None, "A")] == first[(None, "A")]
    with store.connect() as conn:
        from watchkeeper.store.schema import alert_rules

        rows = {r.name: r for r in conn.execute(alert_rules.select())}
    assert rows["A"].spec == {"expr": "x > 5"} and rows["A"].enabled
    assert not rows["B"].enabled


def test_states_round_trip_and_deleted_ones_go(store):
    ids = store.alerts.sync_rules([(None, "A", {})])
    rid = ids[(None, "A")]
    a = AlertState(rid, "k=1", {"k": "1"}, "firing", 10.0, 70.0, None, math.nan, 80.0, 75.0)
    b = AlertState(rid, "k=2", {"k": "2"}, "pending", 20.0)
    store.alerts.save([a, b])
    got = store.alerts.load([rid])
    assert got[(rid, "k=1")].state == "firing" and got[(rid, "k=1")].fired_at == 70.0
    assert (
        got[(rid, "k=1")].last_notified_at == 80.0 and got[(rid, "k=1")].last_value is None
    )  # NaN kept as None
    store.alerts.save([], deleted=[(rid, "k=2")])
    a.state, a.resolved_at = "resolved", 90.0
    store.alerts.save([a])
    got = store.alerts.load([rid])
    assert set(got) == {(rid, "k=1")} and got[(rid, "k=1")].resolved_at == 90.0


def test_silences_are_active_between_their_times_and_expire(store):
    s = store.alerts.add_silence([{"label": "model", "op": "=", "value": "m"}], ends_at=200.0, now=100.0)
    assert [x.id for x in store.alerts.silences(active_at=150.0)] == [s.id]
    assert store.alerts.silences(active_at=200.0) == []
    assert store.alerts.expire_silence(s.id, now=120.0)
    assert store.alerts.silences(active_at=150.0) == []
    with pytest.raises(ValueError, match="matchers: a silence needs at least one matcher"):
        store.alerts.add_silence([], ends_at=10.0)
    with pytest.raises(ValueError, match=r"matchers\[0\]: expected"):
        store.alerts.add_silence([{"label": "a", "op": "~", "value": "b"}], ends_at=10.0)
    with pytest.raises(ValueError, match="ends_at: expected a time after starts_at"):
        store.alerts.add_silence([{"label": "a", "op": "=", "value": "b"}], ends_at=5.0, now=10.0)


def test_replacing_points_removes_the_earlier_values_at_those_times_only(store):
    def pts(values, t):
        return Points("p", "model:m@1", ["a"] * len(t), [None] * len(t), t, values)

    store.write(Batch(points=[pts([1.0, 2.0], [10.0, 20.0])]))
    store.write(Batch(points=[pts([5.0], [20.0])], replace_points=True))
    (info,) = store.signals.series("p", name="a")
    data = store.signals.points_in(info.id)
    assert data.t.tolist() == [10.0, 20.0] and data.value.tolist() == [1.0, 5.0]


def _event(rule_id, project, lkey, old, new, t, value=None, rule="A"):
    return AlertEvent(rule_id, rule, project, lkey, dict([lkey.split("=")]), old, new, t, value)


def test_events_are_kept_newest_first_and_filter_by_project_time_rule_and_series(store):
    ids = store.alerts.sync_rules([(None, "A", {}), ("q", "B", {})])
    a, b = ids[(None, "A")], ids[("q", "B")]
    store.alerts.log_events(
        [
            _event(a, "p", "k=1", "inactive", "pending", 10.0, 600.0),
            _event(a, "p", "k=1", "pending", "firing", 70.0, math.nan),
            _event(a, None, "k=2", "inactive", "firing", 80.0, math.inf),
            _event(b, "q", "k=3", "inactive", "firing", 90.0, 1.5, rule="B"),
            _event(a, "p", "k=1", "firing", "resolved", 130.0, 700.0),
        ]
    )
    every = store.alerts.events()
    assert [e.t for e in every] == [130.0, 90.0, 80.0, 70.0, 10.0]
    assert every[0] == AlertEvent(
        a, "A", "p", "k=1", {"k": "1"}, "firing", "resolved", 130.0, 700.0, every[0].id
    )
    assert every[3].value is None and every[2].value == math.inf  # NaN is stored as None
    assert [(e.from_state, e.to_state) for e in store.alerts.events(project="p")] == [
        ("firing", "resolved"),
        ("pending", "firing"),
        ("inactive", "pending"),
    ]
    assert [e.t for e in store.alerts.events(project=["p", "q"], start=70.0, end=130.0)] == [90.0, 70.0]
    assert [e.t for e in store.alerts.events(project=[])] == []
    assert [e.rule_id for e in store.alerts.events(rule="B")] == [b]
    assert [e.t for e in store.alerts.events(labels_key="k=1", limit=2)] == [130.0, 70.0]


def test_states_and_events_are_saved_in_one_transaction(store):
    rid = store.alerts.sync_rules([(None, "A", {})])[(None, "A")]
    good = AlertState(rid, "k=1", {"k": "1"}, "pending", 10.0)
    # an event of a rule id that does not exist breaks the foreign key: the states must not be written
    with pytest.raises(sa.exc.IntegrityError):
        store.alerts.save([good], events=[_event(rid + 1000, "p", "k=1", "inactive", "pending", 10.0)])
    assert store.alerts.load([rid]) == {} and store.alerts.events() == []
    store.alerts.save([good], events=[_event(rid, "p", "k=1", "inactive", "pending", 10.0, 2.0)])
    assert list(store.alerts.load([rid])) == [(rid, "k=1")]
    assert [(e.to_state, e.value) for e in store.alerts.events()] == [("pending", 2.0)]


def _notification(store, rule_id, t, projects, status="sent"):
    alerts = [{"rule": "A", "labels": {"project": p} if p else {}, "status": "firing"} for p in projects]
    store.alerts.log_notification(
        rule_id=rule_id, group_key=f"g{t}", notifier="hook", t=t, status=status, payload={"alerts": alerts}
    )


def test_notifications_filter_by_time_and_by_the_projects_of_their_alerts(store):
    ids = store.alerts.sync_rules([(None, "A", {}), ("q", "B", {})])
    a, b = ids[(None, "A")], ids[("q", "B")]
    _notification(store, a, 10.0, ["p"])
    _notification(store, None, 20.0, ["p", "r"])
    _notification(store, b, 30.0, [None])  # no project label: the rule's project
    _notification(store, a, 40.0, [None])  # no label, global rule: no project
    every = store.alerts.notifications()
    assert [n.t for n in every] == [40.0, 30.0, 20.0, 10.0]
    assert [n.projects for n in every] == [frozenset(), {"q"}, {"p", "r"}, {"p"}]
    assert (every[1].rule_name, every[1].rule_project, every[0].rule_name) == ("B", "q", "A")
    assert [n.t for n in store.alerts.notifications(project="p")] == [20.0, 10.0]
    assert [n.t for n in store.alerts.notifications(start=20.0, end=40.0)] == [30.0, 20.0]
    assert [n.t for n in store.alerts.notifications(project="p", limit=1)] == [20.0]
    only_p = store.alerts.notifications(where=lambda n: bool(n.projects) and n.projects <= {"p", "q"})
    assert [n.t for n in only_p] == [30.0, 10.0]


def test_a_filtered_read_of_notifications_pages_past_the_rows_it_rejects(store, monkeypatch):
    import watchkeeper.store.alerts as alerts_module

    for i in range(1203):
        _notification(store, None, float(i), ["p" if i % 400 == 0 else "x"])
    # 1203 rows read in pages of 500, newest first: the 4 of project p are at t = 1200, 800, 400, 0
    assert [n.t for n in store.alerts.notifications(project="p")] == [1200.0, 800.0, 400.0, 0.0]
    monkeypatch.setattr(alerts_module, "NOTIFICATION_SCAN", 500)
    assert [n.t for n in store.alerts.notifications(project="p")] == [1200.0, 800.0]


def test_a_silence_is_read_back_by_id(store):
    s = store.alerts.add_silence(
        [{"label": "a", "op": "=~", "value": "b.*"}], ends_at=20.0, now=10.0, project="p"
    )
    assert store.alerts.silence(s.id) == s
    assert store.alerts.silence("nope") is None
