"""run.log: W&B step semantics, what is accepted, what is refused, and that nothing accepted is lost."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest

import watchkeeper as wk
from watchkeeper.store import Store


def _history(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    h = Store(uri).signals.history(run_id, key)
    return list(zip(h.step.tolist(), h.value.tolist(), strict=True))


def test_each_log_commits_a_step(store_uri):
    run = wk.init(project="t", uri=store_uri)
    for i in range(3):
        run.log({"loss": 1.0 / (i + 1)})
    assert run.step == 3
    run.finish()
    assert _history(store_uri, run.id, "loss") == [(0, 1.0), (1, 0.5), (2, 1 / 3)]


def test_commit_false_accumulates_into_one_step(store_uri):
    run = wk.init(project="t", uri=store_uri)
    run.log({"a": 1}, commit=False)
    run.log({"b": 2}, commit=False)
    assert run.step == 0
    run.log({"c": 3})
    run.log({"a": 10})
    run.finish()
    assert _history(store_uri, run.id, "a") == [(0, 1.0), (1, 10.0)]
    assert _history(store_uri, run.id, "b") == [(0, 2.0)]
    assert _history(store_uri, run.id, "c") == [(0, 3.0)]


def test_explicit_steps_follow_wandb(store_uri):
    run = wk.init(project="t", uri=store_uri)
    run.log({"x": 1}, step=5)  # step 5 stays open until a later step arrives
    run.log({"y": 2}, step=5)
    assert run.step == 5
    run.log({"x": 3}, step=8)  # commits step 5
    run.log({"x": 4})  # joins the open step 8, commits it, moves to 9
    assert run.step == 9
    run.log({"z": 7}, step=20, commit=True)
    assert run.step == 21
    with pytest.raises(ValueError, match="step 3 is lower than the current step 21"):
        run.log({"x": 0}, step=3)
    run.finish()
    assert _history(store_uri, run.id, "x") == [(5, 1.0), (8, 4.0)]
    assert _history(store_uri, run.id, "y") == [(5, 2.0)]
    assert _history(store_uri, run.id, "z") == [(20, 7.0)]


def test_an_open_step_is_written_at_finish(store_uri):
    run = wk.init(project="t", uri=store_uri)
    run.log({"x": 1.5}, step=3)
    run.finish()
    assert _history(store_uri, run.id, "x") == [(3, 1.5)]


def test_accepted_values_and_their_stored_numbers(store_uri):
    torch_like = type(
        "T", (), {"numel": lambda self: 1, "size": lambda self: (1,), "item": lambda self: 0.25}
    )()
    run = wk.init(project="t", uri=store_uri)
    run.log(
        {
            "int": 3,
            "float": 2.5,
            "bool": True,
            "np_float32": np.float32(0.5),
            "np_int64": np.int64(-7),
            "np_bool": np.bool_(False),
            "zero_d": np.array(1.25),
            "tensor": torch_like,
            "nan": math.nan,
            "inf": -math.inf,
            "huge": 10**400,
            "skipped": None,
            "nested": {"a": 1, "b": {"c": 2.0}},
        }
    )
    run.log(OrderedDict(int=4))  # any Mapping
    run.finish()
    store = Store(store_uri)
    last = {s.name: s.last for s in store.signals.summaries(run.id)}
    assert last.pop("nan") != last.get("nan")  # NaN stored as NaN
    assert last == {
        "int": 4.0,
        "float": 2.5,
        "bool": 1.0,
        "np_float32": 0.5,
        "np_int64": -7.0,
        "np_bool": 0.0,
        "zero_d": 1.25,
        "tensor": 0.25,
        "inf": -math.inf,
        "huge": math.inf,
        "nested/a": 1.0,
        "nested/b/c": 2.0,
    }


@pytest.mark.parametrize(
    ("data", "error", "pattern"),
    [
        ({"text": "hello"}, TypeError, r"key 'text' has a value of type builtins\.str.*strings belong"),
        ({"vec": [1, 2]}, TypeError, r"key 'vec' has a value of type builtins\.list"),
        ({"obj": object()}, TypeError, r"key 'obj' has a value of type builtins\.object"),
        ({"nested": {"deep": "x"}}, TypeError, r"key 'nested/deep' has a value of type builtins\.str"),
        ({"arr": np.zeros(3)}, TypeError, r"key 'arr' has a value of type numpy\.ndarray"),
        ({"": 1}, ValueError, "non-empty"),
        ({"k" * 300: 1}, ValueError, "300 characters long"),
        ({3: 1}, TypeError, "keys must be str, got int"),
        ({"a\nb": 1}, ValueError, "control characters"),
    ],
)
def test_bad_values_raise_naming_key_and_type(store_uri, data, error, pattern):
    run = wk.init(project="t", uri=store_uri)
    run.log({"good": 1.0})
    with pytest.raises(error, match=pattern):
        run.log({"before": 2.0, **data, "after": 3.0})
    run.log({"good": 4.0})
    run.finish()
    # nothing of the failing call was kept, nothing before or after it was lost
    store = Store(store_uri)
    assert {s.name for s in store.signals.summaries(run.id)} == {"good"}
    assert _history(store_uri, run.id, "good") == [(0, 1.0), (1, 4.0)]


def test_log_requires_a_dict(store_uri):
    run = wk.init(project="t", uri=store_uri)
    with pytest.raises(TypeError, match="expected a dict of values, got list"):
        run.log([1, 2])
    with pytest.raises(TypeError, match="step must be an int, got str"):
        run.log({"a": 1}, step="3")


def test_summary_holds_last_values_and_user_values(store_uri):
    run = wk.init(project="t", uri=store_uri)
    run.log({"acc": 0.5})
    run.summary["best_auc"] = 0.97
    run.log({"acc": 0.75, "best_auc": 0.98})  # a logged key overwrites a set one, as in W&B
    assert run.summary["acc"] == 0.75
    assert run.summary["best_auc"] == 0.98
    run.summary["note"] = "ok"
    with pytest.raises(TypeError, match=r"summary\.bad: cannot store a value of type builtins\.object"):
        run.summary["bad"] = object()
    run.finish()
    info = Store(store_uri).runs.get(run.id)
    assert info.summary == {"acc": 0.75, "best_auc": 0.98, "note": "ok"}
    assert info.last_step == 1


def test_config_reads_as_attributes_and_is_stored(store_uri):
    run = wk.init(project="t", uri=store_uri, config={"lr": 1e-3, "layers": [64, 32]})
    assert run.config.lr == 1e-3 and run.config["layers"] == [64, 32]
    run.config.batch_size = 128
    run.config.update({"dropout": math.nan})
    with pytest.raises(AttributeError, match="config has no key 'missing'"):
        _ = run.config.missing
    with pytest.raises(TypeError, match=r"config\.fn: cannot store"):
        run.config["fn"] = print
    run.finish()
    config = Store(store_uri).runs.get(run.id).config
    assert config["lr"] == 1e-3 and config["layers"] == [64, 32] and config["batch_size"] == 128
    assert math.isnan(config["dropout"])


def test_module_level_api_acts_on_the_current_run(store_uri):
    with pytest.raises(wk.UsageError, match=r"call wk\.init\(\) before wk\.log\(\)"):
        wk.log({"a": 1})
    run = wk.init(project="t", uri=store_uri)
    assert wk.run is run and wk.current_run() is run
    wk.log({"a": 1})
    wk.finish()
    assert wk.run is None
    with pytest.raises(wk.UsageError, match="is finished"):
        run.log({"a": 2})
    assert _history(store_uri, run.id, "a") == [(0, 1.0)]


def test_init_finishes_the_previous_run_unless_asked_not_to(store_uri):
    first = wk.init(project="t", uri=store_uri)
    second = wk.init(project="t", uri=store_uri)
    assert Store(store_uri).runs.get(first.id).status == "finished"
    third = wk.init(project="t", uri=store_uri, reinit="create_new")
    assert wk.run is third
    assert Store(store_uri).runs.get(second.id).status == "running"


def test_context_manager_marks_failure(store_uri):
    with pytest.raises(RuntimeError), wk.init(project="t", uri=store_uri) as run:
        run.log({"a": 1})
        raise RuntimeError("diverged")
    info = Store(store_uri).runs.get(run.id)
    assert info.status == "failed" and info.exit_code == 1 and info.error == "RuntimeError: diverged"
    with wk.init(project="t", uri=store_uri) as ok:
        ok.log({"a": 1})
    assert Store(store_uri).runs.get(ok.id).status == "finished"


def test_init_records_the_run_at_once(store_uri):
    run = wk.init(
        project="net",
        name="ae",
        job_type="train",
        tags=["v1"],
        model="kpi-ae",
        version=1,
        group="g",
        notes="n",
        uri=store_uri,
    )
    info = Store(store_uri).runs.get(run.id)
    assert (info.project, info.name, info.job_type, info.tags, info.model, info.version, info.group) == (
        "net",
        "ae",
        "train",
        ["v1"],
        "kpi-ae",
        "1",
        "g",
    )
    assert info.status == "running"


def test_disabled_mode_checks_but_stores_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WATCHKEEPER_MODE", "disabled")
    run = wk.init(project="t")
    run.log({"a": 1})
    with pytest.raises(TypeError):
        run.log({"a": "x"})
    assert run.summary["a"] == 1
    run.finish()
    assert not (tmp_path / ".watchkeeper").exists()


def test_default_store_is_under_dot_watchkeeper(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = wk.init(project="t")
    run.log({"a": 1})
    run.finish()
    assert (tmp_path / ".watchkeeper" / "watchkeeper.db").exists()
    monkeypatch.setenv("WATCHKEEPER_URI", f"sqlite:///{tmp_path}/elsewhere.db")
    other = wk.init(project="t")
    other.finish()
    assert Store(f"sqlite:///{tmp_path}/elsewhere.db").runs.get(other.id).status == "finished"


def test_a_training_run_round_trips_on_each_database(store_uri):
    run = wk.init(project="rt", uri=store_uri, config={"lr": 0.1})
    for i in range(100):
        run.log({"loss": 1.0 / (i + 1), "nan": math.nan if i % 2 else 0.0})
    run.log({"examples": wk.Table(columns=["q", "p"], data=[["a", 1.5], ["b", math.inf]])})
    run.finish()
    store = Store(store_uri)
    h = store.signals.history(run.id, "loss")
    np.testing.assert_allclose(h.value, 1.0 / (np.arange(100) + 1))
    assert np.isnan(store.signals.history(run.id, "nan").value[1::2]).all()
    t = store.samples.table(run.id, "examples")
    assert t.step == 100 and t.columns == ["q", "p"] and t.rows == [["a", 1.5], ["b", math.inf]]
