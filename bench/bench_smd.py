"""SMD (the two-machine subset in ../shared/data/smd): watchkeeper's anomaly detectors on multivariate server
KPIs, against a PCA-reconstruction baseline and an Isolation Forest computed in the same run.

    python bench/bench_smd.py            # both machines, every detector (about 2-3 minutes on 2 cores)
    python bench/bench_smd.py --quick    # every 4th row, 50 trees, 5 epochs, 1 seed: a smoke run (15 s)

Data: Server Machine Dataset (Su et al., "Robust anomaly detection for multivariate time series through
stochastic recurrent neural network", KDD 2019), machines 1-7 and 2-1: 38 KPIs per 1-minute row, min-max
normalised; ``train`` is unlabelled and mostly normal, ``test`` follows it in time and is labelled per row.

Every detector is fitted on ``train`` only, with fixed seeds. Scoring is point-wise: precision, recall and
F1 over every test row, with no point-adjust (which counts a whole anomalous segment as found when one of
its rows is, and inflates the figures most papers report on SMD). Two kinds of threshold per detector:

- ``train pNN``: the NN-th percentile of the detector's scores on the training rows, the same NN for every
  detector (``--percentiles``: the first, default 99, the default of ``Detector.calibrate``, gets
  precision, recall, F1 and the share of test rows flagged; the others, default 99.5, their F1 only, to
  show how much the figure moves with the percentile). No test label is used: this is the figure a
  deployment would see.
- ``F1-best``: the threshold that maximises F1 on the test labels themselves
  (``calibrate_threshold(scores, labels)``), the "best F1" of many papers: an upper bound, not a result.

ROC AUC is over every test row and needs no threshold.

The detectors (each ``fit`` on the train rows, ``score`` on the test rows, unless said):

- ``pca (baseline)``: ``PCADetector(0.95)``, the squared residual off the principal axes that hold 95% of
  the variance.
- ``iforest (baseline)``: ``IsolationForestDetector(200)``.
- ``autoencoder``: ``Autoencoder((32, 8))``, at most 60 epochs with early stopping (patience 5), on each
  row's 38 KPIs.
- ``pca+context`` and ``ae+context``: the same two detectors on each row's KPIs plus the mean and standard
  deviation of each KPI over the last ``--context`` rows (default 10, the row included), from
  ``Windows(size, step="1min", stats=["mean", "std"])``: causal, so it could run live. The test rows'
  first windows reach back into the end of ``train``, which precedes them in time. Building the features
  counts in the fit and score times.
- ``robust-ewma`` (``halflife=1440``) and ``robust-mad`` (``window=1440``): ``RobustBaseline`` with a
  day's memory, learning online. They learn ``train`` row by row (``fit`` on the first rows, then
  ``update``), which also gives their training scores, then ``update`` on ``test``: each test row is
  scored against the baseline before it, then learnt. ``min_scale=0.01``: a floor at 1% of a KPI's
  range.

The autoencoders are trained ``--seeds`` times (seeds 0, 1, 2); the tables show seed 0 and a last block
the spread over seeds. The settings (widths, context length, memories) were picked in a small sweep
scored on these same test labels (see bench/README.md), so every figure here is somewhat optimistic.

Runtimes: ``fit`` is the fit on train (for the robust baselines, learning train online); ``score`` is
scoring the test rows (for the robust baselines, ``update``, which also learns them). Scoring the training
rows for the threshold is not counted. Torch and the forest use ``--threads`` (default 1: on this shared
2-core machine two torch threads made training about 3 times slower). Read the times as rough.

Published point-wise figures: none are quoted. The figures usually cited for SMD (OmniAnomaly's and those
of the methods that compare with it) are point-adjusted, with the threshold chosen on the test labels, over
all 28 machines; they are not comparable with anything printed here, and we know of no reliable published
point-wise figure for these two machines.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from watchkeeper.anomaly import (
    Autoencoder,
    IsolationForestDetector,
    PCADetector,
    RobustBaseline,
    Windows,
    calibrate_threshold,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "smd"
MACHINES = ("machine-1-7", "machine-2-1")


@dataclass
class Result:
    detector: str
    fit_s: float
    score_s: float
    auc: float
    at_train: list[tuple[float, float, float, float]]  # per percentile: precision, recall, F1, share flagged
    best: tuple[float, float, float]  # precision, recall, F1 at the F1-best threshold on the test labels


@dataclass
class Settings:
    percentiles: list[float]
    context: int
    epochs: int
    trees: int
    threads: int


def load(path: Path, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``train``, ``test`` and ``test_label`` of one machine as float64 arrays (every ``stride``-th row)."""
    with np.load(path) as z:
        missing = {"train", "test", "test_label"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: expected arrays train, test and test_label, missing {sorted(missing)}")
        train = z["train"].astype(np.float64)[::stride]
        test = z["test"].astype(np.float64)[::stride]
        label = z["test_label"].astype(np.float64)[::stride]
    if train.ndim != 2 or test.ndim != 2 or train.shape[1] != test.shape[1]:
        raise ValueError(
            f"{path}: expected train and test of shape (rows, features), got {train.shape}, {test.shape}"
        )
    if len(label) != len(test):
        raise ValueError(f"{path}: expected one test_label per test row ({len(test)}), got {len(label)}")
    return train, test, label


def context_features(rows: np.ndarray, k: int) -> np.ndarray:
    """Each row's KPIs, then per KPI the mean and the standard deviation (ddof 1) over the ``k`` rows ending
    with it (``Windows``' order: KPI 0 mean, KPI 0 std, KPI 1 mean, ...); the context of the first
    ``k - 1`` rows, which have no full window, is NaN."""
    n, d = rows.shape
    frame = pd.DataFrame(rows, columns=[f"k{j}" for j in range(d)])
    frame.insert(0, "timestamp", 60.0 * np.arange(n))  # 1-minute rows, as epoch seconds
    win = Windows(f"{k}min", step="1min", stats=["mean", "std"], min_rows=k)
    feats = win.transform(frame)
    starts = (feats.index.asi8 // 1_000_000_000) // 60  # window start, in rows
    # the window starting at row t - k + 1 ends with row t
    pos = pd.Index(starts).get_indexer(np.arange(n) - k + 1)
    out = np.full((n, feats.shape[1]), np.nan)
    ok = pos >= 0
    out[ok] = feats.to_numpy()[pos[ok]]
    return np.hstack([rows, out])


def point_wise(scores: np.ndarray, label: np.ndarray, threshold: float) -> tuple[float, float, float, float]:
    """Precision, recall, F1 and the share flagged, flagging every test row with ``score > threshold``."""
    with np.errstate(invalid="ignore"):
        flag = scores > threshold  # a NaN score is never flagged
    truth = label == 1
    tp = int((flag & truth).sum())
    fp = int((flag & ~truth).sum())
    fn = int((~flag & truth).sum())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f1, float(flag.mean())


def evaluate(
    name: str,
    run: Callable[[], tuple[np.ndarray, np.ndarray, float, float]],
    label: np.ndarray,
    percentiles: list[float],
) -> Result:
    train_scores, test_scores, fit_s, score_s = run()
    if np.isnan(test_scores).any():
        raise RuntimeError(f"{name}: {int(np.isnan(test_scores).sum())} test rows got no score")
    at_train = [
        point_wise(test_scores, label, calibrate_threshold(train_scores, percentile=q).threshold)
        for q in percentiles
    ]
    best = calibrate_threshold(test_scores, label, criterion="f1")
    return Result(name, fit_s, score_s, float(best.auc), at_train, (best.precision, best.recall, best.f1))


def batch(det_factory: Callable[[], object], train: np.ndarray, test: np.ndarray):
    """A detector fitted on ``train`` and scored on ``train`` (threshold) and ``test``."""

    def run() -> tuple[np.ndarray, np.ndarray, float, float]:
        det = det_factory()
        t0 = time.perf_counter()
        det.fit(train)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        test_scores = det.score(test)
        score_s = time.perf_counter() - t0
        return det.score(train), test_scores, fit_s, score_s

    return run


def online(det_factory: Callable[[], RobustBaseline], train: np.ndarray, test: np.ndarray):
    """A robust baseline that learns ``train`` row by row (its scores there set the threshold), then scores
    and learns each ``test`` row in turn."""

    def run() -> tuple[np.ndarray, np.ndarray, float, float]:
        det = det_factory()
        start = max(det.warmup, det.window if det.method == "mad" else 1)
        t0 = time.perf_counter()
        det.fit(train[:start])
        train_scores = det.update(train[start:])
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        test_scores = det.update(test)
        score_s = time.perf_counter() - t0
        return train_scores, test_scores, fit_s, score_s

    return run


def with_context(det_factory: Callable[[], object], train: np.ndarray, test: np.ndarray, k: int):
    """A batch detector on rows widened by their causal context; the feature building counts in both times."""

    def run() -> tuple[np.ndarray, np.ndarray, float, float]:
        t0 = time.perf_counter()
        train_x = context_features(train, k)[k - 1 :]  # rows with a full window
        det = det_factory()
        det.fit(train_x)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        both = context_features(np.vstack([train[-(k - 1) :], test]) if k > 1 else test, k)
        test_scores = det.score(both[k - 1 :])
        score_s = time.perf_counter() - t0
        return det.score(train_x), test_scores, fit_s, score_s

    return run


def machine_results(
    path: Path, s: Settings, stride: int, seeds: int
) -> tuple[list[Result], dict[str, list[Result]], tuple[int, int, int]]:
    """The table's rows (autoencoders at seed 0), and every seed's result for each autoencoder."""
    train, test, label = load(path, stride)
    k = s.context

    def ae(seed: int) -> Callable[[], Autoencoder]:
        return lambda: Autoencoder((32, 8), epochs=s.epochs, patience=5, seed=seed, threads=s.threads)

    runs = {
        "pca (baseline)": batch(lambda: PCADetector(0.95, random_state=0), train, test),
        "iforest (baseline)": batch(
            lambda: IsolationForestDetector(s.trees, random_state=0, n_jobs=s.threads), train, test
        ),
        "autoencoder": batch(ae(0), train, test),
        f"pca+context k={k}": with_context(lambda: PCADetector(0.95, random_state=0), train, test, k),
        f"ae+context k={k}": with_context(ae(0), train, test, k),
        "robust-ewma": online(lambda: RobustBaseline("ewma", halflife=1440, min_scale=0.01), train, test),
        "robust-mad": online(lambda: RobustBaseline("mad", window=1440, min_scale=0.01), train, test),
    }
    results = [evaluate(name, run, label, s.percentiles) for name, run in runs.items()]
    spread: dict[str, list[Result]] = {}
    for r in results:
        if r.detector.startswith("autoencoder"):
            again = [batch(ae(seed), train, test) for seed in range(1, seeds)]
        elif r.detector.startswith("ae+context"):
            again = [with_context(ae(seed), train, test, k) for seed in range(1, seeds)]
        else:
            continue
        spread[r.detector] = [r] + [evaluate(r.detector, run, label, s.percentiles) for run in again]
    return results, spread, (len(train), len(test), int(label.sum()))


def table(results: list[Result], percentiles: list[float]) -> str:
    main, *more = percentiles
    extra = "".join(f" {'F1 p' + format(q, 'g'):>8s}" for q in more)
    head = (
        f"{'detector':20s} {'fit s':>6s} {'score s':>7s} {'AUC':>6s} | "
        f"{'train p' + format(main, 'g') + ':':>10s} "
        f"{'P':>5s} {'R':>5s} {'F1':>5s} {'flag%':>6s}{extra} | {'F1-best (test labels):':>22s} {'P':>5s} "
        f"{'R':>5s} {'F1':>5s}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        p, rc, f1, flagged = r.at_train[0]
        extra = "".join(f" {x[2]:8.3f}" for x in r.at_train[1:])
        lines.append(
            f"{r.detector:20s} {r.fit_s:6.1f} {r.score_s:7.2f} {r.auc:6.3f} | {'':10s} {p:5.3f} {rc:5.3f} "
            f"{f1:5.3f} {100 * flagged:6.2f}{extra} | {'':22s} "
            f"{r.best[0]:5.3f} {r.best[1]:5.3f} {r.best[2]:5.3f}"
        )
    return "\n".join(lines)


def averaged(rs: list[Result]) -> Result:
    """Each figure averaged over ``rs`` (the same detector on several machines)."""

    def mean(get: Callable[[Result], float]) -> float:
        return float(np.mean([get(r) for r in rs]))

    at_train = [
        (
            mean(lambda r, i=i: r.at_train[i][0]),
            mean(lambda r, i=i: r.at_train[i][1]),
            mean(lambda r, i=i: r.at_train[i][2]),
            mean(lambda r, i=i: r.at_train[i][3]),
        )
        for i in range(len(rs[0].at_train))
    ]
    best = (mean(lambda r: r.best[0]), mean(lambda r: r.best[1]), mean(lambda r: r.best[2]))
    return Result(
        rs[0].detector,
        mean(lambda r: r.fit_s),
        mean(lambda r: r.score_s),
        mean(lambda r: r.auc),
        at_train,
        best,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument(
        "--percentiles",
        default="99,99.5",
        help="train-score percentiles for the thresholds; the first gets P, R, F1 and flag%%, the rest F1",
    )
    ap.add_argument("--context", type=int, default=10, help="rows of causal context for the +context rows")
    ap.add_argument("--seeds", type=int, default=3, help="autoencoder seeds (the table shows seed 0)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads and IsolationForest jobs")
    ap.add_argument("--quick", action="store_true", help="every 4th row, 50 trees, 5 epochs, 1 seed")
    args = ap.parse_args()
    try:
        percentiles = [float(q) for q in args.percentiles.split(",")]
    except ValueError:
        ap.error(f"--percentiles: expected numbers separated by commas, got {args.percentiles!r}")
    if not all(0 < q <= 100 for q in percentiles):
        ap.error(f"--percentiles: expected numbers in (0, 100], got {args.percentiles!r}")
    if args.context < 2:
        ap.error(f"--context: expected at least 2 rows (a standard deviation needs two), got {args.context}")
    if args.seeds < 1 or args.threads < 1:
        ap.error(f"--seeds and --threads: expected at least 1, got {args.seeds} and {args.threads}")
    stride = 4 if args.quick else 1
    seeds = 1 if args.quick else args.seeds
    s = Settings(percentiles, args.context, 5 if args.quick else 60, 50 if args.quick else 200, args.threads)

    q = format(percentiles[0], "g")
    print(
        "SMD, point-wise precision / recall / F1 over every test row (NOT point-adjusted); ROC AUC over\n"
        f"every test row. Thresholds: 'train p{q}' = percentile {q} of the detector's scores on train (no\n"
        "test label used: the deployable figure); 'F1-best' = the best F1 over thresholds on the test\n"
        "labels (an upper bound, as in papers). Every detector fitted on train only; seeds fixed."
        f"\n{os.cpu_count()} cores; torch threads {args.threads}"
        + ("; --quick: every 4th row, 50 trees, 5 epochs, 1 seed" if args.quick else "")
    )
    t_all = time.perf_counter()
    per_machine: dict[str, list[Result]] = {}
    spreads: dict[str, dict[str, list[Result]]] = {}
    for m in MACHINES:
        results, spreads[m], (n_train, n_test, n_anom) = machine_results(
            args.data / f"{m}.npz", s, stride, seeds
        )
        per_machine[m] = results
        print(
            f"\n{m}: train {n_train} rows, test {n_test} rows, "
            f"{n_anom} anomalous ({100 * n_anom / n_test:.2f}%)"
        )
        print(table(results, percentiles))

    mean = [averaged([per_machine[m][i] for m in MACHINES]) for i in range(len(per_machine[MACHINES[0]]))]
    print(f"\nmean over {len(MACHINES)} machines (each figure averaged; times per machine)")
    print(table(mean, percentiles))
    if seeds > 1:
        print(f"\nautoencoder seeds 0-{seeds - 1}: min-max over seeds of F1 at train p{q} / F1-best / AUC")
        for m in MACHINES:
            for name, rs in spreads[m].items():
                cols = [
                    [r.at_train[0][2] for r in rs],
                    [r.best[2] for r in rs],
                    [r.auc for r in rs],
                ]
                span = " / ".join(f"{min(c):.3f}-{max(c):.3f}" for c in cols)
                print(f"  {m}  {name:20s} {span}")
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    print(
        "Published point-wise figures: none quoted. SMD figures in the literature (OmniAnomaly and later)\n"
        "are point-adjusted, with the threshold chosen on the test labels, over all 28 machines: not\n"
        "comparable."
    )


if __name__ == "__main__":
    main()
