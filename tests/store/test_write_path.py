"""The bulk parts of the write path: sample rows and window profiles inserted in bulk (COPY on PostgreSQL)
keep their content and order and fail whole with the store's errors; revision 0006 makes PostgreSQL compress
profile bytes with lz4."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from watchkeeper.errors import StoreError
from watchkeeper.profile import profile
from watchkeeper.store import Batch, ProfileLog, RunStart, SampleRows, Store, migrate
from watchkeeper.store.engine import create_engine


def _start(store: Store, run_id: str = "r1") -> None:
    store.write(Batch(runs=[RunStart(id=run_id, project="p", name="n", created_at=1.0)]))


def test_sample_rows_and_windows_are_stored_as_given_in_order(store):
    _start(store)
    rows = [
        {"i": i, "text": 'tab\there, quote " and \\ backslash', "nan": {"$float": "nan"}} for i in range(5)
    ]
    rows.append({"nested": {"a": [1, None, "é"]}, "big": 2**62})
    data = [profile({"x": [float(i), 2.0]}).to_bytes() for i in range(3)]
    store.write(
        Batch(
            samples=[SampleRows("p", "t", 3.0, rows, "r1", 7), SampleRows("p", "u", 4.0, [{"z": 1}], "r1")],
            profiles=[
                ProfileLog("p", "s", "window", 60.0 * i, 60.0 * i + 60, 2, d, 1, "r1")
                for i, d in enumerate(data)
            ]
            + [ProfileLog("p", "s", "reference", 0.0, 1.0, 2, data[0], 1, "r1", ("m", "1", "train"))],
        )
    )
    table = store.samples.table("r1", "t", 7)
    assert table.columns == ["i", "text", "nan"]
    assert [r[0] for r in table.rows[:5]] == [0, 1, 2, 3, 4] and table.rows[2][1] == rows[2]["text"]
    assert table.rows[0][2] != table.rows[0][2]  # the tagged NaN decodes to NaN
    got = store.samples.query(run_ids=["r1"], key="t").rows
    assert {"nested": {"a": [1, None, "é"]}, "big": 2**62} in [r.data for r in got]
    assert store.samples.table("r1", "u").rows == [[1]]
    windows = store.profiles.windows("p", "s")
    assert [w.data for w in windows] == data and [w.window_start for w in windows] == [0.0, 60.0, 120.0]
    assert store.profiles.reference("p", "m", "1").data == data[0]


def test_a_row_json_cannot_hold_is_refused_naming_it_and_nothing_is_written(store):
    _start(store)
    batch = Batch(samples=[SampleRows("p", "t", 1.0, [{"a": 1}, {"a": float("nan")}], "r1")])
    with pytest.raises(StoreError, match=r"samples\[0\]\.rows\[1\]: Out of range float") as info:
        store.write(batch)
    assert info.value.transient is False
    with pytest.raises(StoreError, match=r"samples\[0\]\.rows\[0\]: .*not JSON serializable"):
        store.write(Batch(samples=[SampleRows("p", "t", 1.0, [{"a": object()}], "r1")]))
    assert store.samples.tables("r1") == []
    assert store.write(batch.__class__(id=batch.id)).applied is True  # the refused id was not kept


def test_a_bulk_insert_that_the_database_refuses_rolls_the_batch_back(store):
    _start(store)
    data = profile({"x": [1.0]}).to_bytes()
    batch = Batch(
        samples=[SampleRows("p", "t", 1.0, [{"a": 1}], "r1"), SampleRows("p", "t", 1.0, [{"a": 2}], "ghost")],
        profiles=[ProfileLog("p", "s", "window", 0.0, 60.0, 1, data, 1, "r1")],
    )
    with pytest.raises(StoreError, match="writing batch") as info:  # the foreign key of run_id
        store.write(batch)
    assert info.value.transient is False  # an IntegrityError, as from any other insert
    assert store.samples.tables("r1") == [] and store.profiles.windows("p", "s") == []
    batch.samples.pop()
    assert store.write(batch).applied is True and len(store.profiles.windows("p", "s")) == 1


def _compression(uri: str) -> str:
    engine = create_engine(uri)
    q = "SELECT attcompression FROM pg_attribute WHERE attrelid = 'profiles'::regclass AND attname = 'data'"
    with engine.connect() as conn:
        value = conn.exec_driver_sql(q).scalar_one()
        version = int(conn.exec_driver_sql("SHOW server_version_num").scalar_one())
    engine.dispose()
    if version < 140000:
        pytest.skip(f"PostgreSQL {version} has no per-column compression (14 and later)")
    return value


def test_revision_0006_compresses_profiles_with_lz4_on_postgresql(empty_pg_uri):
    engine = create_engine(empty_pg_uri)
    migrate.upgrade(engine, "0005")
    assert _compression(empty_pg_uri) == ""  # the server's default, pglz
    migrate.upgrade(engine)
    with engine.connect() as conn:
        try:
            conn.exec_driver_sql("SET default_toast_compression = 'lz4'")
        except sa.exc.DBAPIError:
            pytest.skip("this PostgreSQL is built without lz4: the revision leaves pglz")
    assert _compression(empty_pg_uri) == "l"
    engine.dispose()
    with Store(empty_pg_uri) as store:  # and the stored bytes read back as written
        _start(store)
        data = profile({"x": [float(i) for i in range(5000)]}).to_bytes()
        store.write(Batch(profiles=[ProfileLog("p", "s", "window", 0.0, 60.0, 5000, data, 1, "r1")]))
        assert store.profiles.windows("p", "s")[0].data == data


def test_revision_0006_is_a_no_op_on_sqlite(sqlite_uri):
    engine = create_engine(sqlite_uri)
    migrate.upgrade(engine, "0005")
    migrate.upgrade(engine)
    assert migrate.current(engine) == migrate.head()
    engine.dispose()
