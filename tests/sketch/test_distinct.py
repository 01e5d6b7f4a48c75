from __future__ import annotations

import numpy as np
import pytest

from watchkeeper.sketch import DistinctCount
from watchkeeper.sketch.distinct import hash_strings


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_within_two_percent_at_one_million_distinct_numbers(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2**62, 1_000_000) if seed != 1 else rng.random(1_000_000)
    d = DistinctCount()
    for chunk in np.array_split(x, 4):
        d = d + DistinctCount().update(chunk)
    exact = np.unique(x).size
    assert abs(d.estimate - exact) / exact <= 0.02
    assert not d.is_exact


def test_within_two_percent_at_one_million_distinct_strings() -> None:
    strings = [f"{v:x}" for v in np.random.default_rng(5).integers(0, 2**40, 1_000_000).tolist()]
    exact = len(set(strings))
    d = DistinctCount().update(strings)
    assert abs(d.estimate - exact) / exact <= 0.02


@pytest.mark.parametrize("n", [0, 1, 2, 17, 1000, 1024])
def test_small_counts_are_exact(n: int) -> None:
    x = np.random.default_rng(n).permutation(n).repeat(3)
    d = DistinctCount().update(x)
    assert d.estimate == n and d.is_exact
    s = DistinctCount().update(np.array([f"k{i}" for i in x], dtype=object))
    assert s.estimate == n


@pytest.mark.parametrize("n", [1025, 3_000, 20_000, 200_000])
def test_mid_range_counts_have_small_error(n: int) -> None:
    x = np.unique(np.random.default_rng(n).integers(0, 2**62, n))
    d = DistinctCount().update(x)
    assert abs(d.estimate - x.size) / x.size <= 0.02


def test_merge_is_exact() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 100_000, 80_000), rng.integers(50_000, 300_000, 80_000)
    merged = DistinctCount().update(a) + DistinctCount().update(b)
    assert merged == DistinctCount().update(np.concatenate([a, b]))
    small = DistinctCount().update(np.arange(10))
    assert (
        (small + merged) == (merged + small) == DistinctCount().update(np.concatenate([a, b, np.arange(10)]))
    )


def test_what_counts_as_one_value() -> None:
    d = DistinctCount().update(
        [1, 1.0, True, np.int64(1), "1", b"1", 2**70, 0.5, -0.0, 0, None, float("nan")]
    )
    assert d.estimate == 6  # {1, "1", b"1", 2**70, 0.5, 0}
    assert (
        DistinctCount().update(np.array([3, 4])).to_bytes() == DistinctCount().update([3.0, 4.0]).to_bytes()
    )


def test_string_hash_is_stable_and_independent_of_batching() -> None:
    words = [f"w{i}" for i in range(5000)] + ["", "é", "\U0001f600", "x" * (1 << 20) + "y"]
    whole = hash_strings(words)
    parts = np.concatenate([hash_strings(words[:7]), hash_strings(words[7:])])
    np.testing.assert_array_equal(whole, parts)
    assert np.unique(whole).size == len(words)
    # A fixed value: the hash is part of the stored format, it must not change between releases.
    assert hash_strings(["watchkeeper"])[0] == np.uint64(EXPECTED_HASH)


def test_all_nan_and_empty() -> None:
    assert DistinctCount().update(np.full(10, np.nan)).estimate == 0
    assert DistinctCount().estimate == 0 and DistinctCount().bounds() == (0.0, 0.0)


def test_incompatible_precision_raises_naming_both() -> None:
    with pytest.raises(ValueError, match=r"p=14.*p=15"):
        DistinctCount(p=14).merge(DistinctCount(p=15))


EXPECTED_HASH = 13248082954519366258
