"""watchkeeper: self-hosted ML observability.

>>> import watchkeeper as wk
>>> run = wk.init(project="demo", mode="disabled", config={"lr": 1e-3})
>>> for epoch in range(3):
...     run.log({"epoch": epoch, "loss": 1.0 / (epoch + 1)})
>>> run.summary["loss"]
0.3333333333333333
>>> run.finish()
"""

from watchkeeper._version import __version__
from watchkeeper.errors import (
    SchemaOutdatedError,
    SchemaTooNewError,
    StoreError,
    UsageError,
    WatchkeeperError,
)
from watchkeeper.profile import ColumnProfile, Profile, profile
from watchkeeper.sdk import (
    Config,
    Image,
    Run,
    Summary,
    Table,
    current_run,
    finish,
    init,
    load_reference,
    log,
    log_artifact,
)
from watchkeeper.store import Store

__all__ = [
    "ColumnProfile",
    "Config",
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
    "current_run",
    "finish",
    "init",
    "load_reference",
    "log",
    "log_artifact",
    "profile",
]


def __getattr__(name: str) -> object:
    # wk.run, like wandb.run: the current run or None
    if name == "run":
        return current_run()
    raise AttributeError(f"module 'watchkeeper' has no attribute {name!r}")
