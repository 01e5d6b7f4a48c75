"""``watchkeeper eval nab``: the preset scored by NAB's rules, through Typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from watchkeeper.anomaly import nab, preset
from watchkeeper.cli import app

runner = CliRunner(env={"COLUMNS": "200"})
DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"the NAB subset is not at {DATA}")


def test_eval_nab_prints_and_writes_the_figures_of_one_folder(tmp_path):
    out = tmp_path / "nab.json"
    res = runner.invoke(
        app, ["eval", "nab", str(DATA), "--folders", "artificialWithAnomaly", "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert set(doc["profiles"]) == set(nab.PROFILES)
    # the CLI's figure is the sweep of the preset's scores over these six files
    files = nab.load_corpus(DATA, ["artificialWithAnomaly"])
    scores = nab.run_scorer(files, preset("nab").scorer())
    want = nab.sweep(files, scores, "standard").normalised()
    got = doc["profiles"]["standard"]["folders"]["artificialWithAnomaly"]
    assert got["score"] == pytest.approx(want)
    assert got["numenta"] == 70.22  # the published figure beside it
    assert "artificialWithAnomaly" in res.output and f"{want:.2f}" in res.output


def test_eval_nab_refuses_a_missing_folder_and_an_unknown_profile(tmp_path):
    res = runner.invoke(app, ["eval", "nab", str(tmp_path)])
    assert res.exit_code == 1
    assert "no combined_windows.json" in res.output
    res = runner.invoke(app, ["eval", "nab", str(DATA), "--profile", "strict"])
    assert res.exit_code == 2
    assert "unknown profile 'strict'" in res.output
