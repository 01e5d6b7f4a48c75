"""Staleness: ages from the training run and the reference, read from a real store."""

from __future__ import annotations

import pytest

from watchkeeper.monitor import staleness
from watchkeeper.monitor.base import MonitorSettings, WindowContext
from watchkeeper.profile import profile
from watchkeeper.store import Batch, ProfileLog, RunStart, RunUpdate, Store


def _ctx(store: Store, now: float, *, run_id: str | None, with_reference: bool) -> WindowContext:
    run = store.runs.get(run_id) if run_id else None
    refs = store.profiles.references("p", "m") if with_reference else []
    return WindowContext(
        store=store,
        project="p",
        model="m",
        version="1",
        subject="model:m@1",
        start=now - 90.0,
        end=now - 30.0,
        profile=None,
        reference=None,
        reference_info=refs[0] if refs else None,
        training_run=run,
        settings=MonitorSettings(),
        now=now,
    )


def _signals(ctx: WindowContext) -> dict[str, float]:
    return {d.name: d.value for d in staleness.derive(ctx)}


@pytest.fixture
def store(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/wk.db")
    yield s
    s.close()


def _reference(store: Store, run_id: str | None) -> float:
    prof = profile({"x": [1.0, 2.0]})
    store.write(
        Batch(
            profiles=[
                ProfileLog(
                    "p",
                    "model:m@1",
                    "reference",
                    0.0,
                    0.0,
                    prof.rows,
                    prof.to_bytes(),
                    1,
                    run_id,
                    ("m", "1", "train"),
                )
            ]
        )
    )
    return store.profiles.references("p", "m")[0].created_at


def test_model_age_from_the_training_run_end_and_reference_age(store):
    store.write(Batch(runs=[RunStart("train-1", "p", "train", created_at=1_000.0, model="m", version="1")]))
    store.write(Batch(run_updates=[RunUpdate("train-1", status="finished", ended_at=4_600.0)]))
    created = _reference(store, "train-1")
    sig = _signals(_ctx(store, created + 500.0, run_id="train-1", with_reference=True))
    assert sig["model_age_seconds"] == created + 500.0 - 4_600.0
    assert sig["reference_age_seconds"] == 500.0


def test_a_running_training_run_counts_from_its_start(store):
    store.write(Batch(runs=[RunStart("train-2", "p", "train", created_at=2_000.0)]))
    sig = _signals(_ctx(store, 10_000.0, run_id="train-2", with_reference=False))
    assert sig == {"model_age_seconds": 8_000.0}


def test_without_a_run_the_reference_dates_the_model(store):
    created = _reference(store, None)
    sig = _signals(_ctx(store, created + 42.0, run_id=None, with_reference=True))
    assert sig == {"model_age_seconds": 42.0, "reference_age_seconds": 42.0}


def test_nothing_known_nothing_derived(store):
    assert _signals(_ctx(store, 5_000.0, run_id=None, with_reference=False)) == {}
