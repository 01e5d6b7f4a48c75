from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from watchkeeper.sketch import FrequentItems


def exact_counts(x: np.ndarray) -> dict[object, int]:
    values, counts = np.unique(x, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def test_exact_while_distinct_values_fit() -> None:
    x = np.random.default_rng(0).integers(0, 1000, 100_000)
    f = FrequentItems(max_items=1024).update(x[:60_000]) + FrequentItems(max_items=1024).update(x[60_000:])
    assert f.is_exact and f.error == 0 and len(f) == len(np.unique(x))
    truth = exact_counts(x)
    assert {item.value: item.count for item in f.top(2000)} == truth
    assert all(isinstance(item.value, int) for item in f.top(5))


@pytest.mark.parametrize("m", [16, 64, 256])
def test_misra_gries_bounds_hold_on_skewed_data(m: int) -> None:
    rng = np.random.default_rng(m)
    x = rng.zipf(1.2, 300_000)
    x = x[x < 10**9]
    f = FrequentItems(max_items=m)
    for chunk in np.array_split(x, 13):
        f = f + FrequentItems(max_items=m).update(chunk)
    truth = exact_counts(x)
    n = x.size
    assert f.n == n and len(f) <= m
    assert 0 < f.error <= n / (m + 1)
    for item in f.top(m):
        assert item.lower_bound <= truth[item.value] <= item.upper_bound
    tracked = {item.value for item in f.top(m)}
    heavy = {v for v, c in truth.items() if c > n / (m + 1)}
    assert heavy <= tracked
    untracked = max(c for v, c in truth.items() if v not in tracked)
    assert untracked <= f.error
    top_true = sorted(truth, key=truth.get, reverse=True)[:3]
    assert [item.value for item in f.top(3)] == top_true


def test_strings_beyond_the_exact_limit() -> None:
    rng = np.random.default_rng(9)
    vocab = np.array([f"user-{i}" for i in range(20_000)], dtype=object)
    x = vocab[np.minimum(rng.zipf(1.3, 200_000), 20_000) - 1]
    f = FrequentItems(max_items=100)
    for chunk in np.array_split(x, 4):
        f.update(chunk)
    truth = Counter(x.tolist())
    assert f.error <= x.size / 101
    for item in f.top(100):
        assert item.lower_bound <= truth[item.value] <= item.upper_bound
    assert f.top(1)[0].value == "user-0"


def test_types_survive_serialisation() -> None:
    values = ["a", "ü€", "", 7, -(2**70), 2.5, float("inf"), b"\x00raw", True, np.int64(4), np.str_("s")]
    f = FrequentItems().update(values).update(values[:3])
    g = FrequentItems.from_bytes(f.to_bytes())
    assert {(type(i.value), i.value, i.count) for i in g.top(50)} == {
        (type(i.value), i.value, i.count) for i in f.top(50)
    }
    assert g.count("a").count == 2 and g.count(-(2**70)).count == 1 and g.count(4).count == 1
    assert isinstance(g.count(4).value, int)


def test_none_and_nan_are_skipped() -> None:
    f = FrequentItems().update([None, float("nan"), "x", None]).update(np.array([np.nan, 1.0]))
    assert f.n == 2 and {i.value for i in f.top()} == {"x", 1.0}


def test_unhashable_or_unsupported_type_raises() -> None:
    with pytest.raises(TypeError, match="complex"):
        FrequentItems().update([1 + 2j])


def test_merge_with_different_capacity_raises_naming_both() -> None:
    with pytest.raises(ValueError, match=r"max_items=10\).*max_items=20\)"):
        FrequentItems(10).merge(FrequentItems(20))


def test_count_of_an_untracked_value_is_bounded_by_error() -> None:
    f = FrequentItems(max_items=4).update(np.arange(100).repeat(np.arange(1, 101)))
    item = f.count(0)
    assert item.count == 0 and item.upper_bound == f.error >= 1


def test_update_counts_equals_update_on_the_repeated_values():
    rng = np.random.default_rng(11)
    values = rng.choice([f"v{i}" for i in range(3000)], size=50_000, p=None)
    uniq, counts = np.unique(values, return_counts=True)
    # shuffled and split in two, with one value given twice, as a group-by of two partitions would
    order = rng.permutation(len(uniq))
    a = FrequentItems(max_items=256).update_counts(uniq[order[:2000]], counts[order[:2000]])
    a.update_counts(uniq[order[2000:]], counts[order[2000:]])
    direct = FrequentItems(max_items=256).update(values)
    assert a.n == direct.n == 50_000
    exact = dict(zip(uniq.tolist(), counts.tolist(), strict=True))
    for item in a.top(20):  # every reported bound holds
        assert item.lower_bound <= exact[item.value] <= item.upper_bound
    assert a.error <= a.n / (256 + 1)


def test_update_counts_refuses_mismatched_or_negative_counts():
    with pytest.raises(ValueError, match="3 values but 2 counts"):
        FrequentItems().update_counts(["a", "b", "c"], [1, 2])
    with pytest.raises(ValueError, match="must not be negative"):
        FrequentItems().update_counts(["a"], [-1])
