"""The Numenta Anomaly Benchmark's scoring rules (NAB v1), written from their published description.

A detector scores every row of a file in order, using only the rows before it, with a number in [0, 1]; a
row is a detection when its score is at or above the threshold. Per file, with profile weights
``A_TP, A_FN, A_FP`` and the scaled sigmoid ``sigma(y) = 2 / (1 + e^(5 y)) - 1`` (``-1`` for ``y >= 3``):

- the first 15% of the rows (at most 750) are a probationary period and count for nothing;
- in each labelled window only the earliest detection counts, for ``A_TP * sigma(y) / sigma(-1)`` with
  ``y = -(right - i + 1) / width`` (-1 at the window's first row, near 0 at its last): a detection on the
  window's first row earns exactly ``A_TP`` (NAB's scorer divides by ``sigma(-1)``, and its published scores
  were computed so);
- a window without a detection costs ``A_FN``;
- every detection outside the windows costs ``A_FP * sigma(y)`` (``sigma`` is negative there), ``y`` being
  its distance past the end of the preceding window over that window's ``width - 1``, and ``-A_FP`` when no
  window precedes it (so a detection just after a window costs little, one far from any window nearly
  ``A_FP``).

One threshold per profile is chosen over all scored files together to maximise the summed raw score
(:func:`sweep`, exact: every distinct score is tried), and a set of files reports the normalised score
``100 (S - S_null) / (S_perfect - S_null)``, where the null detector never fires and the perfect one fires
on the first row of every window and nowhere else.

Reference: A. Lavin, S. Ahmad, "Evaluating Real-time Anomaly Detection Algorithms -- the Numenta Anomaly
Benchmark", IEEE ICMLA 2015; the rules as summarised in the corpus' README (../shared/data/nab/README.md).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PROBATION_SHARE = 0.15
PROBATION_MAX = 750
#: sigma(-1): a detection on a window's first row, the most a detection can earn before normalising
MAX_TP = float(2.0 / (1.0 + math.exp(-5.0)) - 1.0)


@dataclass(frozen=True, slots=True)
class Profile:
    """The weights of one NAB application profile."""

    name: str
    tp: float
    fn: float
    fp: float


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("standard", 1.0, 1.0, 0.11),
        Profile("reward_low_FP_rate", 1.0, 1.0, 0.22),
        Profile("reward_low_FN_rate", 1.0, 2.0, 0.11),
    )
}


@dataclass(slots=True)
class NabFile:
    """One series of the corpus: ``key`` is ``"folder/file.csv"``; ``windows`` are inclusive row ranges."""

    key: str
    timestamps: np.ndarray  # datetime64[s]
    values: np.ndarray  # float64
    windows: list[tuple[int, int]] = field(default_factory=list)

    @property
    def folder(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def probation(self) -> int:
        return probation_length(len(self.values))

    def __len__(self) -> int:
        return len(self.values)


def probation_length(n: int) -> int:
    """Rows at the start of a file that are not scored: 15% of them, at most 750."""
    return int(min(math.floor(PROBATION_SHARE * n), PROBATION_SHARE * 5000))


def scaled_sigmoid(y: np.ndarray | float) -> np.ndarray:
    """NAB's ``sigma(y) = 2 / (1 + e^(5 y)) - 1``, and -1 from ``y = 3`` on."""
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(over="ignore"):
        s = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y >= 3.0, -1.0, s)


# -- the corpus --


def load_corpus(root: str | Path, folders: Iterable[str] | None = None) -> list[NabFile]:
    """The labelled series under ``root`` (a NAB data folder holding ``combined_windows.json`` and one folder
    of CSVs per source), in key order; ``folders`` limits them."""
    root = Path(root)
    windows_path = root / "combined_windows.json"
    if not windows_path.is_file():
        raise FileNotFoundError(f"eval nab: {root} has no combined_windows.json (expected a NAB data folder)")
    labelled: dict[str, list[list[str]]] = json.loads(windows_path.read_text())
    wanted = None if folders is None else set(folders)
    files = []
    for key in sorted(labelled):
        folder = key.split("/", 1)[0]
        if wanted is not None and folder not in wanted:
            continue
        path = root / key
        if not path.is_file():
            continue  # the labels cover the whole corpus; a subset holds some of its folders
        ts, vals = _read_series(path)
        files.append(NabFile(key, ts, vals, _window_rows(key, ts, labelled[key])))
    if wanted is not None and (missing := wanted - {f.folder for f in files}):
        raise FileNotFoundError(f"eval nab: no labelled CSVs under {root} for folder(s) {sorted(missing)}")
    if not files:
        raise FileNotFoundError(f"eval nab: no labelled CSVs under {root}")
    return files


def _read_series(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or [c.strip() for c in rows[0][:2]] != ["timestamp", "value"]:
        raise ValueError(f"eval nab: {path}: expected a header 'timestamp,value', got {rows[:1]}")
    try:
        ts = np.array([r[0] for r in rows[1:]], dtype="datetime64[s]")
        vals = np.array([float(r[1]) for r in rows[1:]], dtype=np.float64)
    except (ValueError, IndexError) as exc:
        raise ValueError(f"eval nab: {path}: unreadable row ({exc})") from exc
    return ts, vals


def _window_rows(key: str, ts: np.ndarray, windows: list[list[str]]) -> list[tuple[int, int]]:
    out = []
    for lo, hi in windows:
        a = np.datetime64(lo.split(".")[0].replace(" ", "T"), "s")
        b = np.datetime64(hi.split(".")[0].replace(" ", "T"), "s")
        inside = np.nonzero((ts >= a) & (ts <= b))[0]
        if len(inside) == 0:
            raise ValueError(f"eval nab: {key}: window {lo} .. {hi} holds no rows")
        out.append((int(inside[0]), int(inside[-1])))
    return out


# -- scoring --


@dataclass(slots=True)
class _Rows:
    """A file's scored rows with what detecting each would be worth."""

    index: np.ndarray  # row numbers (after probation)
    window: np.ndarray  # window number within the file, -1 outside
    credit: np.ndarray  # A_TP * sigma(y) inside a window (first detection), A_FP * sigma(y) outside
    n_windows: int


def _rows(f: NabFile, p: Profile) -> _Rows:
    n = len(f)
    start = f.probation
    idx = np.arange(start, n)
    window = np.full(len(idx), -1, dtype=np.int64)
    credit = np.full(len(idx), -p.fp, dtype=np.float64)
    counted = 0
    prev_right, prev_width = None, None
    bounds = sorted(f.windows)
    for w, (lo, hi) in enumerate(bounds):
        width = hi - lo + 1
        # rows after the previous window and before this one
        if prev_right is not None:
            gap = (idx > prev_right) & (idx < lo)
            credit[gap] = p.fp * scaled_sigmoid((idx[gap] - prev_right) / max(prev_width - 1, 1))
        inside = (idx >= lo) & (idx <= hi)
        if inside.any():
            counted += 1
        window[inside] = w
        credit[inside] = p.tp * scaled_sigmoid(-(hi - idx[inside] + 1) / width) / MAX_TP
        prev_right, prev_width = hi, width
    if prev_right is not None:
        after = idx > prev_right
        credit[after] = p.fp * scaled_sigmoid((idx[after] - prev_right) / max(prev_width - 1, 1))
    # windows wholly inside the probationary period are not scored: renumber the counted ones
    if counted != len(bounds):
        used = np.unique(window[window >= 0])
        remap = np.full(len(bounds), -1)
        remap[used] = np.arange(len(used))
        window = np.where(window >= 0, remap[np.maximum(window, 0)], -1)
    return _Rows(idx, window, credit, counted)


@dataclass(frozen=True, slots=True)
class FileScore:
    """One file's raw score at a threshold, with its parts."""

    key: str
    raw: float
    null: float
    perfect: float
    tp: int  # windows detected
    fn: int  # windows missed
    fp: int  # detections outside every window


def score_file(
    f: NabFile, scores: np.ndarray, threshold: float, profile: Profile | str = "standard"
) -> FileScore:
    """One file's raw NAB score when rows scoring ``>= threshold`` are detections."""
    p = PROFILES[profile] if isinstance(profile, str) else profile
    s = _check_scores(f, scores)
    r = _rows(f, p)
    hit = s[r.index] >= threshold
    raw = -p.fn * r.n_windows
    tp = 0
    for w in range(r.n_windows):
        inw = np.nonzero((r.window == w) & hit)[0]
        if len(inw):
            raw += p.fn + r.credit[inw[0]]
            tp += 1
    fp_rows = hit & (r.window < 0)
    raw += float(r.credit[fp_rows].sum())
    null, perfect = _null_perfect(r, p)
    return FileScore(f.key, float(raw), null, perfect, tp, r.n_windows - tp, int(fp_rows.sum()))


def _null_perfect(r: _Rows, p: Profile) -> tuple[float, float]:
    null = -p.fn * r.n_windows
    perfect = 0.0
    for w in range(r.n_windows):
        perfect += r.credit[np.nonzero(r.window == w)[0][0]]
    return float(null), float(perfect)


def _check_scores(f: NabFile, scores: Any) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (len(f),):
        raise ValueError(f"eval nab: {f.key}: expected {len(f)} scores, one per row, got shape {s.shape}")
    return np.nan_to_num(s, nan=0.0)


@dataclass(frozen=True, slots=True)
class Sweep:
    """The best threshold of one profile over a set of files, and each file's score at it."""

    profile: str
    threshold: float
    files: tuple[FileScore, ...]

    def normalised(self, keys: Iterable[str] | None = None) -> float:
        """``100 (S - S_null) / (S_perfect - S_null)`` over ``keys`` (default: every file)."""
        chosen = self.files if keys is None else [f for f in self.files if f.key in set(keys)]
        s = sum(f.raw for f in chosen)
        null = sum(f.null for f in chosen)
        perfect = sum(f.perfect for f in chosen)
        if perfect == null:
            return float("nan")
        return 100.0 * (s - null) / (perfect - null)

    def by_folder(self) -> dict[str, float]:
        folders = sorted({f.key.split("/", 1)[0] for f in self.files})
        return {d: self.normalised([f.key for f in self.files if f.key.startswith(d + "/")]) for d in folders}

    def counts(self, folder: str | None = None) -> tuple[int, int, int]:
        """(windows detected, windows missed, false-positive rows), over ``folder`` or every file."""
        chosen = [f for f in self.files if folder is None or f.key.startswith(folder + "/")]
        return sum(f.tp for f in chosen), sum(f.fn for f in chosen), sum(f.fp for f in chosen)


def sweep(
    files: Sequence[NabFile], scores: Mapping[str, np.ndarray], profile: Profile | str = "standard"
) -> Sweep:
    """The threshold that maximises the summed raw score of ``files`` (each scored by ``scores[key]``),
    found exactly: rows are taken in falling score order, and the total after each distinct score is the
    total at that threshold (ties resolved to the higher threshold, i.e. fewer detections)."""
    p = PROFILES[profile] if isinstance(profile, str) else profile
    all_s, all_delta = [], []
    base = 0.0
    for f in files:
        s = _check_scores(f, scores[f.key])
        r = _rows(f, p)
        sc = s[r.index]
        delta = np.where(r.window < 0, r.credit, 0.0)
        base -= p.fn * r.n_windows
        # Inside a window the credit is that of its earliest detection so far: taking the window's rows in
        # falling score order, the earliest row changes only when a row before it comes in.
        for w in range(r.n_windows):
            rows = np.nonzero(r.window == w)[0]
            order = rows[np.argsort(-sc[rows], kind="stable")]
            earliest = np.minimum.accumulate(order)
            held = r.credit[earliest]
            delta[order] = np.diff(held, prepend=-p.fn)
        all_s.append(sc)
        all_delta.append(delta)
    s = np.concatenate(all_s)
    d = np.concatenate(all_delta)
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    total = base + np.cumsum(d[order])
    # evaluate only at the end of each run of equal scores
    ends = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s_sorted) - 1]
    totals = np.r_[base, total[ends]]
    thresholds = np.r_[np.inf, s_sorted[ends]]
    best = int(np.argmax(totals))  # argmax takes the first maximum: the highest threshold
    thr = float(thresholds[best])
    if not math.isfinite(thr):
        thr = 1.0 + 1e-9 if len(s_sorted) == 0 else float(s_sorted[0]) + 1e-9  # never fire
    return Sweep(p.name, thr, tuple(score_file(f, scores[f.key], thr, p) for f in files))


# -- running a detector --

#: A causal scorer: values (and timestamps) of a whole file in, one score in [0, 1] per row out, each
#: computed from the rows up to and including its own.
StreamScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def run_scorer(
    files: Sequence[NabFile], scorer: StreamScorer, progress: Callable[[NabFile], None] | None = None
) -> dict[str, np.ndarray]:
    """Score every file with ``scorer`` (fresh for each file: it must keep no state across calls)."""
    out = {}
    for f in files:
        s = np.asarray(scorer(f.values.copy(), f.timestamps.copy()), dtype=np.float64)
        if s.shape != (len(f),):
            raise ValueError(f"eval nab: the scorer returned {s.shape} scores for {f.key}, expected {len(f)}")
        if np.nanmin(s) < 0 or np.nanmax(s) > 1:
            raise ValueError(
                f"eval nab: scores must lie in [0, 1] (NAB's rule); {f.key} has "
                f"{np.nanmin(s):.4g} .. {np.nanmax(s):.4g}"
            )
        out[f.key] = s
        if progress is not None:
            progress(f)
    return out


def published(root: str | Path) -> dict[tuple[str, str, str], float]:
    """``(detector, profile, folder) -> normalised score`` from ``published_subset_scores.csv``."""
    path = Path(root) / "published_subset_scores.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        return {
            (r["detector"], r["profile"], r["subset"]): float(r["normalized_score"])
            for r in csv.DictReader(fh)
        }
