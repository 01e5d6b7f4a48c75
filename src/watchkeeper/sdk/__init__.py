"""The SDK: runs, what they log, and how it reaches the store."""

from watchkeeper.sdk.api import (
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
from watchkeeper.sdk.image import Image
from watchkeeper.sdk.run import Config, Run, Summary
from watchkeeper.sdk.table import Table
from watchkeeper.sdk.watcher import Call, Stage

__all__ = [
    "Call",
    "Config",
    "Image",
    "Run",
    "Stage",
    "Summary",
    "Table",
    "current_run",
    "finish",
    "init",
    "load_reference",
    "log",
    "log_artifact",
    "log_label",
    "log_usage",
    "watch",
]
