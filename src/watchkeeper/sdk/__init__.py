"""The SDK: runs, what they log, and how it reaches the store."""

from watchkeeper.sdk.api import (
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
from watchkeeper.sdk.image import Image
from watchkeeper.sdk.run import AlertLevel, Config, Run, Summary
from watchkeeper.sdk.table import Table
from watchkeeper.sdk.watcher import Call, Stage

__all__ = [
    "AlertLevel",
    "Call",
    "Config",
    "Image",
    "Run",
    "Stage",
    "Summary",
    "Table",
    "alert",
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
