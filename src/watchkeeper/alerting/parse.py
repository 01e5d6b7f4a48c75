"""The lexer, parser and syntax tree of alert-rule expressions (a PromQL subset); evaluation is in ``expr``.

The grammar, loosest binding first (as PromQL's, so an expression copied from Prometheus means the same)::

    expr     := or
    or       := and ("or" and)*
    and      := cmp (("and" | "unless") cmp)*
    cmp      := add (("==" | "!=" | ">" | "<" | ">=" | "<=") ["bool"] [matching] add)*
    add      := mul (("+" | "-") [matching] mul)*
    mul      := unary (("*" | "/" | "%") [matching] unary)*
    unary    := ("-" | "+") unary | power
    power    := postfix ["^" [matching] unary]                       right-associative
    postfix  := primary ["[" DURATION "]"]                            a range only after a selector
    primary  := NUMBER | "(" expr ")" | selector | call | aggregation
    selector := NAME ["{" matchers "}"] | "{" matchers "}"
    matcher  := label ("=" | "!=" | "=~" | "!~") STRING
    call     := NAME "(" [arg ("," arg)*] ")"                         arg: expr | DURATION | NAME "=" value
    aggregation := ("sum"|"avg"|"min"|"max"|"count") [grouping] "(" expr ")" [grouping]
    grouping := ("by" | "without") "(" [label ("," label)*] ")"
    matching := ("on" | "ignoring") "(" [label ("," label)*] ")"

Lexical rules: durations are integers with units ``ms s m h d w``, combined largest first (``1h30m``); numbers
are decimal with an optional exponent, or ``Inf``/``NaN``; strings use ``"``, ``'`` (with ``\\`` escapes) or
backticks (raw, handy for regular expressions); ``#`` starts a comment to the end of the line. A metric name
is ``[a-zA-Z_:][a-zA-Z0-9_:.]*`` and may continue after a ``/`` that is directly followed by a name
character, so ``system/cpu_percent`` is one name: write division with a space (``a / b``) when both sides are
names. A name this cannot spell is selected with ``{__name__="..."}`` or PromQL 3's ``{"name"}``.

Every node knows its static type ("scalar", "vector" for an instant vector, "matrix" for a range vector), so
type errors (``rate(x)``, ``x[5m] > 1``, ``1 > 2`` without ``bool``) are syntax errors with a position, not
surprises at evaluation time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from watchkeeper.alerting.model import Matcher


class ExprError(ValueError):
    """An expression that cannot be parsed or evaluated. ``position`` is the 0-based offset in ``text``;
    ``line`` and ``column`` are 1-based (column counted in characters within the line).

    >>> err = ExprError("expected ')', got 'xyz'", 13, "sum(rate(a[5m] xyz")
    >>> str(err)
    "line 1, column 14: expected ')', got 'xyz'"
    """

    def __init__(self, message: str, position: int, text: str = "") -> None:
        self.message = message
        self.position = max(0, min(position, len(text))) if text else max(0, position)
        self.text = text
        self.line = text.count("\n", 0, self.position) + 1
        self.column = self.position - (text.rfind("\n", 0, self.position) + 1) + 1
        super().__init__(f"line {self.line}, column {self.column}: {message}")

    def caret(self) -> str:
        """The offending line with a ``^`` under the error, for showing to a person."""
        lines = self.text.split("\n")
        src = lines[self.line - 1] if self.line <= len(lines) else ""
        return f"{src}\n{' ' * (self.column - 1)}^"


# --------------------------------------------------------------------------------------------- functions


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a function. ``kind``: "scalar", "vector", "matrix" (a range selector ``x[5m]``),
    "selector" (a plain instant selector), "duration" (``5m`` or seconds) or "number" (a literal)."""

    name: str
    kind: str
    default: float | None = None  # for optional parameters
    optional: bool = False


@dataclass(frozen=True, slots=True)
class Signature:
    params: tuple[Param, ...]
    doc: str
    keywords: bool = False  # whether parameters may be passed as name=value

    @property
    def required(self) -> int:
        return sum(not p.optional for p in self.params)


_RANGE = (Param("v", "matrix"),)

SIGNATURES: dict[str, Signature] = {
    "abs": Signature((Param("v", "vector"),), "abs(v): the absolute value of each sample"),
    "absent": Signature(
        (Param("v", "vector"), Param("d", "duration", optional=True)),
        "absent(selector[, d]): 1 with the selector's equality labels when no matching series has a point in "
        "[t-d, t] (d defaults to the lookback), else nothing",
    ),
    "absent_over_time": Signature(_RANGE, "absent_over_time(x[d]): the same as absent(x, d)"),
    "avg_over_time": Signature(_RANGE, "avg_over_time(x[d]): the mean of each series' points in [t-d, t]"),
    "baseline_deviation": Signature(
        (
            Param("v", "selector"),
            Param("window", "duration", default=7 * 86400.0, optional=True),
            Param("min_points", "number", default=10.0, optional=True),
        ),
        "baseline_deviation(x, window=7d, min_points=10): the robust z-score "
        "(latest - median) / (1.4826 MAD) of each series' latest value against its own points in "
        "[t-window, t)",
        keywords=True,
    ),
    "count_over_time": Signature(_RANGE, "count_over_time(x[d]): the number of points in [t-d, t]"),
    "delta": Signature(_RANGE, "delta(x[d]): last - first point in [t-d, t] (gauges); needs 2 points"),
    "increase": Signature(
        _RANGE, "increase(x[d]): last - first point in [t-d, t] with counter resets added; needs 2 points"
    ),
    "last_over_time": Signature(_RANGE, "last_over_time(x[d]): the latest point in [t-d, t]"),
    "max_over_time": Signature(_RANGE, "max_over_time(x[d]): the largest point in [t-d, t]"),
    "min_over_time": Signature(_RANGE, "min_over_time(x[d]): the smallest point in [t-d, t]"),
    "quantile_over_time": Signature(
        (Param("q", "scalar"), Param("v", "matrix")),
        "quantile_over_time(q, x[d]): the q-quantile (linear interpolation) of the points in [t-d, t]",
    ),
    "rate": Signature(_RANGE, "rate(x[d]): increase(x[d]) / (t_last - t_first), per second; needs 2 points"),
    "stddev_over_time": Signature(_RANGE, "stddev_over_time(x[d]): population standard deviation"),
    "sum_over_time": Signature(_RANGE, "sum_over_time(x[d]): the sum of the points in [t-d, t]"),
}

FUNCTIONS: Mapping[str, str] = {name: sig.doc for name, sig in SIGNATURES.items()}
"""The known functions, name → one-line description (for docs and error messages)."""

AGGREGATIONS: frozenset[str] = frozenset({"sum", "avg", "min", "max", "count"})

COMPARISONS = frozenset({"==", "!=", ">", "<", ">=", "<="})
ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "^"})
SET_OPS = frozenset({"and", "or", "unless"})

# ------------------------------------------------------------------------------------------------- lexer

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_UNIT_ORDER = ["w", "d", "h", "m", "s", "ms"]
_NUMBER_RE = re.compile(r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DURATION_RE = re.compile(r"(?:\d+(?:ms|s|m|h|d|w))+")
_DURATION_PART_RE = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:"
_NAME_CHARS = _NAME_START + "0123456789."
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPERATORS = ["==", "!=", "=~", "!~", ">=", "<=", "(", ")", "{", "}", "[", "]", ",", "=", ">", "<"]
_OPERATORS += ["+", "-", "*", "/", "%", "^"]
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b"}
_ESCAPES |= {"f": "\f", "v": "\v"}


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # NUMBER DURATION STRING NAME OP EOF
    text: str
    pos: int
    value: float | str | None = None

    def describe(self) -> str:
        return "end of expression" if self.kind == "EOF" else f"'{self.text}'"


def parse_duration(text: str, pos: int = 0, source: str = "") -> float:
    """Seconds in a duration literal such as ``1h30m``; units must go from largest to smallest.

    >>> parse_duration("1h30m"), parse_duration("500ms"), parse_duration("7d")
    (5400.0, 0.5, 604800.0)
    """
    if not _DURATION_RE.fullmatch(text):
        raise ExprError(f"expected a duration like 5m or 1h30m, got '{text}'", pos, source or text)
    seconds, last = 0.0, -1
    for m in _DURATION_PART_RE.finditer(text):
        rank = _UNIT_ORDER.index(m.group(2))
        if rank <= last:
            raise ExprError(
                f"duration units must go from largest to smallest, each once, got '{text}'",
                pos,
                source or text,
            )
        last = rank
        seconds += int(m.group(1)) * _UNITS[m.group(2)]
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest duration literal for ``seconds``: ``format_duration(5400) == '1h30m'``."""
    if seconds == 0:
        return "0s"
    ms = round(seconds * 1000)
    out = []
    for unit in _UNIT_ORDER:
        size = round(_UNITS[unit] * 1000)
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an EOF token; raises ``ExprError`` at the first bad character."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            i = _lex_number(text, i, tokens)
        elif c in _NAME_START:
            j = i + 1
            while j < n and (
                text[j] in _NAME_CHARS or (text[j] == "/" and j + 1 < n and text[j + 1] in _NAME_START)
            ):
                j += 1
            word = text[i:j]
            if word.lower() in ("inf", "nan"):
                tokens.append(Token("NUMBER", word, i, float(word.lower())))
            else:
                tokens.append(Token("NAME", word, i, word))
            i = j
        elif c in "\"'`":
            i = _lex_string(text, i, tokens)
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                raise ExprError(f"unexpected character '{c}'", i, text)
            tokens.append(Token("OP", op, i))
            i += len(op)
    tokens.append(Token("EOF", "", n))
    return tokens


def _lex_number(text: str, i: int, tokens: list[Token]) -> int:
    d = _DURATION_RE.match(text, i)
    m = _NUMBER_RE.match(text, i)
    assert m is not None  # the caller saw a digit
    if d and d.end() > m.end():
        end, kind = d.end(), "DURATION"
    else:
        end, kind = m.end(), "NUMBER"
    # ':' may follow (a subquery's "5m:1m" gets its own message from the parser)
    if end < len(text) and text[end] in _NAME_CHARS and text[end] != ":":
        j = end
        while j < len(text) and text[j] in _NAME_CHARS:
            j += 1
        raise ExprError(f"expected a number or a duration like 5m, got '{text[i:j]}'", i, text)
    word = text[i:end]
    value = parse_duration(word, i, text) if kind == "DURATION" else float(word)
    tokens.append(Token(kind, word, i, value))
    return end


def _lex_string(text: str, i: int, tokens: list[Token]) -> int:
    quote, j, out = text[i], i + 1, []
    while j < len(text):
        c = text[j]
        if c == quote:
            tokens.append(Token("STRING", text[i : j + 1], i, "".join(out)))
            return j + 1
        if c == "\\" and quote != "`":
            esc = text[j + 1 : j + 2]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                j += 2
                continue
            if esc == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[j + 2 : j + 6]):
                out.append(chr(int(text[j + 2 : j + 6], 16)))
                j += 6
                continue
            raise ExprError(
                f"unknown escape '\\{esc}' in a string: write '\\\\{esc}' or use a `raw string`", j, text
            )
        if c == "\n" and quote != "`":
            break
        out.append(c)
        j += 1
    raise ExprError(f"unterminated string: expected a closing {quote}", i, text)


# ------------------------------------------------------------------------------------------------- nodes


@dataclass(frozen=True, slots=True)
class Node:
    pos: int

    @property
    def type(self) -> str:
        return "vector"

    def children(self) -> tuple[Node, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class NumberLiteral(Node):
    value: float

    @property
    def type(self) -> str:
        return "scalar"


@dataclass(frozen=True, slots=True)
class DurationLiteral(Node):
    seconds: float

    @property
    def type(self) -> str:
        return "duration"


@dataclass(frozen=True, slots=True)
class VectorSelector(Node):
    """``name{label matchers}``. ``name`` is None when the name is chosen by ``__name__`` regex matchers
    (``name_matchers``); ``matchers`` never include ``__name__``."""

    name: str | None
    matchers: tuple[Matcher, ...]
    name_matchers: tuple[Matcher, ...] = ()

    def absent_labels(self) -> dict[str, str]:
        """PromQL's rule for absent(): the equality matchers' labels, except a label matched twice."""
        counts: dict[str, int] = {}
        for m in self.matchers:
            counts[m.label] = counts.get(m.label, 0) + 1
        return {m.label: m.value for m in self.matchers if m.op == "=" and counts[m.label] == 1}


@dataclass(frozen=True, slots=True)
class MatrixSelector(Node):
    selector: VectorSelector
    range: float

    @property
    def type(self) -> str:
        return "matrix"

    def children(self) -> tuple[Node, ...]:
        return (self.selector,)


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]  # in the signature's order, defaults filled in; None-free

    def children(self) -> tuple[Node, ...]:
        return self.args


@dataclass(frozen=True, slots=True)
class Aggregation(Node):
    op: str
    expr: Node
    labels: tuple[str, ...] = ()
    without: bool = False
    grouped: bool = False  # whether by/without was given (``sum by () (x)`` is the same as ``sum(x)``)

    def children(self) -> tuple[Node, ...]:
        return (self.expr,)


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str
    expr: Node

    @property
    def type(self) -> str:
        return self.expr.type

    def children(self) -> tuple[Node, ...]:
        return (self.expr,)


@dataclass(frozen=True, slots=True)
class Binary(Node):
    """``lhs op rhs``; ``pos`` is the operator's. ``on`` is None without a matching clause, True for
    ``on(labels)``, False for ``ignoring(labels)``."""

    op: str
    lhs: Node
    rhs: Node
    bool_: bool = False
    on: bool | None = None
    labels: tuple[str, ...] = field(default=())

    @property
    def type(self) -> str:
        return "scalar" if self.lhs.type == "scalar" and self.rhs.type == "scalar" else "vector"

    def children(self) -> tuple[Node, ...]:
        return (self.lhs, self.rhs)


_TYPE_NAMES = {
    "scalar": "scalar",
    "vector": "instant vector",
    "matrix": "range vector",
    "duration": "duration",
}

# ------------------------------------------------------------------------------------------------ parser

_LEVELS: list[frozenset[str]] = [
    frozenset({"or"}),
    frozenset({"and", "unless"}),
    COMPARISONS,
    frozenset({"+", "-"}),
    frozenset({"*", "/", "%"}),
]


class Parser:
    """A recursive-descent parser over ``tokenize(text)``; ``parse_root`` returns the checked tree."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    # -- helpers

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.tokens[min(self.i + k, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def error(self, message: str, pos: int | None = None) -> ExprError:
        return ExprError(message, self.tok.pos if pos is None else pos, self.text)

    def is_op(self, text: str, k: int = 0) -> bool:
        tok = self.peek(k) if k else self.tok
        return tok.kind == "OP" and tok.text == text

    def is_word(self, *words: str) -> bool:
        return self.tok.kind == "NAME" and self.tok.text in words

    def expect(self, text: str) -> Token:
        if not self.is_op(text):
            raise self.error(f"expected '{text}', got {self.tok.describe()}")
        return self.advance()

    def label_name(self) -> str:
        tok = self.tok
        # "inf" and "nan" lex as numbers but are valid label names
        if tok.kind not in ("NAME", "NUMBER") or not _LABEL_RE.fullmatch(tok.text):
            raise self.error(f"expected a label name ([a-zA-Z_][a-zA-Z0-9_]*), got {tok.describe()}")
        self.advance()
        return tok.text

    def label_list(self) -> tuple[str, ...]:
        self.expect("(")
        labels: list[str] = []
        while not self.is_op(")"):
            labels.append(self.label_name())
            if not self.is_op(","):
                break
            self.advance()
        self.expect(")")
        return tuple(labels)

    # -- grammar

    def parse_root(self) -> Node:
        node = self.expr()
        if self.tok.kind != "EOF":
            raise self.error(f"expected an operator or the end of the expression, got {self.tok.describe()}")
        if node.type == "matrix":
            raise ExprError(
                "the expression gives a range vector; wrap it in a function like rate() or avg_over_time()",
                node.pos,
                self.text,
            )
        return node

    def expr(self, level: int = 0) -> Node:
        if level == len(_LEVELS):
            return self.unary()
        lhs = self.expr(level + 1)
        while True:
            tok = self.tok
            op = tok.text if tok.kind in ("OP", "NAME") else None
            if op not in _LEVELS[level]:
                return lhs
            self.advance()
            bool_, on, labels = self.modifiers(op)
            rhs = self.expr(level + 1)
            lhs = self.binary(tok, lhs, rhs, bool_, on, labels)

    def modifiers(self, op: str) -> tuple[bool, bool | None, tuple[str, ...]]:
        bool_ = False
        if self.is_word("bool"):
            if op not in COMPARISONS:
                raise self.error(f"the bool modifier only applies to comparisons, not '{op}'")
            bool_ = True
            self.advance()
        on: bool | None = None
        labels: tuple[str, ...] = ()
        if self.is_word("on", "ignoring") and self.is_op("(", 1):
            on = self.advance().text == "on"
            labels = self.label_list()
            if self.is_word("group_left", "group_right"):
                raise self.error(
                    f"{self.tok.text} (many-to-one matching) is not supported: aggregate one side first so "
                    "each side has one series per match group"
                )
        return bool_, on, labels

    def binary(
        self, tok: Token, lhs: Node, rhs: Node, bool_: bool, on: bool | None, labels: tuple[str, ...]
    ) -> Binary:
        op = tok.text
        for side, node in (("left", lhs), ("right", rhs)):
            if node.type == "matrix":
                raise ExprError(
                    f"operator '{op}' expects an instant vector or a scalar on its {side}, got a range "
                    "vector; wrap it in a function such as rate() or avg_over_time()",
                    node.pos,
                    self.text,
                )
        scalar_side = lhs.type == "scalar" or rhs.type == "scalar"
        if op in SET_OPS and scalar_side:
            raise ExprError(f"set operator '{op}' needs instant vectors on both sides", tok.pos, self.text)
        if on is not None and scalar_side:
            raise ExprError("on()/ignoring() only apply between two instant vectors", tok.pos, self.text)
        if op in COMPARISONS and lhs.type == "scalar" and rhs.type == "scalar" and not bool_:
            raise ExprError(
                f"comparison '{op}' between two scalars needs the bool modifier ('{op} bool')",
                tok.pos,
                self.text,
            )
        return Binary(tok.pos, op, lhs, rhs, bool_, on, labels)

    def unary(self) -> Node:
        if self.is_op("-") or self.is_op("+"):
            tok = self.advance()
            operand = self.unary()
            if operand.type == "matrix":
                raise ExprError(
                    f"unary '{tok.text}' expects an instant vector or a scalar, got a range vector",
                    operand.pos,
                    self.text,
                )
            if tok.text == "+":
                return operand
            if isinstance(operand, NumberLiteral):
                return NumberLiteral(tok.pos, -operand.value)
            return Unary(tok.pos, "-", operand)
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        if not self.is_op("^"):
            return base
        tok = self.advance()
        _, on, labels = self.modifiers("^")
        return self.binary(tok, base, self.unary(), False, on, labels)

    def postfix(self) -> Node:
        node = self.primary()
        if self.is_op("["):
            bracket = self.advance()
            if not isinstance(node, VectorSelector):
                raise ExprError(
                    "a range [d] can only follow a metric selector, as in x[5m]", bracket.pos, self.text
                )
            seconds = self.duration("a range")
            if self.tok.kind == "NAME" and self.tok.text.startswith(":"):
                raise self.error("subqueries (x[5m:1m]) are not supported")
            self.expect("]")
            if seconds <= 0:
                raise ExprError("a range must be longer than 0s", bracket.pos + 1, self.text)
            node = MatrixSelector(node.pos, node, seconds)
        if self.is_word("offset") or self.is_op("@"):
            raise self.error(f"the {self.tok.text} modifier is not supported")
        return node

    def duration(self, what: str) -> float:
        tok = self.tok
        if tok.kind == "DURATION" or (tok.kind == "NUMBER" and tok.value is not None):
            self.advance()
            assert isinstance(tok.value, float)
            if not math.isfinite(tok.value) or tok.value < 0:
                raise ExprError(f"{what} must be a finite, non-negative duration", tok.pos, self.text)
            return tok.value
        raise self.error(f"expected {what} like 5m or 1h30m, got {tok.describe()}")

    def primary(self) -> Node:
        tok = self.tok
        if tok.kind == "NUMBER":
            self.advance()
            assert isinstance(tok.value, float)
            return NumberLiteral(tok.pos, tok.value)
        if tok.kind == "DURATION":
            raise self.error(
                f"a duration like '{tok.text}' is only allowed in a range [{tok.text}] or as a function's "
                "duration argument"
            )
        if tok.kind == "STRING":
            raise self.error('a string is only allowed as a label matcher\'s value, as in x{model="a"}')
        if self.is_op("("):
            self.advance()
            node = self.expr()
            self.expect(")")
            return node
        if self.is_op("{"):
            return self.selector(None, tok.pos)
        if tok.kind == "NAME":
            if tok.text in AGGREGATIONS and (self.is_op("(", 1) or self.peek().text in ("by", "without")):
                return self.aggregation()
            if self.is_op("(", 1):
                return self.call()
            self.advance()
            return self.selector(tok.text, tok.pos)
        raise self.error(f"expected an expression, got {tok.describe()}")

    def selector(self, name: str | None, pos: int) -> VectorSelector:
        matchers: list[Matcher] = []
        if self.is_op("{"):
            self.advance()
            while not self.is_op("}"):
                if self.tok.kind == "STRING" and not (
                    self.peek().kind == "OP" and self.peek().text in ("=", "!=", "=~", "!~")
                ):
                    quoted = self.advance()
                    if name is not None:
                        raise ExprError("the metric name is given twice", quoted.pos, self.text)
                    name = str(quoted.value)
                else:
                    matchers.append(self.matcher())
                if not self.is_op(","):
                    break
                self.advance()
            self.expect("}")
        name_matchers = [m for m in matchers if m.label == "__name__"]
        matchers = [m for m in matchers if m.label != "__name__"]
        if name is not None and name_matchers:
            raise ExprError("the metric name is given twice (before '{' and as __name__)", pos, self.text)
        if name is None:
            exact = [m for m in name_matchers if m.op == "="]
            if exact:
                name = exact[0].value
                name_matchers = [m for m in name_matchers if m is not exact[0]]
        if name is None and all(m.matches({}) for m in (*name_matchers, *matchers)):
            raise ExprError(
                "a selector needs a metric name or at least one matcher that does not match the empty string",
                pos,
                self.text,
            )
        return VectorSelector(pos, name, tuple(matchers), tuple(name_matchers))

    def matcher(self) -> Matcher:
        label = self.label_name() if not self.is_word("__name__") else self.advance().text
        tok = self.tok
        if tok.kind != "OP" or tok.text not in ("=", "!=", "=~", "!~"):
            raise self.error(
                f"expected a matcher operator (=, !=, =~, !~) after '{label}', got {tok.describe()}"
            )
        self.advance()
        value = self.tok
        if value.kind != "STRING":
            raise self.error(f"expected a quoted string after '{label}{tok.text}', got {value.describe()}")
        self.advance()
        text = str(value.value)
        if tok.text in ("=~", "!~"):
            try:
                re.compile(text)
            except re.error as exc:
                raise ExprError(
                    f"invalid regular expression {value.text}: {exc}", value.pos, self.text
                ) from exc
        return Matcher(label, tok.text, text)  # type: ignore[arg-type]

    def aggregation(self) -> Aggregation:
        op_tok = self.advance()
        labels: tuple[str, ...] = ()
        without, grouped = False, False
        if self.is_word("by", "without"):
            without, grouped = self.advance().text == "without", True
            labels = self.label_list()
        paren = self.expect("(")
        if self.is_op(")"):
            raise self.error(f"{op_tok.text}() expects an instant vector, got nothing")
        inner = self.expr()
        if self.is_op(","):
            raise self.error(
                f"{op_tok.text}() takes one argument (parameterised aggregations are not supported)"
            )
        self.expect(")")
        if self.is_word("by", "without"):
            if grouped:
                raise self.error(f"{op_tok.text} has a by/without clause already")
            without, grouped = self.advance().text == "without", True
            labels = self.label_list()
        if inner.type != "vector":
            raise ExprError(
                f"{op_tok.text}() expects an instant vector, got {_TYPE_NAMES[inner.type]}",
                paren.pos + 1,
                self.text,
            )
        return Aggregation(op_tok.pos, op_tok.text, inner, labels, without, grouped)

    def call(self) -> Call:
        name_tok = self.advance()
        name = name_tok.text
        sig = SIGNATURES.get(name)
        if sig is None:
            known = ", ".join(sorted(SIGNATURES))
            aggs = ", ".join(sorted(AGGREGATIONS))
            raise ExprError(
                f"unknown function '{name}'; known functions: {known} (aggregations: {aggs})",
                name_tok.pos,
                self.text,
            )
        self.expect("(")
        given: dict[str, Node] = {}
        positional = 0
        saw_keyword = False
        while not self.is_op(")"):
            arg_pos = self.tok.pos
            if self.tok.kind == "NAME" and self.is_op("=", 1):
                key = self.advance().text
                self.advance()
                if not sig.keywords:
                    raise ExprError(f"{name}() takes no keyword arguments", arg_pos, self.text)
                param = next((p for p in sig.params if p.name == key), None)
                if param is None or param is sig.params[0]:
                    allowed = " or ".join(p.name for p in sig.params[1:])
                    raise ExprError(
                        f"unknown keyword argument '{key}' for {name}(); expected {allowed}",
                        arg_pos,
                        self.text,
                    )
                if key in given:
                    raise ExprError(f"{name}() got '{key}' twice", arg_pos, self.text)
                saw_keyword = True
            else:
                if saw_keyword:
                    raise ExprError(
                        f"{name}(): a positional argument after a keyword one", arg_pos, self.text
                    )
                if positional >= len(sig.params):
                    raise ExprError(_arity(name, sig, positional + 1), arg_pos, self.text)
                param = sig.params[positional]
                positional += 1
                if param.name in given:
                    raise ExprError(f"{name}() got '{param.name}' twice", arg_pos, self.text)
            given[param.name] = self.argument(name, sig, param)
            if not self.is_op(","):
                break
            self.advance()
        close = self.expect(")")
        if len(given) < sig.required or any(p.name not in given for p in sig.params if not p.optional):
            raise ExprError(_arity(name, sig, len(given)), close.pos, self.text)
        args: list[Node] = []
        for p in sig.params:
            if p.name in given:
                args.append(given[p.name])
            elif p.default is not None:
                lit = DurationLiteral if p.kind == "duration" else NumberLiteral
                args.append(lit(name_tok.pos, p.default))
        node = Call(name_tok.pos, name, tuple(args))
        if name == "absent" and len(args) == 2 and not isinstance(args[0], VectorSelector):
            raise ExprError(
                "absent(x, d) needs a metric selector as x; absent(expr) takes any instant vector",
                args[0].pos,
                self.text,
            )
        return node

    def argument(self, fname: str, sig: Signature, param: Param) -> Node:
        index = sig.params.index(param) + 1
        tok = self.tok
        if param.kind == "duration":
            return DurationLiteral(tok.pos, self.duration(f"{fname}() argument {param.name}"))
        if param.kind == "number":
            if tok.kind != "NUMBER":
                raise self.error(f"{fname}() argument {param.name}: expected a number, got {tok.describe()}")
            self.advance()
            assert isinstance(tok.value, float)
            if param.name == "min_points" and (tok.value < 1 or tok.value != int(tok.value)):
                raise ExprError(
                    f"{fname}(): min_points must be an integer >= 1, got {tok.text}", tok.pos, self.text
                )
            return NumberLiteral(tok.pos, tok.value)
        node = self.expr()
        want = {"scalar": "scalar", "vector": "vector", "matrix": "matrix", "selector": "vector"}[param.kind]
        if node.type != want or (param.kind == "selector" and not isinstance(node, VectorSelector)):
            expected = {
                "scalar": "a scalar",
                "vector": "an instant vector",
                "matrix": "a range vector like x[5m]",
                "selector": 'a metric selector like x{label="value"}',
            }[param.kind]
            got = (
                _TYPE_NAMES[node.type]
                if param.kind != "selector" or node.type != "vector"
                else "an expression"
            )
            raise ExprError(
                f"{fname}() expects {expected} as argument {index} ({param.name}), got {got}",
                node.pos,
                self.text,
            )
        return node


def _arity(name: str, sig: Signature, got: int) -> str:
    lo, hi = sig.required, len(sig.params)
    want = f"{lo}" if lo == hi else f"{lo} to {hi}"
    noun = "argument" if hi == 1 else "arguments"
    return f"{name}() takes {want} {noun}, got {got}"


def parse_tree(text: str) -> Node:
    """The checked syntax tree of ``text``; raises ``ExprError`` with the position of the first problem."""
    if not isinstance(text, str):
        raise TypeError(f"expression: expected a str, got {type(text).__name__}")
    if not text.strip():
        raise ExprError("empty expression", 0, text)
    return Parser(text).parse_root()
