"""The SDK: runs, what they log, and how it reaches the store."""

from watchkeeper.sdk.api import current_run, finish, init, load_reference, log, log_artifact
from watchkeeper.sdk.image import Image
from watchkeeper.sdk.run import Config, Run, Summary
from watchkeeper.sdk.table import Table

__all__ = [
    "Config",
    "Image",
    "Run",
    "Summary",
    "Table",
    "current_run",
    "finish",
    "init",
    "load_reference",
    "log",
    "log_artifact",
]
