from __future__ import annotations

import numpy as np

from watchkeeper.sketch import Counts


def test_float_column_counts_nan_and_infinities() -> None:
    x = np.array([1.0, np.nan, np.inf, -np.inf, -np.inf, 0.0, np.nan])
    c = Counts().update(x)
    assert (c.rows, c.missing, c.nan, c.posinf, c.neginf, c.float, c.int) == (7, 0, 2, 1, 2, 7, 0)


def test_object_column_infers_each_type_and_none() -> None:
    values = [1, None, "a", 2.5, float("nan"), True, np.float32("inf"), np.int8(3), -float("inf"), b"x", None]
    c = Counts().update(values)
    assert c.describe() == {
        "rows": 11, "missing": 2, "nan": 1, "posinf": 1, "neginf": 1,
        "int": 2, "float": 4, "bool": 1, "str": 1, "other": 1,
    }  # fmt: skip
    assert c.present == 9
    assert c.missing_fraction == 2 / 11


def test_a_column_that_changes_type_is_visible_after_merge() -> None:
    before = Counts().update(np.arange(1000))
    after = Counts().update(np.array(["1", "2", None], dtype=object))
    merged = before + after
    assert (merged.int, merged.str, merged.missing, merged.rows) == (1000, 2, 1, 1003)


def test_dtype_shortcuts_match_numpy_counts() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=100_000)
    x[rng.random(x.size) < 0.1] = np.nan
    c = Counts().update(x).update(np.array([True, False])).update(np.array(["a", "b", "c"]))
    assert c.nan == int(np.isnan(x).sum())
    assert (c.float, c.bool, c.str, c.rows) == (100_000, 2, 3, 100_005)


def test_empty_and_all_nan() -> None:
    assert Counts().describe() == dict.fromkeys(Counts().describe(), 0)
    c = Counts().update(np.full(5, np.nan))
    assert (c.rows, c.nan, c.float) == (5, 5, 5)
    assert np.isnan(Counts().missing_fraction)
