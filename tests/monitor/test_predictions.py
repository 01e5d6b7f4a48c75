"""Prediction signals against numpy on the raw outputs: exact where the sketches are exact (small windows,
counts, moments), within the quantile sketch's rank error otherwise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from watchkeeper.monitor import predictions
from watchkeeper.monitor.base import MonitorSettings, WindowContext
from watchkeeper.profile import Profile, profile
from watchkeeper.sketch import Quantiles

RNG = np.random.default_rng(29)
EPS = Quantiles().rank_error


def _ctx(prof: Profile | None, **settings) -> WindowContext:
    return WindowContext(
        store=None,  # type: ignore[arg-type]
        project="p",
        model="m",
        version="1",
        subject="model:m@1",
        start=0.0,
        end=60.0,
        profile=prof,
        reference=None,
        reference_info=None,
        training_run=None,
        settings=MonitorSettings(**settings),
        now=90.0,
    )


def _outputs(data: dict, schema: dict | None = None) -> Profile:
    p = profile(data, schema=schema)
    return Profile(p.columns, rows=p.rows, roles={n: "output" for n in data})


def _signals(ctx: WindowContext) -> dict[tuple, float]:
    out = {}
    for d in predictions.derive(ctx):
        key = (d.name, d.labels["output"], d.labels.get("class"))
        assert set(d.labels) <= {"output", "class"}
        assert key not in out, f"{key} derived twice"
        out[key] = d.value
    return out


def test_binary_score_hand_computed_with_the_strict_and_non_strict_sides():
    # conf = max(p, 1 - p) = [0.5, 0.6, 0.6, 0.9, 0.9, 0.75]; 1 - 0.4 is the float 0.6 exactly
    p = np.array([0.5, 0.4, 0.6, 0.9, 0.1, 0.75])
    sig = _signals(_ctx(_outputs({"score": p}), low_confidence=0.6))
    assert sig[("positive_rate", "score", None)] == 3 / 6  # 0.6, 0.9, 0.75 are above 0.5; 0.5 is not
    assert sig[("prediction_mean", "score", None)] == pytest.approx(p.mean(), rel=1e-12)
    assert sig[("low_confidence_rate", "score", None)] == pytest.approx(
        1 / 6
    )  # only 0.5: 0.6 is not below 0.6
    assert sig[("confidence_p25", "score", None)] == pytest.approx(0.6, abs=1e-12)
    assert sig[("confidence_p50", "score", None)] == pytest.approx(0.6, abs=1e-12)
    assert sig[("confidence_p75", "score", None)] == pytest.approx(0.9, abs=1e-12)
    conf = np.maximum(p, 1 - p)
    assert sig[("confidence_mean", "score", None)] == pytest.approx(conf.mean(), abs=0.5 / 2048)


def test_binary_score_exact_while_the_sketch_holds_every_value():
    p = RNG.beta(2.0, 3.0, 400)  # fewer values than the sketch keeps: its CDF is exact
    sig = _signals(_ctx(_outputs({"score": p}), low_confidence=0.7))
    conf = np.maximum(p, 1 - p)
    for name, q in (("confidence_p25", 0.25), ("confidence_p50", 0.5), ("confidence_p75", 0.75)):
        assert sig[(name, "score", None)] == pytest.approx(
            np.quantile(conf, q, method="inverted_cdf"), abs=1e-12
        )
    assert sig[("low_confidence_rate", "score", None)] == np.mean(conf < 0.7)
    assert sig[("positive_rate", "score", None)] == np.mean(p > 0.5)
    assert sig[("confidence_mean", "score", None)] == pytest.approx(conf.mean(), abs=0.5 / 2048)


def test_binary_score_within_the_sketch_rank_error_on_a_large_window():
    p = np.concatenate([RNG.beta(0.6, 0.6, 150_000), RNG.uniform(0.45, 0.55, 50_000)])
    sig = _signals(_ctx(_outputs({"score": p})))
    conf = np.maximum(p, 1 - p)
    for name, q in (("confidence_p25", 0.25), ("confidence_p50", 0.5), ("confidence_p75", 0.75)):
        est = sig[(name, "score", None)]
        # the estimate's rank in the exact distribution is q within the error of two CDF reads
        assert np.mean(conf < est) <= q + 2 * EPS and np.mean(conf <= est) >= q - 2 * EPS, name
    assert sig[("low_confidence_rate", "score", None)] == pytest.approx(np.mean(conf < 0.6), abs=2 * EPS)
    assert sig[("positive_rate", "score", None)] == pytest.approx(np.mean(p > 0.5), abs=EPS)
    assert sig[("confidence_mean", "score", None)] == pytest.approx(conf.mean(), abs=EPS + 0.5 / 2048)
    assert sig[("prediction_mean", "score", None)] == pytest.approx(p.mean(), rel=1e-9)


def test_a_column_named_as_a_confidence_is_the_confidence():
    conf = RNG.uniform(0.34, 1.0, 500)  # e.g. the largest of three class probabilities
    sig = _signals(_ctx(_outputs({"proba.confidence": conf}), low_confidence=0.6))
    assert sig[("confidence_mean", "proba.confidence", None)] == pytest.approx(conf.mean(), rel=1e-12)
    for name, q in (("confidence_p25", 0.25), ("confidence_p50", 0.5), ("confidence_p75", 0.75)):
        assert sig[(name, "proba.confidence", None)] == np.quantile(conf, q, method="inverted_cdf")
    assert sig[("low_confidence_rate", "proba.confidence", None)] == np.mean(conf < 0.6)
    assert ("positive_rate", "proba.confidence", None) not in sig
    assert ("prediction_mean", "proba.confidence", None) not in sig


def test_integer_labels_zero_and_one_give_an_exact_positive_rate_and_no_confidence():
    y = RNG.integers(0, 2, 50_000)
    sig = _signals(_ctx(_outputs({"label": y})))
    assert sig[("positive_rate", "label", None)] == pytest.approx(np.mean(y == 1), rel=1e-12)
    assert not any(k[0].startswith("confidence") for k in sig)
    sig0 = _signals(_ctx(_outputs({"label": y}), positive_label=0))
    assert sig0[("positive_rate", "label", None)] == pytest.approx(np.mean(y == 0), rel=1e-12)


def test_integer_class_codes_share_of_the_positive_code():
    y = RNG.integers(0, 4, 600)
    sig = _signals(_ctx(_outputs({"cls": y}), positive_label=2))
    assert sig[("positive_rate", "cls", None)] == pytest.approx(np.mean(y == 2), abs=1e-12)
    assert sig[("prediction_mean", "cls", None)] == pytest.approx(y.mean(), rel=1e-12)


def test_regression_output_has_a_mean_only():
    y = RNG.normal(100.0, 20.0, 1000)
    sig = _signals(_ctx(_outputs({"price": y})))
    assert set(sig) == {("prediction_mean", "price", None)}
    assert sig[("prediction_mean", "price", None)] == pytest.approx(y.mean(), rel=1e-12)


def test_categorical_output_positive_rate_class_shares_and_diversity():
    classes = [f"c{i}" for i in range(14)]
    weights = np.arange(14, 0, -1, dtype=float)
    y = RNG.choice(classes, 5000, p=weights / weights.sum())
    sig = _signals(_ctx(_outputs({"label": y}), positive_label="c3"))
    values, counts = np.unique(y, return_counts=True)
    assert sig[("positive_rate", "label", None)] == np.mean(y == "c3")
    shares = {k[2]: v for k, v in sig.items() if k[0] == "class_share"}
    top = sorted(zip(counts.tolist(), values.tolist(), strict=True), reverse=True)[: predictions.TOP_CLASSES]
    assert shares == {v: c / 5000 for c, v in top}
    assert sig[("prediction_diversity", "label", None)] == len(values) / 5000
    assert ("prediction_mean", "label", None) not in sig


def test_numeric_positive_label_matches_string_classes_as_text():
    y = np.array(["1", "0", "1", "1", "2"])
    sig = _signals(_ctx(_outputs({"label": y}, schema={"label": "categorical"}), positive_label=1))
    assert sig[("positive_rate", "label", None)] == 3 / 5


def test_boolean_output():
    y = RNG.random(1000) < 0.3
    sig = _signals(_ctx(_outputs({"fraud": y}), positive_label=True))
    assert sig[("positive_rate", "fraud", None)] == np.mean(y)
    assert sig[("prediction_mean", "fraud", None)] == np.mean(y)
    assert sig[("class_share", "fraud", "True")] == np.mean(y)
    assert sig[("class_share", "fraud", "False")] == 1 - np.mean(y)
    assert sig[("prediction_diversity", "fraud", None)] == 2 / 1000
    sig_false = _signals(_ctx(_outputs({"fraud": y}), positive_label="false"))
    assert sig_false[("positive_rate", "fraud", None)] == 1 - np.mean(y)


def test_text_output_gets_its_diversity_only():
    # long and mostly distinct: text, not classes
    answers = [f"The answer to question {i % 600} is a long sentence of words." for i in range(900)]
    sig = _signals(_ctx(_outputs({"answer": answers})))
    assert set(sig) == {("prediction_diversity", "answer", None)}
    assert sig[("prediction_diversity", "answer", None)] == 600 / 900


def test_inputs_are_not_predictions():
    p = profile({"x": RNG.normal(size=10), "score": RNG.uniform(size=10)})
    prof = Profile(p.columns, rows=p.rows, roles={"score": "output"})
    assert {k[1] for k in _signals(_ctx(prof))} == {"score"}
    assert list(predictions.derive(_ctx(None))) == []
    assert math.isnan(predictions.diversity(profile({"e": [None, None]})["e"]))
