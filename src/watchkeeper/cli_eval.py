"""``watchkeeper eval nab DIR``: a streaming detector preset scored by the Numenta Anomaly Benchmark's rules.

Kept apart from ``cli.py`` (which registers it) so that each file can be read in one sitting."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from watchkeeper.cli import _console, app

eval_app = typer.Typer(help="Evaluate anomaly detectors on labelled benchmarks.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")

HTM = "numenta"  # the published Numenta HTM detector, the anchor


@eval_app.command("nab")
def eval_nab(
    directory: Annotated[
        Path, typer.Argument(help="A NAB data folder (combined_windows.json + CSV folders).")
    ],
    preset_name: Annotated[str, typer.Option("--preset", help="The detector preset to score.")] = "nab",
    profile: Annotated[
        list[str] | None,
        typer.Option("--profile", help="NAB profile(s): standard, reward_low_FP_rate, reward_low_FN_rate."),
    ] = None,
    folders: Annotated[
        str | None, typer.Option(help="Only these data folders, comma-separated (default: all).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures as JSON here.")
    ] = None,
) -> None:
    """Score every series causally with the preset, choose one threshold per profile over all files (NAB's
    rules), and print the normalised score per folder beside the published detectors'."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from watchkeeper.anomaly import nab
    from watchkeeper.anomaly.presets import preset

    err = Console(stderr=True)
    profiles = profile or list(nab.PROFILES)
    for p in profiles:
        if p not in nab.PROFILES:
            err.print(
                f"[red]error:[/red] --profile: unknown profile {p!r} (expected one of {list(nab.PROFILES)})"
            )
            raise typer.Exit(2)
    try:
        chosen = preset(preset_name)
        files = nab.load_corpus(directory, folders.split(",") if folders else None)
    except (FileNotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    t0 = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as bar:
        task = bar.add_task(f"scoring with {chosen.name}", total=len(files))
        scores = nab.run_scorer(files, chosen.scorer(), progress=lambda f: bar.advance(task))
    seconds = time.perf_counter() - t0
    rows = sum(len(f) for f in files)
    published = nab.published(directory)
    console = _console()
    console.print(
        f"{chosen.name}: {chosen.kind} {chosen.params}\n"
        f"scored {len(files)} files, {rows} rows in {seconds:.1f} s ({rows / seconds:,.0f} rows/s)"
    )
    doc: dict = {"preset": chosen.name, "kind": chosen.kind, "params": chosen.params, "profiles": {}}
    for p in profiles:
        sw = nab.sweep(files, scores, p)
        fixed = chosen.thresholds.get(p)
        at_fixed = (
            nab.Sweep(p, fixed, tuple(nab.score_file(f, scores[f.key], fixed, p) for f in files))
            if fixed is not None
            else None
        )
        table = RichTable(title=f"NAB {p}: one threshold over all {len(files)} files ({sw.threshold:.6g})")
        for col in (
            "folder",
            "ours",
            "at preset threshold",
            "Numenta HTM",
            "best published",
            "found/missed/FP",
        ):
            table.add_column(col, justify="left" if col == "folder" else "right")
        entry: dict = {"threshold": sw.threshold, "preset_threshold": fixed, "folders": {}}
        for folder, score in sw.by_folder().items():
            theirs = {d: v for (d, prof, sub), v in published.items() if prof == p and sub == folder}
            best = max(theirs.items(), key=lambda kv: kv[1]) if theirs else None
            found, missed, fp = sw.counts(folder)
            fixed_score = at_fixed.by_folder()[folder] if at_fixed is not None else None
            table.add_row(
                folder,
                f"{score:.2f}",
                "" if fixed_score is None else f"{fixed_score:.2f}",
                "" if HTM not in theirs else f"{theirs[HTM]:.2f}",
                "" if best is None else f"{best[1]:.2f} ({best[0]})",
                f"{found}/{missed}/{fp}",
            )
            entry["folders"][folder] = {
                "score": score,
                "at_preset_threshold": fixed_score,
                "numenta": theirs.get(HTM),
                "best_published": None if best is None else {"detector": best[0], "score": best[1]},
                "windows_found": found,
                "windows_missed": missed,
                "false_positive_rows": fp,
            }
        console.print(table)
        doc["profiles"][p] = entry
    if output is not None:
        output.write_text(json.dumps(doc, indent=2))
        console.print(f"figures: {output}")
