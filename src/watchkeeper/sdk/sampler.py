"""Which requests of a window are kept as samples: every error, a base rate of successes, more while errors
are frequent, and the first few of every predicted label so that rare classes are seen.

Per window and endpoint, with ``max_rows = M``:

* errors are kept until ``M // 2`` of them are;
* a success whose stratum (its predicted label, when the endpoint has one) has had fewer than ``per_label``
  successes kept in this window is kept;
* any other success is kept with probability ``rate``, or ``min(1, rate * boost)`` while the window's error
  rate so far is above ``boost_above``, so that the successes around an incident are there to compare with;
* successes stop at ``M - M // 2`` kept rows.

Decisions are made off the request path, on batches of requests, by the aggregator.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any


def _check_rate(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class SamplerConfig:
    rate: float = 0.01
    max_rows: int = 200
    per_label: int = 5
    boost_above: float = 0.05
    boost: float = 10.0

    def __post_init__(self) -> None:
        _check_rate("sample_rate", self.rate)
        _check_rate("boost_above", self.boost_above)
        if isinstance(self.max_rows, bool) or not isinstance(self.max_rows, int) or self.max_rows < 0:
            raise ValueError(f"max_samples must be a non-negative int, got {self.max_rows!r}")
        if isinstance(self.per_label, bool) or not isinstance(self.per_label, int) or self.per_label < 0:
            raise ValueError(f"per_label must be a non-negative int, got {self.per_label!r}")
        if not (self.boost >= 1.0 and math.isfinite(self.boost)):
            raise ValueError(f"boost must be a finite number >= 1, got {self.boost!r}")


@dataclass(slots=True)
class WindowSampler:
    """The sampling state of one endpoint in one window.

    >>> s = WindowSampler(SamplerConfig(rate=0.0, max_rows=10, per_label=1), random.Random(0))
    >>> s.choose([False, True, False, False], ["a", None, "a", "b"])
    [True, True, False, True]
    """

    config: SamplerConfig
    rng: random.Random
    seen: int = 0
    errors_seen: int = 0
    kept_errors: int = 0
    kept_ok: int = 0
    per_label: dict[Any, int] = field(default_factory=dict)

    def choose(self, is_error: list[bool], labels: list[Any] | None = None) -> list[bool]:
        """Keep or drop each request of a batch (in arrival order)."""
        cfg = self.config
        n = len(is_error)
        self.seen += n
        self.errors_seen += sum(is_error)
        rate = cfg.rate
        if self.seen and self.errors_seen / self.seen > cfg.boost_above:
            rate = min(1.0, rate * cfg.boost)
        max_errors = cfg.max_rows // 2
        max_ok = cfg.max_rows - max_errors
        out = [False] * n
        rand = self.rng.random
        for i in range(n):
            if is_error[i]:
                if self.kept_errors < max_errors:
                    self.kept_errors += 1
                    out[i] = True
                continue
            if self.kept_ok >= max_ok:
                continue
            keep = False
            if labels is not None and cfg.per_label:
                label = labels[i]
                try:
                    count = self.per_label.get(label, 0)
                except TypeError:  # an unhashable label: no stratum
                    count = cfg.per_label
                if count < cfg.per_label:
                    self.per_label[label] = count + 1
                    keep = True
            if keep or (rate and rand() < rate):
                self.kept_ok += 1
                out[i] = True
        return out
