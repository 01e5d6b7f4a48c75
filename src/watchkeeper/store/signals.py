"""Signals: time series ``(project, subject, name, labels) -> (t, value)``, with a step for logged scalars.

Charts, alert rules and the Prometheus endpoint read signals and only signals. Points are written in bulk
(one executemany per batch); series rows are created on first sight and their ids cached per store.

Range queries read the half-open interval ``[start, end)``. Bucketed queries aggregate in SQL, grouped by
``floor(t / width)`` (buckets aligned to multiples of the width, like the SDK's windows), so a chart of a
million points moves a few hundred rows out of the database, not a million.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import sqlalchemy as sa

from watchkeeper.store.batch import Points
from watchkeeper.store.engine import positional_insert
from watchkeeper.store.schema import points, projects, series

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


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """One series and, when asked for, its extent: what a chart picker lists."""

    id: int
    project: str
    subject: str
    run_id: str | None
    name: str
    labels: dict[str, str]
    count: int | None = None  # points, NaN ones included (None: not asked for)
    t: float | None = None  # time of the last point (None: no point, or not asked for)
    step: int | None = None
    last: float = math.nan  # value of the last point; NaN when it was NaN or there is none


@dataclass(frozen=True, slots=True)
class Buckets:
    """A series aggregated per bucket ``[k * width, (k + 1) * width)``, only the buckets that hold a point.

    ``count`` is the number of non-NaN points and ``nan`` that of NaN points; ``mean``, ``min`` and ``max``
    are over the non-NaN points (NaN when there are none); ``last`` is the value of the bucket's last point
    by time (then step), NaN included.
    """

    width: float
    start: np.ndarray  # float64: k * width
    count: np.ndarray  # int64
    nan: np.ndarray  # int64
    mean: np.ndarray  # float64
    min: np.ndarray
    max: np.ndarray
    last: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


MAX_BUCKETS = 100_000
"""The most buckets one bucketed query may span (per series); a finer width over a range is refused."""


def _value(v: float | None) -> float:
    return math.nan if v is None else v


def _floor_div(dialect: sa.Dialect, t: sa.ColumnElement, width: float) -> sa.ColumnElement:
    """``floor(t / width)`` as an integer in SQL. SQLite has ``floor()`` only when built with its math
    functions, so there it is a cast (which truncates toward zero) corrected for negative quotients."""
    q = t / sa.literal(float(width), sa.Double)
    if dialect.name == "sqlite":
        whole = sa.cast(q, sa.BigInteger)
        return whole - sa.case((q < whole, 1), else_=0)
    return sa.cast(sa.func.floor(q), sa.BigInteger)


def _in_range(start: float | None, end: float | None) -> list[sa.ColumnElement]:
    where = []
    if start is not None:
        where.append(points.c.t >= start)
    if end is not None:
        where.append(points.c.t < end)
    return where


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

    def series(
        self,
        project: str | None = None,
        *,
        subject: str | None = None,
        run_id: str | None = None,
        name: str | None = None,
        stats: bool = False,
    ) -> list[SeriesInfo]:
        """The series matching every filter given, by name then labels; with ``stats``, each one's point
        count and last point (each read through the (series, t) index, not by scanning the points)."""
        cols: list[sa.ColumnElement] = [
            series.c.id,
            projects.c.name.label("project"),
            series.c.subject,
            series.c.run_id,
            series.c.name,
            series.c.labels,
        ]
        if stats:
            count = (
                sa.select(sa.func.count())
                .where(points.c.series_id == series.c.id)
                .correlate(series)
                .scalar_subquery()
            )

            def last(col: sa.ColumnElement) -> sa.ScalarSelect:
                return (
                    sa.select(col)
                    .where(points.c.series_id == series.c.id)
                    .order_by(points.c.t.desc(), points.c.step.desc().nulls_last())
                    .limit(1)
                    .correlate(series)
                    .scalar_subquery()
                )

            cols += [
                count.label("n"),
                last(points.c.t).label("last_t"),
                last(points.c.step).label("last_step"),
                last(points.c.value).label("last_value"),
            ]
        q = (
            sa.select(*cols)
            .join(projects, projects.c.id == series.c.project_id)
            .order_by(series.c.name, series.c.labels_key, series.c.subject, series.c.id)
        )
        if project is not None:
            q = q.where(projects.c.name == project)
        if subject is not None:
            q = q.where(series.c.subject == subject)
        if run_id is not None:
            q = q.where(series.c.run_id == run_id)
        if name is not None:
            q = q.where(series.c.name == name)
        with self._store.connect() as conn:
            rows = conn.execute(q).all()
        out = []
        for r in rows:
            m = r._mapping
            extra = {}
            if stats:
                extra = {
                    "count": int(m["n"]),
                    "t": m["last_t"],
                    "step": m["last_step"],
                    "last": _value(m["last_value"]),
                }
            out.append(
                SeriesInfo(
                    id=m["id"],
                    project=m["project"],
                    subject=m["subject"],
                    run_id=m["run_id"],
                    name=m["name"],
                    labels=dict(m["labels"] or {}),
                    **extra,
                )
            )
        return out

    def points_in(
        self, series_id: int, start: float | None = None, end: float | None = None, limit: int | None = None
    ) -> SeriesData:
        """The points of one series in ``[start, end)`` ordered by time (then step), at most ``limit`` of
        them (the oldest first); ask for ``limit + 1`` to learn whether there were more."""
        q = (
            sa.select(series.c.name, points.c.step, points.c.t, points.c.value)
            .join(series, series.c.id == points.c.series_id)
            .where(points.c.series_id == series_id, *_in_range(start, end))
            .order_by(points.c.t, points.c.step.nulls_first())
        )
        if limit is not None:
            q = q.limit(limit)
        with self._store.connect() as conn:
            rows = conn.execute(q).all()
            name = (
                rows[0][0]
                if rows
                else conn.execute(sa.select(series.c.name).where(series.c.id == series_id)).scalar()
            )
        if name is None:
            raise KeyError(f"no series with id {series_id}")
        return SeriesData(
            name=name,
            step=np.array([-1 if r[1] is None else r[1] for r in rows], dtype=np.int64),
            t=np.array([r[2] for r in rows], dtype=np.float64),
            value=np.array([_value(r[3]) for r in rows], dtype=np.float64),
        )

    def buckets(
        self,
        series_ids: list[int],
        width: float,
        start: float | None = None,
        end: float | None = None,
        max_buckets: int = MAX_BUCKETS,
    ) -> dict[int, Buckets]:
        """Each series' points in ``[start, end)`` aggregated per bucket of ``width`` seconds, in SQL.

        A range that would span more than ``max_buckets`` buckets of some series raises ValueError naming
        ``bucket`` (the span is read from the series' first and last point in the range, so an open range
        over a short series is fine). Series without a point in the range map to empty Buckets.
        """
        if not (isinstance(width, int | float) and math.isfinite(width) and width > 0):
            raise ValueError(f"bucket: expected a positive number of seconds, got {width!r}")
        width = float(width)
        ids = sorted(set(series_ids))
        empty = np.empty(0)
        out = {
            sid: Buckets(
                width, empty, empty.astype(np.int64), empty.astype(np.int64), empty, empty, empty, empty
            )
            for sid in ids
        }
        if not ids:
            return out
        where = [points.c.series_id.in_(ids), *_in_range(start, end)]
        with self._store.connect() as conn:
            spans = conn.execute(
                sa.select(points.c.series_id, sa.func.min(points.c.t), sa.func.max(points.c.t))
                .where(*where)
                .group_by(points.c.series_id)
            ).all()
            for sid, lo, hi in spans:
                first, last = lo / width, hi / width
                if not (abs(first) < 2**53 and abs(last) < 2**53):
                    # past 2**53 a float no longer tells neighbouring bucket numbers apart (and past 2**63,
                    # or at infinity, they overflow the integer they are computed as)
                    raise ValueError(
                        f"bucket: {width:g} s buckets are too narrow for series {sid}'s points at "
                        f"t={max(abs(lo), abs(hi)):g}: the bucket number t / bucket would be past 2**53"
                    )
                n = math.floor(last) - math.floor(first) + 1
                if n > max_buckets:
                    raise ValueError(
                        f"bucket: {width:g} s buckets over series {sid}'s points from t={lo:g} to t={hi:g} "
                        f"would be {n} buckets, more than the {max_buckets} allowed: use wider buckets or a "
                        "shorter range"
                    )
            if not spans:
                return out
            k = _floor_div(conn.dialect, points.c.t, width)
            inrange = (
                sa.select(
                    points.c.series_id,
                    k.label("k"),
                    points.c.t,
                    points.c.value,
                    sa.func.row_number()
                    .over(
                        partition_by=(points.c.series_id, k),
                        order_by=(points.c.t.desc(), points.c.step.desc().nulls_last()),
                    )
                    .label("rn"),
                )
                .where(*where)
                .subquery()
            )
            last = sa.func.max(sa.case((inrange.c.rn == 1, inrange.c.value))).label("last")
            q = (
                sa.select(
                    inrange.c.series_id,
                    inrange.c.k,
                    sa.func.count(inrange.c.value),
                    sa.func.count() - sa.func.count(inrange.c.value),
                    sa.func.avg(inrange.c.value),
                    sa.func.min(inrange.c.value),
                    sa.func.max(inrange.c.value),
                    last,
                )
                .group_by(inrange.c.series_id, inrange.c.k)
                .order_by(inrange.c.series_id, inrange.c.k)
            )
            rows = conn.execute(q).all()
        by_series: dict[int, list[sa.Row]] = {}
        for r in rows:
            by_series.setdefault(r[0], []).append(r)
        for sid, rs in by_series.items():
            out[sid] = Buckets(
                width=width,
                start=np.array([r[1] * width for r in rs], dtype=np.float64),
                count=np.array([r[2] for r in rs], dtype=np.int64),
                nan=np.array([r[3] for r in rs], dtype=np.int64),
                mean=np.array([_value(r[4]) for r in rs], dtype=np.float64),
                min=np.array([_value(r[5]) for r in rs], dtype=np.float64),
                max=np.array([_value(r[6]) for r in rs], dtype=np.float64),
                last=np.array([_value(r[7]) for r in rs], dtype=np.float64),
            )
        return out


_POINT_COLUMNS = ("series_id", "step", "t", "value")


def write_points(store: Store, conn: sa.Connection, batches: list[Points], replace: bool = False) -> None:
    """Insert the points; with ``replace``, first delete the points of those series at those times."""
    rows: list[tuple] = []
    sqlite = conn.dialect.name == "sqlite"
    for p in batches:
        if not len(p):
            continue
        ids = store.series_ids(conn, p.project, p.subject, p.run_id, p.labels, set(p.name))
        # NaN is stored as NULL; SQLite's driver already binds NaN as NULL, other drivers need telling
        values = p.value if sqlite else [None if v != v else v for v in p.value]
        if replace:
            times = sorted(set(p.t))
            conn.execute(
                sa.delete(points).where(
                    points.c.series_id.in_(sorted(set(ids.values()))), points.c.t.in_(times)
                )
            )
        rows.extend(zip(map(ids.__getitem__, p.name), p.step, p.t, values, strict=True))
    if rows:
        conn.exec_driver_sql(positional_insert(conn.dialect, points, _POINT_COLUMNS), rows)
