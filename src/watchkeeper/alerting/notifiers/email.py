"""Email notifier: one message per notification over SMTP (``smtplib``).

The message is a ``multipart/alternative`` :class:`email.message.EmailMessage`: a plain-text body and an HTML
alternative listing the same alerts (status, value, summary, description, labels). Every user value in the
HTML is passed through :func:`html.escape`, so a label like ``<script>`` shows as text. The subject is
:meth:`Notification.title`, with line breaks turned into spaces (a header may not contain them).

Connection: ``ssl=True`` speaks TLS from the first byte (SMTPS, port 465 by default); ``starttls=True`` (the
default, like Alertmanager's ``require_tls``) upgrades a plain connection and fails if the server does not
offer STARTTLS; both false sends in the clear (a relay on localhost). The default port follows: 465 with
``ssl``, 587 with ``starttls``, else 25. ``username``/``password`` log in when given.

Errors: connection failures, timeouts, disconnects and SMTP 4xx replies are transient; 5xx replies (a
refused sender or recipients, failed login) and a server without STARTTLS are not. When the server accepts
some recipients and refuses others, the message has gone to those it accepted, so sending again would
duplicate it: that counts as delivered, with a warning naming the refused ones.
"""

from __future__ import annotations

import html
import logging
import smtplib
import ssl as ssl_module
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from watchkeeper.alerting.model import Alert, Notification, NotifyError, format_value
from watchkeeper.alerting.notifiers.webhook import keep_for, rfc3339

log = logging.getLogger("watchkeeper.alerting")


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def _when(alert: Alert) -> str:
    if alert.status == "resolved" and alert.resolved_at is not None:
        return f"resolved at {rfc3339(alert.resolved_at)}"
    return f"since {rfc3339(alert.fired_at if alert.fired_at is not None else alert.active_at)}"


def text_body(notification: Notification, alerts: Sequence[Alert]) -> str:
    """The plain-text part."""
    out = [notification.title(), ""]
    for a in alerts:
        out.append(
            f"* {a.labels.get('alertname', a.rule)} [{a.status}] value {format_value(a.value)}, {_when(a)}"
        )
        for key in ("summary", "description"):
            if a.annotations.get(key):
                out.append(f"  {key}: {a.annotations[key]}")
        out.append("  labels: " + ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items())))
        out.append("")
    if notification.external_url:
        out.append(f"Open in watchkeeper: {notification.external_url}")
    return "\n".join(out) + "\n"


def html_body(notification: Notification, alerts: Sequence[Alert]) -> str:
    """The HTML part; every value that came from a rule or a signal is escaped."""
    e = html.escape
    rows = []
    for a in alerts:
        colour = "#2eb67d" if a.status == "resolved" else "#e01e5a"
        notes = "".join(
            f"<p><b>{key}:</b> {e(a.annotations[key])}</p>"
            for key in ("summary", "description")
            if a.annotations.get(key)
        )
        labels = "".join(
            f'<code style="margin-right:6px">{e(k)}={e(v)}</code>' for k, v in sorted(a.labels.items())
        )
        rows.append(
            f'<tr><td style="border-left:4px solid {colour};padding:6px 10px">'
            f"<p><b>{e(a.labels.get('alertname', a.rule))}</b> [{e(a.status)}] "
            f"value <code>{e(format_value(a.value))}</code>, {e(_when(a))}</p>"
            f"{notes}<p>{labels}</p></td></tr>"
        )
    link = (
        f'<p><a href="{e(notification.external_url, quote=True)}">Open in watchkeeper</a></p>'
        if notification.external_url
        else ""
    )
    return (
        '<!DOCTYPE html><html><body style="font-family:sans-serif">'
        f"<h2>{e(notification.title())}</h2>"
        f'<table style="border-collapse:collapse">{"".join(rows)}</table>{link}</body></html>\n'
    )


def build_message(
    notification: Notification, alerts: Sequence[Alert], sender: str, to: Sequence[str]
) -> EmailMessage:
    """The email for a notification: subject, addresses, text and HTML parts."""
    msg = EmailMessage()
    msg["Subject"] = _one_line(notification.title())
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(notification.t, usegmt=True)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(text_body(notification, alerts))
    msg.add_alternative(html_body(notification, alerts), subtype="html")
    return msg


class EmailNotifier:
    """Sends each notification as one email to ``to`` through the SMTP server at ``host``."""

    def __init__(
        self,
        name: str,
        *,
        host: str,
        sender: str,
        to: Sequence[str],
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = True,
        ssl: bool = False,
        timeout: float = 10.0,
        send_resolved: bool = True,
    ) -> None:
        if ssl and starttls:
            raise ValueError("email: choose ssl (SMTPS) or starttls, not both")
        if not to:
            raise ValueError("email: expected at least one recipient in 'to', got none")
        self.name = name
        self.host = host
        self.port = port or (465 if ssl else 587 if starttls else 25)
        self.sender = sender
        self.to = list(to)
        self.username = username
        self.password = password
        self.starttls = starttls
        self.ssl = ssl
        self.timeout = timeout
        self.send_resolved = send_resolved

    def __repr__(self) -> str:
        return f"EmailNotifier(name={self.name!r}, host={self.host!r}, port={self.port}, to={self.to!r})"

    def notify(self, notification: Notification) -> None:
        alerts = keep_for(notification, self.send_resolved)
        if not alerts:
            return
        msg = build_message(notification, alerts, self.sender, self.to)
        what = f"email {self.name!r} via {self.host}:{self.port}"
        try:
            refused = self._send(msg)
        except smtplib.SMTPNotSupportedError as exc:
            raise NotifyError(
                f"{what}: {exc} (set starttls: false for a server without TLS)", transient=False
            ) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            detail = ", ".join(
                f"{r}: {c} {m.decode(errors='replace')}" for r, (c, m) in exc.recipients.items()
            )
            raise NotifyError(
                f"{what}: every recipient refused: {detail}", transient=any(400 <= c < 500 for c in codes)
            ) from exc
        except smtplib.SMTPResponseException as exc:
            text = (
                exc.smtp_error.decode(errors="replace")
                if isinstance(exc.smtp_error, bytes)
                else exc.smtp_error
            )
            raise NotifyError(
                f"{what}: server answered {exc.smtp_code} {text}", transient=400 <= exc.smtp_code < 500
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Connection refused or reset, timeouts, disconnects: the server may be back on the next try.
            raise NotifyError(f"{what}: {type(exc).__name__}: {exc}", transient=True) from exc
        if refused:
            log.warning(
                "%s: delivered, but these recipients were refused: %s", what, ", ".join(sorted(refused))
            )

    def _send(self, msg: EmailMessage) -> dict:
        if self.ssl:
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=ssl_module.create_default_context()
            )
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        with client:
            if self.starttls:
                client.starttls(context=ssl_module.create_default_context())
            if self.username:
                client.login(self.username, self.password or "")
            return client.send_message(msg, from_addr=self.sender, to_addrs=self.to)
