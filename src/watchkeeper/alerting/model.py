"""The values the alert engine passes around: series read for a rule, alert instances, notifications.

Kept apart from the engine so that the expression evaluator, the notifiers and the engine each import these
and none of the others.

A series as a rule sees it is a metric name and a label set. The labels are the signal's own labels plus
``project`` and what its subject names: ``model`` and ``version`` for a deployment (subject
``model:fraud-clf@1.3.0``), ``run`` for a run's logged scalars (subject = the run id).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

MatchOp = Literal["=", "!=", "=~", "!~"]


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher of a selector, ``model="fraud-clf"``; regular expressions match the whole value,
    as in PromQL."""

    label: str
    op: MatchOp
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        import re

        have = labels.get(self.label, "")
        if self.op == "=":
            return have == self.value
        if self.op == "!=":
            return have != self.value
        hit = re.fullmatch(self.value, have) is not None
        return hit if self.op == "=~" else not hit


@dataclass(frozen=True, slots=True)
class RangeSeries:
    """The points of one series in a time range, oldest first; NaN values kept."""

    name: str
    labels: Mapping[str, str]
    t: np.ndarray  # float64 seconds since the epoch, ascending
    value: np.ndarray  # float64


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant vector: a label set and its value at the evaluation time. ``labels``
    include ``__name__`` while the sample is still a plain selection, as in PromQL."""

    labels: Mapping[str, str]
    value: float


class SeriesSource(Protocol):
    """Where rules read signals from: the store (``alerting.source.StoreSource``) or memory in tests."""

    def select(self, name: str, matchers: Sequence[Matcher], start: float, end: float) -> list[RangeSeries]:
        """Every series called ``name`` whose labels pass all ``matchers``, with its points in
        ``[start, end]`` (closed at both ends: an instant query at ``end`` must see a point at ``end``)."""
        ...

    def names(self) -> set[str]:
        """The metric names that exist, so a rule naming an unknown one can be refused at load."""
        ...


AlertStatus = Literal["firing", "resolved"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert instance (a rule and one label set) as notifiers receive it. ``labels`` include
    ``alertname`` and ``severity``; ``annotations`` are already rendered."""

    rule: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    status: AlertStatus
    value: float
    active_at: float  # when the condition first held (pending began)
    fired_at: float | None
    resolved_at: float | None = None

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "warning")

    @property
    def fingerprint(self) -> str:
        """Stable id of the label set: the same instance keeps it across restarts."""
        import hashlib

        text = "\x1f".join(f"{k}\x1e{self.labels[k]}" for k in sorted(self.labels))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Notification:
    """What one notifier is asked to deliver: one group of alerts (Alertmanager's unit), so a storm of 200
    drifting features under one group is one message listing them.

    ``status`` is "firing" when any alert of the group fires, else "resolved". ``external_url`` is where a
    person can look (the dashboard), empty when unknown.
    """

    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    alerts: Sequence[Alert]
    t: float
    external_url: str = ""
    common_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def status(self) -> AlertStatus:
        return "firing" if any(a.status == "firing" for a in self.alerts) else "resolved"

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.status == "resolved"]

    def title(self) -> str:
        """A one-line headline: ``[FIRING:3] FeatureDrift (fraud-clf)``."""
        name = self.group_labels.get("alertname") or (self.alerts[0].rule if self.alerts else "alert")
        rest = [v for k, v in sorted(self.group_labels.items()) if k != "alertname"]
        n = len(self.firing) if self.status == "firing" else len(self.resolved)
        tail = f" ({', '.join(rest)})" if rest else ""
        return f"[{self.status.upper()}:{n}] {name}{tail}"


class Notifier(Protocol):
    """A destination for notifications. ``notify`` delivers or raises ``NotifyError``; retries with backoff
    are the dispatcher's job, not each notifier's."""

    name: str

    def notify(self, notification: Notification) -> None: ...


class NotifyError(Exception):
    """A notifier could not deliver. ``transient`` is False when resending the same thing cannot succeed
    (a 4xx other than 408/429), so the dispatcher stops retrying at once."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


def format_value(value: float) -> str:
    """A value for people: 4 significant digits, integers without a fraction, NaN and infinities spelled."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.4g}"
