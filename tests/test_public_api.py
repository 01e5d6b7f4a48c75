"""The exported names are sorted and are exactly those docs/sdk.md documents."""

from __future__ import annotations

import re
from pathlib import Path

import watchkeeper as wk

DOCS = Path(__file__).parents[1] / "docs" / "sdk.md"


def test_all_is_sorted_and_importable():
    assert wk.__all__ == sorted(wk.__all__)
    for name in wk.__all__:
        assert hasattr(wk, name), name


def test_docs_promise_exactly_the_exported_names():
    text = DOCS.read_text()
    section = text.split("## Exported names", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`wk\.([A-Za-z_]+)`", section))
    # wk.run is the current run, a module attribute rather than an export
    assert documented == (set(wk.__all__) - {"__version__"}) | {"run"}
