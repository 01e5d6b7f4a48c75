"""Update throughput of each sketch on 1M values (float64; strings with 1000 distinct for categorical ones).

Run: ``python bench/bench_sketch.py``. Prints values/s per sketch (best of 5 runs, each on a fresh sketch),
and, as anchors, the Apache DataSketches sketches that take one value per Python call.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import datasketches
import numpy as np

from watchkeeper.sketch import Counts, DistinctCount, FrequentItems, LatencySketch, Moments, Quantiles

N = 1_000_000


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    floats = rng.lognormal(3.0, 1.0, N)
    vocab = np.array([f"value-{i:04d}" for i in range(1000)], dtype=object)
    strings = vocab[rng.integers(0, 1000, N)]
    unicode = strings.astype(str)
    cases: list[tuple[str, str, Callable[[], object]]] = [
        ("Counts", "float64", lambda: Counts().update(floats)),
        ("Counts", "str (object)", lambda: Counts().update(strings)),
        ("Moments", "float64", lambda: Moments().update(floats)),
        ("Quantiles", "float64", lambda: Quantiles().update(floats)),
        ("LatencySketch", "float64", lambda: LatencySketch().update(floats)),
        ("FrequentItems", "float64", lambda: FrequentItems().update(floats)),
        ("FrequentItems", "str (object)", lambda: FrequentItems().update(strings)),
        ("FrequentItems", "str (unicode)", lambda: FrequentItems().update(unicode)),
        ("DistinctCount", "float64", lambda: DistinctCount().update(floats)),
        ("DistinctCount", "str (object)", lambda: DistinctCount().update(strings)),
        ("DistinctCount", "str (unicode)", lambda: DistinctCount().update(unicode)),
    ]
    print(f"{'sketch':<16}{'input (1M)':<16}{'seconds':>10}{'values/s':>14}")
    for name, kind, fn in cases:
        t = best_of(fn)
        print(f"{name:<16}{kind:<16}{t:>10.4f}{N / t / 1e6:>12.1f}M")

    str_list = strings.tolist()

    def ds_hll() -> None:
        h = datasketches.hll_sketch(15)
        for s in str_list:
            h.update(s)

    def ds_frequent() -> None:
        f = datasketches.frequent_strings_sketch(10)
        for s in str_list:
            f.update(s)

    print("anchors (Apache DataSketches, one Python call per value):")
    for name, fn in (("hll_sketch", ds_hll), ("frequent_strings", ds_frequent)):
        t = best_of(fn, repeat=2)
        print(f"{name:<16}{'str':<16}{t:>10.4f}{N / t / 1e6:>12.1f}M")


if __name__ == "__main__":
    main()
