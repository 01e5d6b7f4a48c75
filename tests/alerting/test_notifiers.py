"""The notifiers against real servers on 127.0.0.1: an HTTP sink (a ThreadingHTTPServer that records requests
and answers chosen statuses), an SMTP server (aiosmtpd) and a real Alertmanager binary; the JSON each one
sends, field by field; HMAC signatures; the error classes; the config builder's errors; and the dispatcher
with real HTTP notifiers (retries on 503, none on 400, a hung receiver delaying nobody else)."""

from __future__ import annotations

import base64
import contextlib
import email
import email.policy
import hashlib
import hmac
import json
import math
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from watchkeeper.alerting.dispatch import Delivery, Dispatcher
from watchkeeper.alerting.model import Alert, Notification, NotifyError
from watchkeeper.alerting.notifiers import (
    NOTIFIER_TYPES,
    AlertmanagerNotifier,
    EmailNotifier,
    RetrainTrigger,
    SlackNotifier,
    WebhookNotifier,
    build_notifier,
    verify_signature,
)
from watchkeeper.alerting.notifiers.alertmanager import label_name, sanitize

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
T0_TEXT = "2023-11-14T22:13:20.000Z"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_alert(status: str = "firing", value: float = 0.31, **labels: str) -> Alert:
    base = {"alertname": "FeatureDrift", "severity": "critical", "model": "fraud-clf", "version": "1.3.0"}
    return Alert(
        rule="FeatureDrift",
        labels={**base, **labels},
        annotations={"summary": f"PSI of {labels.get('feature', 'x')} is high", "description": "vs training"},
        status=status,  # type: ignore[arg-type]
        value=value,
        active_at=T0 - 120,
        fired_at=T0 - 60,
        resolved_at=T0 if status == "resolved" else None,
    )


def make_notification(
    *alerts: Alert, receiver: str = "hook", url: str = "http://wk.test/alerts"
) -> Notification:
    return Notification(
        receiver=receiver,
        group_key='{}:{alertname="FeatureDrift",model="fraud-clf"}',
        group_labels={"alertname": "FeatureDrift", "model": "fraud-clf"},
        alerts=list(alerts),
        t=T0,
        external_url=url,
    )


# ---------------------------------------------------------------------------------------------- HTTP sink


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self):
        return json.loads(self.body)


class Sink:
    """Records every request; answers with the statuses queued for its path (then 200); holds requests to a
    held path until released."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.answers: dict[str, list[tuple[int, bytes]]] = {}
        self.held: dict[str, threading.Event] = {}
        self.changed = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                req = Request("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with sink.changed:
                    sink.requests.append(req)
                    sink.changed.notify_all()
                    answers = sink.answers.get(self.path)
                    status, text = answers.pop(0) if answers else (200, b"ok")
                    hold = sink.held.get(self.path)
                if hold is not None:
                    hold.wait(30)
                self.send_response(status)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def answer(self, path: str, *answers: tuple[int, bytes]) -> None:
        self.answers[path] = list(answers)

    def at(self, path: str) -> list[Request]:
        with self.changed:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, n: int, timeout: float = 10) -> list[Request]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.at(path)) >= n, timeout), f"{n} requests to {path}"
            return self.at(path)


@pytest.fixture
def sink():
    s = Sink()
    s.thread.start()
    yield s
    for event in s.held.values():
        event.set()
    s.server.shutdown()
    s.server.server_close()


# ---------------------------------------------------------------------------------------------- builder


def test_build_each_type_with_its_fields() -> None:
    env = {"HOOK_URL": "https://hooks.example/T/B/xyz", "SMTP_PW": "pw", "AM_TOKEN": "tok"}
    slack = build_notifier(
        {"name": "ml", "type": "slack", "url_env": "HOOK_URL", "channel": "#ml"}, where="n[0]", env=env
    )
    assert isinstance(slack, SlackNotifier)
    assert (slack.name, slack.url, slack.channel, slack.send_resolved, slack.timeout) == (
        "ml",
        "https://hooks.example/T/B/xyz",
        "#ml",
        True,
        10.0,
    )
    mail = build_notifier(
        {
            "name": "oncall",
            "type": "email",
            "host": "smtp.example",
            "from": "wk@example.org",
            "to": "a@example.org",
            "username": "wk",
            "password_env": "SMTP_PW",
        },
        where="n[1]",
        env=env,
    )
    assert isinstance(mail, EmailNotifier)
    assert (mail.port, mail.starttls, mail.ssl, mail.to, mail.password) == (
        587,
        True,
        False,
        ["a@example.org"],
        "pw",
    )
    smtps = build_notifier(
        {"name": "s", "type": "email", "host": "h", "from": "a@b", "to": ["c@d", "e@f"], "ssl": True},
        where="n[2]",
    )
    assert (smtps.port, smtps.starttls, smtps.to) == (465, False, ["c@d", "e@f"])
    am = build_notifier(
        {"name": "am", "type": "alertmanager", "url": "http://am:9093/", "resolve_timeout": "1h30m"},
        where="x",
    )
    assert (
        isinstance(am, AlertmanagerNotifier) and am.resolve_timeout == 5400.0 and am.url == "http://am:9093"
    )
    retrain = build_notifier(
        {"name": "r", "type": "retrain", "url": "http://airflow:8080/", "dag_id": "retrain fraud"}, where="x"
    )
    assert isinstance(retrain, RetrainTrigger)
    assert retrain.send_resolved is False
    assert retrain.url == "http://airflow:8080/api/v1/dags/retrain%20fraud/dagRuns"
    hook = build_notifier(
        {
            "name": "h",
            "type": "webhook",
            "url": "http://x/y",
            "secret": "s",
            "send_resolved": False,
            "timeout": 2,
        },
        where="x",
    )
    assert isinstance(hook, WebhookNotifier) and (hook.secret, hook.send_resolved, hook.timeout) == (
        "s",
        False,
        2.0,
    )
    assert {"slack", "webhook", "email", "alertmanager", "retrain"} <= set(NOTIFIER_TYPES)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"name": "h", "type": "webhook", "url": "ftp://x"},
            "notifiers[2].url: expected an http(s) URL, got 'ftp://x'",
        ),
        (
            {"name": "h", "type": "pager"},
            "notifiers[2].type: unknown notifier type 'pager'; known: alertmanager, email,",
        ),
        ({"type": "slack", "url": "http://x"}, "notifiers[2].name: required field is missing"),
        ({"name": "h", "type": "slack"}, "notifiers[2].url: required field is missing (give url or url_env)"),
        ({"name": "h", "type": "slack", "url": "http://x", "urll": 1}, "notifiers[2].urll: unknown field;"),
        (
            {"name": "h", "type": "slack", "url": "http://x", "url_env": "U"},
            "notifiers[2].url: give url or url_env",
        ),
        (
            {"name": "h", "type": "slack", "url": "http://x", "timeout": -1},
            "notifiers[2].timeout: expected a number",
        ),
        (
            {"name": "h", "type": "slack", "url": "http://x", "send_resolved": "no"},
            "notifiers[2].send_resolved: exp",
        ),
        (
            {"name": "h", "type": "webhook", "url": "http://x", "headers": {"A": 1}},
            "notifiers[2].headers.A: expected",
        ),
        (
            {"name": "e", "type": "email", "host": "h", "from": "a@b", "to": []},
            "notifiers[2].to: expected an email",
        ),
        (
            {"name": "e", "type": "email", "host": "h", "from": "a@b", "to": ["x"]},
            "notifiers[2].to[0]: expected",
        ),
        (
            {"name": "e", "type": "email", "host": "h", "from": "nobody", "to": "a@b"},
            "notifiers[2].from: expected",
        ),
        (
            {
                "name": "e",
                "type": "email",
                "host": "h",
                "from": "a@b",
                "to": "a@b",
                "ssl": True,
                "starttls": True,
            },
            "notifiers[2].starttls: cannot be true together with ssl",
        ),
        (
            {"name": "e", "type": "email", "host": "h", "from": "a@b", "to": "a@b", "port": 70000},
            "notifiers[2].port: expected an integer in [1, 65535], got 70000",
        ),
        (
            {"name": "a", "type": "alertmanager", "url": "http://x", "password": "p"},
            "notifiers[2].password: given",
        ),
        (
            {"name": "a", "type": "alertmanager", "url": "http://x", "resolve_timeout": "5 min"},
            "notifiers[2].resolve_timeout: expected a duration (seconds, or like '5m'), got '5 min'",
        ),
        (
            {
                "name": "r",
                "type": "retrain",
                "url": "http://x",
                "body_template": {"conf": {"m": "{{ modle }}"}},
            },
            "notifiers[2].body_template.conf.m: unknown placeholder {{ modle }}; known: alertname, alerts,",
        ),
        ("slack", "notifiers[2]: expected a mapping with name and type, got 'slack'"),
    ],
)
def test_build_errors_name_the_field(spec, message: str) -> None:
    with pytest.raises(ValueError) as info:
        build_notifier(spec, where="notifiers[2]", env={})
    assert str(info.value).startswith(message), str(info.value)


def test_secrets_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = {"name": "h", "type": "webhook", "url": "http://x", "secret_env": "WK_TEST_HOOK_SECRET"}
    with pytest.raises(
        ValueError, match=r"^n\[0\]\.secret_env: environment variable WK_TEST_HOOK_SECRET is not set"
    ):
        build_notifier(spec, where="n[0]")
    monkeypatch.setenv("WK_TEST_HOOK_SECRET", "from-env")
    assert build_notifier(spec, where="n[0]").secret == "from-env"
    # A URL from the environment is a secret: a bad one is reported without its value.
    with pytest.raises(ValueError) as info:
        build_notifier({"name": "s", "type": "slack", "url_env": "U"}, where="n[1]", env={"U": "ftp://tok3n"})
    assert str(info.value).startswith("n[1].url_env: expected an http(s) URL in U, got one with scheme 'ftp'")
    assert "tok3n" not in str(info.value)


# ---------------------------------------------------------------------------------------------- webhook


def test_webhook_payload_is_alertmanager_shaped(sink: Sink) -> None:
    firing = make_alert(feature="income", value=0.31)
    resolved = make_alert("resolved", feature="age", value=math.nan)
    WebhookNotifier("hook", sink.url + "/hook").notify(make_notification(firing, resolved))
    (req,) = sink.at("/hook")
    assert req.headers["content-type"] == "application/json"
    assert "x-watchkeeper-signature" not in req.headers
    p = req.json()
    assert p["version"] == "4"
    assert p["groupKey"] == '{}:{alertname="FeatureDrift",model="fraud-clf"}'
    assert p["truncatedAlerts"] == 0
    assert p["status"] == "firing"
    assert p["receiver"] == "hook"
    assert p["groupLabels"] == {"alertname": "FeatureDrift", "model": "fraud-clf"}
    assert p["commonLabels"] == {
        "alertname": "FeatureDrift",
        "model": "fraud-clf",
        "severity": "critical",
        "version": "1.3.0",
    }
    assert p["commonAnnotations"] == {"description": "vs training"}
    assert p["externalURL"] == "http://wk.test/alerts"
    a, b = p["alerts"]
    assert a == {
        "status": "firing",
        "labels": dict(firing.labels),
        "annotations": {"summary": "PSI of income is high", "description": "vs training"},
        "startsAt": "2023-11-14T22:12:20.000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://wk.test/alerts",
        "fingerprint": firing.fingerprint,
        "value": 0.31,
        "valueString": "0.31",
    }
    assert (b["status"], b["endsAt"], b["value"], b["valueString"]) == ("resolved", T0_TEXT, None, "NaN")
    assert b["labels"]["feature"] == "age"


def test_webhook_signature_verifies_and_tampering_fails(sink: Sink) -> None:
    hook = WebhookNotifier("hook", sink.url + "/signed", secret="s3cret", clock=lambda: T0 + 0.7)
    hook.notify(make_notification(make_alert(feature="income")))
    (req,) = sink.at("/signed")
    ts, sig = req.headers["x-watchkeeper-timestamp"], req.headers["x-watchkeeper-signature"]
    assert ts == "1700000000"
    expected = hmac.new(b"s3cret", b"1700000000." + req.body, hashlib.sha256).hexdigest()
    assert sig == "sha256=" + expected
    assert verify_signature("s3cret", ts, req.body, sig, now=T0 + 30)
    assert verify_signature("s3cret", int(ts), req.body.decode(), sig, now=T0 - 30)
    tampered = req.body.replace(b"income", b"incomf")
    assert not verify_signature("s3cret", ts, tampered, sig, now=T0 + 30)
    assert not verify_signature("other", ts, req.body, sig, now=T0 + 30)
    assert not verify_signature("s3cret", "1700000001", req.body, sig, now=T0 + 30)  # timestamp is signed
    assert not verify_signature("s3cret", ts, req.body, sig, now=T0 + 301)  # replayed too late
    assert verify_signature("s3cret", ts, req.body, sig, now=T0 + 301, tolerance=400)
    assert not verify_signature("s3cret", "soon", req.body, sig, now=T0)


def test_send_resolved_false_and_max_alerts(sink: Sink) -> None:
    hook = WebhookNotifier("hook", sink.url + "/firing-only", send_resolved=False, headers={"X-Team": "ml"})
    hook.notify(make_notification(make_alert("resolved")))
    assert sink.at("/firing-only") == []
    hook.notify(make_notification(make_alert(feature="a"), make_alert("resolved", feature="b")))
    (req,) = sink.at("/firing-only")
    assert req.headers["x-team"] == "ml"
    assert [a["labels"]["feature"] for a in req.json()["alerts"]] == ["a"]
    WebhookNotifier("hook", sink.url + "/max", max_alerts=2).notify(
        make_notification(*(make_alert(feature=f"f{i}") for i in range(5)))
    )
    p = sink.at("/max")[0].json()
    assert (len(p["alerts"]), p["truncatedAlerts"]) == (2, 3)


@pytest.mark.parametrize(
    ("status", "transient"), [(500, True), (503, True), (408, True), (429, True), (400, False), (404, False)]
)
def test_http_errors_are_classified(sink: Sink, status: int, transient: bool) -> None:
    sink.answer("/err", (status, b"a" * 200 + b"b" * 100))
    with pytest.raises(NotifyError) as info:
        WebhookNotifier("hook", sink.url + "/err").notify(make_notification(make_alert()))
    assert info.value.transient is transient
    message = str(info.value)
    assert f"answered {status}" in message and message.endswith(": '" + "a" * 200 + "'")
    assert message.startswith(f"webhook 'hook': POST to {sink.url} answered")


def test_unreachable_receiver_is_transient() -> None:
    with pytest.raises(NotifyError) as info:
        SlackNotifier("s", f"http://127.0.0.1:{free_port()}/T/B/secret-token", timeout=2).notify(
            make_notification(make_alert())
        )
    assert info.value.transient is True
    assert "ConnectError" in str(info.value) and "secret-token" not in str(info.value)


# ---------------------------------------------------------------------------------------------- slack


def test_slack_message_shape(sink: Sink) -> None:
    a = make_alert(feature="<b>income</b>", value=0.3125)
    b = make_alert(feature="age", severity="warning", value=2.0)
    SlackNotifier("ml", sink.url + "/slack", channel="#ml").notify(make_notification(a, b))
    msg = sink.at("/slack")[0].json()
    title = "[FIRING:2] FeatureDrift (fraud-clf)"
    assert msg["channel"] == "#ml"
    assert msg["blocks"] == [
        {"type": "header", "text": {"type": "plain_text", "text": f":red_circle: {title}", "emoji": True}}
    ]
    (att,) = msg["attachments"]
    assert att["color"] == "#E01E5A" and att["fallback"] == title
    sections = [blk for blk in att["blocks"] if blk["type"] == "section"]
    assert len(sections) == 2
    first = sections[0]["text"]
    assert first["type"] == "mrkdwn"
    lines = first["text"].split("\n")
    assert lines[0] == ":red_circle: *FeatureDrift* (firing) value `0.3125`"
    assert lines[1] == "PSI of &lt;b&gt;income&lt;/b&gt; is high"
    assert lines[2] == "vs training"
    assert "`feature=&lt;b&gt;income&lt;/b&gt;`" in lines[3] and "`model=fraud-clf`" in lines[3]
    assert "<b>" not in json.dumps(msg)
    assert sections[1]["text"]["text"].startswith(":large_orange_circle: *FeatureDrift* (firing) value `2`")
    assert att["blocks"][-1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": "<http://wk.test/alerts|Open in watchkeeper>"}],
    }
    # The fallback text carries everything for Mattermost and Rocket.Chat, which ignore blocks.
    assert msg["text"].startswith(f":red_circle: *{title}*\n\n")
    assert first["text"] in msg["text"] and sections[1]["text"]["text"] in msg["text"]


def test_slack_caps_at_20_alerts_and_resolved_is_green(sink: Sink) -> None:
    alerts = [make_alert(feature=f"f{i:02d}") for i in range(25)]
    SlackNotifier("ml", sink.url + "/many").notify(make_notification(*alerts))
    att = sink.at("/many")[0].json()["attachments"][0]
    sections = [blk for blk in att["blocks"] if blk["type"] == "section"]
    assert len(sections) == 20 and "f19" in sections[-1]["text"]["text"]
    assert att["blocks"][-1]["elements"][0] == {"type": "mrkdwn", "text": "... and 5 more"}
    SlackNotifier("ml", sink.url + "/ok").notify(make_notification(make_alert("resolved")))
    msg = sink.at("/ok")[0].json()
    assert msg["attachments"][0]["color"] == "#2EB67D"
    assert msg["blocks"][0]["text"]["text"] == ":white_check_mark: [RESOLVED:1] FeatureDrift (fraud-clf)"


# ---------------------------------------------------------------------------------------------- email


class Inbox:
    """An aiosmtpd handler keeping what it receives; ``refuse`` answers every RCPT with that reply."""

    def __init__(self) -> None:
        self.envelopes: list = []
        self.logins: list[tuple[bytes, bytes]] = []
        self.refuse: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"pw", handled=False)  # False: aiosmtpd sends 535


@pytest.fixture
def smtp():
    controller_mod = pytest.importorskip("aiosmtpd.controller", reason="needs aiosmtpd (the dev extra)")
    inbox = Inbox()
    port = free_port()
    controller = controller_mod.Controller(
        inbox, hostname="127.0.0.1", port=port, authenticator=inbox.authenticate, auth_require_tls=False
    )
    controller.start()
    yield inbox, port
    controller.stop()


def test_email_arrives_with_both_parts_escaped(smtp) -> None:
    inbox, port = smtp
    mailer = EmailNotifier(
        "oncall",
        host="127.0.0.1",
        port=port,
        sender="wk@example.org",
        to=["a@example.org", "b@example.org"],
        starttls=False,
    )
    a = make_alert(feature="<script>alert(1)</script>", value=0.5)
    mailer.notify(make_notification(a, make_alert("resolved", feature="age")))
    (env,) = inbox.envelopes
    assert env.mail_from == "wk@example.org"
    assert env.rcpt_tos == ["a@example.org", "b@example.org"]
    msg = email.message_from_bytes(env.content, policy=email.policy.default)
    assert msg["Subject"] == "[FIRING:1] FeatureDrift (fraud-clf)"
    assert msg["To"] == "a@example.org, b@example.org"
    assert msg["From"] == "wk@example.org"
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",)).get_content()
    html_part = msg.get_body(("html",)).get_content()
    assert "feature=<script>alert(1)</script>" in plain and "value 0.5" in plain
    assert "[resolved]" in plain and "resolved at 2023-11-14T22:13:20.000Z" in plain
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_part
    assert "<script>" not in html_part
    assert '<a href="http://wk.test/alerts">' in html_part


def test_email_login_and_refusals(smtp) -> None:
    inbox, port = smtp

    def mailer(**kw) -> EmailNotifier:
        return EmailNotifier("m", host="127.0.0.1", port=port, sender="wk@x.org", to=["a@x.org"], **kw)

    mailer(starttls=False, username="wk", password="pw").notify(make_notification(make_alert()))
    assert inbox.logins == [(b"wk", b"pw")] and len(inbox.envelopes) == 1
    with pytest.raises(NotifyError) as info:
        mailer(starttls=False, username="wk", password="wrong").notify(make_notification(make_alert()))
    assert info.value.transient is False and "535" in str(info.value)
    inbox.refuse = "550 5.1.1 no such user"
    with pytest.raises(NotifyError) as info:
        mailer(starttls=False).notify(make_notification(make_alert()))
    assert info.value.transient is False and "550" in str(info.value) and "a@x.org" in str(info.value)
    inbox.refuse = "451 4.3.0 try later"
    with pytest.raises(NotifyError) as info:
        mailer(starttls=False).notify(make_notification(make_alert()))
    assert info.value.transient is True
    inbox.refuse = None
    with pytest.raises(NotifyError) as info:
        mailer().notify(make_notification(make_alert()))  # starttls is the default; this server has no TLS
    assert info.value.transient is False and "starttls: false" in str(info.value)
    assert len(inbox.envelopes) == 1
    with pytest.raises(NotifyError) as info:
        EmailNotifier(
            "m", host="127.0.0.1", port=free_port(), sender="a@b", to=["c@d"], starttls=False
        ).notify(make_notification(make_alert()))
    assert info.value.transient is True


# ---------------------------------------------------------------------------------------------- alertmanager


def test_label_names_are_made_valid() -> None:
    assert [label_name(n) for n in ("feature-name", "0day", "a.b/c", "ok_1", "")] == [
        "feature_name",
        "_0day",
        "a_b_c",
        "ok_1",
        "_",
    ]
    # "a_b" is valid and wins over "a-b", which would become the same name.
    assert sanitize({"a-b": "x", "a_b": "y", "n": 3}) == {"a_b": "y", "n": "3"}


def test_alertmanager_request_and_auth(sink: Sink) -> None:
    am = AlertmanagerNotifier("am", sink.url, bearer_token="tok", resolve_timeout=90, clock=lambda: T0)
    am.notify(
        make_notification(make_alert(**{"feature-name": "income"}), make_alert("resolved", feature="x"))
    )
    (req,) = sink.at("/api/v2/alerts")
    assert req.headers["authorization"] == "Bearer tok"
    firing, resolved = req.json()
    assert firing == {
        "labels": {
            "alertname": "FeatureDrift",
            "feature_name": "income",
            "model": "fraud-clf",
            "severity": "critical",
            "version": "1.3.0",
        },
        "annotations": {"description": "vs training", "summary": "PSI of x is high", "value": "0.31"},
        "startsAt": "2023-11-14T22:12:20.000Z",
        "endsAt": "2023-11-14T22:14:50.000Z",  # T0 + 90 s
        "generatorURL": "http://wk.test/alerts",
    }
    assert resolved["endsAt"] == T0_TEXT
    AlertmanagerNotifier("am", sink.url + "/basic/", username="u", password="p").notify(
        make_notification(make_alert())
    )
    (req,) = sink.at("/basic/api/v2/alerts")
    assert req.headers["authorization"] == "Basic " + base64.b64encode(b"u:p").decode()


def _alertmanager_binary() -> str | None:
    for name in ("alertmanager", "prometheus-alertmanager"):
        if found := shutil.which(name):
            return found
    return (
        "/usr/bin/prometheus-alertmanager" if os.access("/usr/bin/prometheus-alertmanager", os.X_OK) else None
    )


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory):
    binary = _alertmanager_binary()
    if binary is None:
        pytest.skip(
            "no Alertmanager binary (alertmanager or /usr/bin/prometheus-alertmanager; apt package "
            "prometheus-alertmanager)"
        )
    root = tmp_path_factory.mktemp("alertmanager")
    config = root / "alertmanager.yml"
    config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    port = free_port()
    log_path = root / "alertmanager.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"alertmanager exited with {proc.returncode}:\n{Path(log_path).read_text()[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"alertmanager not ready in 30 s:\n{Path(log_path).read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_real_alertmanager_receives_and_resolves(alertmanager: str) -> None:
    now = time.time()
    firing = Alert(
        rule="LatencyHigh",
        labels={
            "alertname": "LatencyHigh",
            "severity": "warning",
            "model": "fraud-clf",
            "model-stage": "prod",
        },
        annotations={"summary": "p99 latency 870 ms", "description": "above 500 ms for 10m"},
        status="firing",
        value=0.87,
        active_at=now - 700,
        fired_at=now - 100,
    )
    note = Notification(
        "am", "g", {"alertname": "LatencyHigh"}, [firing], t=now, external_url="http://wk.test/x"
    )
    am = AlertmanagerNotifier("am", alertmanager, clock=lambda: now)
    am.notify(note)
    query = {"filter": ['alertname="LatencyHigh"']}
    (got,) = httpx.get(alertmanager + "/api/v2/alerts", params=query, timeout=5).json()
    assert got["labels"] == {
        "alertname": "LatencyHigh",
        "severity": "warning",
        "model": "fraud-clf",
        "model_stage": "prod",
    }
    assert got["annotations"] == {
        "summary": "p99 latency 870 ms",
        "description": "above 500 ms for 10m",
        "value": "0.87",
    }
    assert got["status"]["state"] == "active"
    assert got["generatorURL"] == "http://wk.test/x"
    assert abs(datetime.fromisoformat(got["endsAt"]).timestamp() - (now + 300)) < 0.002
    assert abs(datetime.fromisoformat(got["startsAt"]).timestamp() - (now - 100)) < 0.002

    resolved = Alert(
        rule="LatencyHigh",
        labels=firing.labels,
        annotations=firing.annotations,
        status="resolved",
        value=0.2,
        active_at=firing.active_at,
        fired_at=firing.fired_at,
        resolved_at=now - 1,
    )
    am.notify(Notification("am", "g", {"alertname": "LatencyHigh"}, [resolved], t=now))
    assert httpx.get(alertmanager + "/api/v2/alerts", params=query, timeout=5).json() == []


def test_real_alertmanager_refuses_nothing_we_send(alertmanager: str) -> None:
    # Label names Alertmanager would reject as they are, and a non-string-looking value.
    odd = make_alert(**{"0-feature": "x", "a.b": "y"}, value=math.inf)
    AlertmanagerNotifier("am", alertmanager).notify(make_notification(odd))
    got = httpx.get(alertmanager + "/api/v2/alerts", params={"filter": ['_0_feature="x"']}, timeout=5).json()
    assert len(got) == 1 and got[0]["labels"]["a_b"] == "y" and got[0]["annotations"]["value"] == "+Inf"


# ---------------------------------------------------------------------------------------------- retrain


def test_retrain_posts_an_airflow_dag_run(sink: Sink) -> None:
    trigger = RetrainTrigger(
        "r", sink.url, dag_id="retrain_fraud", username="wk", password="pw", clock=lambda: T0 + 3.25
    )
    note = make_notification(make_alert(feature="income", value=0.4), make_alert("resolved", feature="age"))
    trigger.notify(note)
    (req,) = sink.at("/api/v1/dags/retrain_fraud/dagRuns")
    assert req.headers["authorization"] == "Basic " + base64.b64encode(b"wk:pw").decode()
    body = req.json()
    key_hash = hashlib.sha256(note.group_key.encode()).hexdigest()[:12]
    assert body["dag_run_id"] == f"watchkeeper-{key_hash}-1700000000"
    assert body["logical_date"] == "2023-11-14T22:13:23.250000Z"
    assert body["note"] == "[FIRING:1] FeatureDrift (fraud-clf)"
    conf = body["conf"]
    assert (conf["model"], conf["version"], conf["status"], conf["receiver"]) == (
        "fraud-clf",
        "1.3.0",
        "firing",
        "hook",
    )
    assert conf["group_key"] == note.group_key and conf["external_url"] == "http://wk.test/alerts"
    (only,) = conf["alerts"]  # the resolved alert is left out: send_resolved is false
    assert only["labels"]["feature"] == "income" and only["value"] == 0.4 and only["status"] == "firing"
    assert only["startsAt"] == "2023-11-14T22:12:20.000Z" and only["alertname"] == "FeatureDrift"

    trigger.notify(make_notification(make_alert("resolved")))
    assert len(sink.at("/api/v1/dags/retrain_fraud/dagRuns")) == 1  # resolved: nothing triggered
    RetrainTrigger("r", sink.url + "/any", send_resolved=True).notify(
        make_notification(make_alert("resolved"))
    )
    assert sink.at("/any")[0].json()["conf"]["status"] == "resolved"


def test_retrain_conflict_on_same_run_id_counts_as_sent(sink: Sink) -> None:
    note = make_notification(make_alert())
    run_id = RetrainTrigger("r", sink.url).body(note)["dag_run_id"]
    sink.answer(
        "/dup",
        (
            409,
            f"{{\"detail\": \"DAGRun with DAG ID: 'd' and DAGRun ID: '{run_id}' already exists\"}}".encode(),
        ),
    )
    RetrainTrigger("r", sink.url + "/dup").notify(note)  # no error
    sink.answer("/dup", (409, b'{"detail": "DAGRun with DAG ID d and logical date 2023 already exists"}'))
    with pytest.raises(NotifyError) as info:
        RetrainTrigger("r", sink.url + "/dup").notify(note)
    assert info.value.transient is False and "409" in str(info.value)


def test_retrain_body_template(sink: Sink) -> None:
    template = {
        "job": "retrain-{{ model }}@{{ version }}",
        "why": {"alerts": "{{ alerts }}", "n": "{{count}}"},
        "tags": ["wk", "{{ status }}"],
    }
    RetrainTrigger("r", sink.url + "/job", body_template=template, bearer_token="t").notify(
        make_notification(make_alert(feature="a"), make_alert(feature="b"))
    )
    (req,) = sink.at("/job")
    assert req.headers["authorization"] == "Bearer t"
    body = req.json()
    assert body["job"] == "retrain-fraud-clf@1.3.0"
    assert body["tags"] == ["wk", "firing"]
    assert body["why"]["n"] == 2 and [a["labels"]["feature"] for a in body["why"]["alerts"]] == ["a", "b"]


# ---------------------------------------------------------------------------------------------- dispatch


def _dispatcher(notifiers, results: list[Delivery], **kw) -> Dispatcher:
    sleeps: list[float] = []
    return Dispatcher(notifiers, on_result=results.append, sleep=sleeps.append, **kw)


def test_dispatch_retries_503_then_sends(sink: Sink) -> None:
    sink.answer("/flaky", (503, b"busy"), (503, b"busy"))
    results: list[Delivery] = []
    with _dispatcher({"hook": WebhookNotifier("hook", sink.url + "/flaky")}, results) as d:
        d.submit(make_notification(make_alert()))
        assert d.flush(10)
    (delivery,) = results
    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 3, None)
    bodies = [r.body for r in sink.at("/flaky")]
    assert len(bodies) == 3 and bodies[0] == bodies[1] == bodies[2]


def test_dispatch_does_not_retry_400(sink: Sink, caplog: pytest.LogCaptureFixture) -> None:
    sink.answer("/bad", (400, b"invalid payload: field x"))
    results: list[Delivery] = []
    hook = WebhookNotifier("hook", sink.url + "/bad")
    with caplog.at_level("WARNING", logger="watchkeeper.alerting"), _dispatcher({"hook": hook}, results) as d:
        d.submit(make_notification(make_alert()))
        assert d.flush(10)
    (delivery,) = results
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "400" in delivery.error and "invalid payload: field x" in delivery.error
    assert len(sink.at("/bad")) == 1
    assert any("'hook'" in r.message and "400" in r.message for r in caplog.records)


def test_hung_receiver_does_not_delay_another(sink: Sink) -> None:
    sink.held["/slow"] = threading.Event()
    fast_done = threading.Event()
    results: list[Delivery] = []

    def on_result(d: Delivery) -> None:
        results.append(d)
        if d.notifier == "fast":
            fast_done.set()

    notifiers = {
        "slow": WebhookNotifier("slow", sink.url + "/slow", timeout=30),
        "fast": WebhookNotifier("fast", sink.url + "/fast"),
    }
    d = Dispatcher(notifiers, on_result=on_result, workers=1)
    try:
        d.submit(make_notification(make_alert(), receiver="slow"))
        sink.wait_for("/slow", 1)  # the slow receiver has the request and is not answering
        d.submit(make_notification(make_alert(), receiver="fast"))
        assert fast_done.wait(10)
        assert [r.notifier for r in results] == ["fast"]  # slow is still waiting for its answer
    finally:
        sink.held["/slow"].set()
        assert d.flush(10)
        d.close()
    assert sorted((r.notifier, r.status) for r in results) == [("fast", "sent"), ("slow", "sent")]
