"""Cost signals against sums of the raw usage records."""

from __future__ import annotations

import math

import numpy as np
import pytest

from watchkeeper.monitor import cost
from watchkeeper.monitor.base import MonitorSettings, WindowContext
from watchkeeper.profile import Profile, Traffic, Usage

RNG = np.random.default_rng(31)


def _ctx(prof: Profile | None, seconds: float = 300.0, **settings) -> WindowContext:
    return WindowContext(
        store=None,  # type: ignore[arg-type]
        project="p",
        model="support-bot",
        version="3",
        subject="model:support-bot@3",
        start=1000.0,
        end=1000.0 + seconds,
        profile=prof,
        reference=None,
        reference_info=None,
        training_run=None,
        settings=MonitorSettings(**settings),
        now=2000.0,
    )


def _signals(ctx: WindowContext) -> dict[tuple[str, str | None], float]:
    out = {}
    for d in cost.derive(ctx):
        key = (d.name, d.labels.get("llm"))
        assert key not in out
        out[key] = d.value
    return out


def _usage(calls: int, price_in: float, price_out: float, unpriced: int = 0) -> tuple[Usage, np.ndarray]:
    """A Usage summed from ``calls`` random calls, and the calls (input, output, cost) it was summed from."""
    tin = RNG.integers(50, 2000, calls)
    tout = RNG.integers(10, 500, calls)
    c = tin * price_in + tout * price_out
    use = Usage()
    for i in range(calls):
        priced = i >= unpriced
        use = use.merge(
            Usage(1, int(tin[i]), int(tout[i]), float(c[i]) if priced else 0.0, 0 if priced else 1)
        )
    return use, np.stack([tin, tout, np.where(np.arange(calls) >= unpriced, c, 0.0)], axis=1)


def test_per_llm_and_total_against_the_calls():
    big, big_calls = _usage(120, 3e-6, 15e-6, unpriced=5)
    small, small_calls = _usage(400, 1e-7, 4e-7)
    traffic = Traffic(usage={"gpt-big": big, "gpt-small": small})
    traffic.endpoint("answer").update(RNG.uniform(0.5, 2.0, 250), [None] * 250)
    settings = {"daily_budget": {"support-bot": 50.0, "gpt-small": 0.5}}
    sig = _signals(_ctx(Profile(rows=250, traffic=traffic), seconds=300.0, **settings))

    for llm, calls in (("gpt-big", big_calls), ("gpt-small", small_calls)):
        assert sig[("input_tokens", llm)] == calls[:, 0].sum()
        assert sig[("output_tokens", llm)] == calls[:, 1].sum()
        assert sig[("tokens", llm)] == calls[:, :2].sum()
        assert sig[("cost", llm)] == pytest.approx(calls[:, 2].sum(), rel=1e-12)
        assert sig[("cost_per_request", llm)] == pytest.approx(calls[:, 2].sum() / 250, rel=1e-12)
        assert sig[("cost_per_day", llm)] == pytest.approx(calls[:, 2].sum() / 300 * 86400, rel=1e-12)
    both = np.concatenate([big_calls, small_calls])
    total = both[:, 2].sum()
    assert sig[("tokens", None)] == both[:, :2].sum()
    assert sig[("cost", None)] == pytest.approx(total, rel=1e-12)
    assert sig[("cost_per_request", None)] == pytest.approx(total / 250, rel=1e-12)
    assert sig[("cost_per_day", None)] == pytest.approx(total * 288, rel=1e-12)
    # budgets: the deployment's model for the total, an LLM's own name for that LLM
    assert sig[("cost_budget_ratio", None)] == pytest.approx(total * 288 / 50.0, rel=1e-12)
    assert sig[("cost_budget_ratio", "gpt-small")] == pytest.approx(small_calls[:, 2].sum() * 288 / 0.5)
    assert ("cost_budget_ratio", "gpt-big") not in sig


def test_without_endpoints_the_llm_calls_stand_for_requests():
    use, calls = _usage(40, 2e-6, 8e-6)
    sig = _signals(_ctx(Profile(rows=0, traffic=Traffic(usage={"llm": use}))))
    assert sig[("cost_per_request", None)] == pytest.approx(calls[:, 2].sum() / 40, rel=1e-12)
    assert ("cost_budget_ratio", None) not in sig


def test_a_zero_budget_is_exceeded_by_any_cost():
    use, _ = _usage(3, 1e-6, 1e-6)
    sig = _signals(_ctx(Profile(rows=0, traffic=Traffic(usage={"llm": use})), daily_budget={"llm": 0.0}))
    assert math.isinf(sig[("cost_budget_ratio", "llm")])


def test_no_usage_no_signals():
    traffic = Traffic()
    traffic.endpoint("predict").update([0.01], [None])
    assert list(cost.derive(_ctx(Profile(rows=1, traffic=traffic)))) == []
    assert list(cost.derive(_ctx(Profile(rows=1)))) == []
    assert list(cost.derive(_ctx(None))) == []
