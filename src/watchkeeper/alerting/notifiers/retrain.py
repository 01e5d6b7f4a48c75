"""Retraining trigger: when a model's alert fires (drift, a drop in accuracy), POST to a pipeline's API so it
starts retraining.

The default body is what Airflow's stable REST API takes to trigger a DAG (``POST
/api/v1/dags/{dag_id}/dagRuns``, Airflow 2)::

    {"dag_run_id": "watchkeeper-<12 hex of sha256(group key)>-<notification time, unix seconds>",
     "logical_date": "2024-05-01T12:00:03.123456Z",
     "conf": {"model": "fraud-clf", "version": "1.3.0", "status": "firing", "receiver": "...",
              "group_key": "...", "external_url": "...",
              "alerts": [{"alertname": "...", "status": "firing", "labels": {...}, "value": 0.31,
                          "startsAt": "...", "fingerprint": "..."}]},
     "note": "[FIRING:1] FeatureDrift (fraud-clf)"}

With ``dag_id`` set, ``url`` is Airflow's base URL and the path above is appended; without it, ``url`` is
used as it is (any service that takes a POST). ``model`` and ``version`` are the labels every alert of the
group shares, else the group's labels (``null`` when neither has one).

The run id is the same on every retry of one notification, so a resend after a lost answer cannot start a
second run: Airflow answers 409 naming the id, which counts as delivered. Only that 409 does (one about the
logical date, say, is an error). ``logical_date`` is the time of sending, to the microsecond, because
Airflow 2 also wants it unique per DAG and the engine sends several groups with the same evaluation time.

Only firing notifications trigger anything unless ``send_resolved`` is true (then resolved ones are posted
too, with ``conf.status`` "resolved").

``body_template`` replaces the default body: a mapping (nested mappings and lists allowed) whose strings may
hold ``{{ name }}`` placeholders, one of: ``alertname``, ``alerts``, ``count``, ``dag_run_id``,
``external_url``, ``group_key``, ``logical_date``, ``model``, ``receiver``, ``status``, ``title``,
``version``. A string that is exactly one placeholder takes the value itself (so ``"{{ alerts }}"`` is the
list of alerts and ``"{{ count }}"`` a number); inside longer text a value is written as text, a missing one
as empty. No expressions, filters or loops: this is substitution, not Jinja.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from watchkeeper.alerting.model import Alert, Notification, NotifyError
from watchkeeper.alerting.notifiers.webhook import (
    common_items,
    http_auth,
    json_value,
    origin,
    post_json,
    rfc3339,
)

TEMPLATE_VARIABLES = frozenset(
    {
        "alertname",
        "alerts",
        "count",
        "dag_run_id",
        "external_url",
        "group_key",
        "logical_date",
        "model",
        "receiver",
        "status",
        "title",
        "version",
    }
)
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def dag_run_id(notification: Notification) -> str:
    """``watchkeeper-<hash of the group key>-<t>``: fixed for one notification, within Airflow's run-id
    alphabet (letters, digits, ``_.~:+-``).

    >>> from watchkeeper.alerting.model import Notification
    >>> dag_run_id(Notification("r", "g1", {}, [], t=1700000000.9))
    'watchkeeper-711430f6164e-1700000000'
    """
    digest = hashlib.sha256(notification.group_key.encode()).hexdigest()[:12]
    return f"watchkeeper-{digest}-{int(notification.t)}"


def check_template(template: Any, path: str = "body_template") -> None:
    """Raise ``ValueError`` naming the place of the first unknown placeholder or non-JSON value."""
    if isinstance(template, Mapping):
        for k, v in template.items():
            if not isinstance(k, str):
                raise ValueError(f"{path}: expected string keys, got {k!r}")
            check_template(v, f"{path}.{k}")
    elif isinstance(template, list | tuple):
        for i, v in enumerate(template):
            check_template(v, f"{path}[{i}]")
    elif isinstance(template, str):
        for name in _PLACEHOLDER.findall(template):
            if name not in TEMPLATE_VARIABLES:
                known = ", ".join(sorted(TEMPLATE_VARIABLES))
                raise ValueError(f"{path}: unknown placeholder {{{{ {name} }}}}; known: {known}")
    elif not (template is None or isinstance(template, bool | int | float)):
        raise ValueError(f"{path}: expected a JSON value, got {type(template).__name__}")


def render(template: Any, variables: Mapping[str, Any]) -> Any:
    """Fill a checked template (see the module docstring).

    >>> render({"conf": {"m": "{{ model }}@{{version}}", "n": "{{ count }}"}, "k": [1]},
    ...        {"model": "clf", "version": None, "count": 3})
    {'conf': {'m': 'clf@', 'n': 3}, 'k': [1]}
    """
    if isinstance(template, Mapping):
        return {k: render(v, variables) for k, v in template.items()}
    if isinstance(template, list | tuple):
        return [render(v, variables) for v in template]
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template.strip())
        if whole:
            return variables.get(whole.group(1))

        def text(m: re.Match[str]) -> str:
            value = variables.get(m.group(1))
            if value is None:
                return ""
            return value if isinstance(value, str) else json.dumps(value)

        return _PLACEHOLDER.sub(text, template)
    return template


def _alert_conf(alert: Alert) -> dict[str, Any]:
    return {
        "alertname": alert.labels.get("alertname", alert.rule),
        "status": alert.status,
        "labels": dict(alert.labels),
        "value": json_value(alert.value),
        "startsAt": rfc3339(alert.fired_at if alert.fired_at is not None else alert.active_at),
        "fingerprint": alert.fingerprint,
    }


def variables(notification: Notification, alerts: list[Alert], now: float) -> dict[str, Any]:
    """What a body can hold: the template variables, also used to build the default body."""
    shared = {**notification.group_labels, **common_items(a.labels for a in alerts)}
    return {
        "alertname": notification.group_labels.get("alertname") or (alerts[0].rule if alerts else ""),
        "alerts": [_alert_conf(a) for a in alerts],
        "count": len(alerts),
        "dag_run_id": dag_run_id(notification),
        "external_url": notification.external_url,
        "group_key": notification.group_key,
        "logical_date": datetime.fromtimestamp(now, UTC)
        .isoformat(timespec="microseconds")
        .replace("+00:00", "Z"),
        "model": shared.get("model"),
        "receiver": notification.receiver,
        "status": "firing" if any(a.status == "firing" for a in alerts) else "resolved",
        "title": notification.title(),
        "version": shared.get("version"),
    }


def default_body(v: Mapping[str, Any]) -> dict[str, Any]:
    """Airflow's trigger-a-DAG-run body (the module docstring shows it)."""
    conf_keys = ("model", "version", "status", "receiver", "group_key", "external_url", "alerts")
    return {
        "dag_run_id": v["dag_run_id"],
        "logical_date": v["logical_date"],
        "conf": {k: v[k] for k in conf_keys},
        "note": v["title"],
    }


class RetrainTrigger:
    """POSTs a trigger for a retraining pipeline (an Airflow DAG by default) when alerts fire."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        dag_id: str | None = None,
        body_template: Mapping[str, Any] | None = None,
        username: str | None = None,
        password: str | None = None,
        bearer_token: str | None = None,
        send_resolved: bool = False,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._auth, self._headers = http_auth("retrain", username, password, bearer_token)
        if body_template is not None:
            check_template(body_template)
        self.name = name
        base = url.rstrip("/")
        self.url = f"{base}/api/v1/dags/{quote(dag_id, safe='')}/dagRuns" if dag_id else url
        self.dag_id = dag_id
        self.body_template = body_template
        self.send_resolved = send_resolved
        self.timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        return f"RetrainTrigger(name={self.name!r}, url={origin(self.url)!r}, dag_id={self.dag_id!r})"

    def body(self, notification: Notification) -> dict[str, Any] | None:
        """What :meth:`notify` would post now, or None when this notification triggers nothing."""
        if notification.status != "firing" and not self.send_resolved:
            return None
        alerts = list(notification.alerts) if self.send_resolved else notification.firing
        v = variables(notification, alerts, self._clock())
        return render(self.body_template, v) if self.body_template is not None else default_body(v)

    def notify(self, notification: Notification) -> None:
        body = self.body(notification)
        if body is None:
            return
        run_id = dag_run_id(notification)
        r = post_json(
            self.url,
            json.dumps(body, allow_nan=False).encode(),
            timeout=self.timeout,
            headers=self._headers,
            auth=self._auth,
            what=f"retrain {self.name!r}",
            ok_status=(409,) if self.body_template is None else (),
        )
        if r.status_code == 409 and run_id not in r.text:
            snippet = r.content[:200].decode("utf-8", "replace")
            raise NotifyError(
                f"retrain {self.name!r}: POST to {origin(self.url)} answered 409: {snippet!r}",
                transient=False,
            )
