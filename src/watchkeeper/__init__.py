"""watchkeeper: self-hosted ML observability.

>>> import watchkeeper as wk
>>> run = wk.init(project="demo", mode="disabled", config={"lr": 1e-3})
>>> for epoch in range(3):
...     run.log({"epoch": epoch, "loss": 1.0 / (epoch + 1)})
>>> run.summary["loss"]
0.3333333333333333
>>> run.finish()

The SDK and the store (SQLAlchemy, Alembic) load on first use (PEP 562), so profiling a frame does not pay
for the database stack. ``profile`` and ``drift`` are bound here, after their subpackages are imported:
they share their names with those subpackages, and a later import of a subpackage would otherwise shadow a
lazily bound function.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from watchkeeper.drift import DriftResult, drift
from watchkeeper.profile import ColumnProfile, Profile, profile

if TYPE_CHECKING:
    from watchkeeper.errors import (
        SchemaOutdatedError,
        SchemaTooNewError,
        StoreError,
        UsageError,
        WatchkeeperError,
    )
    from watchkeeper.sdk import (
        AlertLevel,
        Config,
        Image,
        Run,
        Summary,
        Table,
        alert,
        current_run,
        finish,
        init,
        load_reference,
        log,
        log_artifact,
        log_label,
        log_usage,
        watch,
    )
    from watchkeeper.store import Store

_LAZY = {
    "AlertLevel": "watchkeeper.sdk",
    "Config": "watchkeeper.sdk",
    "Image": "watchkeeper.sdk",
    "Run": "watchkeeper.sdk",
    "SchemaOutdatedError": "watchkeeper.errors",
    "SchemaTooNewError": "watchkeeper.errors",
    "Store": "watchkeeper.store",
    "StoreError": "watchkeeper.errors",
    "Summary": "watchkeeper.sdk",
    "Table": "watchkeeper.sdk",
    "UsageError": "watchkeeper.errors",
    "WatchkeeperError": "watchkeeper.errors",
    "alert": "watchkeeper.sdk",
    "current_run": "watchkeeper.sdk",
    "finish": "watchkeeper.sdk",
    "init": "watchkeeper.sdk",
    "load_reference": "watchkeeper.sdk",
    "log": "watchkeeper.sdk",
    "log_artifact": "watchkeeper.sdk",
    "log_label": "watchkeeper.sdk",
    "log_usage": "watchkeeper.sdk",
    "watch": "watchkeeper.sdk",
}

__all__ = [
    "AlertLevel",
    "ColumnProfile",
    "Config",
    "DriftResult",
    "Image",
    "Profile",
    "Run",
    "SchemaOutdatedError",
    "SchemaTooNewError",
    "Store",
    "StoreError",
    "Summary",
    "Table",
    "UsageError",
    "WatchkeeperError",
    "__version__",
    "alert",
    "current_run",
    "drift",
    "finish",
    "init",
    "load_reference",
    "log",
    "log_artifact",
    "log_label",
    "log_usage",
    "profile",
    "watch",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":  # importlib.metadata costs ~50 ms: only when asked
        from watchkeeper._version import __version__

        return __version__
    if name == "integrations":  # wk.integrations.fastapi.Middleware
        return importlib.import_module("watchkeeper.integrations")
    if name == "run":  # wk.run, like wandb.run: the current run or None (not cached: it changes)
        from watchkeeper.sdk import current_run

        return current_run()
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'watchkeeper' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, "run"])
