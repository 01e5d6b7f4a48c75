"""Slack incoming-webhook notifier; Mattermost and Rocket.Chat incoming webhooks take the same JSON.

The message (Slack's "Sending messages using incoming webhooks" and Block Kit reference)::

    {"text": "<fallback: the whole message in mrkdwn>",
     "blocks": [{"type": "header",
                 "text": {"type": "plain_text", "text": ":red_circle: [FIRING:2] FeatureDrift (...)"}}],
     "attachments": [{"color": "#E01E5A", "fallback": "<title>",
                      "blocks": [<a section per alert, at most 20>, <"... and N more">, <dashboard link>]}]}

Slack shows the header block and then the alerts beside a bar coloured by status and severity (resolved green,
critical red, warning amber, info blue); ``text`` is what a phone notification shows. Mattermost and
Rocket.Chat ignore blocks and show ``text``, which is why ``text`` holds the full listing (at most 20 alerts
too) rather than only the title.

User values (labels, annotations) are escaped for mrkdwn: ``&``, ``<`` and ``>`` become entities, as Slack
asks, so a label value cannot form a link or a mention. Slack caps a header at 150 characters and a section
at 3000; longer text is cut with an ellipsis.
"""

from __future__ import annotations

import json
from typing import Any

from watchkeeper.alerting.model import Alert, Notification, format_value
from watchkeeper.alerting.notifiers.webhook import keep_for, origin, post_json

MAX_ALERTS = 20
_HEADER_LIMIT = 150
_SECTION_LIMIT = 3000
_RESOLVED_COLOUR = "#2EB67D"
_COLOURS = {
    "critical": "#E01E5A",
    "page": "#E01E5A",
    "error": "#E01E5A",
    "warning": "#ECB22E",
    "info": "#36C5F0",
}
_EMOJI = {
    "critical": ":red_circle:",
    "page": ":red_circle:",
    "error": ":red_circle:",
    "info": ":large_blue_circle:",
}
_RESOLVED_EMOJI = ":white_check_mark:"
_WARNING_EMOJI = ":large_orange_circle:"
_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3, "page": 3}


def escape(text: str) -> str:
    """Slack's mrkdwn escaping of a user value.

    >>> escape("<script> & <@U123>")
    '&lt;script&gt; &amp; &lt;@U123&gt;'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def status_colour(notification: Notification) -> str:
    """Green when resolved, else by the highest severity among the firing alerts (warning when unknown)."""
    if notification.status == "resolved":
        return _RESOLVED_COLOUR
    return _COLOURS.get(_top_severity(notification.firing), _COLOURS["warning"])


def status_emoji(notification: Notification) -> str:
    if notification.status == "resolved":
        return _RESOLVED_EMOJI
    return _EMOJI.get(_top_severity(notification.firing), _WARNING_EMOJI)


def _top_severity(alerts: list[Alert]) -> str:
    return max((a.severity for a in alerts), key=lambda s: _RANK.get(s, 1), default="warning")


def alert_text(alert: Alert) -> str:
    """One alert in mrkdwn: name, status and value; summary; description; the other labels."""
    name = escape(alert.labels.get("alertname", alert.rule))
    mark = _RESOLVED_EMOJI if alert.status == "resolved" else _EMOJI.get(alert.severity, _WARNING_EMOJI)
    lines = [f"{mark} *{name}* ({alert.status}) value `{format_value(alert.value)}`"]
    for key in ("summary", "description"):
        if alert.annotations.get(key):
            lines.append(escape(alert.annotations[key]))
    labels = [f"`{escape(k)}={escape(v)}`" for k, v in sorted(alert.labels.items()) if k != "alertname"]
    if labels:
        lines.append(" ".join(labels))
    return "\n".join(lines)


def message(notification: Notification, alerts: list[Alert]) -> dict[str, Any]:
    """The webhook JSON for a notification's ``alerts`` (the module docstring draws it)."""
    title = notification.title()
    emoji = status_emoji(notification)
    shown, more = alerts[:MAX_ALERTS], max(0, len(alerts) - MAX_ALERTS)
    texts = [alert_text(a) for a in shown]
    more_text = f"... and {more} more" if more else ""
    link = f"<{notification.external_url}|Open in watchkeeper>" if notification.external_url else ""

    body_blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(t, _SECTION_LIMIT)}} for t in texts
    ]
    context = [e for e in (more_text, link) if e]
    if context:
        body_blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": e} for e in context]})
    fallback = "\n\n".join([f"{emoji} *{escape(title)}*", *texts, *context])
    return {
        "text": fallback,
        "blocks": [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": _cut(f"{emoji} {title}", _HEADER_LIMIT),
                    "emoji": True,
                },
            }
        ],
        "attachments": [{"color": status_colour(notification), "fallback": title, "blocks": body_blocks}],
    }


class SlackNotifier:
    """Posts notifications to a Slack-compatible incoming webhook. ``channel``, ``username`` and
    ``icon_emoji`` are sent when set (Mattermost and Rocket.Chat honour them; Slack apps may not)."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        channel: str | None = None,
        username: str | None = None,
        icon_emoji: str | None = None,
        send_resolved: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.name = name
        self.url = url
        self.channel = channel
        self.username = username
        self.icon_emoji = icon_emoji
        self.send_resolved = send_resolved
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"SlackNotifier(name={self.name!r}, url={origin(self.url)!r})"

    def notify(self, notification: Notification) -> None:
        alerts = keep_for(notification, self.send_resolved)
        if not alerts:
            return
        msg = message(notification, alerts)
        for key in ("channel", "username", "icon_emoji"):
            if getattr(self, key):
                msg[key] = getattr(self, key)
        body = json.dumps(msg, allow_nan=False).encode()
        post_json(self.url, body, timeout=self.timeout, what=f"slack {self.name!r}")
