"""Cost signals of a window: tokens and cost of the (LLM) models a deployment called, per model (label
``llm=<name>``) and in total (no ``llm`` label), from the traffic section's usage.

* ``tokens`` (input + output), ``input_tokens``, ``output_tokens``;
* ``cost``: the summed cost of the priced calls, in the unit they were logged in (calls logged without a
  price add nothing; the profile counts them as ``unpriced``);
* ``cost_per_request = cost / requests``, where ``requests`` are the deployment's requests in the window
  (the total that :mod:`watchkeeper.monitor.ops` reports: its HTTP routes, else its watched functions); when
  the window has no endpoint (usage logged outside any watched call) the LLM calls stand in for requests;
* ``cost_per_day = cost / (end - start) * 86400``: the window's spending rate scaled to a day;
* ``cost_budget_ratio = cost_per_day / budget``: for the total, when ``settings.daily_budget`` has a budget
  for the deployment's model; for one LLM, when it has one for that LLM's name. Above 1 the spending rate
  would exceed the day's budget.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from watchkeeper.monitor.base import Derived, WindowContext
from watchkeeper.profile.traffic import Traffic, Usage

DAY = 86400.0


def derive(ctx: WindowContext) -> Iterator[Derived]:
    prof = ctx.profile
    if prof is None or prof.traffic is None or not prof.traffic.usage:
        return
    traffic = prof.traffic
    budgets = ctx.settings.daily_budget
    total = Usage()
    for use in traffic.usage.values():
        total = total.merge(use)
    requests = _requests(traffic) or total.calls
    for name in sorted(traffic.usage):
        yield from _signals(traffic.usage[name], requests, ctx.seconds, budgets.get(name), {"llm": name})
    yield from _signals(total, requests, ctx.seconds, budgets.get(ctx.model), {})


def _requests(traffic: Traffic) -> int:
    if not traffic.endpoints:
        return 0
    has_http = any(ep.kind == "http" for ep in traffic.endpoints.values())
    return (traffic.http if has_http else traffic.calls).requests


def _signals(
    use: Usage, requests: int, seconds: float, budget: float | None, labels: dict[str, str]
) -> Iterator[Derived]:
    yield Derived("tokens", float(use.input_tokens + use.output_tokens), labels)
    yield Derived("input_tokens", float(use.input_tokens), labels)
    yield Derived("output_tokens", float(use.output_tokens), labels)
    yield Derived("cost", float(use.cost), labels)
    yield Derived("cost_per_request", use.cost / requests if requests else math.nan, labels)
    per_day = use.cost / seconds * DAY if seconds > 0 else math.nan
    yield Derived("cost_per_day", per_day, labels)
    if budget is not None:
        # a budget of 0 is exceeded by any spending at all
        ratio = per_day / budget if budget > 0 else (math.inf if per_day > 0 else 0.0)
        yield Derived("cost_budget_ratio", ratio, labels)
