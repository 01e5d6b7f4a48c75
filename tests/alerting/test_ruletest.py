"""``watchkeeper rules test``: promtool-style rule unit tests; and the alerting commands of the CLI."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from watchkeeper.alerting.ruletest import RuleTestError, expand_values, parse_series, run_rule_tests
from watchkeeper.cli import app
from watchkeeper.cli_alerts import load_settings

DATA = Path(__file__).parent / "data"
runner = CliRunner()


def test_the_expanding_notation():
    got = expand_values("1+2x3 _ 7 5-1x2 4x1 _x1 NaN -Inf")
    assert got[:13] == [1.0, 3.0, 5.0, 7.0, None, 7.0, 5.0, 4.0, 3.0, 4.0, 4.0, None, None]
    assert math.isnan(got[13]) and got[14] == -math.inf and len(got) == 15
    with pytest.raises(RuleTestError, match=r"cannot read '1\+x3'"):
        expand_values("1+x3")


def test_series_notation():
    assert parse_series('drift_score{model="m", feature="a\\"b"}') == (
        "drift_score",
        {"model": "m", "feature": 'a"b'},
    )
    assert parse_series("system/cpu_percent") == ("system/cpu_percent", {})
    with pytest.raises(RuleTestError, match="cannot read the labels"):
        parse_series("x{model=m}")


def test_the_issue_rules_pass_their_tests():
    result = run_rule_tests(DATA / "rules_test.yml")
    assert (result.errors, [str(f) for f in result.failures], result.checks) == ([], [], 10)


def test_a_wrong_expectation_fails_and_says_what_fired(tmp_path):
    shutil.copy(DATA / "rules.yml", tmp_path / "rules.yml")
    text = (DATA / "rules_test.yml").read_text().replace("eval_time: 6m", "eval_time: 8m", 1)
    (tmp_path / "t.yml").write_text(text)
    result = run_rule_tests(tmp_path / "t.yml")
    (failure,) = result.failures
    assert failure.eval_time == 480.0 and failure.expected == []
    assert [a["labels"]["endpoint"] for a in failure.got] == ["predict"]
    out = runner.invoke(app, ["rules", "test", str(tmp_path / "t.yml")])
    assert out.exit_code == 1 and "FAILED" in out.output and "9/10 checks passed" in out.output


def test_rules_test_passes_through_the_cli():
    out = runner.invoke(app, ["rules", "test", str(DATA / "rules_test.yml")])
    assert out.exit_code == 0, out.output
    assert "10/10 checks passed: SUCCESS" in out.output


def test_rules_check_names_the_line_and_column(tmp_path):
    ok = runner.invoke(app, ["rules", "check", str(DATA / "rules.yml")])
    assert ok.exit_code == 0 and "4 rule(s)" in ok.output
    bad = tmp_path / "bad.yml"
    bad.write_text("- name: A\n  expr: rate(latency_p99_ms[5x]) > 1\n")
    out = runner.invoke(app, ["rules", "check", str(bad)])
    assert out.exit_code == 1
    assert f"{bad}:2:" in out.output


def test_silences_from_the_cli(tmp_path):
    uri = f"sqlite:///{tmp_path}/wk.db"
    out = runner.invoke(
        app,
        [
            "silence",
            "add",
            "-m",
            "model=fraud-clf",
            "-m",
            "feature=~amount|age",
            "--for",
            "2h",
            "--comment",
            "retraining",
            "--uri",
            uri,
        ],
    )
    assert out.exit_code == 0, out.output
    sid = out.output.split()[1]
    listed = runner.invoke(app, ["silence", "list", "--uri", uri])
    assert sid in listed.output and "feature=~amount|age" in listed.output
    assert runner.invoke(app, ["silence", "expire", sid, "--uri", uri]).exit_code == 0
    assert sid not in runner.invoke(app, ["silence", "list", "--uri", uri]).output
    assert runner.invoke(app, ["silence", "expire", sid, "--uri", uri]).exit_code == 1
    wrong = runner.invoke(app, ["silence", "add", "-m", "model", "--uri", uri])
    assert wrong.exit_code == 2 and "expected label=value" in wrong.output


def test_monitor_settings_from_a_file_are_checked_by_key(tmp_path):
    from watchkeeper.monitor.base import MonitorSettings

    s = MonitorSettings.from_mapping({"reference": "prod", "label_horizon": "2d", "daily_budget": {"m": 5}})
    assert (s.reference, s.label_horizon, dict(s.daily_budget)) == ("prod", 172800.0, {"m": 5})
    with pytest.raises(ValueError, match=r"monitor.alpha: expected a number between 0 and 1, got 2"):
        MonitorSettings.from_mapping({"alpha": 2})
    with pytest.raises(ValueError, match=r"unknown settings \['refrence'\]"):
        MonitorSettings.from_mapping({"refrence": "x"})
    bad = tmp_path / "settings.yml"
    bad.write_text("daily_budget: {m: -1}\n")
    with pytest.raises(typer.BadParameter, match=r"daily_budget: expected a mapping of model name"):
        load_settings(bad)
    out = runner.invoke(
        app, ["monitor", "--once", "--settings", str(bad), "--uri", f"sqlite:///{tmp_path}/w.db"]
    )
    assert out.exit_code == 2 and "--settings" in out.output
