"""Samples: rows of logged tables, and (from [watch] on) sampled request/response rows, one row per record.

Cells are stored JSON-encoded by :mod:`watchkeeper.store.codec`; images are references to blobs
(``{"$image": {"digest": ..., "width": ..., "height": ...}}``).

Sampled requests are the rows the watcher writes under keys ``samples/<endpoint>``, each a dict with ``t``,
``id``, ``latency_ms``, ``status`` ("ok" or the exception's class name), ``error``, ``inputs``, ``outputs``
and ``stages``. :meth:`Samples.query` filters them: by run, project, subject, key, time and status in SQL
(through SQLAlchemy's JSON element access, which is ``json_extract`` on SQLite and ``->>`` on PostgreSQL),
and by the outputs' label in Python over a bounded number of the newest rows, because comparing a JSON value
of any type with a query string has no portable SQL form.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from watchkeeper.store import codec
from watchkeeper.store.batch import SampleRows
from watchkeeper.store.engine import bulk_insert, json_text
from watchkeeper.store.schema import profiles, projects, samples

if TYPE_CHECKING:
    from watchkeeper.store.store import Store


@dataclass(frozen=True, slots=True)
class TableData:
    key: str
    step: int | None
    columns: list[str]
    rows: list[list[Any]]


@dataclass(frozen=True, slots=True)
class TableRef:
    key: str
    step: int | None
    rows: int


@dataclass(frozen=True, slots=True)
class SampleRow:
    """One stored row: ``data`` decoded by :mod:`watchkeeper.store.codec`; ``t`` is the row's own ``t`` when
    it has a numeric one (a sampled request's completion time), else the time its batch was logged at."""

    id: int
    project: str
    run_id: str | None
    key: str
    step: int | None
    t: float
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SampleQuery:
    """What :meth:`Samples.query` found: ``rows`` newest first; ``truncated`` when more rows matched than
    the limit; ``scanned`` rows read for the filters applied in Python, and ``scan_limited`` when that
    reading stopped at ``scan_limit`` before finding ``limit`` rows (older matches may exist)."""

    rows: list[SampleRow]
    truncated: bool
    scanned: int
    scan_limited: bool


STATUS_FILTERS = ("ok", "error")
SCAN_LIMIT = 10_000
"""Rows read at most by one query whose filters are applied in Python (``label``)."""


def row_time(row: dict[str, Any], batch_t: float) -> float:
    """The time a row is filed under: its own ``t`` when that is a finite number (a sampled request's
    completion time), else its batch's (a logged table's rows, or a column ``t`` holding text)."""
    t = row.get("t") if isinstance(row, dict) else None
    if isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t):
        return float(t)
    return float(batch_t)


def _label_text(value: Any) -> str | None:
    """A label value as the text a query names it by: strings as they are, anything else as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(codec.encode(value), separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


def _label_of(data: dict[str, Any], key: str) -> Any:
    outputs = data.get("outputs")
    return outputs.get(key) if isinstance(outputs, dict) else None


class Samples:
    def __init__(self, store: Store) -> None:
        self._store = store

    def tables(self, run_id: str) -> list[TableRef]:
        """The tables a run logged: key, step and row count, in logging order."""
        q = (
            sa.select(
                samples.c.key, samples.c.step, sa.func.count(), sa.func.min(samples.c.id).label("first")
            )
            .where(samples.c.run_id == run_id)
            .group_by(samples.c.key, samples.c.step)
            .order_by(sa.text("first"))
        )
        with self._store.connect() as conn:
            return [TableRef(key=r[0], step=r[1], rows=r[2]) for r in conn.execute(q)]

    def table(self, run_id: str, key: str, step: int | None = None) -> TableData:
        """The rows of table ``key`` of a run: at ``step``, or the last one logged under that key."""
        with self._store.connect() as conn:
            if step is None:
                step = conn.execute(
                    sa.select(samples.c.step)
                    .where(samples.c.run_id == run_id, samples.c.key == key)
                    .order_by(samples.c.id.desc())
                    .limit(1)
                ).scalar()
            where = [samples.c.run_id == run_id, samples.c.key == key]
            where.append(samples.c.step.is_(None) if step is None else samples.c.step == step)
            data = list(
                conn.execute(sa.select(samples.c.data).where(*where).order_by(samples.c.row_index)).scalars()
            )
        if not data:
            raise KeyError(
                f"run {run_id} has no table {key!r}" + ("" if step is None else f" at step {step}")
            )
        columns = list(data[0].keys())
        rows = [[codec.decode(d.get(c)) for c in columns] for d in data]
        return TableData(key=key, step=step, columns=columns, rows=rows)

    def query(
        self,
        *,
        project: str | None = None,
        run_ids: list[str] | None = None,
        subject: str | None = None,
        key: str | None = None,
        key_prefix: str | None = None,
        start: float | None = None,
        end: float | None = None,
        status: str | None = None,
        label: str | None = None,
        label_key: str = "label",
        limit: int = 100,
        scan_limit: int = SCAN_LIMIT,
    ) -> SampleQuery:
        """Rows matching every filter given, newest first (by the row's time, then its id), at most
        ``limit``.

        ``subject``: rows of the runs that wrote window profiles of that subject (a deployment such as
        ``model:fraud-clf@1.3.0``), or of the run whose id it is. ``start``/``end``: the row's time in
        ``[start, end)``. ``status``: ``"ok"``, or ``"error"`` for rows whose status is anything else.
        ``label``: rows whose ``outputs[label_key]`` reads as that text (``"1"`` matches 1 and ``"1"``);
        applied in Python over at most ``scan_limit`` rows.
        """
        if status is not None and status not in STATUS_FILTERS:
            raise ValueError(f"status: expected one of {', '.join(STATUS_FILTERS)}, got {status!r}")
        if limit < 1:
            raise ValueError(f"limit: expected a positive number of rows, got {limit}")
        with self._store.connect() as conn:
            t = samples.c.row_t
            q = sa.select(
                samples.c.id,
                projects.c.name,
                samples.c.run_id,
                samples.c.key,
                samples.c.step,
                t,
                samples.c.data,
            ).join(projects, projects.c.id == samples.c.project_id)
            if project is not None:
                q = q.where(projects.c.name == project)
            if run_ids is not None:
                q = q.where(samples.c.run_id.in_(sorted(set(run_ids))))
            if subject is not None:
                writers = sa.select(profiles.c.run_id).where(
                    profiles.c.subject == subject, profiles.c.run_id.is_not(None)
                )
                if project is not None:  # lets the (project, subject, window_start) index serve it
                    writers = writers.where(
                        profiles.c.project_id.in_(sa.select(projects.c.id).where(projects.c.name == project))
                    )
                q = q.where(sa.or_(samples.c.run_id.in_(writers), samples.c.run_id == subject))
            if key is not None:
                q = q.where(samples.c.key == key)
            if key_prefix is not None:
                # substr, not LIKE: SQLite's LIKE ignores case and both treat _ and % as wildcards
                q = q.where(sa.func.substr(samples.c.key, 1, len(key_prefix)) == key_prefix)
            if start is not None:
                q = q.where(t >= start)
            if end is not None:
                q = q.where(t < end)
            if status is not None:
                text = samples.c.data["status"].as_string()
                q = q.where(text == "ok" if status == "ok" else sa.and_(text.is_not(None), text != "ok"))
            q = q.order_by(t.desc(), samples.c.id.desc())
            if label is None:
                rows = [_sample(r) for r in conn.execute(q.limit(limit + 1))]
                return SampleQuery(rows[:limit], len(rows) > limit, len(rows), False)
            found: list[SampleRow] = []
            scanned = 0
            result = conn.execution_options(stream_results=True, yield_per=500).execute(q.limit(scan_limit))
            for r in result:
                scanned += 1
                row = _sample(r)
                if _label_text(_label_of(row.data, label_key)) == label:
                    found.append(row)
                    if len(found) > limit:
                        break
            result.close()
        truncated = len(found) > limit
        return SampleQuery(found[:limit], truncated, scanned, not truncated and scanned >= scan_limit)


def _sample(r: sa.Row) -> SampleRow:
    data = r[6]
    return SampleRow(
        id=r[0],
        project=r[1],
        run_id=r[2],
        key=r[3],
        step=r[4],
        t=float(r[5]),
        data=codec.decode(data) if isinstance(data, dict) else {"value": codec.decode(data)},
    )


_COLUMNS = ("project_id", "run_id", "key", "step", "t", "row_index", "data", "row_t")


def encode_samples(batches: list[SampleRows]) -> list[list[str]]:
    """The stored JSON text of every row, per record: done before the write transaction (it is most of the
    cost of writing samples, and needs no lock); ``ValueError`` naming the row JSON cannot hold."""
    out = []
    for i, s in enumerate(batches):
        try:
            out.append(list(map(json_text, s.rows)))
        except (TypeError, ValueError):
            for j, row in enumerate(s.rows):
                try:
                    json_text(row)
                except (TypeError, ValueError) as exc:
                    raise ValueError(
                        f"samples[{i}].rows[{j}]: {exc} (expected JSON values; NaN and infinity are stored "
                        'tagged, {"$float": "nan"})'
                    ) from exc
            raise
    return out


def write_samples(
    store: Store, conn: sa.Connection, batches: list[SampleRows], texts: list[list[str]]
) -> None:
    """Insert the rows of ``batches``, whose JSON ``texts`` :func:`encode_samples` made, in one bulk insert
    of plain tuples (SQLAlchemy's per-row parameter handling cost as much as the insert)."""
    rows: list[tuple] = []
    for s, encoded in zip(batches, texts, strict=True):
        project_id = store.project_id(conn, s.project)
        rows.extend(
            (project_id, s.run_id, s.key, s.step, s.t, i, text, row_time(r, s.t))
            for i, (r, text) in enumerate(zip(s.rows, encoded, strict=True))
        )
    bulk_insert(conn, samples, _COLUMNS, rows)
