"""Signals: time series ``(project, subject, name, labels) -> (t, value)``, with a step for logged scalars.

Charts, alert rules and the Prometheus endpoint read signals and only signals. Points are written in bulk
(one executemany per batch); series rows are created on first sight and their ids cached per store.

Range queries read the half-open interval ``[start, end)``. Bucketed queries aggregate in SQL, grouped by
``floor(t / width)`` (buckets aligned to multiples of the width, like the SDK's windows), so a chart of a
million points moves a few hundred rows out of the database, not a million.

Roll-ups. Aggregating in SQL still reads every point: a month of 1-minute windows of 25 features is 1.08M
points, which took SQLite about 2 s to group (0.7 s without the ``last`` value; measured on this project's
2-core machine). So the points of subject series (``run_id`` NULL: what monitors derive from windows, which
dashboards chart over long ranges) are also kept aggregated per bucket at :data:`ROLLUP_WIDTHS` in
``point_rollups``, recomputed from the points by :func:`write_points` for every bucket a write touches
(count, NaN count, sum, min, max and the newest point; all merge exactly), the way a time-series database
keeps downsampled tiers (Graphite's retentions, InfluxDB's continuous queries). :meth:`Signals.buckets` reads
them when the width is a multiple of a roll-up width and the range is aligned to it, and then returns exactly
what aggregating the points would. A run's logged scalars have no roll-ups: they are charted by step, and
written at rates where the extra write would cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from watchkeeper.store.batch import Points
from watchkeeper.store.engine import positional_insert
from watchkeeper.store.schema import point_rollups, points, projects, series

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

ROLLUP_WIDTHS = (300, 1800, 3600)
"""Bucket widths in seconds at which subject series are kept rolled up (5 and 30 minutes, 1 hour), each a
multiple of the one before: every chart step from 5 minutes up (the dashboard's 300, 600, 1800, 3600, ... s)
is a multiple of one of them, and a week at 30-minute steps reads one row per point."""


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

    def last_in(
        self, series_ids: list[int], start: float | None = None, end: float | None = None
    ) -> dict[int, tuple[float, float]]:
        """The newest point ``(t, value)`` of each series in ``[start, end)`` (one index seek per series; a
        series without a point there is left out)."""
        out = {}
        with self._store.connect() as conn:
            for sid in sorted(set(series_ids)):
                row = conn.execute(
                    sa.select(points.c.t, points.c.value)
                    .where(points.c.series_id == sid, *_in_range(start, end))
                    .order_by(points.c.t.desc(), points.c.step.desc().nulls_last())
                    .limit(1)
                ).first()
                if row is not None:
                    out[sid] = (float(row[0]), _value(row[1]))
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
            rollup = rollup_width(width, start, end)
            if (
                rollup is not None
                and not conn.execute(
                    sa.select(sa.func.count()).where(series.c.id.in_(ids), series.c.run_id.is_not(None))
                ).scalar_one()
            ):
                out.update(_from_rollups(conn, ids, width, rollup, start, end, max_buckets))
                return out
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


def rollup_width(width: float, start: float | None = None, end: float | None = None) -> int | None:
    """The widest of :data:`ROLLUP_WIDTHS` that divides ``width`` and to which ``start`` and ``end`` are
    aligned (buckets of ``width`` are then whole roll-up buckets); None when there is none.

    >>> rollup_width(7200), rollup_width(1800, start=2700.0), rollup_width(1800, start=2701.0)
    (3600, 300, None)
    >>> rollup_width(60) is None
    True
    """
    for r in sorted(ROLLUP_WIDTHS, reverse=True):
        if width % r == 0 and all(x is None or x % r == 0 for x in (start, end)):
            return r
    return None


def _too_many(sid: int, width: float, lo: float, hi: float, n: int, max_buckets: int) -> ValueError:
    return ValueError(
        f"bucket: {width:g} s buckets over series {sid}'s points from t={lo:g} to t={hi:g} "
        f"would be {n} buckets, more than the {max_buckets} allowed: use wider buckets or a shorter range"
    )


def _from_rollups(
    conn: sa.Connection,
    ids: list[int],
    width: float,
    rollup: int,
    start: float | None,
    end: float | None,
    max_buckets: int,
) -> dict[int, Buckets]:
    """:meth:`Signals.buckets` from the roll-ups of width ``rollup`` (which divides ``width``; ``start`` and
    ``end`` are aligned to it): the same answer as from the points, reading a row per roll-up bucket."""
    r = point_rollups.c
    q = sa.select(r.series_id, r.k, r.count, r.nan, r.sum, r.min, r.max, r.last_value).where(
        r.series_id.in_(ids), r.width == rollup
    )
    if start is not None:
        q = q.where(r.k >= int(start // rollup))
    if end is not None:
        q = q.where(r.k < int(end // rollup))
    rows = _plain_rows(conn, q.order_by(r.series_id, r.k))
    out: dict[int, Buckets] = {}
    if not rows:
        return out
    table = np.array(rows, dtype=np.float64)  # NULL, a NaN value, becomes NaN
    sid, k = table[:, 0].astype(np.int64), table[:, 1].astype(np.int64)
    count, nan, total, lo, hi, last = table[:, 2:].T
    g = np.floor_divide(k, int(width // rollup))  # the bucket of width ``width`` each roll-up row falls in
    cut = np.flatnonzero((sid[1:] != sid[:-1]) | (g[1:] != g[:-1])) + 1
    first, stop = np.r_[0, cut], np.r_[cut, len(sid)]
    n = np.add.reduceat(count, first)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.add.reduceat(np.nan_to_num(total), first) / n, np.nan)
    agg = (
        n.astype(np.int64),
        np.add.reduceat(nan, first).astype(np.int64),
        mean,
        np.fmin.reduceat(lo, first),
        np.fmax.reduceat(hi, first),
        last[stop - 1],  # rows are in time order within a series, so a bucket's newest is its last row
    )
    series_of = sid[first]
    for s in np.unique(series_of):
        at = series_of == s
        gs = g[first][at]
        span = int(gs[-1] - gs[0] + 1)
        if span > max_buckets:
            raise _too_many(int(s), width, gs[0] * width, (gs[-1] + 1) * width, span, max_buckets)
        out[int(s)] = Buckets(width, gs * float(width), *(a[at] for a in agg))
    return out


def _plain_rows(conn: sa.Connection, query: sa.Select) -> list[tuple]:
    """The rows of ``query`` as the driver's plain tuples, through the connection's DB-API cursor.

    A chart's roll-up rows are numbers only, and building SQLAlchemy ``Row`` objects for them cost as much
    as the database's reading them (about 100 ms each for the 37,000 rows of a month's drift heatmap);
    numpy then reads the tuples in C (a ``Row`` it probes for array interfaces, an exception per row)."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    args: Any = tuple(params[k] for k in compiled.positiontup or ()) if compiled.positional else params
    cursor = conn.connection.cursor()
    try:
        cursor.execute(compiled.string, args)
        return cursor.fetchall()
    finally:
        cursor.close()


def refresh_rollups(conn: sa.Connection, spans: dict[int, tuple[float, float]]) -> None:
    """Recompute the roll-up rows of every bucket (at every width) that holds a time in ``[lo, hi]`` of each
    series ``{series_id: (lo, hi)}``: the finest width from the points, each coarser one from the roll-ups
    of the width below it (so an hour reads six rows per series, not sixty points). Called by
    :func:`write_points` for subject series, and by the migration that created the table."""
    if not spans:
        return
    widths = sorted(ROLLUP_WIDTHS)
    by_span: dict[tuple[int, int], list[int]] = {}
    for sid, (lo, hi) in spans.items():  # series written over the same buckets share their queries
        by_span.setdefault((math.floor(lo / widths[-1]), math.floor(hi / widths[-1])), []).append(sid)
    r = point_rollups.c
    for sids in by_span.values():
        lo = min(spans[s][0] for s in sids)
        hi = max(spans[s][1] for s in sids)
        finer: int | None = None  # the width just below w, once rolled up
        for w in widths:
            a, b = math.floor(lo / w), math.floor(hi / w) + 1  # the buckets [a, b) of width w to recompute
            conn.execute(
                sa.delete(point_rollups).where(r.series_id.in_(sids), r.width == w, r.k >= a, r.k < b)
            )
            if finer is None:
                found = conn.execute(
                    sa.select(points.c.series_id, points.c.t, points.c.value)
                    .where(points.c.series_id.in_(sids), points.c.t >= a * w, points.c.t < b * w)
                    .order_by(points.c.series_id, points.c.t, points.c.step.nulls_first())
                ).all()
                table = np.array(list(map(tuple, found)), dtype=np.float64).reshape(-1, 3)  # NULL: NaN
                sid, t, v = table[:, 0].astype(np.int64), table[:, 1], table[:, 2]
                ok = ~np.isnan(v)
                parts = (
                    sid,
                    t,
                    ok.astype(np.int64),
                    (~ok).astype(np.int64),
                    np.where(ok, v, 0.0),
                    v,
                    v,
                    t,
                    v,
                )
            else:
                found = conn.execute(
                    sa.select(r.series_id, r.k, r.count, r.nan, r.sum, r.min, r.max, r.last_t, r.last_value)
                    .where(r.series_id.in_(sids), r.width == finer, r.k >= a * w // finer)
                    .where(r.k < b * w // finer)
                    .order_by(r.series_id, r.k)
                ).all()
                cols = np.array(list(map(tuple, found)), dtype=np.float64).reshape(-1, 9)
                sid = cols[:, 0].astype(np.int64)
                t = (cols[:, 1] * finer).astype(np.float64)  # a bucket's start places it in the coarser one
                parts = (sid, t, cols[:, 2], cols[:, 3], np.nan_to_num(cols[:, 4]), *cols[:, 5:].T)
            rows = _rollup_rows(w, *parts)
            if rows:
                conn.exec_driver_sql(positional_insert(conn.dialect, point_rollups, _ROLLUP_COLUMNS), rows)
            finer = w


def _rollup_rows(
    width: int,
    sid: np.ndarray,
    t: np.ndarray,
    count: np.ndarray,
    nan: np.ndarray,
    total: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    last_t: np.ndarray,
    last_v: np.ndarray,
) -> list[tuple]:
    """Roll-up rows of ``width`` from finer parts (points, or roll-ups of a finer width) ordered by series
    and time: counts and sums add, min and max of the non-NaN values, the newest part's time and value."""
    if not len(sid):
        return []
    k = np.floor(t / width).astype(np.int64)
    cut = np.flatnonzero((sid[1:] != sid[:-1]) | (k[1:] != k[:-1])) + 1
    first, stop = np.r_[0, cut], np.r_[cut, len(t)]
    n = np.add.reduceat(count, first).astype(np.int64)
    rows = zip(
        sid[first].tolist(),
        k[first].tolist(),
        n.tolist(),
        np.add.reduceat(nan, first).astype(np.int64).tolist(),
        np.add.reduceat(total, first).tolist(),
        np.fmin.reduceat(lo, first).tolist(),
        np.fmax.reduceat(hi, first).tolist(),
        last_t[stop - 1].tolist(),
        last_v[stop - 1].tolist(),
        strict=True,
    )
    return [
        (s, width, kk, c, m, *((x, y, z) if c else (None, None, None)), lt, None if lv != lv else lv)
        for s, kk, c, m, x, y, z, lt, lv in rows
    ]


_ROLLUP_COLUMNS = ("series_id", "width", "k", "count", "nan", "sum", "min", "max", "last_t", "last_value")
_POINT_COLUMNS = ("series_id", "step", "t", "value")


def write_points(store: Store, conn: sa.Connection, batches: list[Points], replace: bool = False) -> None:
    """Insert the points; with ``replace``, first delete the points of those series at those times."""
    rows: list[tuple] = []
    spans: dict[int, tuple[float, float]] = {}  # subject series written: the times to roll up again
    sqlite = conn.dialect.name == "sqlite"
    for p in batches:
        if not len(p):
            continue
        ids = store.series_ids(conn, p.project, p.subject, p.run_id, p.labels, set(p.name))
        if p.run_id is None:
            for name, t in zip(p.name, p.t, strict=True):
                sid = ids[name]
                lo, hi = spans.get(sid, (t, t))
                spans[sid] = (min(lo, t), max(hi, t))
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
    refresh_rollups(conn, spans)
