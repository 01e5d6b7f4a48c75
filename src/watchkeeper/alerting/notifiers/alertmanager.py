"""Alertmanager notifier: hands our alerts to a Prometheus Alertmanager, which then groups, silences,
inhibits and routes them like any Prometheus alert.

``POST {url}/api/v2/alerts`` with a JSON list (Alertmanager's OpenAPI spec, ``postableAlerts``)::

    [{"labels": {"alertname": "FeatureDrift", "severity": "warning", "model": "fraud-clf", ...},
      "annotations": {"summary": "...", "value": "0.31"},
      "startsAt": "2024-05-01T12:00:00.000Z", "endsAt": "2024-05-01T12:05:00.000Z",
      "generatorURL": "https://watchkeeper.example/..."}]

As Prometheus does, a firing alert is sent with ``endsAt`` = now + ``resolve_timeout`` (5 minutes by
default), so that Alertmanager resolves it by itself if watchkeeper stops resending; the engine resends
firing alerts more often than that. A resolved alert is sent with ``endsAt`` = the time it resolved, which
ends it at once. ``generatorURL`` is the notification's external URL, left out when there is none.

Alertmanager (before 0.27's UTF-8 mode) refuses label and annotation names outside ``[a-zA-Z_][a-zA-Z0-9_]*``
and values that are not strings, so :func:`label_name` rewrites names (every other character becomes ``_``,
a leading digit gets a ``_`` before it) and values are sent as strings. When two names collide after
rewriting, the one that was already valid wins. The alert's value goes in the ``value`` annotation unless a
rule set one.

Auth: ``username``/``password`` (HTTP basic) or ``bearer_token``, for an Alertmanager behind a proxy or with
its ``--web.config.file``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from watchkeeper.alerting.model import Alert, Notification, format_value
from watchkeeper.alerting.notifiers.webhook import http_auth, keep_for, origin, post_json, rfc3339

_VALID = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_INVALID_CHAR = re.compile(r"[^a-zA-Z0-9_]")


def label_name(name: str) -> str:
    """A valid Alertmanager label name for ``name``.

    >>> label_name("feature-name"), label_name("0day"), label_name("ok_1"), label_name("")
    ('feature_name', '_0day', 'ok_1', '_')
    """
    out = _INVALID_CHAR.sub("_", name)
    if not out or out[0].isdigit():
        out = "_" + out
    return out


def sanitize(pairs: Mapping[str, Any]) -> dict[str, str]:
    """Names made valid (:func:`label_name`), values made strings; on a collision the valid name wins,
    else the first in sorted order."""
    out: dict[str, str] = {}
    valid_first = sorted(pairs, key=lambda k: (_VALID.fullmatch(k) is None, k))
    for key in valid_first:
        out.setdefault(label_name(key), str(pairs[key]))
    return dict(sorted(out.items()))


def postable(alert: Alert, generator_url: str, now: float, resolve_timeout: float) -> dict[str, Any]:
    """One alert as Alertmanager's ``POST /api/v2/alerts`` takes it."""
    starts = alert.fired_at if alert.fired_at is not None else alert.active_at
    if alert.status == "resolved":
        ends = alert.resolved_at if alert.resolved_at is not None else now
    else:
        ends = now + resolve_timeout
    annotations = {"value": format_value(alert.value), **alert.annotations}
    out: dict[str, Any] = {
        "labels": sanitize(alert.labels),
        "annotations": sanitize(annotations),
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends),
    }
    if generator_url:
        out["generatorURL"] = generator_url
    return out


class AlertmanagerNotifier:
    """Posts alerts to the Alertmanager at ``url`` (its base URL, e.g. ``http://alertmanager:9093``)."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        resolve_timeout: float = 300.0,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        send_resolved: bool = True,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._auth, self._headers = http_auth("alertmanager", username, password, bearer_token)
        self.name = name
        self.url = url.rstrip("/")
        self.resolve_timeout = resolve_timeout
        self.send_resolved = send_resolved
        self.timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        return f"AlertmanagerNotifier(name={self.name!r}, url={origin(self.url)!r})"

    def notify(self, notification: Notification) -> None:
        alerts = keep_for(notification, self.send_resolved)
        if not alerts:
            return
        now = self._clock()
        body = [postable(a, notification.external_url, now, self.resolve_timeout) for a in alerts]
        post_json(
            f"{self.url}/api/v2/alerts",
            json.dumps(body, allow_nan=False).encode(),
            timeout=self.timeout,
            headers=self._headers,
            auth=self._auth,
            what=f"alertmanager {self.name!r}",
        )
