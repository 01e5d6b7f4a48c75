"""``watchkeeper profile PATH --engine spark``: the same windows as ``--engine local``, exact in the exact
parts, through the command (the Spark session of this module's fixture is the active one it uses)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from watchkeeper.cli import app
from watchkeeper.profile import Profile
from watchkeeper.store import Store
from watchkeeper.store.profiles import model_subject

runner = CliRunner(env={"COLUMNS": "200"})


def test_spark_and_local_engines_store_the_same_windows(spark, tmp_path):
    rng = np.random.default_rng(11)
    root = tmp_path / "day"
    root.mkdir()
    for i in range(3):
        n = 2000
        t = 1_790_000_000.0 + rng.uniform(0, 6 * 3600, n)
        pq.write_table(
            pa.table(
                {
                    "ts": pa.array((t * 1e6).astype("int64")).cast(pa.timestamp("us", tz="UTC")),
                    "x": rng.normal(size=n),
                    "c": rng.choice(["a", "b", "c"], n),
                }
            ),
            root / f"part-{i}.parquet",
            row_group_size=500,
        )
    stored = {}
    for engine in ("local", "spark"):
        uri = f"sqlite:///{tmp_path}/{engine}.db"
        args = ["profile", str(root), "--engine", engine, "--model", "m", "--version", "1"]
        res = runner.invoke(app, [*args, "--by-time", "ts", "--window", "1h", "--uri", uri, "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.output.strip().splitlines()[-1])["engine"] == engine
        store = Store(uri)
        try:
            stored[engine] = {
                w.window_start: Profile.from_bytes(w.data)
                for w in store.profiles.windows("default", model_subject("m", "1"))
            }
        finally:
            store.close()
    local, on_spark = stored["local"], stored["spark"]
    assert sorted(local) == sorted(on_spark) and len(local) == 7  # 6 hours from mid-hour: 7 windows
    for start, p in local.items():
        q = on_spark[start]
        assert p.rows == q.rows
        assert (p["x"].count, p["x"].min, p["x"].max) == (q["x"].count, q["x"].min, q["x"].max)
        assert abs(p["x"].mean - q["x"].mean) <= 1e-12 * max(1.0, abs(p["x"].mean))
        assert {i.value: i.count for i in p["c"].top(3)} == {i.value: i.count for i in q["c"].top(3)}
