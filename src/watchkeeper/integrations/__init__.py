"""Hooks into the frameworks models are served with. Each module imports its framework only when used:
``watchkeeper.integrations.fastapi`` needs nothing beyond the ASGI protocol."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["fastapi"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return importlib.import_module(f"watchkeeper.integrations.{name}")
    raise AttributeError(f"module 'watchkeeper.integrations' has no attribute {name!r}")
