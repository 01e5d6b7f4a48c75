"""Signals: time series ``(project, subject, name, labels) -> (t, value)``, with a step for logged scalars.

Charts, alert rules and the Prometheus endpoint read signals and only signals. Points are written in bulk
(one executemany per batch); series rows are created on first sight and their ids cached per store.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import sqlalchemy as sa

from watchkeeper.store.batch import Points
from watchkeeper.store.engine import positional_insert
from watchkeeper.store.schema import points, series

if TYPE_CHECKING:
    from watchkeeper.store.store import Store


def labels_key(labels: dict[str, str]) -> str:
    """Canonical text of a label set: ``k=v`` pairs sorted by key, comma-separated."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


@dataclass(frozen=True, slots=True)
class SeriesData:
    name: str
    step: np.ndarray  # int64; -1 where the point had no step
    t: np.ndarray  # float64 seconds since the epoch
    value: np.ndarray  # float64, NaN kept

    def __len__(self) -> int:
        return len(self.value)


@dataclass(frozen=True, slots=True)
class SeriesSummary:
    """The last point of a series and its extent: what ``runs show`` prints per key."""

    name: str
    step: int | None
    t: float
    last: float
    count: int
    min: float  # over non-NaN values; NaN when there are none
    max: float


def _value(v: float | None) -> float:
    return math.nan if v is None else v


class Signals:
    def __init__(self, store: Store) -> None:
        self._store = store

    def names(self, run_id: str) -> list[str]:
        with self._store.connect() as conn:
            return list(
                conn.execute(
                    sa.select(series.c.name).where(series.c.run_id == run_id).order_by(series.c.name)
                ).scalars()
            )

    def history(self, run_id: str, name: str) -> SeriesData:
        """Every point of one logged key of a run, ordered by step (then time)."""
        q = (
            sa.select(points.c.step, points.c.t, points.c.value)
            .join(series, series.c.id == points.c.series_id)
            .where(series.c.run_id == run_id, series.c.name == name)
            .order_by(points.c.step, points.c.t)
        )
        with self._store.connect() as conn:
            rows = conn.execute(q).all()
        return SeriesData(
            name=name,
            step=np.array([-1 if r[0] is None else r[0] for r in rows], dtype=np.int64),
            t=np.array([r[1] for r in rows], dtype=np.float64),
            value=np.array([_value(r[2]) for r in rows], dtype=np.float64),
        )

    def summaries(self, run_id: str) -> list[SeriesSummary]:
        """Per key of a run: its last point (by time, then step), point count, min and max."""
        ranked = (
            sa.select(
                points.c.series_id,
                points.c.step,
                points.c.t,
                points.c.value,
                sa.func.row_number()
                .over(partition_by=points.c.series_id, order_by=(points.c.t.desc(), points.c.step.desc()))
                .label("rn"),
            )
            .join(series, series.c.id == points.c.series_id)
            .where(series.c.run_id == run_id)
            .subquery()
        )
        stats = (
            sa.select(
                points.c.series_id,
                sa.func.count().label("n"),
                sa.func.min(points.c.value).label("lo"),
                sa.func.max(points.c.value).label("hi"),
            )
            .join(series, series.c.id == points.c.series_id)
            .where(series.c.run_id == run_id)
            .group_by(points.c.series_id)
            .subquery()
        )
        q = (
            sa.select(
                series.c.name, ranked.c.step, ranked.c.t, ranked.c.value, stats.c.n, stats.c.lo, stats.c.hi
            )
            .join(ranked, ranked.c.series_id == series.c.id)
            .join(stats, stats.c.series_id == series.c.id)
            .where(ranked.c.rn == 1)
            .order_by(series.c.name)
        )
        with self._store.connect() as conn:
            rows = conn.execute(q).all()
        return [
            SeriesSummary(
                name=r[0],
                step=r[1],
                t=r[2],
                last=_value(r[3]),
                count=r[4],
                min=_value(r[5]),
                max=_value(r[6]),
            )
            for r in rows
        ]


_POINT_COLUMNS = ("series_id", "step", "t", "value")


def write_points(store: Store, conn: sa.Connection, batches: list[Points]) -> None:
    rows: list[tuple] = []
    sqlite = conn.dialect.name == "sqlite"
    for p in batches:
        if not len(p):
            continue
        ids = store.series_ids(conn, p.project, p.subject, p.run_id, p.labels, set(p.name))
        # NaN is stored as NULL; SQLite's driver already binds NaN as NULL, other drivers need telling
        values = p.value if sqlite else [None if v != v else v for v in p.value]
        rows.extend(zip(map(ids.__getitem__, p.name), p.step, p.t, values, strict=True))
    if rows:
        conn.exec_driver_sql(positional_insert(conn.dialect, points, _POINT_COLUMNS), rows)
