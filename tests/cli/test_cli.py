"""The CLI through Typer's runner: exit codes and what a person reads."""

from __future__ import annotations

import contextlib
import math
import re

from typer.testing import CliRunner

import watchkeeper as wk
from watchkeeper.cli import app, fmt_duration, fmt_number

runner = CliRunner(env={"COLUMNS": "200"})


def _plain(text: str) -> str:
    """Output without rich's box drawing and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _logged_run(uri: str) -> wk.Run:
    run = wk.init(
        project="net", name="ae-1", job_type="train", config={"lr": 0.001}, model="kpi-ae", version=2, uri=uri
    )
    for i in range(5):
        run.log({"loss": 1.0 / (i + 1), "bad": math.nan})
    run.log({"examples": wk.Table(columns=["a"], data=[[1], [2]])})
    run.summary["best_auc"] = 0.97
    run.finish()
    return run


def test_runs_list_shows_runs(store_uri):
    run = _logged_run(store_uri)
    result = runner.invoke(app, ["runs", "list", "--uri", store_uri])
    assert result.exit_code == 0, result.output
    assert run.id in result.output and "ae-1" in result.output and "kpi-ae@2" in result.output
    assert "finished" in result.output
    assert "runs (1)" in result.output


def test_runs_show_prints_config_summary_and_last_values(store_uri):
    run = _logged_run(store_uri)
    result = runner.invoke(app, ["runs", "show", "ae-1", "--uri", store_uri])
    assert result.exit_code == 0, result.output
    out = result.output
    assert run.id in out and "kpi-ae version 2" in out
    assert "lr" in out and "0.001" in out
    assert "best_auc" in out and "0.97" in out
    loss_line = next(line for line in out.splitlines() if "│ loss" in line)
    assert loss_line.split("│")[2].strip() == "0.2"  # last value
    assert loss_line.split("│")[4].strip() == "5"  # points
    bad_line = next(line for line in out.splitlines() if "│ bad" in line)
    assert bad_line.split("│")[2].strip() == "NaN"
    assert "examples" in out and "2" in out


def test_runs_show_unknown_run_fails_cleanly(store_uri):
    _logged_run(store_uri)
    result = runner.invoke(app, ["runs", "show", "nope", "--uri", store_uri])
    assert result.exit_code == 1
    assert "no run with id or name 'nope'" in result.output


def test_runs_list_rejects_an_unknown_status(store_uri):
    result = runner.invoke(app, ["runs", "list", "--uri", store_uri, "--status", "sleeping"])
    assert result.exit_code == 2
    assert "status must be one of running, finished, failed, crashed, got 'sleeping'" in _plain(result.output)


def test_db_upgrade_on_a_current_database(empty_uri):
    from watchkeeper.store import migrate

    head = migrate.head()
    result = runner.invoke(app, ["db", "upgrade", "--uri", empty_uri])
    assert result.exit_code == 0 and f"none -> {head}" in result.output
    result = runner.invoke(app, ["db", "upgrade", "--uri", empty_uri])
    assert result.exit_code == 0 and f"already at schema revision {head}" in result.output
    result = runner.invoke(app, ["db", "current", "--uri", empty_uri])
    assert f"database: {head}" in result.output


def test_runs_show_lists_reference_profiles_and_artifacts(store_uri, tmp_path):
    # what the old training demo showed (the demo is now the simulated deployment, tests/test_demo.py)
    run = wk.init(project="net", name="ae-ref", job_type="train", model="kpi-ae", version="1", uri=store_uri)
    run.log_reference({"latency_ms_mean": [float(i) for i in range(200)], "device": ["edge", "core"] * 100})
    model = tmp_path / "kpi-ae.json"
    model.write_text('{"weights": [0.5, -0.25]}')
    run.log_artifact(model, name="kpi-ae", type="model")
    run.finish()
    result = runner.invoke(app, ["runs", "show", "ae-ref", "--uri", store_uri])
    assert result.exit_code == 0, result.output
    assert "reference profiles" in result.output and "200" in result.output
    assert "kpi-ae:v1" in result.output and "model" in result.output


def test_formatting_helpers():
    assert (
        fmt_number(math.nan) == "NaN" and fmt_number(-math.inf) == "-inf" and fmt_number(1 / 3) == "0.333333"
    )
    assert fmt_duration(3725) == "1h02m05s" and fmt_duration(65) == "1m05s"


def test_report_compares_files_and_directories(tmp_path):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    (tmp_path / "ref").mkdir()
    for i in range(3):
        pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(list("abc"), 2000)}).to_parquet(
            tmp_path / "ref" / f"part{i}.parquet"
        )
    pd.DataFrame({"x": rng.normal(0.5, 1, 3000), "c": rng.choice(list("abc"), 3000)}).to_csv(
        tmp_path / "cur.csv", index=False
    )
    out = tmp_path / "drift.html"
    result = runner.invoke(app, ["report", str(tmp_path / "ref"), str(tmp_path / "cur.csv"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 of 2 compared columns drifted (x)" in _plain(result.output)
    assert out.exists() and "<svg" in out.read_text()


def test_report_names_a_missing_input(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path / "nope"), str(tmp_path / "nope2")])
    assert result.exit_code == 1 and "no file or directory at" in _plain(result.output)


def test_traffic_merges_the_windows_of_a_deployment(sqlite_uri):
    run = wk.init(
        project="shop", model="ranker", version="7", uri=sqlite_uri, window=3600, system_metrics=False
    )

    @run.watch
    def predict(x):
        if x % 4 == 0:
            raise TimeoutError
        return x

    for i in range(40):
        with contextlib.suppress(TimeoutError):
            predict(i)
    run.log_usage(100, 10, model="gpt-x")
    run.finish()
    result = runner.invoke(app, ["traffic", "ranker@7", "-p", "shop", "--uri", sqlite_uri])
    out = _plain(result.output)
    assert result.exit_code == 0, out
    row = next(line for line in out.splitlines() if "predict" in line)
    assert "40" in row.split() and "TimeoutError 10" in row and "25.00%" in row
    assert "gpt-x" in out
    result = runner.invoke(app, ["traffic", "ranker@8", "-p", "shop", "--uri", sqlite_uri])
    assert result.exit_code == 1 and "no windows of ranker@8" in _plain(result.output)
    result = runner.invoke(app, ["traffic", "ranker@7", "--since", "soon", "--uri", sqlite_uri])
    assert result.exit_code == 2 and "expected a duration such as 15m" in _plain(result.output)
