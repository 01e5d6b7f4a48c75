"""Tests of the alert-rule expression language: parse errors with positions, PromQL's label semantics, and
every function against a hand-computed case or numpy/scipy."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from watchkeeper.alerting.expr import FUNCTIONS, ExprError, parse, parse_duration, robust_zscore
from watchkeeper.alerting.model import Matcher
from watchkeeper.alerting.parse import Binary
from watchkeeper.alerting.source import MemorySource

T = 10_000.0  # the evaluation time of most tests


def key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def run(text: str, series: list, t: float = T, lookback: float = 300.0) -> dict:
    """Evaluate ``text`` over ``series`` and return {sorted label items: value}."""
    samples = parse(text).evaluate(MemorySource(series), t, lookback)
    out = {key(dict(s.labels)): s.value for s in samples}
    assert len(out) == len(samples), "a result must not repeat a label set"
    return out


def err(text: str) -> ExprError:
    with pytest.raises(ExprError) as info:
        parse(text)
    return info.value


class RecordingSource(MemorySource):
    """Records every select() range, to check each selector reads what it needs."""

    def __init__(self, series: list) -> None:
        super().__init__(series)
        self.calls: list[tuple[str, float, float]] = []

    def select(self, name, matchers, start, end):
        self.calls.append((name, start, end))
        return super().select(name, matchers, start, end)


# ------------------------------------------------------------------------------------------------ parsing

EXAMPLES = [
    'latency_p99_ms{model="fraud-clf"} > 500',
    'drift_score{model="fraud-clf", feature=~"amount|age"} > 0.2',
    "baseline_deviation(latency_p95_ms, window=7d) > 4",
    'absent(request_rate{model="fraud-clf"}, 10m)',
    "rate(requests_total[5m]) * 60 < 1",
    "avg_over_time(error_rate[15m]) > 0.05 and request_rate > 1",
    "max by (model) (drift_score) > 0.3",
    'error_rate{endpoint!="health"} / ignoring(x) request_rate',
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_the_documented_examples_parse_to_instant_vectors(text):
    e = parse(text)
    assert e.text == text
    assert e.type == "vector"
    assert e.metric_names()  # every example reads at least one signal


def test_a_name_with_slashes_is_one_name_and_division_needs_a_space_or_a_number():
    assert parse("system/cpu_percent > 90").metric_names() == {"system/cpu_percent"}
    assert parse("a / b").metric_names() == {"a", "b"}
    assert parse("a/b").metric_names() == {"a/b"}
    series = [("a", {}, [T], [6.0]), ("b", {}, [T], [4.0]), ("system/gpu.0.util", {}, [T], [50.0])]
    assert run("a / b", series) == {(): 1.5}
    assert run("a/2", series) == {(): 3.0}  # '/' before a digit is division
    assert run("system/gpu.0.util", series) == {(("__name__", "system/gpu.0.util"),): 50.0}


def test_names_spelled_by_matchers_and_quoted_names():
    assert parse('{__name__="system/gpu.0-util"} > 1').metric_names() == {"system/gpu.0-util"}
    assert parse('{"weird name", model="a"}').metric_names() == {"weird name"}
    assert parse('{__name__=~"drift_.*", model="a"}').metric_names() == set()  # chosen at evaluation
    assert "given twice" in err('x{__name__="y"}').message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("90s", 90.0), ("5m", 300.0), ("1h30m", 5400.0), ("7d", 604800.0), ("2w1d", 1296000.0)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds
    assert parse(f"rate(x[{text}])").max_range() == seconds


@pytest.mark.parametrize(
    ("text", "column", "fragment"), [("x[30m1h]", 3, "largest to smallest"), ("x[1.5h]", 3, "1.5h")]
)
def test_bad_durations_point_at_the_literal(text, column, fragment):
    e = err(f"rate({text})")
    assert (e.line, e.column - len("rate(")) == (1, column)
    assert fragment in e.message


def test_error_position_and_message_format():
    e = err("sum(rate(x[5m]) xyz")
    assert isinstance(e, ValueError)
    assert (e.position, e.line, e.column) == (16, 1, 17)
    assert e.message == "expected ')', got 'xyz'"
    assert str(e) == "line 1, column 17: expected ')', got 'xyz'"
    assert e.caret().splitlines()[1] == " " * 16 + "^"


def test_error_positions_in_a_multi_line_expression():
    text = "avg_over_time(error_rate[15m]) > 0.05\n  and\n  request_rate >"
    e = err(text)
    assert (e.line, e.column) == (3, 17)  # just after the last character of line 3
    assert e.message == "expected an expression, got end of expression"
    e = err("max by (model) (\n  drift(x)\n)")
    assert (e.line, e.column, e.position) == (2, 3, 19)


def test_unknown_function_lists_the_known_ones():
    e = err("avg_over_time(x[5m]) > 1 or rat(x[5m]) > 2")
    assert e.column == 29
    assert "unknown function 'rat'" in e.message
    for name in FUNCTIONS:
        assert name in e.message


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("rate()", 6, "rate() takes 1 argument, got 0"),
        ("rate(x[5m], x[5m])", 13, "rate() takes 1 argument, got 2"),
        ("quantile_over_time(0.5)", 23, "takes 2 arguments, got 1"),
        ("rate(x)", 6, "expects a range vector"),
        ("sum(x[5m])", 5, "sum() expects an instant vector, got range vector"),
        ("x[5m] > 1", 1, "got a range vector"),
        ("1 > 2", 3, "needs the bool modifier"),
        ("x + bool y", 5, "bool modifier only applies to comparisons"),
        ("1 and x", 3, "set operator 'and' needs instant vectors"),
        ("baseline_deviation(rate(x[5m]))", 20, "expects a metric selector"),
        ("absent(sum(x), 5m)", 8, "needs a metric selector"),
        ("rate(x[5m], window=1d)", 13, "rate() takes no keyword arguments"),
        ("baseline_deviation(x, windw=7d)", 23, "unknown keyword argument 'windw'"),
        ("baseline_deviation(x, window=1d, window=2d)", 34, "got 'window' twice"),
        ("baseline_deviation(x, min_points=0.5)", 34, "min_points must be an integer"),
        ("x / on(a) group_left y", 11, "group_left (many-to-one matching) is not supported"),
        ("x offset 5m", 3, "offset modifier is not supported"),
        ("rate(x[5m:1m])", 10, "subqueries"),
        ("sum(x)[5m]", 7, "range [d] can only follow a metric selector"),
        ("5m", 1, "only allowed in a range"),
        ('x{a="b"', 8, "expected '}', got end of expression"),
        ('x{a="b}', 5, "unterminated string"),
        (r'x{a=~"\d+"}', 7, "unknown escape"),
        ('x{a=~"(" }', 6, "invalid regular expression"),
        ('x{a/b="c"}', 3, "expected a label name"),
        ("x{a b}", 5, "expected a matcher operator"),
        ("sum by (a) (x) by (b)", 16, "by/without clause already"),
        ("x $ y", 3, "unexpected character '$'"),
        ("   ", 1, "empty expression"),
    ],
)
def test_syntax_and_type_errors_name_the_problem_and_its_column(text, column, fragment):
    e = err(text)
    assert fragment in e.message
    assert e.column == column, e


def test_precedence_follows_promql():
    assert run("1 + 2 * 3", []) == {(): 7.0}
    assert run("(1 + 2) * 3", []) == {(): 9.0}
    assert run("2 ^ 3 ^ 2", []) == {(): 512.0}  # right-associative
    assert run("-2 ^ 2", []) == {(): -4.0}  # ^ binds tighter than unary minus
    assert run("10 - 4 - 3", []) == {(): 3.0}  # left-associative
    assert run("1 + 1 > bool 1", []) == {(): 1.0}
    root = parse("a or b unless c and d").root
    assert isinstance(root, Binary) and root.op == "or"  # and/unless bind tighter than or
    assert isinstance(root.rhs, Binary) and root.rhs.op == "and" and root.rhs.lhs.op == "unless"


def test_comments_and_whitespace_are_ignored():
    series = [("x", {}, [T], [3.0])]
    assert run("x # the raw value\n  > 2  # and a threshold", series) == {(("__name__", "x"),): 3.0}


def test_max_range_is_the_widest_read():
    assert parse("x > 1").max_range() == 300.0
    assert parse("x > 1").max_range(lookback=60) == 60.0
    assert parse("avg_over_time(x[15m]) > 1 and y").max_range() == 900.0
    assert parse("baseline_deviation(x, window=7d) > 4").max_range() == 7 * 86400.0
    assert parse("baseline_deviation(x) > 4").max_range() == 7 * 86400.0  # the default window
    assert parse("absent(x, 1h)").max_range() == 3600.0
    assert parse("1 + 1").max_range() == 0.0


def test_absent_names_are_only_those_read_inside_absent():
    assert parse("absent(x) or absent_over_time(y[5m])").absent_names() == {"x", "y"}
    assert parse("absent(x) or x > 1").absent_names() == set()


# ---------------------------------------------------------------------------------------- instant vectors


def test_instant_selector_takes_the_last_point_within_the_lookback():
    series = [
        ("x", {"s": "fresh"}, [T - 400, T - 100, T + 50], [1.0, 2.0, 99.0]),  # the point after t is unseen
        ("x", {"s": "edge"}, [T - 300], [3.0]),  # exactly at t - lookback: seen
        ("x", {"s": "stale"}, [T - 301], [4.0]),
    ]
    got = run("x", series)
    assert got == {key({"__name__": "x", "s": "fresh"}): 2.0, key({"__name__": "x", "s": "edge"}): 3.0}
    assert run("x", series, lookback=1000) == {
        key({"__name__": "x", "s": "fresh"}): 2.0,
        key({"__name__": "x", "s": "edge"}): 3.0,
        key({"__name__": "x", "s": "stale"}): 4.0,
    }


def test_nan_points_are_skipped_and_an_all_nan_series_is_absent():
    series = [("x", {"a": "1"}, [T - 60, T], [5.0, math.nan]), ("x", {"a": "2"}, [T - 60, T], [math.nan] * 2)]
    assert run("x", series) == {key({"__name__": "x", "a": "1"}): 5.0}


def test_matchers_select_series():
    series = [
        ("d", {"model": "m", "feature": f}, [T], [v])
        for f, v in [("amount", 0.3), ("age", 0.1), ("zip", 0.9), ("agent", 0.5)]
    ]
    got = run('d{model="m", feature=~"amount|age"}', series)
    assert sorted(dict(k)["feature"] for k in got) == ["age", "amount"]  # =~ matches the whole value
    assert len(run('d{feature!~"a.*"}', series)) == 1
    assert len(run('d{feature!="zip", model="m"}', series)) == 3
    assert run('d{model="other"}', series) == {}


def test_name_regex_selects_across_names():
    series = [
        ("drift_a", {"m": "1"}, [T], [1.0]),
        ("drift_b", {"m": "1"}, [T], [2.0]),
        ("lat", {}, [T], [3.0]),
    ]
    assert run('{__name__=~"drift_.*"}', series) == {
        key({"__name__": "drift_a", "m": "1"}): 1.0,
        key({"__name__": "drift_b", "m": "1"}): 2.0,
    }
    e = parse('-{__name__=~"drift_.*"}')  # dropping the names leaves two samples labelled {m="1"}
    with pytest.raises(ExprError, match="differed only in the metric name"):
        e.evaluate(MemorySource(series), T)


def test_each_selector_reads_the_range_it_needs():
    src = RecordingSource([("x", {}, [T], [1.0])])
    parse("x + avg_over_time(x[15m]) + baseline_deviation(x, window=1d) or absent(y, 10m)").evaluate(
        src, T, 120
    )
    assert sorted(src.calls) == sorted(
        [("x", T - 120, T), ("x", T - 900, T), ("x", T - 86400, T), ("y", T - 600, T)]
    )


def test_evaluate_checks_its_arguments():
    e = parse("x")
    with pytest.raises(ValueError, match="lookback: expected a positive number"):
        e.evaluate(MemorySource(), T, 0)
    with pytest.raises(ValueError, match="t: expected a finite time"):
        e.evaluate(MemorySource(), math.nan)


def test_a_scalar_expression_gives_one_unlabelled_sample():
    assert run("2 * 3 > bool 5", []) == {(): 1.0}


# ---------------------------------------------------------------------------------------- label semantics

LAT = [("lat", {"model": "a"}, [T], [600.0]), ("lat", {"model": "b"}, [T], [400.0])]


def test_name_is_kept_by_selection_and_filtering_and_dropped_by_arithmetic_and_bool():
    a_named, a = key({"__name__": "lat", "model": "a"}), key({"model": "a"})
    assert run("lat > 500", LAT) == {a_named: 600.0}
    assert run("500 < lat", LAT) == {a_named: 600.0}  # the vector's value, whichever side it is on
    assert run("lat > bool 500", LAT) == {a: 1.0, key({"model": "b"}): 0.0}
    assert run("lat * 2", LAT)[a] == 1200.0
    assert run("-lat", LAT)[a] == -600.0
    assert run("abs(-lat)", LAT)[a] == 600.0


def test_functions_drop_the_name_except_last_over_time():
    series = [("c", {"j": "1"}, [T - 60, T], [1.0, 4.0])]
    assert run("rate(c[5m])", series) == {key({"j": "1"}): 0.05}
    assert run("max_over_time(c[5m])", series) == {key({"j": "1"}): 4.0}
    assert run("last_over_time(c[5m])", series) == {key({"__name__": "c", "j": "1"}): 4.0}


def test_vector_matching_is_one_to_one_on_labels_without_the_name():
    series = [
        ("err", {"ep": "a", "x": "1"}, [T], [2.0]),
        ("err", {"ep": "b", "x": "1"}, [T], [3.0]),
        ("err", {"ep": "c", "x": "1"}, [T], [9.0]),  # nothing to match on the right
        ("req", {"ep": "a", "x": "2"}, [T], [4.0]),
        ("req", {"ep": "b", "x": "2"}, [T], [0.0]),
    ]
    assert run("err / req", series) == {}  # x differs
    assert run("err / ignoring(x) req", series) == {key({"ep": "a"}): 0.5, key({"ep": "b"}): math.inf}
    assert run("err / on(ep) req", series) == {key({"ep": "a"}): 0.5, key({"ep": "b"}): math.inf}
    # a filtering comparison keeps the left side's value and labels, name included
    assert run("err > ignoring(x) req", series) == {key({"__name__": "err", "ep": "b"}): 3.0}
    assert run("err > bool on(ep) req", series) == {key({"ep": "a"}): 0.0, key({"ep": "b"}): 1.0}


@pytest.mark.parametrize("text", ["x / on(model) y", "y / on(model) x"])
def test_many_to_one_matching_is_an_evaluation_error_at_the_operator(text):
    series = [
        ("x", {"model": "a", "feature": "f1"}, [T], [1.0]),
        ("x", {"model": "a", "feature": "f2"}, [T], [2.0]),
        ("y", {"model": "a"}, [T], [4.0]),
    ]
    with pytest.raises(ExprError) as info:
        parse(text).evaluate(MemorySource(series), T)
    assert info.value.column == 3
    assert "many-to-one matching" in info.value.message and 'feature="f2"' in info.value.message


def test_set_operators():
    series = [
        ("x", {"m": "a"}, [T], [1.0]),
        ("x", {"m": "b"}, [T], [2.0]),
        ("y", {"m": "b"}, [T], [20.0]),
        ("y", {"m": "c"}, [T], [30.0]),
        ("z", {"m": "b", "extra": "1"}, [T], [5.0]),
    ]
    xa, xb = key({"__name__": "x", "m": "a"}), key({"__name__": "x", "m": "b"})
    assert run("x and y", series) == {xb: 2.0}
    assert run("x unless y", series) == {xa: 1.0}
    assert run("x or y", series) == {xa: 1.0, xb: 2.0, key({"__name__": "y", "m": "c"}): 30.0}
    assert run("x and z", series) == {}
    assert run("x and on(m) z", series) == {xb: 2.0}
    assert run("x unless ignoring(extra) z", series) == {xa: 1.0}


def test_arithmetic_follows_ieee_754():
    assert run("1 / 0", []) == {(): math.inf}
    assert run("-1 / 0", []) == {(): -math.inf}
    assert math.isnan(run("0 / 0", [])[()])
    assert run("-7 % 3", []) == {(): -1.0}  # fmod: the dividend's sign, as PromQL
    assert math.isnan(run("(-8) ^ 0.5", [])[()])
    assert run("x / 0", [("x", {}, [T], [2.0])]) == {(): math.inf}
    assert run("Inf > bool 1e308", []) == {(): 1.0}


# ------------------------------------------------------------------------------------------- aggregations

AGG_SERIES = [
    ("d", {"model": "a", "f": "1"}, [T], [0.1]),
    ("d", {"model": "a", "f": "2"}, [T], [0.5]),
    ("d", {"model": "a", "f": "3"}, [T], [0.3]),
    ("d", {"model": "b", "f": "1"}, [T], [0.7]),
]


@pytest.mark.parametrize(
    ("op", "a", "b"),
    [("sum", 0.9, 0.7), ("avg", 0.3, 0.7), ("min", 0.1, 0.7), ("max", 0.5, 0.7), ("count", 3.0, 1.0)],
)
def test_aggregations_by_a_label(op, a, b):
    got = run(f"{op} by (model) (d)", AGG_SERIES)
    assert got == pytest.approx({key({"model": "a"}): a, key({"model": "b"}): b})
    assert run(f"{op}(d) by (model)", AGG_SERIES) == got  # the clause may follow the argument


def test_aggregation_without_and_over_everything():
    assert run("sum without (f) (d)", AGG_SERIES) == pytest.approx(
        {key({"model": "a"}): 0.9, key({"model": "b"}): 0.7}
    )
    assert run("max(d)", AGG_SERIES) == {(): 0.7}
    assert run("count without (model, f) (d)", AGG_SERIES) == {(): 4.0}  # without drops __name__ too
    assert run("sum by (__name__) (d)", AGG_SERIES) == pytest.approx({key({"__name__": "d"}): 1.6})


def test_min_and_max_ignore_nan_unless_all_are_nan_and_sum_keeps_it():
    series = [("x", {"g": "1"}, [T], [0.0]), ("x", {"g": "2"}, [T], [3.0]), ("x", {"g": "3"}, [T], [-1.0])]
    # x / x * x is NaN for the first series (0/0) and x for the others
    assert run("max(x / x * x)", series) == {(): 3.0}
    assert run("min(x / x * x)", series) == {(): -1.0}
    assert math.isnan(run("sum(x / x * x)", series)[()])
    assert math.isnan(run("max(x / 0 * 0)", series)[()])  # every value NaN


# ------------------------------------------------------------------------------------------ range functions

TS = np.array([T - 900, T - 700, T - 600, T - 420, T - 300, T - 120, T - 60, T])
VS = np.array([5.0, 1.0, 4.0, math.nan, 2.0, 8.0, 3.0, 6.0])


@pytest.mark.parametrize(
    ("func", "reference"),
    [
        ("avg_over_time", np.mean),
        ("min_over_time", np.min),
        ("max_over_time", np.max),
        ("sum_over_time", np.sum),
        ("count_over_time", len),
        ("last_over_time", lambda v: v[-1]),
        ("stddev_over_time", np.std),  # population, as PromQL
    ],
)
def test_over_time_functions_agree_with_numpy(func, reference):
    inside = (TS >= T - 600) & ~np.isnan(VS)  # [t - 10m, t], closed at both ends, NaN skipped
    got = run(f"{func}(x[10m])", [("x", {}, TS, VS)])
    assert list(got.values()) == pytest.approx([reference(VS[inside])])


@pytest.mark.parametrize("q", [0.0, 0.25, 0.5, 0.9, 1.0])
def test_quantile_over_time_interpolates_as_numpy(q):
    inside = ~np.isnan(VS)
    got = run(f"quantile_over_time({q}, x[15m])", [("x", {}, TS, VS)])
    assert got == {(): pytest.approx(np.quantile(VS[inside], q))}


def test_quantile_over_time_out_of_range_q_and_a_scalar_expression_q():
    series = [("x", {}, TS, VS)]
    assert run("quantile_over_time(-0.1, x[15m])", series) == {(): -math.inf}
    assert run("quantile_over_time(1.5, x[15m])", series) == {(): math.inf}
    assert run("quantile_over_time(0.25 * 2, x[15m])", series) == {
        (): pytest.approx(np.median(VS[~np.isnan(VS)]))
    }


def test_rate_increase_and_delta_with_a_counter_reset():
    # 10 → 20 → (restart) 5 → 15: the reset adds the 20 counted before it
    series = [("c", {}, [T - 180, T - 120, T - 60, T], [10.0, 20.0, 5.0, 15.0])]
    assert run("increase(c[5m])", series) == {(): 25.0}
    assert run("rate(c[5m])", series) == {(): pytest.approx(25.0 / 180.0)}
    assert run("delta(c[5m])", series) == {(): 5.0}
    assert run("rate(c[1m])", series) == {(): pytest.approx(10.0 / 60.0)}  # the two points in [t-60, t]


def test_rate_needs_two_points():
    series = [("c", {"a": "1"}, [T - 400, T], [1.0, 2.0]), ("c", {"a": "2"}, [T - 100, T], [1.0, 2.0])]
    assert run("rate(c[5m])", series) == {key({"a": "2"}): pytest.approx(1.0 / 100)}
    assert run("delta(c[5m])", series) == {key({"a": "2"}): 1.0}


def test_rate_example_from_the_docs():
    series = [("requests_total", {}, np.arange(T - 300, T + 1, 60), np.arange(6) * 0.5)]  # 0.5 per minute
    assert run("rate(requests_total[5m]) * 60", series) == {(): pytest.approx(0.5)}
    assert run("rate(requests_total[5m]) * 60 < 1", series) == {(): pytest.approx(0.5)}


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(
        st.tuples(st.integers(0, 10_000), st.floats(-1e6, 1e6, allow_nan=False)), min_size=1, max_size=40
    ),
    t=st.integers(0, 10_000),
    d=st.integers(1, 5_000),
)
def test_avg_over_time_is_the_mean_of_the_points_in_range(points, t, d):
    ts = np.array([p[0] for p in points], dtype=float)
    vs = np.array([p[1] for p in points])
    inside = (ts >= t - d) & (ts <= t)
    got = run(f"avg_over_time(x[{d}s])", [("x", {}, ts, vs)], t=t)
    if inside.any():
        assert got == {(): pytest.approx(np.mean(vs[inside]), rel=1e-9, abs=1e-6)}
    else:
        assert got == {}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=2, max_size=30))
def test_increase_counts_a_reset_as_a_restart_from_zero(values):
    # the step-by-step definition: a drop means the counter restarted at 0 and has counted up to the new value
    expected = sum(b - a if b >= a else b for a, b in itertools.pairwise(values))
    ts = T - 10.0 * np.arange(len(values))[::-1]
    got = run("increase(c[1h])", [("c", {}, ts, values)])
    assert got == {(): pytest.approx(expected, rel=1e-9, abs=1e-6)}


# ------------------------------------------------------------------------------------- baseline_deviation


def _history(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ts = T - 3600.0 * np.arange(n, 0, -1)  # hourly, the last one an hour before t
    return ts, rng.normal(100.0, 5.0, n)


def test_baseline_deviation_is_the_median_mad_z_score():
    ts, vs = _history(50)
    series = [("lat", {"model": "a"}, np.append(ts, T - 10), np.append(vs, 130.0))]
    med = np.median(vs)
    mad = np.median(np.abs(vs - med))
    expected = (130.0 - med) / (1.4826 * mad)
    got = run("baseline_deviation(lat, window=7d)", series)
    assert got == {key({"model": "a"}): pytest.approx(expected, rel=1e-12)}
    # scipy's normal-consistent MAD uses 1/Φ⁻¹(3/4) = 1.482602...: the same number to 5 digits
    scaled = stats.median_abs_deviation(vs, scale="normal")
    assert got[key({"model": "a"})] == pytest.approx((130.0 - med) / scaled, rel=1e-5)


def test_baseline_deviation_window_excludes_old_points_and_the_latest():
    ts, vs = _history(40, seed=1)
    series = [("lat", {}, np.append(ts, T), np.append(vs, 90.0))]
    window = ts >= T - 86400  # [t - 1d, t): the last 24 hourly points; the latest (at t) is not history
    h = vs[window]
    expected = (90.0 - np.median(h)) / (1.4826 * np.median(np.abs(h - np.median(h))))
    assert run("baseline_deviation(lat, window=1d)", series) == {(): pytest.approx(expected)}
    assert run("baseline_deviation(lat, 1d)", series) == {(): pytest.approx(expected)}  # positional window


def test_baseline_deviation_fallbacks_when_mad_is_zero():
    flat = np.array([10.0] * 8 + [12.0, 14.0])  # MAD 0: mean absolute deviation from the median = 0.6
    assert robust_zscore(13.0, flat) == pytest.approx(3.0 / (1.2533 * 0.6))
    const = np.full(10, 10.0)
    assert robust_zscore(10.5, const) == math.inf
    assert robust_zscore(9.5, const) == -math.inf
    assert robust_zscore(10.0, const) == 0.0
    ts = T - 60.0 * np.arange(10, 0, -1)
    assert run("baseline_deviation(x, window=1d)", [("x", {}, np.append(ts, T), np.append(const, 11.0))]) == {
        (): math.inf
    }


def test_baseline_deviation_needs_min_points_and_a_fresh_latest_value():
    ts, vs = _history(12, seed=2)
    series = [("lat", {}, np.append(ts, T), np.append(vs, 100.0))]
    assert len(run("baseline_deviation(lat)", series)) == 1  # 12 history points >= 10
    assert run("baseline_deviation(lat, min_points=13)", series) == {}
    assert run("baseline_deviation(lat, window=5h)", series) == {}  # 5 points in the window
    stale = [("lat", {}, ts, vs)]  # the newest point is an hour old, past the 5m lookback
    assert run("baseline_deviation(lat)", stale) == {}
    assert len(run("baseline_deviation(lat)", stale, lookback=7200)) == 1


# ------------------------------------------------------------------------------------------------- absent


def test_absent_labels_come_from_equality_matchers():
    got = run('absent(request_rate{model="fraud-clf", env=~"prod", job="a", job="b"})', [])
    assert got == {key({"model": "fraud-clf"}): 1.0}  # regex and twice-matched labels are left out
    assert run("absent(request_rate)", [("request_rate", {}, [T], [1.0])]) == {}
    assert run('absent(request_rate{model="other"})', [("request_rate", {"model": "m"}, [T], [1.0])]) == {
        key({"model": "other"}): 1.0
    }


def test_absent_with_a_duration_and_absent_over_time():
    series = [("r", {"model": "m"}, [T - 400, T - 30], [1.0, math.nan])]  # the recent point is NaN
    assert run('absent(r{model="m"}, 10m)', series) == {}
    assert run('absent(r{model="m"}, 5m)', series) == {key({"model": "m"}): 1.0}
    assert run('absent(r{model="m"}, 600)', series) == {}  # a plain number is seconds
    assert run('absent(r{model="m"})', series) == {key({"model": "m"}): 1.0}  # the 5m lookback
    assert run('absent_over_time(r{model="m"}[5m])', series) == {key({"model": "m"}): 1.0}
    assert run('absent_over_time(r{model="m"}[7m])', series) == {}


def test_absent_of_an_expression_has_no_labels():
    series = [("x", {"m": "a"}, [T], [1.0])]
    assert run('absent(sum(x{m="b"}))', series) == {(): 1.0}
    assert run("absent(x > 5)", series) == {(): 1.0}
    assert run("absent(x > 0)", series) == {}


# ------------------------------------------------------------------------------------------- MemorySource


def test_memory_source_selects_a_closed_range_in_time_order():
    src = MemorySource(
        [("x", {"a": "1"}, [30.0, 10.0, 20.0], [3.0, 1.0, 2.0]), ("x", {"a": "2"}, [10.0], [9.0])]
    )
    (got,) = src.select("x", [Matcher("a", "=", "1")], 10.0, 20.0)
    assert got.t.tolist() == [10.0, 20.0] and got.value.tolist() == [1.0, 2.0]
    assert src.names() == {"x"}
    assert src.select("y", [], 0, 100) == []


@pytest.mark.parametrize(
    ("series", "fragment"),
    [
        (("x", {"a": "1"}, [1.0, 2.0], [1.0]), "1-D of one length"),
        (("x", {"__name__": "x"}, [1.0], [1.0]), "__name__"),
        (("x", {"a": 1}, [1.0], [1.0]), "labels must map str to str"),
        (("x", {}, [math.nan], [1.0]), "t must be finite"),
    ],
)
def test_memory_source_refuses_bad_series(series, fragment):
    with pytest.raises(ValueError, match=fragment):
        MemorySource([series])


def test_memory_source_refuses_a_series_given_twice():
    with pytest.raises(ValueError, match="given twice"):
        MemorySource([("x", {"a": "1"}, [1.0], [1.0]), ("x", {"a": "1"}, [2.0], [2.0])])


# ------------------------------------------------------------------------------------------------ fuzzing

WORDS = [
    "rate",
    "sum",
    "by",
    "on",
    "and",
    "or",
    "bool",
    "5m",
    "1h30m",
    "absent",
    "baseline_deviation",
    "window",
]
ALPHABET = st.sampled_from([*"xyz_ab:/.019 \n()[]{},=!~<>+-*/%^\"'`#", *WORDS])


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=25).map("".join))
def test_any_text_either_parses_or_raises_expr_error_inside_the_text(text):
    try:
        e = parse(text)
    except ExprError as exc:
        assert 0 <= exc.position <= len(text)
        assert exc.line == text.count("\n", 0, exc.position) + 1
        return
    # what parses also evaluates, on an empty source, without crashing
    assert isinstance(e.evaluate(MemorySource(), T), list)
