"""Staleness signals of a deployment: how old its model version and its reference are, at the time the
monitor looks (``ctx.now``).

* ``model_age_seconds = now - trained``, where ``trained`` is the end of the model version's training run
  (its start while it has not ended); without a known training run, the time its reference was stored;
  absent when neither is known;
* ``reference_age_seconds = now - created``, the time the reference was stored (logged again under the
  same name, it is new again); absent without a reference.
"""

from __future__ import annotations

from collections.abc import Iterator

from watchkeeper.monitor.base import Derived, WindowContext


def derive(ctx: WindowContext) -> Iterator[Derived]:
    run = ctx.training_run
    ref = ctx.reference_info
    if run is not None:
        trained = run.ended_at if run.ended_at is not None else run.created_at
        yield Derived("model_age_seconds", ctx.now - trained)
    elif ref is not None:
        yield Derived("model_age_seconds", ctx.now - ref.created_at)
    if ref is not None:
        yield Derived("reference_age_seconds", ctx.now - ref.created_at)
