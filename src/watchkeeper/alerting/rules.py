"""Alert rule files: YAML in, checked ``AlertRule`` objects, routes and notifier configs out.

A file is either a bare list of rules (the short form) or a mapping::

    notifiers:                     # destinations, by name (see watchkeeper.alerting.notifiers)
      - {name: ml-slack, type: slack, url_env: SLACK_WEBHOOK_URL}
    route:                         # Alertmanager's routing tree, reduced to what a team of ML engineers uses
      notifiers: [ml-slack]
      group_by: [alertname, model]
      group_wait: 0s
      group_interval: 5m
      repeat_interval: 4h
      routes:
        - {match: {severity: critical}, notifiers: [pager], continue: false}
    rules:
      - name: HighP99Latency
        expr: latency_p99_ms{model="fraud-clf"} > 500
        for: 5m
        keep_firing_for: 2m
        severity: warning
        labels: {team: fraud}
        annotations: {summary: "p99 {{ $value }} ms on {{ $labels.model }}"}

A file is taken whole or not at all, as Prometheus does: every problem in it is reported with its line and
column (of the YAML file, also inside an ``expr``), and a refused file leaves the rules loaded before it in
force. A rule naming a signal that no monitor produces and that the store has never seen is refused, since
it would never fire (a typo such as ``latency_p99_msec``); ``absent()`` rules are exempt from that check,
their whole point being a signal that is not there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from watchkeeper.alerting import template
from watchkeeper.alerting.expr import Expr, ExprError, parse
from watchkeeper.alerting.model import Matcher
from watchkeeper.alerting.parse import parse_duration as _parse_duration_literal

RULE_KEYS = frozenset(
    {
        "name",
        "alert",
        "expr",
        "for",
        "keep_firing_for",
        "severity",
        "labels",
        "annotations",
        "project",
        "lookback",
    }
)
ROUTE_KEYS = frozenset(
    {"notifiers", "match", "match_re", "group_by", "group_wait", "group_interval", "repeat_interval"}
    | {"routes", "continue", "send_resolved"}
)
SEVERITIES = ("info", "warning", "critical")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_:.\-]*$")
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_duration(value: Any) -> float:
    """``90s``, ``5m``, ``1h30m``, ``7d`` (the expressions' duration literals) or a number of seconds:
    seconds as a float, else ValueError."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 30s, 5m or 1h, got {value!r}")
    if isinstance(value, int | float):
        if not value >= 0:
            raise ValueError(f"expected a duration of 0 or more, got {value!r}")
        return float(value)
    try:
        return _parse_duration_literal(str(value).strip())
    except ExprError:
        raise ValueError(f"expected a duration such as 30s, 5m or 1h30m, got {value!r}") from None


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """One problem in a rules file, where it is (1-based line and column) and what is wrong."""

    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


class RuleFileError(ValueError):
    """A rules file was refused; ``problems`` lists every problem found, each with its line and column."""

    def __init__(self, source: str, problems: list[RuleProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  {source}:{p.line}:{p.column}: {p.message}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s), the file was not loaded\n{lines}")


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One rule: while ``expr`` returns samples, an alert per sample's label set is pending, then firing
    once it has held for ``for_seconds``; it keeps firing ``keep_firing_for`` seconds after the condition
    stops holding. ``project`` scopes the rule (None: every project the expression reads)."""

    name: str
    expr: Expr
    for_seconds: float = 0.0
    keep_firing_for: float = 0.0
    severity: str = "warning"
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    project: str | None = None
    lookback: float = 300.0
    line: int = 0

    def spec(self) -> dict[str, Any]:
        """The rule as stored beside its states (``alert_rules.spec``) and shown by the API."""
        return {
            "expr": self.expr.text,
            "for": self.for_seconds,
            "keep_firing_for": self.keep_firing_for,
            "severity": self.severity,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "lookback": self.lookback,
        }


@dataclass(frozen=True, slots=True)
class Route:
    """A node of the routing tree. An alert goes to the first child route that matches it (to the next ones
    too when that child has ``continue``), else to this node's notifiers. ``group_by`` of ``("...",)``
    groups by every label, i.e. not at all."""

    notifiers: tuple[str, ...] = ()
    match: tuple[Matcher, ...] = ()
    group_by: tuple[str, ...] = ("alertname",)
    group_wait: float = 0.0
    group_interval: float = 300.0
    repeat_interval: float = 4 * 3600.0
    send_resolved: bool = True
    continue_: bool = False
    routes: tuple[Route, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.match)

    def routes_for(self, labels: Mapping[str, str], path: str = "0") -> list[tuple[str, Route]]:
        """The routes (with a stable path id such as ``0.1``) an alert with ``labels`` is delivered by."""
        out: list[tuple[str, Route]] = []
        for i, child in enumerate(self.routes):
            if child.matches(labels):
                out.extend(child.routes_for(labels, f"{path}.{i}"))
                if not child.continue_:
                    break
        return out or [(path, self)]

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        if self.group_by == ("...",):
            return dict(labels)
        return {k: labels[k] for k in self.group_by if k in labels}


@dataclass(frozen=True, slots=True)
class RuleSet:
    """What one rules file holds."""

    source: str
    rules: tuple[AlertRule, ...] = ()
    route: Route = Route()
    notifiers: tuple[Mapping[str, Any], ...] = ()


def load_rules(
    path: str | Path | None = None,
    *,
    text: str | None = None,
    known_signals: Iterable[str] | None = None,
    check_notifiers: bool = True,
) -> RuleSet:
    """Read and check a rules file (or ``text``). ``known_signals``: the signal names that exist or that
    a monitor produces; rules reading any other name are refused (None skips that check)."""
    if (path is None) == (text is None):
        raise TypeError("give a path or text, not both")
    source = str(path) if path is not None else "<rules>"
    if text is None:
        text = Path(path).read_text(encoding="utf-8")  # type: ignore[arg-type]
    return _Checker(
        source, text, None if known_signals is None else set(known_signals), check_notifiers
    ).run()


class _Checker:
    def __init__(self, source: str, text: str, known: set[str] | None, check_notifiers: bool) -> None:
        self.source = source
        self.text = text
        self.lines = text.splitlines()
        self.known = known
        self.check_notifiers = check_notifiers
        self.problems: list[RuleProblem] = []

    def problem(
        self, node: yaml.Node | None, message: str, line: int | None = None, col: int | None = None
    ) -> None:
        if line is None:
            line = node.start_mark.line + 1 if node is not None else 1
            col = node.start_mark.column + 1 if node is not None else 1
        self.problems.append(RuleProblem(line, col or 1, message))

    def run(self) -> RuleSet:
        try:
            root = yaml.compose(self.text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            raise RuleFileError(
                self.source, [RuleProblem(line, col, f"not valid YAML: {exc.problem}")]
            ) from exc
        rules_node: yaml.Node | None
        route, notifiers = Route(), ()
        if root is None:
            rules_node = None
        elif isinstance(root, yaml.SequenceNode):
            rules_node = root
        elif isinstance(root, yaml.MappingNode):
            top = self.mapping(root, "the file", {"rules", "route", "notifiers"})
            rules_node = top.get("rules")
            notifiers = self.notifiers(top.get("notifiers"))
            names = {n.get("name") for n in notifiers}
            route = (
                self.route(top.get("route"), "route", names, root)
                if "route" in top
                else Route(notifiers=tuple(sorted(n for n in names if isinstance(n, str))))
            )
        else:
            self.problem(root, "expected a list of rules, or a mapping with rules, route and notifiers")
            rules_node = None
        rules = self.rules(rules_node)
        if self.problems:
            raise RuleFileError(self.source, sorted(self.problems, key=lambda p: (p.line, p.column)))
        return RuleSet(self.source, tuple(rules), route, tuple(notifiers))

    # -- YAML helpers ----------------------------------------------------------------------------------

    def mapping(self, node: yaml.Node, what: str, allowed: frozenset[str] | set[str]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what}: expected a mapping, got {_kind(node)}")
            return {}
        out: dict[str, yaml.Node] = {}
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            if key not in allowed:
                self.problem(k, f"{what}: unknown key {key!r}, expected one of {', '.join(sorted(allowed))}")
            elif key in out:
                self.problem(k, f"{what}: {key!r} given twice")
            else:
                out[key] = v
        return out

    def scalar(self, node: yaml.Node, what: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, f"{what}: expected a single value, got {_kind(node)}")
            return None
        return yaml.safe_load(yaml.serialize(node)) if node.tag != "tag:yaml.org,2002:str" else node.value

    def string(self, node: yaml.Node, what: str, pattern: re.Pattern[str] | None = None) -> str | None:
        value = self.scalar(node, what)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(node, f"{what}: expected a non-empty string, got {value!r}")
            return None
        if pattern is not None and not pattern.match(value):
            self.problem(node, f"{what}: {value!r} is not a valid name (letters, digits and _ expected)")
            return None
        return value

    def duration(self, node: yaml.Node | None, what: str, default: float) -> float:
        if node is None:
            return default
        try:
            return parse_duration(self.scalar(node, what))
        except ValueError as exc:
            self.problem(node, f"{what}: {exc}")
            return default

    def string_map(self, node: yaml.Node | None, what: str) -> dict[str, str]:
        if node is None:
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what}: expected a mapping of names to strings, got {_kind(node)}")
            return {}
        out = {}
        for k, v in node.value:
            key = self.string(k, what, _LABEL)
            value = self.scalar(v, f"{what}.{key}")
            if key is None:
                continue
            if isinstance(value, bool) or value is None or isinstance(value, list | dict):
                self.problem(v, f"{what}.{key}: expected a string, got {value!r}")
                continue
            out[key] = str(value)
        return out

    # -- sections --------------------------------------------------------------------------------------

    def notifiers(self, node: yaml.Node | None) -> tuple[dict[str, Any], ...]:
        if node is None:
            return ()
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"notifiers: expected a list, got {_kind(node)}")
            return ()
        out = []
        seen: set[str] = set()
        for i, item in enumerate(node.value):
            where = f"notifiers[{i}]"
            if not isinstance(item, yaml.MappingNode):
                self.problem(item, f"{where}: expected a mapping with name and type, got {_kind(item)}")
                continue
            spec = yaml.safe_load(yaml.serialize(item))
            name = spec.get("name")
            if not isinstance(name, str) or not name:
                self.problem(item, f"{where}.name: expected a non-empty string, got {name!r}")
                continue
            if name in seen:
                self.problem(item, f"{where}.name: {name!r} is used by an earlier notifier")
                continue
            seen.add(name)
            if self.check_notifiers:
                from watchkeeper.alerting.notifiers import build_notifier

                try:
                    build_notifier(spec, where=where)
                except (ValueError, TypeError, KeyError) as exc:
                    self.problem(item, str(exc))
                    continue
            out.append(spec)
        return tuple(out)

    def route(self, node: yaml.Node, where: str, names: set[Any], parent: yaml.Node) -> Route:
        m = self.mapping(node, where, ROUTE_KEYS)
        notifiers: list[str] = []
        if "notifiers" in m:
            n = m["notifiers"]
            items = n.value if isinstance(n, yaml.SequenceNode) else [n]
            for item in items:
                name = self.string(item, f"{where}.notifiers")
                if name is None:
                    continue
                if name not in names:
                    known = ", ".join(sorted(x for x in names if isinstance(x, str))) or "none defined"
                    self.problem(item, f"{where}.notifiers: no notifier named {name!r} (known: {known})")
                notifiers.append(name)
        matchers = [Matcher(k, "=", v) for k, v in self.string_map(m.get("match"), f"{where}.match").items()]
        for k, v in self.string_map(m.get("match_re"), f"{where}.match_re").items():
            try:
                re.compile(v)
            except re.error as exc:
                self.problem(m["match_re"], f"{where}.match_re.{k}: not a regular expression: {exc}")
                continue
            matchers.append(Matcher(k, "=~", v))
        group_by: tuple[str, ...] = ("alertname",)
        if "group_by" in m:
            g = m["group_by"]
            if not isinstance(g, yaml.SequenceNode):
                self.problem(g, f"{where}.group_by: expected a list of label names, got {_kind(g)}")
            else:
                group_by = tuple(
                    x for x in (self.string(i, f"{where}.group_by") for i in g.value) if x is not None
                )
        cont, send_resolved = False, True
        for key in ("continue", "send_resolved"):
            if key in m:
                v = self.scalar(m[key], f"{where}.{key}")
                if not isinstance(v, bool):
                    self.problem(m[key], f"{where}.{key}: expected true or false, got {v!r}")
                elif key == "continue":
                    cont = v
                else:
                    send_resolved = v
        children = []
        if "routes" in m:
            r = m["routes"]
            if not isinstance(r, yaml.SequenceNode):
                self.problem(r, f"{where}.routes: expected a list, got {_kind(r)}")
            else:
                children = [self.route(c, f"{where}.routes[{i}]", names, r) for i, c in enumerate(r.value)]
        return Route(
            notifiers=tuple(notifiers),
            match=tuple(matchers),
            group_by=group_by,
            group_wait=self.duration(m.get("group_wait"), f"{where}.group_wait", 0.0),
            group_interval=self.duration(m.get("group_interval"), f"{where}.group_interval", 300.0),
            repeat_interval=self.duration(m.get("repeat_interval"), f"{where}.repeat_interval", 4 * 3600.0),
            send_resolved=send_resolved,
            continue_=cont,
            routes=tuple(children),
        )

    def rules(self, node: yaml.Node | None) -> list[AlertRule]:
        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, f"rules: expected a list of rules, got {_kind(node)}")
            return []
        out: list[AlertRule] = []
        seen: dict[tuple[str | None, str], int] = {}
        for i, item in enumerate(node.value):
            rule = self.rule(item, f"rules[{i}]")
            if rule is None:
                continue
            key = (rule.project, rule.name)
            if key in seen:
                self.problem(
                    item, f"rules[{i}]: a rule named {rule.name!r} is already defined on line {seen[key]}"
                )
                continue
            seen[key] = rule.line
            out.append(rule)
        return out

    def rule(self, node: yaml.Node, where: str) -> AlertRule | None:
        m = self.mapping(node, where, RULE_KEYS)
        if not m:
            return None
        before = len(self.problems)
        name_node = m.get("name", m.get("alert"))
        if "name" in m and "alert" in m:
            self.problem(m["alert"], f"{where}: give name or alert, not both")
        name = self.string(name_node, f"{where}.name", _NAME) if name_node is not None else None
        if name_node is None:
            self.problem(node, f"{where}: a rule needs a name")
        expr = self.expression(m.get("expr"), f"{where}.expr", node)
        severity = "warning"
        if "severity" in m:
            s = self.string(m["severity"], f"{where}.severity")
            if s is not None and s not in SEVERITIES:
                self.problem(
                    m["severity"], f"{where}.severity: expected one of {', '.join(SEVERITIES)}, got {s!r}"
                )
            elif s is not None:
                severity = s
        project = self.string(m["project"], f"{where}.project") if "project" in m else None
        labels = self.string_map(m.get("labels"), f"{where}.labels")
        for reserved in ("alertname", "severity"):
            if reserved in labels:
                self.problem(m["labels"], f"{where}.labels: {reserved!r} is set by the rule itself")
        annotations = self.string_map(m.get("annotations"), f"{where}.annotations")
        for key, value in annotations.items():
            problem = template.check(value)
            if problem:
                self.problem(m["annotations"], f"{where}.annotations.{key}: {problem}")
        rule = AlertRule(
            name=name or "",
            expr=expr,  # type: ignore[arg-type]
            for_seconds=self.duration(m.get("for"), f"{where}.for", 0.0),
            keep_firing_for=self.duration(m.get("keep_firing_for"), f"{where}.keep_firing_for", 0.0),
            severity=severity,
            labels=labels,
            annotations=annotations,
            project=project,
            lookback=self.duration(m.get("lookback"), f"{where}.lookback", 300.0),
            line=node.start_mark.line + 1,
        )
        return rule if len(self.problems) == before and expr is not None and name else None

    def expression(self, node: yaml.Node | None, where: str, rule_node: yaml.Node) -> Expr | None:
        if node is None:
            self.problem(rule_node, f"{where}: a rule needs an expr")
            return None
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            self.problem(node, f"{where}: expected an expression, got {_kind(node)}")
            return None
        text = str(node.value)
        try:
            expr = parse(text)
        except ExprError as exc:
            line, col = self.position(node, exc.line, exc.column)
            self.problem(node, f"{where}: {exc.message}", line, col)
            return None
        if self.known is not None:
            for name in sorted(expr.metric_names() - self.known - expr.absent_names()):
                line, col = self.position(node, *_line_col(text, _find_name(text, name)))
                self.problem(
                    node,
                    f"{where}: no signal named {name!r} exists or is produced by a monitor "
                    "(see `watchkeeper signals` for the names)",
                    line,
                    col,
                )
        return expr

    def position(self, node: yaml.ScalarNode, line: int, col: int) -> tuple[int, int]:
        """Where (line, column of the expression) is in the file, for plain, quoted and block scalars."""
        start = node.start_mark
        if node.style in ("|", ">"):
            # the content starts on the line after the indicator, at the block's indentation
            first = start.line + 1
            row = first + (line - 1)
            raw = self.lines[row] if row < len(self.lines) else ""
            indent = len(raw) - len(raw.lstrip(" "))
            return row + 1, indent + col
        quote = 1 if node.style in ("'", '"') else 0
        if line == 1:
            return start.line + 1, start.column + 1 + quote + col - 1
        # a folded multi-line plain/quoted scalar: best effort, the expression's own line on its own column
        return start.line + line, col


def _kind(node: yaml.Node | None) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node is None:
        return "nothing"
    return repr(node.value)


def _find_name(text: str, name: str) -> int:
    m = re.search(rf"(?<![A-Za-z0-9_:/]){re.escape(name)}(?![A-Za-z0-9_:/])", text)
    return m.start() if m else 0


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, col
