"""Samples: rows of logged tables, and (from [watch] on) sampled request/response rows, one row per record.

Cells are stored JSON-encoded by :mod:`watchkeeper.store.codec`; images are references to blobs
(``{"$image": {"digest": ..., "width": ..., "height": ...}}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from watchkeeper.store import codec
from watchkeeper.store.batch import SampleRows
from watchkeeper.store.schema import samples

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


def write_samples(store: Store, conn: sa.Connection, batches: list[SampleRows]) -> None:
    rows: list[dict] = []
    for s in batches:
        project_id = store.project_id(conn, s.project)
        for i, data in enumerate(s.rows):
            rows.append(
                {
                    "project_id": project_id,
                    "run_id": s.run_id,
                    "key": s.key,
                    "step": s.step,
                    "t": s.t,
                    "row_index": i,
                    "data": data,
                }
            )
    if rows:
        conn.execute(samples.insert(), rows)
