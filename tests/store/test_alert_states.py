"""The alert engine's persistent part: rule ids that survive a reload, states, silences, the notification
log; and signal points that a monitor replaces when it recomputes a window."""

from __future__ import annotations

import math

import pytest

from watchkeeper.store.alerts import AlertState
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
