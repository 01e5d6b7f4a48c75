"""The simulated deployment behind the demo and the dashboard's tests: it tells the story it promises (an
incident that raises latency and errors, drift after the drift point, labels only once they have arrived),
through the real monitors, and the same seed writes the same data."""

from __future__ import annotations

import numpy as np
import pytest

from watchkeeper.simulate import Scenario, simulate
from watchkeeper.store import Store

START = 1_800_000_000.0


def _series(store: Store, name: str, subject: str = "model:fraud-clf@1", **labels: str) -> np.ndarray:
    (s,) = [x for x in store.signals.series("payments", subject=subject, name=name) if x.labels == labels]
    return store.signals.points_in(s.id).value


def test_the_story_shows_in_the_monitors_signals(store_uri):
    sc = Scenario(start=START, end=START + 50 * 60, incident=(0.3, 0.4), drift_at=0.5, label_delay=(300, 900))
    with Store(store_uri) as store:
        out = simulate(store, sc)
        assert out.windows == 100 and out.monitored_windows == 100
        p99 = _series(store, "latency_p99_ms")
        err = _series(store, "error_rate")
        assert len(p99) == 50
        incident, calm = slice(15, 20), slice(0, 14)
        assert np.median(p99[incident]) > 3 * np.median(p99[calm])
        assert err[incident].mean() > 5 * max(err[calm].mean(), 1e-3)
        share = _series(store, "dataset_drift_share")
        assert share[:20].max() <= 0.25 and share[-10:].mean() >= 0.25
        amount = _series(store, "drift_detected", feature="amount")
        assert amount[-10:].mean() > 0.5 and amount[:20].mean() < 0.2
        # labels arrive 5 to 15 minutes late: none for the last five minutes' predictions
        labelled = _series(store, "labelled_rows")
        assert 0 < out.labels < out.requests
        assert len(labelled) < 50
        assert set(out.training_runs) == {"1", "2"}
        ref = store.profiles.reference("payments", "fraud-clf", "2", "train")
        assert ref.rows == 20_000


@pytest.mark.parametrize("field", ["end", "features", "challenger_share"])
def test_a_bad_scenario_names_the_field(field):
    bad = {"end": START, "features": 0, "challenger_share": 1.0}
    with pytest.raises(ValueError, match=field):
        Scenario(start=START, **{"end": START + 600, **{field: bad[field]}})


def test_the_same_seed_writes_the_same_windows(tmp_path):
    sc = Scenario(start=START, end=START + 300, challenger_share=0.0)
    blobs = []
    for name in ("a", "b"):
        with Store(f"sqlite:///{tmp_path / name}.db") as store:
            simulate(store, sc, monitor=False)
            blobs.append([w.data for w in store.profiles.windows("payments", "model:fraud-clf@1")])
    assert len(blobs[0]) == 5 and blobs[0] == blobs[1]
