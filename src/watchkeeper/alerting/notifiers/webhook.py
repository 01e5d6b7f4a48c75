"""The generic webhook notifier, and the one HTTP delivery rule every HTTP notifier shares.

**Payload.** ``POST`` of a JSON object shaped like Alertmanager's webhook payload (its ``webhook_config``
docs, version "4"), so a receiver written for Alertmanager reads ours unchanged::

    {"version": "4", "groupKey": "...", "truncatedAlerts": 0, "status": "firing" | "resolved",
     "receiver": "...", "groupLabels": {...}, "commonLabels": {...}, "commonAnnotations": {...},
     "externalURL": "...",
     "alerts": [{"status": "firing", "labels": {...}, "annotations": {...},
                 "startsAt": "2024-05-01T12:00:00.000Z", "endsAt": "0001-01-01T00:00:00Z",
                 "generatorURL": "...", "fingerprint": "...", "value": 0.31, "valueString": "0.31"}]}

``endsAt`` of a firing alert is Go's zero time, as Alertmanager sends it. ``value`` and ``valueString`` are
ours: ``value`` is ``null`` when the value is NaN or infinite (JSON has no such numbers) and ``valueString``
always spells it (:func:`~watchkeeper.alerting.model.format_value`).

**Signature.** With a ``secret``, each request carries ``X-Watchkeeper-Timestamp`` (unix seconds) and
``X-Watchkeeper-Signature: sha256=<hex>``, the HMAC-SHA256 (RFC 2104) keyed by the secret of
``<timestamp> + "." + <raw body bytes>``, the scheme Stripe and Slack use for their own webhooks. A receiver
verifies it by:

1. reading the raw request body as bytes, before any JSON parsing (re-serialised JSON differs);
2. recomputing ``hmac_sha256(secret, timestamp.encode() + b"." + body)`` and comparing it with the header in
   constant time (``hmac.compare_digest``);
3. refusing a timestamp more than a few minutes from its own clock, so a captured request cannot be
   replayed later.

:func:`verify_signature` does all three; a receiver in Python can import it.

**Errors** (:func:`post_json`, used by every HTTP notifier): connection errors, timeouts and answers 5xx,
408 and 429 raise ``NotifyError(transient=True)``, so the dispatcher retries; any other non-2xx answer
raises ``NotifyError(transient=False)``. Messages name the status and the first 200 bytes of the answer,
and only the scheme and host of the URL, since webhook URLs often carry a secret in their path.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from watchkeeper._version import __version__
from watchkeeper.alerting.model import Alert, Notification, NotifyError, format_value

USER_AGENT = f"watchkeeper/{__version__}"
SIGNATURE_HEADER = "X-Watchkeeper-Signature"
TIMESTAMP_HEADER = "X-Watchkeeper-Timestamp"
# Go's zero time.Time, which Alertmanager writes as the end of an alert that has not ended.
ZERO_TIME = "0001-01-01T00:00:00Z"
_TRANSIENT_STATUS = frozenset({408, 429})


def rfc3339(t: float) -> str:
    """Unix seconds as an RFC 3339 UTC timestamp with milliseconds, ``2024-05-01T12:00:00.000Z``."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what error messages show of it."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def json_value(value: float) -> float | None:
    """A float JSON can carry: NaN and infinities become null."""
    return value if math.isfinite(value) else None


def common_items(maps: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The key/value pairs every mapping has, as Alertmanager's commonLabels and commonAnnotations."""
    maps = list(maps)
    if not maps:
        return {}
    first, rest = maps[0], maps[1:]
    return {k: v for k, v in sorted(first.items()) if all(m.get(k) == v for m in rest)}


def keep_for(notification: Notification, send_resolved: bool) -> list[Alert]:
    """The alerts of a notification a notifier sends: all of them, or only the firing ones."""
    return list(notification.alerts) if send_resolved else notification.firing


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every request: building one costs ~0.15 s (it loads the CA bundle),
    more than a whole webhook call."""
    return httpx.create_ssl_context()


def http_auth(
    what: str, username: str | None, password: str | None, bearer_token: str | None
) -> tuple[httpx.BasicAuth | None, dict[str, str]]:
    """The ``auth`` and extra headers of :func:`post_json` for HTTP basic auth or a bearer token (not both:
    a ValueError naming ``what``)."""
    if bearer_token and username:
        raise ValueError(f"{what}: choose basic auth (username/password) or bearer_token, not both")
    auth = httpx.BasicAuth(username, password or "") if username else None
    return auth, ({"Authorization": f"Bearer {bearer_token}"} if bearer_token else {})


def post_json(
    url: str,
    body: bytes,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    what: str,
    ok_status: Iterable[int] = (),
) -> httpx.Response:
    """``POST`` a JSON body; return the answer when it is 2xx (or in ``ok_status``), else raise
    ``NotifyError`` as the module docstring says. ``what`` names the notifier in messages."""
    sent_headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    where = origin(url)
    try:
        r = httpx.post(
            url, content=body, headers=sent_headers, auth=auth, timeout=timeout, verify=_tls_context()
        )
    except httpx.TimeoutException as exc:
        raise NotifyError(f"{what}: POST to {where} timed out after {timeout:g} s", transient=True) from exc
    except httpx.HTTPError as exc:
        raise NotifyError(f"{what}: POST to {where} failed: {type(exc).__name__}: {exc}") from exc
    if r.is_success or r.status_code in set(ok_status):
        return r
    transient = r.status_code >= 500 or r.status_code in _TRANSIENT_STATUS
    snippet = r.content[:200].decode("utf-8", "replace")
    raise NotifyError(
        f"{what}: POST to {where} answered {r.status_code} {r.reason_phrase}: {snippet!r}",
        transient=transient,
    )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: ``sha256=`` + hex HMAC-SHA256 of ``timestamp + "." + body``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str | int,
    body: bytes | str,
    signature: str,
    *,
    tolerance: float = 300,
    now: float | None = None,
) -> bool:
    """True when ``signature`` (the ``X-Watchkeeper-Signature`` header) is ours for this raw ``body`` and
    ``timestamp`` (the ``X-Watchkeeper-Timestamp`` header), and the timestamp is within ``tolerance``
    seconds of ``now`` (default: the clock). Any malformed input is simply False.

    >>> body = b'{"status": "firing"}'
    >>> sig = sign("s3cret", "1700000000", body)
    >>> verify_signature("s3cret", "1700000000", body, sig, now=1700000100)
    True
    >>> verify_signature("s3cret", "1700000000", body + b" ", sig, now=1700000100)
    False
    >>> verify_signature("s3cret", "1700000000", body, sig, now=1700000301)
    False
    """
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        return False
    raw = body.encode() if isinstance(body, str) else bytes(body)
    expected = sign(secret, str(ts), raw)
    return hmac.compare_digest(expected.encode(), signature.strip().encode())


def alert_json(alert: Alert, generator_url: str) -> dict[str, Any]:
    """One alert as Alertmanager's webhook payload lists it, plus our ``value``."""
    starts = alert.fired_at if alert.fired_at is not None else alert.active_at
    ends = (
        rfc3339(alert.resolved_at) if alert.status == "resolved" and alert.resolved_at is not None else None
    )
    return {
        "status": alert.status,
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": rfc3339(starts),
        "endsAt": ends or ZERO_TIME,
        "generatorURL": generator_url,
        "fingerprint": alert.fingerprint,
        "value": json_value(alert.value),
        "valueString": format_value(alert.value),
    }


def payload(notification: Notification, alerts: list[Alert], *, max_alerts: int = 0) -> dict[str, Any]:
    """The Alertmanager-shaped webhook payload of a notification; ``max_alerts`` > 0 keeps that many alerts
    and counts the rest in ``truncatedAlerts``."""
    shown = alerts[:max_alerts] if max_alerts > 0 else alerts
    return {
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": len(alerts) - len(shown),
        "status": "firing" if any(a.status == "firing" for a in alerts) else "resolved",
        "receiver": notification.receiver,
        "groupLabels": dict(notification.group_labels),
        "commonLabels": dict(notification.common_labels) or common_items(a.labels for a in alerts),
        "commonAnnotations": common_items(a.annotations for a in alerts),
        "externalURL": notification.external_url,
        "alerts": [alert_json(a, notification.external_url) for a in shown],
    }


class WebhookNotifier:
    """POSTs the Alertmanager-shaped payload to ``url``, signed when there is a ``secret``."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        secret: str | None = None,
        headers: Mapping[str, str] | None = None,
        max_alerts: int = 0,
        send_resolved: bool = True,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.url = url
        self.secret = secret
        self.headers = dict(headers or {})
        self.max_alerts = max_alerts
        self.send_resolved = send_resolved
        self.timeout = timeout
        self._clock = clock

    def __repr__(self) -> str:
        return (
            f"WebhookNotifier(name={self.name!r}, url={origin(self.url)!r}, signed={self.secret is not None})"
        )

    def notify(self, notification: Notification) -> None:
        alerts = keep_for(notification, self.send_resolved)
        if not alerts:
            return
        body = json.dumps(payload(notification, alerts, max_alerts=self.max_alerts), allow_nan=False).encode()
        headers = dict(self.headers)
        if self.secret is not None:
            timestamp = str(int(self._clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self.secret, timestamp, body)
        post_json(self.url, body, timeout=self.timeout, headers=headers, what=f"webhook {self.name!r}")
