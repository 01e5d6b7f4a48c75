"""NAB (the subset in ../shared/data/nab): a streaming detector preset scored by NAB's rules, beside the
published detectors, with one threshold per profile over all files.

    python bench/bench_nab.py                 # the "nab" preset, all three profiles, + leave-one-folder-out
    python bench/bench_nab.py --write-preset  # also store the swept thresholds and figures in presets.json

Leave-one-folder-out: for each folder the threshold is chosen on the two other folders and the held-out
folder is scored at it (the settings themselves were chosen on all 30 files; see the module docstrings of
watchkeeper.anomaly.ensemble for a check that chose them per fold too).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from watchkeeper.anomaly import nab
from watchkeeper.anomaly.presets import _FILE as PRESETS_FILE
from watchkeeper.anomaly.presets import preset

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"


def _score(args: tuple[str, np.ndarray, np.ndarray]) -> np.ndarray:
    name, values, ts = args
    return preset(name).detector().score_series(values, ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--preset", default="nab")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--write-preset", action="store_true")
    args = ap.parse_args()

    files = nab.load_corpus(args.data)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        got = list(pool.map(_score, [(args.preset, f.values, f.timestamps) for f in files]))
    seconds = time.perf_counter() - t0
    scores = {f.key: s for f, s in zip(files, got, strict=True)}
    rows = sum(len(f) for f in files)
    print(
        f"preset {args.preset}: {len(files)} files, {rows} rows in {seconds:.1f} s ({args.workers} processes)"
    )
    published = nab.published(args.data)
    folders = sorted({f.folder for f in files})
    thresholds, figures = {}, {}
    for profile in nab.PROFILES:
        sw = nab.sweep(files, scores, profile)
        thresholds[profile] = sw.threshold
        lofo = {}
        for held in folders:
            train = [f for f in files if f.folder != held]
            thr = nab.sweep(train, scores, profile).threshold
            test = [nab.score_file(f, scores[f.key], thr, profile) for f in files if f.folder == held]
            lofo[held] = nab.Sweep(profile, thr, tuple(test)).normalised()
        found, missed, fp = sw.counts()
        print(
            f"\n{profile}: threshold {sw.threshold:.6g}; windows found {found}, missed {missed}; FP rows {fp}"
        )
        print(f"{'folder':24s} {'ours':>7s} {'LOFO':>7s} {'Numenta HTM':>12s}  best published")
        figures[profile] = {}
        for folder, score in sw.by_folder().items():
            theirs = {d: v for (d, p, sub), v in published.items() if p == profile and sub == folder}
            best = max(theirs.items(), key=lambda kv: kv[1])
            htm = theirs.get("numenta", float("nan"))
            print(f"{folder:24s} {score:7.2f} {lofo[folder]:7.2f} {htm:12.2f}  {best[1]:.2f} ({best[0]})")
            figures[profile][folder] = {
                "score": round(score, 2),
                "lofo": round(lofo[folder], 2),
                "numenta": htm,
            }
    if args.write_preset:
        doc = json.loads(PRESETS_FILE.read_text())
        doc[args.preset]["thresholds"] = thresholds
        doc[args.preset]["figures"] = figures
        PRESETS_FILE.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote the thresholds and figures of {args.preset!r} to {PRESETS_FILE}")


if __name__ == "__main__":
    main()
