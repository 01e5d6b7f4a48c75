"""Notifiers, one per file, and :func:`build_notifier`, which makes one from its entry in a rules file::

    notifiers:
      - name: ml-slack
        type: slack                 # or mattermost, rocketchat: the same webhook JSON
        url_env: SLACK_WEBHOOK_URL  # a secret from the environment, instead of url: ...
      - name: pipeline
        type: retrain
        url: http://airflow:8080
        dag_id: retrain_fraud
        username: watchkeeper
        password_env: AIRFLOW_PASSWORD

Fields every type takes: ``name`` and ``type`` (required), ``send_resolved`` (default true, false for
``retrain``) and ``timeout`` (seconds, default 10). Per type:

==============  ==========================================================================================
slack           ``url``; ``channel``, ``username``, ``icon_emoji``
webhook         ``url``; ``secret`` (HMAC-SHA256 signing), ``headers`` (a mapping), ``max_alerts``
email           ``host``, ``from``, ``to`` (a list or one address); ``port``, ``username``, ``password``,
                ``starttls`` (default true), ``ssl`` (default false)
alertmanager    ``url`` (base URL); ``resolve_timeout`` (seconds or "5m", default 5m), ``username`` and
                ``password`` or ``bearer_token``
retrain         ``url``; ``dag_id``, ``body_template``, ``username`` and ``password`` or ``bearer_token``
==============  ==========================================================================================

The secrets ``url``, ``password``, ``secret`` and ``bearer_token`` may be given as ``<field>_env: NAME``
instead, read from the environment when the notifier is built (an unset variable is an error then, not at
the first alert). Misspelt or unknown fields are errors too, so a typo cannot silently disable a setting.
Every error is a ``ValueError`` naming the field by its path, ``notifiers[2].url: expected an http(s) URL,
got 'ftp://x'``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from watchkeeper.alerting.model import Notifier
from watchkeeper.alerting.notifiers.alertmanager import AlertmanagerNotifier
from watchkeeper.alerting.notifiers.email import EmailNotifier
from watchkeeper.alerting.notifiers.retrain import RetrainTrigger, check_template
from watchkeeper.alerting.notifiers.slack import SlackNotifier
from watchkeeper.alerting.notifiers.webhook import WebhookNotifier, verify_signature

__all__ = [
    "NOTIFIER_TYPES",
    "AlertmanagerNotifier",
    "EmailNotifier",
    "RetrainTrigger",
    "SlackNotifier",
    "WebhookNotifier",
    "build_notifier",
    "verify_signature",
]

NOTIFIER_TYPES: Mapping[str, type] = MappingProxyType(
    {
        "alertmanager": AlertmanagerNotifier,
        "email": EmailNotifier,
        "mattermost": SlackNotifier,
        "retrain": RetrainTrigger,
        "rocketchat": SlackNotifier,
        "slack": SlackNotifier,
        "webhook": WebhookNotifier,
    }
)

_MISSING: Any = object()
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class _Fields:
    """Reads one notifier's config mapping, field by field, with errors that name the field's path; remembers
    what was read so :meth:`finish` can refuse the rest."""

    def __init__(self, spec: Mapping[str, Any], where: str, env: Mapping[str, str]) -> None:
        self.spec, self.where, self.env = spec, where, env
        self.read: set[str] = set()

    def fail(self, key: str, message: str) -> ValueError:
        return ValueError(f"{self.where}.{key}: {message}")

    def _get(self, key: str, default: Any) -> Any:
        self.read.add(key)
        if key not in self.spec or self.spec[key] is None:
            if default is _MISSING:
                raise self.fail(key, "required field is missing")
            return default
        return self.spec[key]

    def string(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected a non-empty string, got {value!r}")
        return value

    def secret(self, key: str, default: Any = _MISSING) -> Any:
        """``key`` inline, or the environment variable named by ``key_env``; never both."""
        env_key = f"{key}_env"
        self.read.update((key, env_key))
        has_inline = self.spec.get(key) is not None
        has_env = self.spec.get(env_key) is not None
        if has_inline and has_env:
            raise self.fail(key, f"give {key} or {env_key}, not both")
        if not has_env:
            if not has_inline and default is _MISSING:
                raise self.fail(key, f"required field is missing (give {key} or {env_key})")
            return self.string(key, default)
        var = self.spec[env_key]
        if not isinstance(var, str) or not var.strip():
            raise self.fail(env_key, f"expected the name of an environment variable, got {var!r}")
        value = self.env.get(var)
        if not value:
            raise self.fail(env_key, f"environment variable {var} is not set")
        return value

    def url(self, key: str) -> str:
        value = self.secret(key)
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            if self.spec.get(f"{key}_env") is not None:
                # The value is a secret: say what is wrong without printing it.
                raise self.fail(
                    f"{key}_env",
                    f"expected an http(s) URL in {self.spec[f'{key}_env']}, got one with scheme "
                    f"{parts.scheme!r}" + ("" if parts.hostname else " and no host"),
                )
            raise self.fail(key, f"expected an http(s) URL, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > minimum:
            raise self.fail(key, f"expected a number of seconds above {minimum:g}, got {value!r}")
        return float(value)

    def duration(self, key: str, default: float) -> float:
        """Seconds as a number, or a Prometheus-style duration: ``90s``, ``5m``, ``1h30m``."""
        value = self._get(key, default)
        if isinstance(value, str) and value and _DURATION.sub("", value) == "":
            value = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(value))
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise self.fail(key, f"expected a duration (seconds, or like '5m'), got {self.spec.get(key)!r}")
        return float(value)

    def integer(self, key: str, default: int | None, *, lo: int, hi: int) -> Any:
        value = self._get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(key, f"expected an integer in [{lo}, {hi}], got {value!r}")
        return value

    def addresses(self, key: str) -> list[str]:
        value = self._get(key, _MISSING)
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not items:
            raise self.fail(key, f"expected an email address or a non-empty list of them, got {value!r}")
        for i, item in enumerate(items):
            if not isinstance(item, str) or "@" not in item:
                raise self.fail(f"{key}[{i}]", f"expected an email address, got {item!r}")
        return list(items)

    def mapping(self, key: str, *, string_values: bool = False) -> Any:
        value = self._get(key, None)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping, got {value!r}")
        for k, v in value.items():
            if not isinstance(k, str) or (string_values and not isinstance(v, str)):
                raise self.fail(f"{key}.{k}", f"expected a string, got {v!r}")
        return dict(value)

    def finish(self) -> None:
        unknown = sorted(str(k) for k in self.spec if k not in self.read)
        if unknown:
            known = ", ".join(sorted(self.read - {"name", "type"}))
            raise self.fail(unknown[0], f"unknown field; this type takes: {known}")


def _common(f: _Fields, send_resolved: bool = True) -> dict[str, Any]:
    return {
        "send_resolved": f.boolean("send_resolved", send_resolved),
        "timeout": f.number("timeout", 10.0),
    }


def _auth(f: _Fields) -> dict[str, Any]:
    username = f.string("username", None)
    password = f.secret("password", None)
    token = f.secret("bearer_token", None)
    if password is not None and username is None:
        raise f.fail("password", "given without a username")
    if token is not None and username is not None:
        raise f.fail("bearer_token", "give username/password or bearer_token, not both")
    return {"username": username, "password": password, "bearer_token": token}


def _slack(name: str, f: _Fields) -> Notifier:
    return SlackNotifier(
        name,
        f.url("url"),
        channel=f.string("channel", None),
        username=f.string("username", None),
        icon_emoji=f.string("icon_emoji", None),
        **_common(f),
    )


def _webhook(name: str, f: _Fields) -> Notifier:
    return WebhookNotifier(
        name,
        f.url("url"),
        secret=f.secret("secret", None),
        headers=f.mapping("headers", string_values=True),
        max_alerts=f.integer("max_alerts", 0, lo=0, hi=1_000_000),
        **_common(f),
    )


def _email(name: str, f: _Fields) -> Notifier:
    ssl = f.boolean("ssl", False)
    starttls = f.boolean("starttls", not ssl)
    if ssl and starttls:
        raise f.fail("starttls", "cannot be true together with ssl (SMTPS is TLS from the start)")
    username = f.string("username", None)
    password = f.secret("password", None)
    if password is not None and username is None:
        raise f.fail("password", "given without a username")
    return EmailNotifier(
        name,
        host=f.string("host"),
        port=f.integer("port", None, lo=1, hi=65535),
        sender=_sender(f),
        to=f.addresses("to"),
        username=username,
        password=password,
        starttls=starttls,
        ssl=ssl,
        **_common(f),
    )


def _sender(f: _Fields) -> str:
    sender = f.string("from")
    if "@" not in sender:
        raise f.fail("from", f"expected an email address, got {sender!r}")
    return sender


def _alertmanager(name: str, f: _Fields) -> Notifier:
    return AlertmanagerNotifier(
        name,
        f.url("url"),
        resolve_timeout=f.duration("resolve_timeout", 300.0),
        **_auth(f),
        **_common(f),
    )


def _retrain(name: str, f: _Fields) -> Notifier:
    template = f.mapping("body_template")
    if template is not None:
        check_template(template, f"{f.where}.body_template")
    return RetrainTrigger(
        name,
        f.url("url"),
        dag_id=f.string("dag_id", None),
        body_template=template,
        **_auth(f),
        **_common(f, send_resolved=False),
    )


_BUILDERS: Mapping[str, Callable[[str, _Fields], Notifier]] = {
    "alertmanager": _alertmanager,
    "email": _email,
    "mattermost": _slack,
    "retrain": _retrain,
    "rocketchat": _slack,
    "slack": _slack,
    "webhook": _webhook,
}


def build_notifier(spec: Mapping[str, Any], *, where: str, env: Mapping[str, str] | None = None) -> Notifier:
    """The notifier a config mapping describes (fields in the module docstring). ``where`` is the
    mapping's path in the config, used in errors (``"notifiers[2]"``); ``env`` is where ``*_env`` secrets
    are read from (default: ``os.environ``).

    >>> build_notifier({"name": "hook", "type": "webhook", "url": "ftp://x"}, where="notifiers[2]")
    Traceback (most recent call last):
    ...
    ValueError: notifiers[2].url: expected an http(s) URL, got 'ftp://x'
    """
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected a mapping with name and type, got {spec!r}")
    f = _Fields(spec, where, os.environ if env is None else env)
    name = f.string("name")
    kind = f.string("type")
    builder = _BUILDERS.get(kind)
    if builder is None:
        raise f.fail("type", f"unknown notifier type {kind!r}; known: {', '.join(sorted(NOTIFIER_TYPES))}")
    notifier = builder(name, f)
    f.finish()
    return notifier
