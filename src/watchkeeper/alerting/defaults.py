"""The alert rules a new deployment gets: ``default_rules.yaml`` beside this module, shipped in the package.

:data:`DEFAULT_RULES` is the file's path, for ``watchkeeper server --rules`` or ``AlertEngine.load``. The
file defines rules only: a rules file's alerts go to the notifiers of its own ``route`` (see
:mod:`watchkeeper.alerting.rules`), so to be notified, use :func:`default_rules_with`, which gives the
file's text with ``notifiers`` and a ``route`` added (what ``watchkeeper demo`` writes for its webhook
sink), or copy the file and add them by hand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

DEFAULT_RULES: Path = Path(str(files("watchkeeper.alerting").joinpath("default_rules.yaml")))
"""The default rules file: HighP99Latency, HighErrorRate, FeatureDrift, DatasetDrift, AccuracyDrop,
LabelsLate, KpiAnomaly and MonitorLagging."""


def default_rules_text() -> str:
    """The default rules file's text."""
    return DEFAULT_RULES.read_text(encoding="utf-8")


def default_rules_with(notifiers: Sequence[Mapping[str, Any]], route: Mapping[str, Any]) -> str:
    """The default rules with ``notifiers`` (mappings as in a rules file: name, type, url, ...) and
    ``route`` (notifiers, group_by, group_wait, ...) added: the text of a rules file that notifies.

    The default file's own lines come first and unchanged, so a problem reported by line still points at
    the same line of the default file.

    >>> from watchkeeper.alerting.rules import load_rules
    >>> text = default_rules_with(
    ...     [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"}], {"notifiers": ["hook"]}
    ... )
    >>> rs = load_rules(text=text)
    >>> rs.route.notifiers, len(rs.rules)
    (('hook',), 8)
    """
    if not isinstance(route, Mapping):
        raise ValueError(f"route: expected a mapping, got {type(route).__name__}")
    text = default_rules_text()
    extra = yaml.safe_dump(
        {"notifiers": [dict(n) for n in notifiers], "route": dict(route)},
        sort_keys=False,
        default_flow_style=None,
        width=100,
    )
    return text.rstrip("\n") + "\n\n" + extra
