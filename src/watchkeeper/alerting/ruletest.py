"""Unit tests for alert rules, written like ``promtool test rules``: ``watchkeeper rules test FILE``.

A test file names rule files and lists test groups; each group gives input series in the compact expanding
notation and the alerts expected to be *firing* at given times::

    rule_files: [rules.yml]            # relative to this file
    evaluation_interval: 1m
    tests:
      - name: p99 above 500 ms for 5 minutes
        interval: 1m                   # the spacing of the input values
        input_series:
          - series: 'latency_p99_ms{model="fraud-clf"}'
            values: '100 200 600x10'   # 100, 200, then 600 eleven times
        alert_rule_test:
          - eval_time: 4m
            alertname: HighP99Latency
            exp_alerts: []             # pending, not firing yet
          - eval_time: 8m
            alertname: HighP99Latency
            exp_alerts:
              - exp_labels: {model: fraud-clf, severity: warning, alertname: HighP99Latency}
                exp_annotations: {summary: "p99 600 ms on fraud-clf"}

Values: ``a+bxn`` is a, a+b, ..., a+n·b (n+1 values), ``a-bxn`` counts down, ``axn`` repeats a n+1 times,
``_`` is no value at that step (``_xn``: n+1 gaps), and ``NaN``, ``Inf``, ``-Inf`` are values. Times start
at 0; the engine evaluates every ``evaluation_interval`` from 0 to each ``eval_time`` on its own clock, so a
test of hours of rule behaviour runs in milliseconds. ``exp_labels`` must equal an alert's labels exactly
(``alertname`` and ``severity`` may be left out: they are added from the rule).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from watchkeeper.alerting.rules import parse_duration

_SERIES = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:/.]*)\s*(?:\{(.*)\})?\s*$")
_PAIR = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_EXPAND = re.compile(
    r"^(?P<a>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)(?:(?P<op>[-+])(?P<b>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?))?x(?P<n>\d+)$"
)
_SPECIAL = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}


class RuleTestError(ValueError):
    """The test file itself is wrong (not a failing expectation): the message names the field."""


def parse_series(text: str) -> tuple[str, dict[str, str]]:
    """``name{k="v", ...}`` → (name, labels)."""
    m = _SERIES.match(text)
    if not m:
        raise RuleTestError(f'series: expected name{{label="value", ...}}, got {text!r}')
    name, body = m.group(1), (m.group(2) or "").strip()
    labels: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        p = _PAIR.match(body, pos)
        if not p:
            raise RuleTestError(f"series: cannot read the labels at {body[pos:]!r} in {text!r}")
        labels[p.group(1)] = bytes(p.group(2), "utf-8").decode("unicode_escape")
        pos = p.end()
    return name, labels


def expand_values(text: str) -> list[float | None]:
    """The expanding notation → one value (or None for ``_``) per step."""
    out: list[float | None] = []
    for token in str(text).split():
        low = token.lower()
        if low in _SPECIAL:
            out.append(_SPECIAL[low])
            continue
        if token == "_":
            out.append(None)
            continue
        if token.startswith("_x") and token[2:].isdigit():
            out.extend([None] * (int(token[2:]) + 1))
            continue
        m = _EXPAND.match(token)
        if m:
            a, n = float(m.group("a")), int(m.group("n"))
            b = float(m.group("b") or 0.0) * (-1 if m.group("op") == "-" else 1)
            out.extend(a + i * b for i in range(n + 1))
            continue
        try:
            out.append(float(token))
        except ValueError:
            raise RuleTestError(
                f"values: cannot read {token!r}: expected a number, a+bxn, a-bxn, axn, _ or _xn"
            ) from None
    return out


@dataclass(slots=True)
class Failure:
    group: str
    alertname: str
    eval_time: float
    expected: list[dict[str, Any]]
    got: list[dict[str, Any]]

    def __str__(self) -> str:
        def show(alerts: list[dict[str, Any]]) -> str:
            return "\n".join(f"        {a}" for a in alerts) or "        (none)"

        return (
            f"  FAILED {self.group}: {self.alertname} at {_fmt_time(self.eval_time)}\n"
            f"      expected:\n{show(self.expected)}\n      got:\n{show(self.got)}"
        )


@dataclass(slots=True)
class RuleTestResult:
    file: str
    checks: int = 0
    failures: list[Failure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.errors


def run_rule_tests(path: str | Path) -> RuleTestResult:
    """Run every test group of a test file; problems in the file itself are reported as errors."""
    path = Path(path)
    result = RuleTestResult(str(path))
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        result.errors.append(f"{path}: cannot read the test file: {exc}")
        return result
    try:
        _run(path, doc, result)
    except RuleTestError as exc:
        result.errors.append(f"{path}: {exc}")
    return result


def _run(path: Path, doc: Any, result: RuleTestResult) -> None:
    if not isinstance(doc, Mapping):
        raise RuleTestError("expected a mapping with rule_files and tests")
    unknown = set(doc) - {"rule_files", "evaluation_interval", "tests"}
    if unknown:
        raise RuleTestError(
            f"unknown keys {sorted(unknown)}: expected rule_files, evaluation_interval, tests"
        )
    files = doc.get("rule_files")
    if not isinstance(files, list) or not files or not all(isinstance(f, str) for f in files):
        raise RuleTestError("rule_files: expected a list of rule file paths")
    interval = _duration(doc.get("evaluation_interval", "1m"), "evaluation_interval")
    if interval <= 0:
        raise RuleTestError("evaluation_interval: expected a duration above 0")
    tests = doc.get("tests")
    if not isinstance(tests, list):
        raise RuleTestError("tests: expected a list of test groups")
    rule_paths = [path.parent / f for f in files]
    for i, group in enumerate(tests):
        where = f"tests[{i}]"
        if not isinstance(group, Mapping):
            raise RuleTestError(f"{where}: expected a mapping")
        name = str(group.get("name", where))
        source = _source(group, where)
        from watchkeeper.alerting.engine import AlertEngine

        engine = AlertEngine(source=source, known_signals=lambda src=source: _known(src))
        refused = engine.load(*rule_paths)
        if refused:
            for err in refused.values():
                result.errors.append(str(err))
            return
        cases = group.get("alert_rule_test") or []
        if not isinstance(cases, list):
            raise RuleTestError(f"{where}.alert_rule_test: expected a list")
        checks = []
        for j, case in enumerate(cases):
            cw = f"{where}.alert_rule_test[{j}]"
            if not isinstance(case, Mapping) or "eval_time" not in case or "alertname" not in case:
                raise RuleTestError(f"{cw}: expected eval_time, alertname and exp_alerts")
            checks.append((_duration(case["eval_time"], f"{cw}.eval_time"), str(case["alertname"]), case, cw))
        rules = {r.name: r for r in engine.rules}
        t = 0.0
        for eval_time, alertname, case, cw in sorted(checks, key=lambda c: c[0]):
            if alertname not in rules:
                raise RuleTestError(f"{cw}.alertname: no rule named {alertname!r} in {', '.join(files)}")
            while t <= eval_time + 1e-9:
                engine.evaluate(t)
                t += interval
            got = [
                {"labels": dict(st.labels), "annotations": _annotations(rule, st)}
                for rule, st in engine.alerts("firing")
                if rule.name == alertname
            ]
            expected = _expected(case.get("exp_alerts") or [], rules[alertname], cw)
            result.checks += 1
            if not _same(expected, got):
                result.failures.append(Failure(name, alertname, eval_time, expected, got))
        engine.close()


def _source(group: Mapping[str, Any], where: str) -> Any:
    from watchkeeper.alerting.source import MemorySource

    step = _duration(group.get("interval", "1m"), f"{where}.interval")
    if step <= 0:
        raise RuleTestError(f"{where}.interval: expected a duration above 0")
    series = []
    for k, item in enumerate(group.get("input_series") or []):
        sw = f"{where}.input_series[{k}]"
        if not isinstance(item, Mapping) or "series" not in item or "values" not in item:
            raise RuleTestError(f"{sw}: expected series and values")
        try:
            name, labels = parse_series(str(item["series"]))
            values = expand_values(str(item["values"]))
        except RuleTestError as exc:
            raise RuleTestError(f"{sw}.{exc}") from None
        ts = [i * step for i, v in enumerate(values) if v is not None]
        vs = [v for v in values if v is not None]
        series.append((name, labels, np.asarray(ts, dtype=np.float64), np.asarray(vs, dtype=np.float64)))
    return MemorySource(series)


def _known(source: Any) -> set[str]:
    from watchkeeper.monitor.catalogue import SIGNAL_NAMES

    return set(source.names()) | set(SIGNAL_NAMES)


def _annotations(rule: Any, st: Any) -> dict[str, str]:
    from watchkeeper.alerting import template

    value = st.last_value if st.last_value is not None else math.nan
    return {k: template.render(v, st.labels, value) for k, v in rule.annotations.items()}


def _expected(items: Any, rule: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(items, list):
        raise RuleTestError(f"{where}.exp_alerts: expected a list")
    out = []
    for k, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise RuleTestError(f"{where}.exp_alerts[{k}]: expected exp_labels and exp_annotations")
        labels = {str(a): str(b) for a, b in (item.get("exp_labels") or {}).items()}
        labels.setdefault("alertname", rule.name)
        labels.setdefault("severity", rule.severity)
        annotations = item.get("exp_annotations")
        out.append(
            {
                "labels": labels,
                "annotations": None
                if annotations is None
                else {str(a): str(b) for a, b in annotations.items()},
            }
        )
    return out


def _same(expected: list[dict[str, Any]], got: list[dict[str, Any]]) -> bool:
    if len(expected) != len(got):
        return False
    remaining = list(got)
    for e in expected:
        for g in remaining:
            if g["labels"] == e["labels"] and (
                e["annotations"] is None or g["annotations"] == e["annotations"]
            ):
                remaining.remove(g)
                break
        else:
            return False
    return True


def _duration(value: Any, where: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise RuleTestError(f"{where}: {exc}") from None


def _fmt_time(t: float) -> str:
    if t % 3600 == 0 and t:
        return f"{int(t // 3600)}h"
    if t % 60 == 0 and t:
        return f"{int(t // 60)}m"
    return f"{t:g}s"
