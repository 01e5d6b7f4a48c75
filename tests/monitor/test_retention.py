"""Retention roll-ups over a real store (SQLite, and PostgreSQL when one is reachable): a roll-up equals the
merge of the windows it replaced (exact parts exactly, moments to rounding, quantiles within KLL's rank
error of numpy's), ranges read the same before and after, references are never touched, a second call does
nothing, a failed or contested bucket leaves its windows, the storage shrinks by the merge factor, and the
``watchkeeper db rollup`` command."""

from __future__ import annotations

import hashlib
import math
import time

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from watchkeeper.cli import app
from watchkeeper.monitor import retention
from watchkeeper.monitor.retention import RetentionLevel, RetentionPolicy, rollup
from watchkeeper.profile import Profile, Traffic, profile
from watchkeeper.profile.traffic import Usage
from watchkeeper.store import Batch, ProfileLog, Store
from watchkeeper.store.schema import profiles

DAY, HOUR = 86400.0, 3600.0
T0 = 19_676 * DAY  # a UTC day boundary (2023-11-15)
NOW = T0 + 40 * DAY
SUBJECT = "model:clf@1"
STEP = 900.0  # 15-minute windows
ROWS = 40

cli = CliRunner(env={"COLUMNS": "200"})


class Window:
    """A window profile and the exact data it summarises."""

    def __init__(self, rng: np.random.Generator, start: float, rows: int = ROWS) -> None:
        self.start = start
        x = rng.normal(10.0, 3.0, rows)
        x[rng.integers(0, rows, 2)] = np.nan
        missing = rng.integers(0, rows)
        self.x = x
        self.flag = rng.random(rows) < 0.3
        self.cat = rng.choice(np.array(["a", "b", "c"]), rows)
        self.lat = rng.lognormal(-4.0, 0.6, rows)
        self.err = ["ValueError" if i % 7 == 0 else None for i in range(rows)]
        xs = [None if i == missing else float(v) for i, v in enumerate(x)]
        self.x_kept = np.delete(x, missing)
        table = pa.table({"x": pa.array(xs, pa.float64()), "flag": self.flag, "cat": self.cat})
        traffic = Traffic()
        traffic.endpoint("predict").update(self.lat, self.err)
        traffic.usage["llm"] = Usage(
            calls=rows, input_tokens=7 * rows, output_tokens=3 * rows, cost=0.01 * rows
        )
        self.profile = Profile(profile(table).columns, rows=rows, traffic=traffic)
        self.blob = self.profile.to_bytes()

    def log(self, **kw) -> ProfileLog:
        p = self.profile
        return ProfileLog(
            "p", SUBJECT, "window", self.start, self.start + STEP, p.rows, self.blob, p.format_version, **kw
        )


def _write(store: Store, windows: list[Window]) -> None:
    store.write(Batch(profiles=[w.log() for w in windows]))


def _history(seed: int = 5) -> tuple[list[Window], list[Window], list[Window]]:
    """Day A (older than 32 days at NOW: one day roll-up), day B (20 days before NOW: hourly roll-ups) and
    a few recent windows (untouched), each day of 15-minute windows."""
    rng = np.random.default_rng(seed)
    day_a = [Window(rng, T0 + i * STEP) for i in range(96)]
    day_b = [Window(rng, T0 + 20 * DAY + i * STEP) for i in range(96)]
    recent = [Window(rng, NOW - 2 * DAY + i * STEP) for i in range(4)]
    return day_a, day_b, recent


def _rows(store: Store) -> list[tuple]:
    """Every profile row: id, kind, extent, rows and a digest of its bytes."""
    p = profiles.c
    with store.connect() as conn:
        found = conn.execute(
            sa.select(p.id, p.kind, p.window_start, p.window_end, p.rows, p.data).order_by(p.id)
        ).all()
    return [(r[0], r[1], r[2], r[3], r[4], hashlib.sha256(bytes(r[5])).hexdigest()) for r in found]


def _merge(blobs) -> Profile:
    out = Profile()
    for b in blobs:
        out = out.merge(Profile.from_bytes(b))
    return out


def _assert_exact_parts(a: Profile, b: Profile) -> None:
    """The parts of two profiles of the same data that merge exactly are equal; moments to rounding."""
    assert a.rows == b.rows and set(a.columns) == set(b.columns)
    for name in a.columns:
        ca, cb = a[name], b[name]
        assert vars(ca.counts) == vars(cb.counts), name
        assert (ca.true_count, ca.false_count) == (cb.true_count, cb.false_count)
        if ca.numeric is not None:
            ma, mb = ca.numeric.moments, cb.numeric.moments
            assert (ma.n, ma.min, ma.max) == (mb.n, mb.min, mb.max)
            assert ca.numeric.quantiles.n == cb.numeric.quantiles.n
            assert math.isclose(ma.mean, mb.mean, rel_tol=1e-12)
            assert math.isclose(ma.m2, mb.m2, rel_tol=1e-10)
        if ca.strings is not None:
            assert [(i.value, i.count) for i in ca.top(10)] == [(i.value, i.count) for i in cb.top(10)]
    ea, eb = a.traffic.endpoints["predict"], b.traffic.endpoints["predict"]
    assert (ea.requests, ea.errors, ea.statuses) == (eb.requests, eb.errors, eb.statuses)
    assert ea.latency.count == eb.latency.count
    qs = np.array([0.5, 0.9, 0.99])
    assert np.array_equal(ea.latency.quantile(qs), eb.latency.quantile(qs))  # DDSketch buckets add
    ua, ub = a.traffic.usage["llm"], b.traffic.usage["llm"]
    assert (ua.calls, ua.input_tokens, ua.output_tokens) == (ub.calls, ub.input_tokens, ub.output_tokens)
    assert math.isclose(ua.cost, ub.cost, rel_tol=1e-12)


def _assert_matches_data(p: Profile, windows: list[Window]) -> None:
    """Against numpy on the windows' own data."""
    x = np.concatenate([w.x_kept for w in windows])
    finite = x[np.isfinite(x)]
    col = p["x"]
    assert col.count == len(windows) * ROWS and col.missing == len(windows)
    assert col.counts.nan == int(np.isnan(x).sum())
    assert (col.min, col.max) == (finite.min(), finite.max())
    assert math.isclose(col.mean, finite.mean(), rel_tol=1e-12)
    assert math.isclose(col.std, finite.std(ddof=1), rel_tol=1e-9)
    sketch = col.numeric.quantiles
    for q in (0.05, 0.25, 0.5, 0.75, 0.95):
        rank = np.mean(finite <= sketch.quantile(q))
        assert abs(rank - q) <= sketch.rank_error + 1 / finite.size, q
    flags = np.concatenate([w.flag for w in windows])
    assert (p["flag"].true_count, p["flag"].false_count) == (int(flags.sum()), int((~flags).sum()))
    cats = np.concatenate([w.cat for w in windows])
    assert {i.value: i.count for i in p["cat"].top(3)} == {c: int((cats == c).sum()) for c in "abc"}
    ep = p.traffic.endpoints["predict"]
    assert ep.requests == len(windows) * ROWS
    assert ep.errors == {"ValueError": sum(e is not None for w in windows for e in w.err)}
    lat = np.concatenate([w.lat for w in windows])
    exact = np.quantile(lat, 0.99, method="lower")
    assert abs(ep.latency.quantile(0.99) - exact) <= 0.01 * exact


@pytest.mark.parametrize("small_pages", [False, True], ids=["pages", "small-pages"])
def test_rollup_equals_the_merge_of_its_windows(store, monkeypatch, small_pages):
    if small_pages:  # page and chunk boundaries inside buckets, and a bucket larger than a page
        monkeypatch.setattr(retention, "PAGE_ROWS", 7)
        monkeypatch.setattr(retention, "BLOB_CHUNK", 3)
        monkeypatch.setattr(retention, "ID_CHUNK", 5)
    day_a, day_b, recent = _history()
    _write(store, day_a + day_b + recent)
    before_b = _merge(w.data for w in store.profiles.windows("p", SUBJECT, T0 + 20 * DAY, T0 + 21 * DAY))
    blob_bytes = sum(len(w.blob) for w in day_a + day_b)

    result = rollup(store, RetentionPolicy.parse("8d:1h,32d:1d"), now=NOW)

    assert [s.name for s in result.steps] == ["1h after 8d", "1d after 32d"]
    hourly, daily = result.steps
    assert (daily.buckets, daily.profiles_read, daily.rollups_written) == (1, 96, 1)
    assert (hourly.buckets, hourly.profiles_read, hourly.rollups_written) == (24, 96, 24)
    assert result.profiles_deleted == 192 and result.bytes_before == blob_bytes
    assert (result.skipped, result.unreadable, result.subjects) == (0, 0, 1)
    stored = store.profiles.windows("p", SUBJECT)
    rollups = [w for w in stored if w.kind == "rollup"]
    assert len(rollups) == 25 and [w.kind for w in stored].count("window") == len(recent)
    assert result.bytes_after == sum(len(w.data) for w in rollups)

    day = rollups[0]
    assert (day.window_start, day.window_end, day.rows) == (T0, T0 + DAY, 96 * ROWS)
    got = Profile.from_bytes(day.data)
    _assert_exact_parts(got, _merge(w.blob for w in day_a))
    _assert_matches_data(got, day_a)
    hours = rollups[1:]
    assert [h.window_start for h in hours] == [T0 + 20 * DAY + i * HOUR for i in range(24)]
    assert all(h.window_end - h.window_start == HOUR and h.rows == 4 * ROWS for h in hours)
    _assert_matches_data(Profile.from_bytes(hours[5].data), day_b[20:24])

    # a day's range reads the same traffic before and after
    after_b = _merge(w.data for w in store.profiles.windows("p", SUBJECT, T0 + 20 * DAY, T0 + 21 * DAY))
    _assert_exact_parts(after_b, before_b)
    _assert_matches_data(after_b, day_b)
    (dep,) = store.profiles.deployments()
    assert (dep.windows, dep.first, dep.last) == (25 + len(recent), T0, recent[-1].start + STEP)

    # idempotent: the same ``now`` again changes nothing
    rows = _rows(store)
    again = rollup(store, RetentionPolicy.parse("8d:1h,32d:1d"), now=NOW)
    assert (again.buckets, again.profiles_read, again.profiles_deleted, again.rollups_written) == (0, 0, 0, 0)
    assert _rows(store) == rows


def test_references_and_referenced_windows_are_never_touched(store):
    rng = np.random.default_rng(8)
    day_a = [Window(rng, T0 + i * STEP) for i in range(8)]
    ref = Window(rng, 0.0)
    pinned = day_a[3]
    store.write(
        Batch(
            profiles=[
                *(w.log() for w in day_a if w is not pinned),
                pinned.log(reference=("clf", "1", "pinned")),  # a window a references row points at
                ProfileLog("p", SUBJECT, "reference", 0, 0, ROWS, ref.blob, 2, None, ("clf", "1", "train")),
            ]
        )
    )
    kept = {r[0]: r for r in _rows(store) if r[1] == "reference" or r[2] == pinned.start}
    assert len(kept) == 2

    result = rollup(store, RetentionPolicy.parse("8d:1h,32d:1d"), now=NOW)

    assert result.profiles_read == 7 and result.rollups_written == 1
    rows = {r[0]: r for r in _rows(store)}
    assert all(rows[i] == r for i, r in kept.items())
    assert store.profiles.reference("p", "clf", "1", "pinned").data == pinned.blob
    assert store.profiles.reference("p", "clf", "1").data == ref.blob
    found = store.profiles.windows("p", SUBJECT, T0, T0 + DAY)
    assert sorted(w.kind for w in found) == ["rollup", "window"]
    _assert_matches_data(_merge(w.data for w in found), day_a)
    assert rollup(store, RetentionPolicy.parse("8d:1h,32d:1d"), now=NOW).buckets == 0


def test_late_windows_merge_into_the_buckets_rollup(store):
    rng = np.random.default_rng(9)
    old = [Window(rng, T0 + i * STEP) for i in range(8)]  # day A's first two hours
    mid = [Window(rng, T0 + 20 * DAY + i * STEP) for i in range(4)]  # one hour of day B
    _write(store, old + mid)
    policy = RetentionPolicy.parse("8d:1h,32d:1d")
    first = rollup(store, policy, now=NOW)
    assert first.rollups_written == 2
    late_old = Window(rng, T0 + 5 * HOUR)  # another hour of a day already rolled up
    late_mid = Window(rng, T0 + 20 * DAY + 2 * STEP)  # the same hour again (a replica's late window)
    _write(store, [late_old, late_mid])

    second = rollup(store, policy, now=NOW)

    hourly, daily = second.steps
    assert (daily.buckets, daily.profiles_read, hourly.buckets, hourly.profiles_read) == (1, 2, 1, 2)
    stored = store.profiles.windows("p", SUBJECT)
    assert [(w.kind, w.window_start, w.window_end) for w in stored] == [
        ("rollup", T0, T0 + DAY),
        ("rollup", T0 + 20 * DAY, T0 + 20 * DAY + HOUR),
    ]
    _assert_matches_data(Profile.from_bytes(stored[0].data), [*old, late_old])
    _assert_matches_data(Profile.from_bytes(stored[1].data), [*mid, late_mid])
    assert stored[0].rows == 9 * ROWS


def test_a_failed_bucket_leaves_its_windows(store, monkeypatch):
    rng = np.random.default_rng(10)
    windows = [Window(rng, T0 + i * STEP) for i in range(8)]
    _write(store, windows)
    rows = _rows(store)

    def crash(conn, row):
        raise RuntimeError("the process died here")

    monkeypatch.setattr(retention, "_insert_rollup", crash)
    with pytest.raises(RuntimeError, match="died"):
        rollup(store, RetentionPolicy.parse("8d:1h,32d:1d"), now=NOW)
    assert _rows(store) == rows  # the delete before the crash was rolled back: old rows, no roll-up
    monkeypatch.undo()
    assert rollup(store, RetentionPolicy.parse("8d:1h,32d:1d"), now=NOW).rollups_written == 1
    assert [w.kind for w in store.profiles.windows("p", SUBJECT)] == ["rollup"]


def test_a_bucket_changed_meanwhile_is_left_for_the_next_call(store, monkeypatch):
    rng = np.random.default_rng(11)
    windows = [Window(rng, T0 + i * STEP) for i in range(8)]
    _write(store, windows)
    victim = min(r[0] for r in _rows(store))
    real = Profile.from_bytes
    calls = []

    def racing(blob):
        if not calls:  # another writer deletes a member after it was read
            with store.begin_write() as conn:
                conn.execute(profiles.delete().where(profiles.c.id == victim + 1))
        calls.append(1)
        return real(blob)

    monkeypatch.setattr(retention.Profile, "from_bytes", staticmethod(racing))
    result = rollup(store, RetentionPolicy.parse("8d:1h,32d:1d"), now=NOW)
    assert (result.skipped, result.buckets, result.rollups_written) == (1, 0, 0)
    assert len(store.profiles.windows("p", SUBJECT)) == 7  # the others untouched
    monkeypatch.undo()
    result = rollup(store, RetentionPolicy.parse("8d:1h,32d:1d"), now=NOW)
    assert (result.skipped, result.profiles_read) == (0, 7)


def test_dry_run_says_what_a_run_does_and_writes_nothing(store):
    day_a, day_b, recent = _history(12)
    _write(store, day_a + day_b + recent)
    rows = _rows(store)
    policy = RetentionPolicy.parse("8d:1h,32d:1d", drop_after="39d", min_age=0)
    dry = rollup(store, policy, now=NOW, dry_run=True)
    assert _rows(store) == rows
    real = rollup(store, policy, now=NOW)
    for a, b in zip(dry.steps, real.steps, strict=True):
        assert (
            a.name,
            a.buckets,
            a.profiles_read,
            a.profiles_deleted,
            a.rollups_written,
            a.bytes_before,
        ) == (
            b.name,
            b.buckets,
            b.profiles_read,
            b.profiles_deleted,
            b.rollups_written,
            b.bytes_before,
        )
        assert a.bytes_after == 0
    drop = real.steps[0]
    assert drop.name == "drop after 39d" and drop.profiles_deleted == 96  # day A ended 39 days before NOW
    assert drop.bytes_before == sum(len(w.blob) for w in day_a)
    assert store.profiles.windows("p", SUBJECT, None, T0 + DAY) == []


def test_projects_and_subjects_are_rolled_up_apart(store):
    rng = np.random.default_rng(13)
    a = [Window(rng, T0 + i * STEP) for i in range(4)]
    b = [Window(rng, T0 + i * STEP) for i in range(4)]
    store.write(
        Batch(
            profiles=[
                *(w.log() for w in a),
                *(ProfileLog("q", SUBJECT, "window", w.start, w.start + STEP, ROWS, w.blob, 2) for w in b),
                *(
                    ProfileLog("p", "model:other@1", "window", w.start, w.start + STEP, ROWS, w.blob, 2)
                    for w in b
                ),
            ]
        )
    )
    only_q = rollup(store, RetentionPolicy.parse("8d:1h,32d:1d"), now=NOW, project="q")
    assert (only_q.subjects, only_q.rollups_written) == (1, 1)
    assert [w.kind for w in store.profiles.windows("p", SUBJECT)] == ["window"] * 4
    everything = rollup(store, RetentionPolicy.parse("8d:1h,32d:1d"), now=NOW)
    assert (everything.subjects, everything.rollups_written) == (3, 2)
    _assert_matches_data(Profile.from_bytes(store.profiles.windows("p", SUBJECT)[0].data), a)
    _assert_matches_data(Profile.from_bytes(store.profiles.windows("q", SUBJECT)[0].data), b)


def test_ranges_merged_by_the_dashboard_see_rollups(store):
    from watchkeeper.server.views import merged_windows

    day_a, day_b, recent = _history(14)
    _write(store, day_a + day_b + recent)
    rollup(store, RetentionPolicy.parse("8d:1h,32d:1d"), now=NOW)
    merged, counts = merged_windows(store, "p", SUBJECT, T0, NOW, 100)
    assert counts == {"merged": 29, "total": 29, "rows": (192 + 4) * ROWS, "unreadable": 0}
    _assert_matches_data(merged, day_a + day_b + recent)
    # more profiles than picks: 5 times evenly spread from day A to the last recent window; the two
    # between day A and day B both pick day B's first hour, and each roll-up brings all of its rows
    sampled, counts = merged_windows(store, "p", SUBJECT, T0, NOW, 5)
    assert counts == {"merged": 4, "total": 29, "rows": (96 + 4 + 1 + 1) * ROWS, "unreadable": 0}
    _assert_matches_data(sampled, [*day_a, *day_b[:4], recent[0], recent[-1]])


# -- the policy ---------------------------------------------------------------------------------------------


def test_policy_parses_and_prints():
    p = RetentionPolicy.parse(" 8d:1h , 32d:1d ", drop_after="180d")
    assert p.levels == (RetentionLevel(8 * DAY, 3600), RetentionLevel(32 * DAY, 86400))
    assert (p.drop_after, str(p)) == (180 * DAY, "8d:1h,32d:1d")
    assert RetentionPolicy.parse("none", drop_after=30 * DAY).levels == ()
    assert RetentionPolicy.parse("1h30m:5m,2d:1h", min_age=3600).levels[0] == RetentionLevel(5400.0, 300)


@pytest.mark.parametrize(
    ("text", "kw", "message"),
    [
        ("8d", {}, r"levels\[0\]: expected AGE:SIZE such as 8d:1h, got '8d'"),
        ("8x:1h", {}, r"levels\[0\] age: expected a duration"),
        ("8d:1.5s", {}, r"levels\[0\] size: expected whole seconds"),
        (
            "8d:1h,32d:90m",
            {},
            r"levels\[1\] \(32d:90m\): size: expected a multiple of the previous level's size 1h",
        ),
        ("8d:1d,32d:1h", {}, r"levels\[1\] \(32d:1h\): size: expected a multiple"),
        ("8d:1h,8d:1d", {}, r"levels\[1\] \(8d:1d\): age: expected more than the previous level's age 8d"),
        ("1d:1h", {}, r"levels\[0\] \(1d:1h\): age: expected at least min_age 7d \(the label horizon"),
        ("8d:1h", {"min_age": 10 * DAY}, r"age: expected at least min_age 10d"),
        ("8d:1h,32d:1d", {"drop_after": "30d"}, r"drop_after: expected more than the oldest level's age 32d"),
        ("none", {"drop_after": "2d"}, r"drop_after: expected at least min_age 7d"),
        ("none", {"drop_after": "soon"}, r"drop_after: expected a duration"),
    ],
)
def test_policy_refuses_bad_levels_naming_the_field(text, kw, message):
    with pytest.raises(ValueError, match=message):
        RetentionPolicy.parse(text, **kw)


# -- storage ------------------------------------------------------------------------------------------------


def test_storage_shrinks_by_the_merge_factor(sqlite_uri, tmp_path):
    """Two days of 5-minute windows of 25 numeric columns (1,000 rows each, enough to fill a window's KLL
    sketches): one day older than 32 days (one day roll-up of 288 windows), one between 8 and 32 days (24
    hourly roll-ups of 12). The roll-ups' bytes are those of merging the same windows in the test."""
    rng = np.random.default_rng(15)
    distinct = [profile({f"c{j}": rng.normal(j, 1.0, 1000) for j in range(25)}) for _ in range(12)]
    blobs = [p.to_bytes() for p in distinct]
    step, days = 300.0, (T0, T0 + 20 * DAY)
    with Store(sqlite_uri, artifact_root=tmp_path / "a") as store:
        for day in days:
            store.write(
                Batch(
                    profiles=[
                        ProfileLog(
                            "p", SUBJECT, "window", day + i * step, day + (i + 1) * step, 1000, blobs[i % 12]
                        )
                        for i in range(288)
                    ]
                )
            )
        before = sum(len(b) for b in blobs) * 48
        t = time.perf_counter()
        result = rollup(store, RetentionPolicy.parse("8d:1h,32d:1d"), now=NOW)
        took = time.perf_counter() - t
        stored = store.profiles.windows("p", SUBJECT)
    hourly, daily = result.steps
    assert result.bytes_before == before and len(stored) == 25
    hour_size = len(_merge(blobs).to_bytes())
    day_size = len(stored[0].data)
    # KLL compacts at random: a merge of the same windows may keep a few more or fewer values
    assert all(abs(len(w.data) - hour_size) <= 0.03 * hour_size for w in stored[1:])
    assert hourly.bytes_after == sum(len(w.data) for w in stored[1:])
    assert daily.bytes_after == day_size
    # a day of 288,000 values per column holds a few more levels of KLL than an hour of 12,000: between
    # one and two hours' size, far below the 288 windows it replaced
    assert hour_size < day_size < 2 * hour_size
    ratio_hour, ratio_day = hourly.bytes_before / hourly.bytes_after, daily.bytes_before / daily.bytes_after
    window_size = sum(len(b) for b in blobs) / 12
    assert math.isclose(ratio_hour, 12 * window_size / hour_size, rel_tol=0.03)
    assert ratio_day > 288 / 2 * window_size / hour_size
    print(
        f"\n576 windows, {before / 1e6:.1f} MB -> {result.bytes_after / 1e6:.2f} MB in 25 roll-ups "
        f"({took:.1f} s): hourly x{ratio_hour:.1f} (12 windows each), daily x{ratio_day:.0f} (288 windows); "
        f"window {window_size / 1e3:.0f} kB, hour {hour_size / 1e3:.0f} kB, day {day_size / 1e3:.0f} kB"
    )


# -- the command ------------------------------------------------------------------------------------------


def test_db_rollup_command(store_uri):
    now = time.time()
    start = (math.floor(now / DAY) - 20) * DAY  # a day 20 days ago: hourly roll-ups
    rng = np.random.default_rng(16)
    windows = [Window(rng, start + i * STEP) for i in range(8)]  # two hours
    with Store(store_uri) as store:
        _write(store, windows)

    dry = cli.invoke(app, ["db", "rollup", "--uri", store_uri, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output
    line = next(x for x in dry.output.splitlines() if "1h after 8d" in x)
    assert [c.strip() for c in line.split("│")[2:6]] == ["2", "8", "8", "2"]
    with Store(store_uri) as store:
        assert [w.kind for w in store.profiles.windows("p", SUBJECT)] == ["window"] * 8

    done = cli.invoke(app, ["db", "rollup", "--uri", store_uri, "--policy", "8d:1h,32d:1d", "-p", "p"])
    assert done.exit_code == 0, done.output
    total = next(x for x in done.output.splitlines() if "total" in x)
    assert [c.strip() for c in total.split("│")[2:6]] == ["2", "8", "8", "2"]
    with Store(store_uri) as store:
        found = store.profiles.windows("p", SUBJECT)
    assert [(w.kind, w.window_start) for w in found] == [("rollup", start), ("rollup", start + HOUR)]
    _assert_matches_data(_merge(w.data for w in found), windows)

    again = cli.invoke(app, ["db", "rollup", "--uri", store_uri])
    total = next(x for x in again.output.splitlines() if "total" in x)
    assert [c.strip() for c in total.split("│")[2:6]] == ["0", "0", "0", "0"]


def test_db_rollup_refuses_a_bad_policy_and_a_server_uri(sqlite_uri, tmp_path):
    bad = cli.invoke(app, ["db", "rollup", "--uri", sqlite_uri, "--policy", "1d:1h"])
    assert bad.exit_code == 2
    assert "--policy" in bad.output and "min_age 7d" in bad.output
    horizon = tmp_path / "settings.yaml"
    horizon.write_text("label_horizon: 12h\n")
    ok = cli.invoke(
        app, ["db", "rollup", "--uri", sqlite_uri, "--policy", "1d:1h", "--settings", str(horizon)]
    )
    assert ok.exit_code == 0, ok.output
    drop = cli.invoke(app, ["db", "rollup", "--uri", sqlite_uri, "--drop-after", "3d"])
    assert drop.exit_code == 2 and "--drop-after" in drop.output
    server = cli.invoke(app, ["db", "rollup", "--uri", "http://127.0.0.1:9"])
    assert server.exit_code == 2 and "database URI" in server.output
