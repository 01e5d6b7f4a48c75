"""Catalogue-wide contract: every registered sketch obeys the merge laws, serialises bit-for-bit, refuses
newer and corrupt blobs, behaves when empty, pickles, and survives NaN/inf. New sketches get these for free.

The generated streams are small (a few dozen values), where every sketch here is in its exact regime (KLL
below k, FrequentItems and DistinctCount below their exact limits), so merged and directly-fed sketches must
describe the same numbers up to floating-point rounding. Accuracy in the approximate regime is tested per
sketch against numpy.
"""

from __future__ import annotations

import math
import pickle
import re
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import watchkeeper.sketch as sk
from watchkeeper.sketch import Sketch

SKETCHES = list(Sketch.registry().values())
IDS = [cls.__name__ for cls in SKETCHES]

numeric = st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), max_size=40)
categorical = st.lists(st.one_of(st.sampled_from(["a", "b", "c", "ü", ""]), st.integers(-5, 5)), max_size=40)
anything = st.lists(
    st.one_of(
        st.none(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**6), 10**6),
        st.booleans(),
        st.text(max_size=3),
    ),
    max_size=40,
)
STREAMS = {"numeric": numeric, "categorical": categorical, "any": anything}
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fed(cls: type[Sketch], *streams: list[Any]) -> Sketch:
    sketch = cls()
    for stream in streams:
        sketch.update(stream)
    return sketch


def assert_same(d1: dict[str, float], d2: dict[str, float]) -> None:
    assert d1.keys() == d2.keys()
    scale = max([1.0] + [abs(v) for v in (*d1.values(), *d2.values()) if math.isfinite(v)])
    for key in d1:
        a, b = d1[key], d2[key]
        if isinstance(a, float) and math.isnan(a):
            assert isinstance(b, float) and math.isnan(b), (key, a, b)
        else:
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * scale), (key, a, b)


def streams_for(cls: type[Sketch], n: int) -> st.SearchStrategy[tuple[list[Any], ...]]:
    return st.tuples(*[STREAMS[cls.INPUT_KIND]] * n)


def test_registry_has_every_sketch_with_unique_kind_ids() -> None:
    registry = Sketch.registry()
    names = {cls.__name__ for cls in registry.values()}
    assert names == {"Counts", "Moments", "Quantiles", "LatencySketch", "FrequentItems", "DistinctCount"}
    assert sorted(registry) == [cls.KIND for cls in registry.values()]
    assert sk.__all__ == sorted(sk.__all__)
    assert all(getattr(sk, name) is cls for name, cls in ((c.__name__, c) for c in registry.values()))


@pytest.mark.parametrize("cls", SKETCHES, ids=IDS)
def test_merge_equals_one_sketch_fed_both_streams(cls: type[Sketch]) -> None:
    @FAST
    @given(streams_for(cls, 2))
    def check(streams: tuple[list[Any], list[Any]]) -> None:
        a, b = streams
        merged = fed(cls, a).merge(fed(cls, b))
        assert_same(merged.describe(), fed(cls, a, b).describe())
        assert_same((fed(cls, a) + fed(cls, b)).describe(), merged.describe())

    check()


@pytest.mark.parametrize("cls", SKETCHES, ids=IDS)
def test_merge_is_commutative_and_associative(cls: type[Sketch]) -> None:
    @FAST
    @given(streams_for(cls, 3))
    def check(streams: tuple[list[Any], list[Any], list[Any]]) -> None:
        a, b, c = (fed(cls, s) for s in streams)
        assert_same((a + b).describe(), (b + a).describe())
        assert_same(((a + b) + c).describe(), (a + (b + c)).describe())

    check()


@pytest.mark.parametrize("cls", SKETCHES, ids=IDS)
def test_merge_leaves_its_operands_alone(cls: type[Sketch]) -> None:
    a, b = fed(cls, _sample(cls, 0)), fed(cls, _sample(cls, 1))
    blob_a, blob_b = a.to_bytes(), b.to_bytes()
    _ = a + b
    assert (a.to_bytes(), b.to_bytes()) == (blob_a, blob_b)


@pytest.mark.parametrize("cls", SKETCHES, ids=IDS)
def test_serialisation_round_trip_is_bit_for_bit(cls: type[Sketch]) -> None:
    @FAST
    @given(streams_for(cls, 2))
    def check(streams: tuple[list[Any], list[Any]]) -> None:
        sketch = fed(cls, streams[0]) + fed(cls, streams[1])
        blob = sketch.to_bytes()
        assert blob[0] == cls.FORMAT_VERSION and blob[1] == cls.KIND
        again = cls.from_bytes(blob)
        assert again.to_bytes() == blob
        assert sk.from_bytes(blob).to_bytes() == blob
        assert type(sk.from_bytes(blob)) is cls
        assert again == sketch
        assert_same(again.describe(), sketch.describe())

    check()


@pytest.mark.parametrize("cls", SKETCHES, ids=IDS)
def test_large_sketch_round_trips(cls: type[Sketch]) -> None:
    sketch = fed(cls, _sample(cls, 2, n=50_000))
    blob = sketch.to_bytes()
    assert cls.from_bytes(blob).to_bytes() == blob
    assert pickle.loads(pickle.dumps(sketch)).to_bytes() == blob


@pytest.mark.parametrize("cls", SKETCHES, ids=IDS)
def test_blob_of_a_newer_format_version_is_refused(cls: type[Sketch]) -> None:
    blob = bytearray(fed(cls, _sample(cls, 0)).to_bytes())
    blob[0] = cls.FORMAT_VERSION + 1
    blob[-4:] = struct.pack("<I", zlib.crc32(bytes(blob[:-4])))
    newer, current = cls.FORMAT_VERSION + 1, cls.FORMAT_VERSION
    message = f"newer watchkeeper format version {newer} (this one reads up to {current})"
    with pytest.raises(ValueError, match=re.escape(message)):
        cls.from_bytes(bytes(blob))
    with pytest.raises(ValueError, match=re.escape(message)):
        sk.from_bytes(bytes(blob))


@pytest.mark.parametrize("cls", SKETCHES, ids=IDS)
def test_truncated_or_corrupt_blobs_are_refused_with_value_error(cls: type[Sketch]) -> None:
    blob = fed(cls, _sample(cls, 0, n=2_000)).to_bytes()
    rng = np.random.default_rng(cls.KIND)
    cuts = sorted(set(rng.integers(0, len(blob), 60).tolist()) | {0, 1, 5, len(blob) - 1})
    for cut in cuts:
        with pytest.raises(ValueError):
            cls.from_bytes(blob[:cut])
    for pos in rng.integers(0, len(blob), 60).tolist():
        flipped = bytearray(blob)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(ValueError):
            sk.from_bytes(bytes(flipped))
    # A payload cut short or padded, with a valid checksum: the decoder itself must notice.
    body = blob[:-4]
    for cut in sorted(set(rng.integers(2, len(body), 30).tolist())):
        forged = body[:cut] + struct.pack("<I", zlib.crc32(body[:cut]))
        with pytest.raises(ValueError):
            cls.from_bytes(forged)
    padded = body + b"\x00" + struct.pack("<I", zlib.crc32(body + b"\x00"))
    with pytest.raises(ValueError, match="unread bytes"):
        cls.from_bytes(padded)


@pytest.mark.parametrize("cls", SKETCHES, ids=IDS)
def test_blob_of_another_kind_is_refused(cls: type[Sketch]) -> None:
    other = next(c for c in SKETCHES if c is not cls)
    with pytest.raises(ValueError, match=f"holds a {other.__name__}, expected a {cls.__name__}"):
        cls.from_bytes(other().to_bytes())


@pytest.mark.parametrize("cls", SKETCHES, ids=IDS)
def test_merging_different_kinds_raises_naming_both(cls: type[Sketch]) -> None:
    other = next(c for c in SKETCHES if c is not cls)
    with pytest.raises(ValueError, match=f"{cls.__name__}.*{other.__name__}"):
        cls().merge(other())


@pytest.mark.parametrize("cls", SKETCHES, ids=IDS)
def test_empty_sketch(cls: type[Sketch]) -> None:
    empty = cls()
    assert empty == cls().update([]) == cls().update(np.array([], dtype=np.float64))
    assert cls.from_bytes(empty.to_bytes()) == empty
    full = fed(cls, _sample(cls, 0))
    assert (empty + full) == full.merge(cls())
    assert_same((empty + full).describe(), full.describe())
    description = empty.describe()
    assert description  # describes something, without raising
    assert repr(empty).startswith(cls.__name__ + "(")


@pytest.mark.parametrize("cls", SKETCHES, ids=IDS)
def test_copy_is_independent(cls: type[Sketch]) -> None:
    sketch = fed(cls, _sample(cls, 0))
    clone = sketch.copy()
    assert clone == sketch and clone is not sketch
    clone.update(_sample(cls, 1))
    assert clone != sketch
    assert sketch == fed(cls, _sample(cls, 0))


@pytest.mark.parametrize("cls", SKETCHES, ids=IDS)
def test_nan_and_inf_neither_crash_nor_corrupt(cls: type[Sketch]) -> None:
    clean = np.random.default_rng(0).lognormal(0, 1, 300)  # below KLL k: exact regime
    dirty = np.concatenate([clean, [np.nan, np.inf, -np.inf, np.nan]])
    sketch = cls().update(dirty).update(np.full(10, np.nan))
    blob = sketch.to_bytes()
    assert cls.from_bytes(blob).to_bytes() == blob
    merged = sketch + cls().update(clean)
    assert cls.from_bytes(merged.to_bytes()) == merged
    if cls is not sk.Counts:  # Counts counts them; every other sketch ignores NaN
        nan_free = cls().update(dirty[~np.isnan(dirty)])
        assert_same(cls().update(dirty).describe(), nan_free.describe())


def _sample(cls: type[Sketch], seed: int, n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if cls.INPUT_KIND == "categorical":
        return np.array([f"v{i}" for i in rng.zipf(1.5, n) % 5000], dtype=object)
    return rng.lognormal(1.0, 1.0, n)
