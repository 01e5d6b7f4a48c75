"""Retention of window profiles: old windows merged into coarser roll-ups (minutes -> hours -> days).

A deployment writes one window profile per replica and window (a minute by default): 90 days of them is
129,600 profiles per replica, each as large as its sketches (about 136 kB for 25 numeric columns of 1,000
rows). Profiles merge (:meth:`watchkeeper.profile.Profile.merge`), so old history can be kept as the merge of
its windows over a coarser bucket, at the size of one profile per bucket:

* A :class:`RetentionPolicy` has ordered levels ``(age, size)``, written ``8d:1h,32d:1d``: a bucket
  ``[k * size, (k + 1) * size)`` (aligned to the epoch, so days are UTC days) whose end is at least ``age``
  seconds before ``now`` has its window and roll-up profiles finer than ``size`` merged into one profile of
  kind ``rollup`` spanning the bucket (``rows`` the sum), and the merged rows deleted in the same
  transaction: a crash leaves either the old rows or the new one, never both and never neither. A
  profile belongs to the bucket its start falls in; the roll-up spans ``[k * size, max((k + 1) * size,
  latest end))``.
* Levels are applied coarsest first, so a window older than every level is merged once, into its day, not
  first into its hour. A window arriving late into a bucket already rolled up is merged with that bucket's
  roll-up on the next call (the roll-up that starts at the bucket's start is a member of its bucket).
* ``drop_after`` (optional) deletes window and roll-up profiles that ended more than that long ago.
* Never touched: profiles of kind ``reference``, and any profile a row of ``references`` points at.

What stays exact: every merge is exact for the parts that add (rows, counts, missing/NaN/inf, min, max,
true/false counts, frequent items below their capacity, traffic requests, errors, statuses, latency and
stage sketches (DDSketch buckets add), token and cost sums); moments agree to rounding (Chan et al.'s
pairwise update in another order); KLL quantile sketches compact at random when merged, so a roll-up's
quantiles are within the sketch's rank error of the exact ones, as any merge of windows is
(:mod:`watchkeeper.sketch.quantiles`). A roll-up answers for its whole bucket only: a range that cuts a
rolled-up hour gets all of that hour.

Ages must be at least ``min_age``: callers pass the monitors' label horizon
(:attr:`watchkeeper.monitor.base.MonitorSettings.label_horizon`, 7 days by default), because late labels
re-score the stored windows of that horizon, which must still be windows. The default levels, 8 days to
hours and 32 days to days, keep a day to spare.

The work is bounded in memory: subjects one at a time, their profiles' metadata read by pages in time order
and grouped by bucket, and a bucket's blobs read a few at a time and merged as they come. Each bucket is
replaced in its own short write transaction, which deletes exactly the rows that were merged: if another
writer changed them meanwhile (a concurrent roll-up), the transaction is rolled back and the bucket left for
the next call. A second call with the same ``now`` finds nothing to do.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import sqlalchemy as sa

from watchkeeper.errors import StoreError
from watchkeeper.monitor.base import MonitorSettings
from watchkeeper.profile import Profile
from watchkeeper.store.profiles import TRAFFIC_KINDS
from watchkeeper.store.schema import profiles, projects, references

if TYPE_CHECKING:
    from watchkeeper.store.store import Store

__all__ = [
    "DEFAULT_POLICY",
    "RetentionLevel",
    "RetentionPolicy",
    "RollupResult",
    "StepResult",
    "format_seconds",
    "rollup",
]

DEFAULT_POLICY = "8d:1h,32d:1d"
PAGE_ROWS = 10_000
"""Profiles' metadata rows read per query while walking a subject's history."""
BLOB_CHUNK = 32
"""Profiles' bytes read per query while merging a bucket."""
ID_CHUNK = 500
"""Ids per ``IN (...)`` list when deleting."""

LABEL_HORIZON = MonitorSettings().label_horizon
"""The default ``min_age``: the monitors' default label horizon (7 days)."""

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")


def parse_seconds(text: str, what: str) -> float:
    """``90s``, ``15m``, ``8d``, ``1h30m``, ``2w``: seconds; ValueError naming ``what`` otherwise."""
    s = str(text).strip().lower()
    parts = _DURATION.findall(s)
    if not s or "".join(n + u for n, u in parts) != s:
        raise ValueError(f"{what}: expected a duration such as 90s, 15m, 1h or 8d, got {text!r}")
    return float(sum(float(n) * _UNITS[u] for n, u in parts))


def format_seconds(seconds: float) -> str:
    """The shortest of ``8d``, ``1h``, ``90s`` that says ``seconds`` exactly (whole units only).

    >>> format_seconds(8 * 86400), format_seconds(3600), format_seconds(5400), format_seconds(1.5)
    ('8d', '1h', '90m', '1.5s')
    """
    for unit, size in _UNITS.items():
        if unit != "w" and seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


@dataclass(frozen=True, slots=True)
class RetentionLevel:
    """Buckets of ``size`` seconds that ended at least ``age`` seconds ago are rolled up."""

    age: float
    size: int

    def __str__(self) -> str:
        return f"{format_seconds(self.age)}:{format_seconds(self.size)}"


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Roll-up levels, finest first, and an optional age after which profiles are deleted.

    >>> p = RetentionPolicy.parse("8d:1h,32d:1d")
    >>> str(p), [lvl.size for lvl in p.levels]
    ('8d:1h,32d:1d', [3600, 86400])
    >>> RetentionPolicy.parse("8d-1h")
    Traceback (most recent call last):
    ...
    ValueError: retention policy levels[0]: expected AGE:SIZE such as 8d:1h, got '8d-1h'

    ``min_age`` (seconds) is the youngest age a level or ``drop_after`` may have: pass the monitors'
    ``label_horizon``, whose windows late labels re-score.
    """

    levels: tuple[RetentionLevel, ...] = ()
    drop_after: float | None = None
    min_age: float = LABEL_HORIZON

    def __post_init__(self) -> None:
        if not (isinstance(self.min_age, int | float) and 0 <= self.min_age < math.inf):
            raise ValueError(f"retention policy min_age: expected seconds, 0 or more, got {self.min_age!r}")
        prev: RetentionLevel | None = None
        for i, lvl in enumerate(self.levels):
            where = f"retention policy levels[{i}] ({lvl})"
            if not (isinstance(lvl.age, int | float) and 0 < lvl.age < math.inf):
                raise ValueError(f"{where}: age: expected a positive number of seconds, got {lvl.age!r}")
            if not (isinstance(lvl.size, int) and lvl.size > 0):
                raise ValueError(
                    f"{where}: size: expected a whole number of seconds, 1 or more, got {lvl.size!r}"
                )
            if lvl.age < self.min_age:
                raise ValueError(
                    f"{where}: age: expected at least min_age {format_seconds(self.min_age)} (the label "
                    f"horizon: late labels re-score the windows that recent), got {format_seconds(lvl.age)}"
                )
            if prev is not None:
                if lvl.size <= prev.size or lvl.size % prev.size:
                    raise ValueError(
                        f"{where}: size: expected a multiple of the previous level's size "
                        f"{format_seconds(prev.size)}, got {format_seconds(lvl.size)}"
                    )
                if lvl.age <= prev.age:
                    raise ValueError(
                        f"{where}: age: expected more than the previous level's age "
                        f"{format_seconds(prev.age)}, got {format_seconds(lvl.age)}"
                    )
            prev = lvl
        if self.drop_after is not None:
            d = self.drop_after
            if not (isinstance(d, int | float) and 0 < d < math.inf):
                raise ValueError(
                    f"retention policy drop_after: expected a positive number of seconds, got {d!r}"
                )
            if d < self.min_age:
                raise ValueError(
                    f"retention policy drop_after: expected at least min_age {format_seconds(self.min_age)}, "
                    f"got {format_seconds(d)}"
                )
            if self.levels and d <= self.levels[-1].age:
                raise ValueError(
                    "retention policy drop_after: expected more than the oldest level's age "
                    f"{format_seconds(self.levels[-1].age)}, got {format_seconds(d)}"
                )

    @classmethod
    def parse(
        cls, text: str, *, drop_after: str | float | None = None, min_age: float = LABEL_HORIZON
    ) -> RetentionPolicy:
        """``AGE:SIZE`` levels separated by commas (``8d:1h,32d:1d``); ``""`` or ``none`` for no levels.
        ``drop_after`` is a duration (``180d``) or seconds."""
        levels = []
        text = text.strip()
        if text.lower() not in ("", "none"):
            for i, part in enumerate(text.split(",")):
                age, colon, size = part.strip().partition(":")
                if not colon:
                    raise ValueError(
                        f"retention policy levels[{i}]: expected AGE:SIZE such as 8d:1h, got {part.strip()!r}"
                    )
                age_s = parse_seconds(age, f"retention policy levels[{i}] age")
                size_s = parse_seconds(size, f"retention policy levels[{i}] size")
                if size_s != int(size_s):
                    raise ValueError(
                        f"retention policy levels[{i}] size: expected whole seconds, got {size.strip()!r}"
                    )
                levels.append(RetentionLevel(age_s, int(size_s)))
        drop = drop_after
        if isinstance(drop, str):
            drop = parse_seconds(drop, "retention policy drop_after")
        return cls(tuple(levels), drop, min_age)

    def __str__(self) -> str:
        return ",".join(str(lvl) for lvl in self.levels) or "none"


@dataclass(slots=True)
class StepResult:
    """What one step did: a level (``name`` ``"1h after 8d"``) or the drop (``"drop after 180d"``).

    ``profiles_read``: window and roll-up profiles merged; ``profiles_deleted``: rows deleted (merged, or
    dropped); ``bytes_before``: the bytes of the deleted rows; ``bytes_after``: of the roll-ups written (0 in
    a dry run, which reads no profile's bytes)."""

    name: str
    buckets: int = 0
    profiles_read: int = 0
    profiles_deleted: int = 0
    rollups_written: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


@dataclass(slots=True)
class RollupResult:
    """What :func:`rollup` did, per step and in total. ``skipped``: buckets left as they were because
    another writer changed them meanwhile (the next call does them); ``unreadable``: profiles that could
    not be read (corrupt, or of a newer format), left in place and out of the merges."""

    steps: list[StepResult] = field(default_factory=list)
    dry_run: bool = False
    subjects: int = 0
    skipped: int = 0
    unreadable: int = 0

    def _sum(self, name: str) -> int:
        return sum(getattr(s, name) for s in self.steps)

    @property
    def buckets(self) -> int:
        return self._sum("buckets")

    @property
    def profiles_read(self) -> int:
        return self._sum("profiles_read")

    @property
    def profiles_deleted(self) -> int:
        return self._sum("profiles_deleted")

    @property
    def rollups_written(self) -> int:
        return self._sum("rollups_written")

    @property
    def bytes_before(self) -> int:
        return self._sum("bytes_before")

    @property
    def bytes_after(self) -> int:
        return self._sum("bytes_after")

    def __str__(self) -> str:
        verb = "would merge" if self.dry_run else "merged"
        after = "" if self.dry_run else f" -> {self.bytes_after:,}"
        return (
            f"{verb} {self.profiles_read:,} profiles into {self.rollups_written:,} roll-ups in "
            f"{self.buckets:,} buckets of {self.subjects:,} subjects, deleted {self.profiles_deleted:,} "
            f"profiles ({self.bytes_before:,} bytes{after}); skipped {self.skipped}, "
            f"unreadable {self.unreadable}"
        )


Progress = Callable[[int, int, RollupResult], None]
"""Called as ``progress(subjects_done, subjects_total, result_so_far)`` after each bucket and subject."""


class _Meta(NamedTuple):
    id: int
    kind: str
    start: float
    end: float
    rows: int
    run_id: str | None
    size: int  # bytes of the profile


class _Changed(Exception):
    """The bucket's rows changed between reading and replacing them: its transaction is rolled back."""


def rollup(
    store: Store,
    policy: RetentionPolicy | None = None,
    *,
    now: float | None = None,
    project: str | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> RollupResult:
    """Apply ``policy`` (the default: :data:`DEFAULT_POLICY`) to the window profiles of every subject (of
    ``project``, or of all projects) as of ``now`` (default: the clock). ``dry_run`` reads only the
    profiles' metadata and says what would be done. Database errors are raised as ``StoreError``; what was
    committed before stays (each bucket is whole)."""
    policy = policy if policy is not None else RetentionPolicy.parse(DEFAULT_POLICY)
    now = time.time() if now is None else float(now)
    result = RollupResult(dry_run=dry_run)
    drop = StepResult(f"drop after {format_seconds(policy.drop_after)}") if policy.drop_after else None
    # coarsest first: a profile older than several levels is merged once, into the coarsest bucket
    coarse_first = sorted(policy.levels, key=lambda lvl: -lvl.size)
    steps = {
        lvl: StepResult(f"{format_seconds(lvl.size)} after {format_seconds(lvl.age)}") for lvl in coarse_first
    }
    result.steps = [*([drop] if drop else []), *(steps[lvl] for lvl in policy.levels)]
    try:
        subjects = _subjects(store, project)
        result.subjects = len(subjects)
        for done, (project_id, subject) in enumerate(subjects):
            if drop is not None and policy.drop_after is not None:
                _drop(store, project_id, subject, now - policy.drop_after, drop, dry_run)
            lo: float | None = None  # everything before it is already coarser than the level at hand
            # what the drop deleted (or in a dry run would delete) is not rolled up
            dropped = None if policy.drop_after is None else now - policy.drop_after
            for lvl in coarse_first:
                hi = math.floor((now - lvl.age) / lvl.size) * lvl.size  # the first bucket not yet due
                if lo is None or lo < hi:
                    for k, rows in _buckets(store, project_id, subject, lvl.size, lo, hi, dropped):
                        _roll_bucket(
                            store, project_id, subject, lvl.size, k, rows, steps[lvl], result, dry_run
                        )
                        if progress is not None:
                            progress(done, len(subjects), result)
                lo = hi if lo is None else max(lo, hi)
            if progress is not None:
                progress(done + 1, len(subjects), result)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"rolling up profiles in {store.display_uri} failed: {exc}") from exc
    return result


# -- reading ------------------------------------------------------------------------------------------------


def _not_referenced() -> sa.ColumnElement[bool]:
    return profiles.c.id.not_in(sa.select(references.c.profile_id))


def _subjects(store: Store, project: str | None) -> list[tuple[int, str]]:
    """``(project_id, subject)`` of every subject with profiles (from the index alone), by name."""
    p = profiles.c
    q = (
        sa.select(p.project_id, p.subject, projects.c.name)
        .join(projects, projects.c.id == p.project_id)
        .distinct()
        .order_by(projects.c.name, p.subject)
    )
    if project is not None:
        q = q.where(projects.c.name == project)
    with store.connect() as conn:
        return [(int(r[0]), r[1]) for r in conn.execute(q)]


def _meta_query(project_id: int, subject: str) -> sa.Select:
    p = profiles.c
    return (
        sa.select(p.id, p.kind, p.window_start, p.window_end, p.rows, p.run_id, sa.func.length(p.data))
        .where(p.project_id == project_id, p.subject == subject, p.kind.in_(TRAFFIC_KINDS), _not_referenced())
        .order_by(p.window_start, p.id)
    )


def _fetch(store: Store, q: sa.Select) -> list[_Meta]:
    with store.connect() as conn:
        return [
            _Meta(int(r[0]), r[1], float(r[2]), float(r[3]), int(r[4]), r[5], int(r[6] or 0))
            for r in conn.execute(q)
        ]


def _buckets(
    store: Store, project_id: int, subject: str, size: int, lo: float | None, hi: float, dropped: float | None
) -> Iterator[tuple[int, list[_Meta]]]:
    """``(k, profiles)`` of each bucket ``[k * size, (k + 1) * size)`` with profiles starting in
    ``[lo, hi)`` (and ending after ``dropped``), in time order, read by pages of :data:`PAGE_ROWS` (a
    bucket larger than a page is read whole: metadata only). No connection is held between two buckets."""
    base = _meta_query(project_id, subject).where(profiles.c.window_start < hi)
    if dropped is not None:
        base = base.where(profiles.c.window_end > dropped)
    while lo is None or lo < hi:
        q = base if lo is None else base.where(profiles.c.window_start >= lo)
        page = _fetch(store, q.limit(PAGE_ROWS))
        groups: list[tuple[int, list[_Meta]]] = []
        for m in page:
            k = math.floor(m.start / size)
            if groups and groups[-1][0] == k:
                groups[-1][1].append(m)
            else:
                groups.append((k, [m]))
        if len(page) < PAGE_ROWS:
            yield from groups
            return
        if len(groups) == 1:  # one bucket fills the page: read it whole
            k = groups[0][0]
            yield (
                k,
                _fetch(
                    store,
                    base.where(profiles.c.window_start >= k * size, profiles.c.window_start < (k + 1) * size),
                ),
            )
            lo = (k + 1) * size
            continue
        last_k = groups[-1][0]  # may go on in the next page
        yield from groups[:-1]
        lo = last_k * size


# -- merging one bucket ---------------------------------------------------------------------------------


def _roll_bucket(
    store: Store,
    project_id: int,
    subject: str,
    size: int,
    k: int,
    found: Sequence[_Meta],
    step: StepResult,
    result: RollupResult,
    dry_run: bool,
) -> None:
    start = k * size
    # the bucket's own roll-up (starting at its start) is merged again when finer profiles join it; a
    # coarser profile starting elsewhere in it (a roll-up of another policy) is left alone
    members = [m for m in found if m.end - m.start < size or (m.kind == "rollup" and m.start == start)]
    if not any(m.end - m.start < size for m in members) and len(members) < 2:
        return
    if dry_run:
        step.buckets += 1
        step.profiles_read += len(members)
        step.profiles_deleted += len(members)
        step.rollups_written += 1
        step.bytes_before += sum(m.size for m in members)
        return
    by_id = {m.id: m for m in members}
    merged: Profile | None = None
    merged_ids: list[int] = []
    ids = list(by_id)
    for i in range(0, len(ids), BLOB_CHUNK):
        chunk = ids[i : i + BLOB_CHUNK]
        with store.connect() as conn:
            blobs = conn.execute(
                sa.select(profiles.c.id, profiles.c.data).where(profiles.c.id.in_(chunk))
            ).all()
        for pid, data in blobs:
            try:
                prof = Profile.from_bytes(data)
            except ValueError:
                result.unreadable += 1  # left in place: merging the rest and deleting it would lose it
                continue
            merged = prof if merged is None else merged.merge(prof)
            merged_ids.append(int(pid))
    if merged is None:
        return  # all gone (another roll-up took them) or unreadable
    used = [by_id[i] for i in merged_ids]
    if len(used) == 1 and used[0].kind == "rollup" and used[0].start == start:
        return  # only the bucket's own roll-up could be read: nothing to merge it with
    runs = {m.run_id for m in used}
    row = {
        "project_id": project_id,
        "subject": subject,
        "run_id": runs.pop() if len(runs) == 1 else None,  # one run's windows stay that run's
        "kind": "rollup",
        "window_start": float(start),
        "window_end": max(float(start + size), *(m.end for m in used)),
        "rows": sum(m.rows for m in used),
        "format_version": merged.format_version,
        "data": merged.to_bytes(),
    }
    try:
        with store.begin_write() as conn:
            deleted = 0
            for i in range(0, len(merged_ids), ID_CHUNK):
                chunk = merged_ids[i : i + ID_CHUNK]
                deleted += conn.execute(
                    profiles.delete().where(profiles.c.id.in_(chunk), _not_referenced())
                ).rowcount
            if deleted != len(merged_ids):
                raise _Changed
            _insert_rollup(conn, row)
    except _Changed:
        result.skipped += 1
        return
    step.buckets += 1
    step.profiles_read += len(used)
    step.profiles_deleted += len(used)
    step.rollups_written += 1
    step.bytes_before += sum(m.size for m in used)
    step.bytes_after += len(row["data"])


def _insert_rollup(conn: sa.Connection, row: dict) -> None:
    conn.execute(profiles.insert().values(**row))


# -- dropping -----------------------------------------------------------------------------------------------


def _drop(
    store: Store, project_id: int, subject: str, cutoff: float, step: StepResult, dry_run: bool
) -> None:
    """Delete the subject's window and roll-up profiles that ended at or before ``cutoff``, by chunks of
    ids, each in its own transaction."""
    p = profiles.c
    where = (
        p.project_id == project_id,
        p.subject == subject,
        p.kind.in_(TRAFFIC_KINDS),
        p.window_end <= cutoff,
    )
    if dry_run:
        with store.connect() as conn:
            n, size = conn.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(sa.func.length(p.data)), 0)).where(
                    *where, _not_referenced()
                )
            ).one()
        step.profiles_deleted += int(n)
        step.bytes_before += int(size)
        return
    while True:
        with store.connect() as conn:
            ids = (
                conn.execute(sa.select(p.id).where(*where, _not_referenced()).order_by(p.id).limit(ID_CHUNK))
                .scalars()
                .all()
            )
        if not ids:
            return
        with store.begin_write() as conn:
            gone = conn.execute(
                profiles.delete()
                .where(p.id.in_(ids), *where, _not_referenced())
                .returning(p.id, sa.func.length(p.data))
            ).all()
        step.profiles_deleted += len(gone)
        step.bytes_before += sum(int(r[1] or 0) for r in gone)
