"""Annotation templates: ``"p99 {{ $value }} ms on {{ $labels.model }}"``.

A deliberately small subset of Prometheus' Go templates, the part rule files use: ``$value`` and
``$labels.<name>``, optionally piped through ``printf "<format>"`` (a %-format of one number) or ``humanize``.
Anything else is refused when the rules file is loaded, not when an alert fires.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from watchkeeper.alerting.model import format_value

_TAG = re.compile(r"{{\s*(.*?)\s*}}")
_REF = re.compile(r"^\$(value|labels\.([A-Za-z_][A-Za-z0-9_]*))$")
_PRINTF = re.compile(r'^printf\s+"(%[-+ 0#]*\d*(?:\.\d+)?[dfegEG%])"$')


def check(text: str) -> str | None:
    """None when ``text`` is a template this module renders, else what is wrong with it."""
    for m in _TAG.finditer(text):
        problem = _check_tag(m.group(1))
        if problem:
            return f"template {{{{ {m.group(1)} }}}}: {problem}"
    if "{{" in _TAG.sub("", text):
        return "template: '{{' without a matching '}}'"
    return None


def _check_tag(tag: str) -> str | None:
    head, *pipes = [p.strip() for p in tag.split("|")]
    if head.startswith("humanize "):
        head, pipes = head.removeprefix("humanize ").strip(), ["humanize", *pipes]
    if not _REF.match(head):
        return "expected $value or $labels.<name>"
    for p in pipes:
        if p != "humanize" and not _PRINTF.match(p):
            return f'unknown function {p!r}: expected printf "%.2f" or humanize'
        if p != "humanize" and head != "$value":
            return "printf formats $value only"
    return None


def render(text: str, labels: Mapping[str, str], value: float) -> str:
    """Fill a checked template; a tag that does not check is left as written."""

    def one(m: re.Match[str]) -> str:
        tag = m.group(1)
        if _check_tag(tag):
            return m.group(0)
        head, *pipes = [p.strip() for p in tag.split("|")]
        if head.startswith("humanize "):
            head, pipes = head.removeprefix("humanize ").strip(), ["humanize", *pipes]
        if head == "$value":
            out = format_value(value)
            for p in pipes:
                if p == "humanize":
                    out = _humanize(value)
                else:
                    fmt = _PRINTF.match(p).group(1)  # type: ignore[union-attr]
                    try:
                        out = fmt % (int(value) if fmt.endswith("d") else value)
                    except (ValueError, OverflowError):
                        out = format_value(value)
            return out
        return str(labels.get(head.removeprefix("$labels."), ""))

    return _TAG.sub(one, text)


def _humanize(value: float) -> str:
    """1234567 → 1.235M, as Prometheus' humanize (SI prefixes, 4 significant digits)."""
    if value != value or value in (float("inf"), float("-inf")) or value == 0:
        return format_value(value)
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.4g}{suffix}"
    for factor, suffix in ((1e-3, "m"), (1e-6, "u"), (1e-9, "n")):
        if abs(value) >= factor and abs(value) < 1:
            return f"{value / factor:.4g}{suffix}"
    return f"{value:.4g}"
