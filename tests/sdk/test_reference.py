"""A model version's reference profile: logged by the training run, read back by whoever monitors it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import watchkeeper as wk
from watchkeeper.store import Store


def test_log_reference_and_load_it_back(store_uri):
    rng = np.random.default_rng(0)
    train = pd.DataFrame(
        {"amount": rng.lognormal(3, 1, 5000), "country": rng.choice(["de", "fr", "us"], 5000)}
    )
    run = wk.init(project="fraud", job_type="train", model="fraud-clf", version="1.3.0", uri=store_uri)
    logged = run.log_reference(train)
    run.finish()
    ref = wk.load_reference("fraud-clf", "1.3.0", project="fraud", uri=store_uri)
    assert ref == logged and ref.rows == 5000
    assert ref["amount"].mean == pytest.approx(train.amount.mean(), rel=1e-12)
    assert ref["country"].top(1)[0].value == train.country.value_counts().index[0]
    (info,) = Store(store_uri).profiles.references("fraud")
    assert (info.model, info.version, info.name, info.rows, info.run_id) == (
        "fraud-clf",
        "1.3.0",
        "train",
        5000,
        run.id,
    )


def test_logging_a_reference_again_replaces_it(store_uri):
    run = wk.init(project="p", model="m", version=2, uri=store_uri)
    run.log_reference(pd.DataFrame({"x": [1.0, 2.0]}))
    run.log_reference(pd.DataFrame({"x": [10.0, 20.0, 30.0]}))
    run.log_reference(pd.DataFrame({"x": [5.0]}), name="holdout")
    run.finish()
    assert wk.load_reference("m", 2, project="p", uri=store_uri)["x"].mean == 20.0
    assert wk.load_reference("m", 2, "holdout", project="p", uri=store_uri).rows == 1
    assert [r.name for r in Store(store_uri).profiles.references("p")] == ["holdout", "train"]


def test_log_reference_needs_model_and_version(store_uri):
    run = wk.init(project="p", uri=store_uri)
    with pytest.raises(wk.UsageError, match="needs the run's model and version"):
        run.log_reference(pd.DataFrame({"x": [1.0]}))


def test_a_missing_reference_is_a_clear_error(store_uri):
    wk.init(project="p", uri=store_uri).finish()
    with pytest.raises(KeyError, match="no reference 'train' for model 'm' version '1'"):
        wk.load_reference("m", 1, project="p", uri=store_uri)
