"""Named streaming detectors with their thresholds: the settings chosen on a benchmark, kept so that they run
unchanged on other data (``preset("nab").detector()`` scores a live series one value at a time).

A preset names a streaming detector class (``kind``), its settings, and one threshold per NAB profile,
chosen over the whole NAB subset with one threshold per profile as NAB's rules ask. They live in
``presets.json`` beside this module.

>>> p = preset("nab")
>>> det = p.detector()
>>> 0.0 <= det.update(1.0) <= 1.0
True
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: streaming detector classes by kind (module:class), loaded on use
KINDS: dict[str, str] = {
    "likelihood": "watchkeeper.anomaly.streaming:LikelihoodDetector",
    "context": "watchkeeper.anomaly.context:ContextDistanceScorer",
    "context-likelihood": "watchkeeper.anomaly.ensemble:ContextLikelihoodDetector",
}

_FILE = Path(__file__).with_name("presets.json")


@dataclass(frozen=True, slots=True)
class Preset:
    """A streaming detector's class, settings and thresholds, under a name."""

    name: str
    kind: str
    params: dict[str, Any]
    thresholds: dict[str, float]
    description: str = ""
    figures: dict[str, Any] = field(default_factory=dict)

    def detector(self) -> Any:
        """A fresh detector with these settings (state is per series: make one per series)."""
        if self.kind not in KINDS:
            raise ValueError(f"preset {self.name!r}: unknown kind {self.kind!r} (known: {sorted(KINDS)})")
        module, cls = KINDS[self.kind].split(":")
        return getattr(importlib.import_module(module), cls)(**self.params)

    def scorer(self) -> Any:
        """A NAB scorer: each call scores one whole series with a fresh detector."""

        def score(values: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
            return self.detector().score_series(values, timestamps)

        return score

    def threshold(self, profile: str = "standard") -> float:
        try:
            return self.thresholds[profile]
        except KeyError:
            raise ValueError(
                f"preset {self.name!r} has no threshold for profile {profile!r} "
                f"(has {sorted(self.thresholds)})"
            ) from None


def presets() -> dict[str, Preset]:
    """Every preset in presets.json, by name."""
    doc = json.loads(_FILE.read_text())
    return {name: Preset(name=name, **spec) for name, spec in doc.items()}


def preset(name: str) -> Preset:
    """The preset called ``name``."""
    known = presets()
    if name not in known:
        raise ValueError(f"unknown preset {name!r} (known: {sorted(known)})")
    return known[name]
