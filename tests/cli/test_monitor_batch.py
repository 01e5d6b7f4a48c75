"""``watchkeeper monitor-batch`` end to end, on SQLite and PostgreSQL: half a day of logged predictions in
CSV files (ISO-8601 times) with one drifted hour goes through the monitors and a drift rule whose webhook, a
real HTTP server on 127.0.0.1, gets one firing and one resolved notification; run again, the command writes
nothing to any table and notifies nobody. Bad options are refused naming the option."""

from __future__ import annotations

import datetime as dt
import json
import re
import runpy
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from watchkeeper.cli import app
from watchkeeper.profile import profile
from watchkeeper.store import Batch, ProfileLog, Store
from watchkeeper.store.schema import metadata

T0_US = 1_709_251_200 * 1_000_000  # 2024-03-01 00:00 UTC, in microseconds
HOUR_US = 3_600_000_000
DRIFT_HOUR = 7


_servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))  # tests/servers.py
Sink = _servers["WebhookSink"]


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def write_partition(directory: Path, hours: int = 12, per_hour: int = 200, seed: int = 3) -> dict:
    """CSV files of logged predictions with ISO-8601 times; ``x`` drifts in DRIFT_HOUR; 60% labelled."""
    rng = np.random.default_rng(seed)
    n = hours * per_hour
    us = np.sort(T0_US + rng.integers(0, hours * HOUR_US, n))
    hour = (us - T0_US) // HOUR_US
    x = rng.normal(0.0, 1.0, n)
    x[hour == DRIFT_HOUR] += 2.5
    pred = (x > 0).astype(np.int64)
    y = ((x + rng.normal(0.0, 0.8, n)) > 0).astype(np.int64)
    known = rng.random(n) < 0.6
    iso = [
        dt.datetime.fromtimestamp(u // 1_000_000, dt.UTC).replace(microsecond=int(u % 1_000_000)).isoformat()
        for u in us.tolist()
    ]
    table = pa.table(
        {
            "ts": iso,
            "request_id": [f"r{i}" for i in range(n)],
            "x": x,
            "z": rng.normal(5.0, 2.0, n),
            "prediction": pred,
            "score": 1.0 / (1.0 + np.exp(-2.0 * x)),
            "y": pa.array(y, mask=~known),
        }
    )
    directory.mkdir(parents=True)
    half = n // 2
    pacsv.write_csv(table.slice(0, half), directory / "part-0.csv")
    pacsv.write_csv(table.slice(half), directory / "part-1.csv")
    return {"n": n, "hour": hour, "pred": pred, "y": y, "known": known}


def store_reference(uri: str) -> None:
    rng = np.random.default_rng(8)
    ref = profile({"x": rng.normal(0.0, 1.0, 4000), "z": rng.normal(5.0, 2.0, 4000)})
    with Store(uri) as store:
        store.write(
            Batch(
                profiles=[
                    ProfileLog(
                        "shop",
                        "model:clf@2",
                        "reference",
                        0.0,
                        0.0,
                        ref.rows,
                        ref.to_bytes(),
                        ref.format_version,
                        reference=("clf", "2", "train"),
                    )
                ]
            )
        )


def table_counts(uri: str) -> dict[str, int]:
    with Store(uri) as store, store.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in metadata.sorted_tables
        }


def flat(text: str) -> str:
    """CLI output with rich's boxes and line wrapping taken out."""
    return " ".join(re.sub(r"[│┃╭╮╰╯─━┏┓┗┛┡┩└┘┌┐├┤┼╇]", " ", text).split())


def test_monitor_batch_end_to_end_then_a_rerun_changes_nothing(tmp_path, store_uri, sink):
    data = write_partition(tmp_path / "dt=2024-03-01")
    store_reference(store_uri)
    rules = tmp_path / "rules.yml"
    rules.write_text(
        f"""
notifiers:
  - {{name: hook, type: webhook, url: "{sink.url}"}}
route:
  notifiers: [hook]
rules:
  - name: InputDrift
    expr: drift_score > 0.2
"""
    )
    args = [
        "monitor-batch",
        str(tmp_path / "dt=2024-03-01"),
        "--model",
        "clf",
        "--version",
        "2",
        "--project",
        "shop",
        "--by-time",
        "ts",
        "--window",
        "1h",
        "--id-column",
        "request_id",
        "--label-column",
        "y",
        "--rules",
        str(rules),
        "--eval-interval",
        "5m",
        "--uri",
        store_uri,
    ]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    out = flat(first.output)
    labelled = int(data["known"].sum())
    for line in (
        "windows 12 (starting 2024-03-01 00:00 UTC .. 2024-03-01 11:00 UTC)",
        f"rows {data['n']}",
        f"predictions stored {data['n']}",
        f"labels stored {labelled}",
        "alerts fired 1",
        "notifications 2",
        "errors 0",
    ):
        assert line in out, out

    # one firing notification, for x in the drifted hour's window only (z never drifts), then its resolution
    firing = [b for b in sink.bodies if b["status"] == "firing"]
    resolved = [b for b in sink.bodies if b["status"] == "resolved"]
    assert len(firing) == 1 and len(resolved) == 1, sink.bodies
    (alert,) = firing[0]["alerts"]
    assert alert["labels"]["feature"] == "x" and alert["labels"]["project"] == "shop"
    assert alert["labels"]["model"] == "clf" and alert["labels"]["version"] == "2"
    assert alert["startsAt"].startswith(f"2024-03-01T{DRIFT_HOUR + 1:02d}:00:00")

    with Store(store_uri) as store:
        windows = store.profiles.windows("shop", "model:clf@2")
        assert [w.rows for w in windows] == np.bincount(data["hour"], minlength=12).tolist()
        (acc,) = store.signals.series("shop", subject="model:clf@2", name="accuracy")
        got = store.signals.points_in(acc.id)
        for t, value in zip(got.t.tolist(), got.value.tolist(), strict=True):
            h = int((t * 1_000_000 - T0_US) // HOUR_US) - 1
            rows = (data["hour"] == h) & data["known"]
            assert value == pytest.approx(np.mean(data["pred"][rows] == data["y"][rows]), abs=1e-12)
        assert len(got.t) == 12

    before = table_counts(store_uri)
    again = CliRunner().invoke(app, [*args, "--json"])
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert summary["status"] == "already monitored" and summary["windows"] == 12
    assert summary["notifications"] == 0 and summary["signal_points"] == 0
    assert table_counts(store_uri) == before
    assert len(sink.bodies) == 2


@pytest.mark.parametrize(
    ("extra", "option", "words"),
    [
        (["--by-time", "when"], "--by-time", "no column 'when'"),
        (["--by-time", "ts", "--window", "0s"], "--window", "above 0"),
        (["--by-time", "ts", "--window", "soon"], "--window", "duration"),
        (["--by-time", "ts", "--outputs", "prediction,nope"], "--outputs", "no column 'nope'"),
        (["--by-time", "ts", "--label-column", "y"], "--label-column", "give --id-column too"),
        (["--by-time", "ts", "--columns", "x,,z"], "--columns", "separated by commas"),
    ],
)
def test_bad_options_are_refused_naming_the_option_and_nothing_is_written(tmp_path, extra, option, words):
    write_partition(tmp_path / "part", hours=1, per_hour=10)
    uri = f"sqlite:///{tmp_path}/wk.db"
    out = CliRunner().invoke(
        app, ["monitor-batch", str(tmp_path / "part"), "--model", "m", "--version", "1", "--uri", uri, *extra]
    )
    assert out.exit_code == 2, out.output
    text = flat(out.output)
    assert option in text and words in text, text
    if Path(f"{tmp_path}/wk.db").exists():
        assert all(n == 0 for name, n in table_counts(uri).items() if name != "alembic_version")


def test_an_empty_partition_is_refused(tmp_path):
    (tmp_path / "part").mkdir()
    (tmp_path / "part" / "a.csv").write_text("ts,x\n")
    out = CliRunner().invoke(
        app,
        [
            *["monitor-batch", str(tmp_path / "part"), "--model", "m", "--version", "1"],
            *["--by-time", "ts", "--uri", f"sqlite:///{tmp_path}/wk.db"],
        ],
    )
    assert out.exit_code == 2
    assert "holds no rows" in flat(out.output) and "PATH" in flat(out.output)
