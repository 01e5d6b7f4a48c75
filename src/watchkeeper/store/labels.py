"""Predictions and the ground-truth labels that arrive for them later, joined by prediction id.

A deployment logs its predictions with ids; labels come days later (a chargeback, a human review) under the
same ids. Performance (accuracy, F1, AUC, RMSE) is computed over the predictions that have a label by then.
Either may arrive first: the two tables are only joined when read.

* A prediction id sent again keeps the first prediction (a retried request is not a new prediction).
* A label sent again for an id replaces the earlier one, value and time (a corrected review wins).

Values are JSON, encoded with :mod:`watchkeeper.store.codec` so NaN and infinity survive the round trip.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from watchkeeper.errors import StoreError
from watchkeeper.store import codec
from watchkeeper.store.batch import LabelRows, PredictionRows
from watchkeeper.store.engine import insert_ignore
from watchkeeper.store.schema import labels, predictions, projects

if TYPE_CHECKING:
    from watchkeeper.store.store import Store

MAX_ID = 256
MAX_SUBJECT = 320
MAX_PROJECT = 128


@dataclass(frozen=True, slots=True)
class Joined:
    """Labelled predictions, column-wise and ordered by prediction time: prediction ``ids[i]`` made at
    ``t[i]`` output ``predictions[i]``, and its label is ``labels[i]``, known at ``label_t[i]``."""

    ids: list[str]
    t: list[float]
    predictions: list[dict[str, Any]]
    labels: list[Any]
    label_t: list[float]

    def __len__(self) -> int:
        return len(self.ids)


_PREDICTIONS = predictions.join(projects, projects.c.id == predictions.c.project_id)
_JOIN_ON = sa.and_(
    labels.c.project_id == predictions.c.project_id,
    labels.c.subject == predictions.c.subject,
    labels.c.prediction_id == predictions.c.prediction_id,
)


class Labels:
    """Queries over predictions and their labels. Writes arrive through :meth:`Store.write`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def joined(
        self,
        project: str,
        subject: str,
        start: float | None = None,
        end: float | None = None,
        limit: int | None = None,
    ) -> Joined:
        """The predictions of ``subject`` made in [start, end) that have a label, oldest first (ties by id);
        at most ``limit`` of them."""
        # The predictions in range are a MATERIALIZED CTE on PostgreSQL so that each one looks its label up
        # by the whole primary key. In one flat join the planner also knows labels.subject = :subject and,
        # for a subject its statistics have not seen yet (a newly deployed version), estimates one row
        # either side; it then picks a nested loop that scans every label of the subject per prediction:
        # quadratic, 6.5 s instead of 25 ms for 10,000 predictions.
        ranged = (
            sa.select(
                predictions.c.project_id,
                predictions.c.subject,
                predictions.c.prediction_id,
                predictions.c.t,
                predictions.c.value,
            )
            .select_from(_PREDICTIONS)
            .where(*_in_range(project, subject, start, end))
            .cte("ranged")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        q = (
            sa.select(
                ranged.c.prediction_id,
                ranged.c.t,
                ranged.c.value,
                labels.c.value.label("label"),
                labels.c.t.label("label_t"),
            )
            .join(
                labels,
                sa.and_(
                    labels.c.project_id == ranged.c.project_id,
                    labels.c.subject == ranged.c.subject,
                    labels.c.prediction_id == ranged.c.prediction_id,
                ),
            )
            .order_by(ranged.c.t, ranged.c.prediction_id)
        )
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must be at least 0, got {limit}")
            q = q.limit(limit)
        with self._store.connect() as conn:
            rows = conn.execute(q).all()
        return Joined(
            ids=[r[0] for r in rows],
            t=[r[1] for r in rows],
            predictions=[codec.decode(r[2]) for r in rows],
            labels=[codec.decode(r[3]) for r in rows],
            label_t=[r[4] for r in rows],
        )

    def counts(
        self, project: str, subject: str, start: float | None = None, end: float | None = None
    ) -> tuple[int, int]:
        """(predictions of ``subject`` made in [start, end), how many of them have a label): the share
        still waiting for its label is ``1 - labelled / predictions``."""
        q = (
            sa.select(sa.func.count(), sa.func.count(labels.c.prediction_id))
            .select_from(_PREDICTIONS.outerjoin(labels, _JOIN_ON))
            .where(*_in_range(project, subject, start, end))
        )
        with self._store.connect() as conn:
            total, labelled = conn.execute(q).one()
        return int(total), int(labelled)

    def get(self, project: str, subject: str, prediction_id: str) -> tuple[dict[str, Any] | None, Any | None]:
        """(the prediction, its label) for one id, each None where it has not arrived."""
        out = []
        with self._store.connect() as conn:
            for table in (predictions, labels):
                value = conn.execute(
                    sa.select(table.c.value)
                    .join(projects, projects.c.id == table.c.project_id)
                    .where(
                        projects.c.name == project,
                        table.c.subject == subject,
                        table.c.prediction_id == prediction_id,
                    )
                ).first()
                out.append(None if value is None else codec.decode(value[0]))
        return out[0], out[1]


def _in_range(project: str, subject: str, start: float | None, end: float | None) -> list[Any]:
    where = [projects.c.name == project, predictions.c.subject == subject]
    if start is not None:
        where.append(predictions.c.t >= start)
    if end is not None:
        where.append(predictions.c.t < end)
    return where


# -- the write path: checked whole before the transaction, written with one executemany per table ---------


Rows = list[tuple[str, dict[str, Any]]]
"""Checked rows of one table, each with the name of its project, whose id is resolved in the transaction."""


def check_predictions(records: list[PredictionRows]) -> Rows:
    """The rows of ``records``, checked and encoded, one per (project, subject, id), the first kept.

    Raises ``ValueError`` (or ``TypeError`` for a value JSON cannot hold) naming the field.
    """
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for i, r in enumerate(records):
        where = f"predictions[{i}]"
        _check_columns(where, r)
        if r.run_id is not None and not isinstance(r.run_id, str):
            raise ValueError(
                f"{where}.run_id: expected a run id (str) or None, got {type(r.run_id).__name__}"
            )
        ts = _times(where, r.t)
        for j, (pid, t, value) in enumerate(zip(r.ids, ts, r.values, strict=True)):
            if not isinstance(value, dict):
                raise ValueError(
                    f"{where}.values[{j}]: expected a dict of the model's outputs, got {type(value).__name__}"
                )
            key = (r.project, r.subject, pid)
            if key not in rows:
                rows[key] = {
                    "subject": r.subject,
                    "prediction_id": pid,
                    "run_id": r.run_id,
                    "t": t,
                    "value": codec.encode(value, where=f"{where}.values[{j}]"),
                }
    return _in_lock_order(rows)


def check_labels(records: list[LabelRows]) -> Rows:
    """The rows of ``records``, checked and encoded, one per (project, subject, id), the last kept (a later
    label replaces an earlier one, in the same batch as across batches). Raises like
    :func:`check_predictions`."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for i, r in enumerate(records):
        where = f"labels[{i}]"
        _check_columns(where, r)
        ts = _times(where, r.t)
        for j, (pid, t, value) in enumerate(zip(r.ids, ts, r.values, strict=True)):
            if value is None:
                # a stored None would read back as "no label yet"
                raise ValueError(f"{where}.values[{j}]: expected a label, got None")
            rows[(r.project, r.subject, pid)] = {
                "subject": r.subject,
                "prediction_id": pid,
                "value": codec.encode(value, where=f"{where}.values[{j}]"),
                "t": t,
            }
    return _in_lock_order(rows)


def write_predictions(store: Store, conn: sa.Connection, rows: Rows) -> None:
    """Insert rows from :func:`check_predictions`; an id already stored keeps its first prediction."""
    if rows:
        conn.execute(insert_ignore(conn.dialect, predictions), _with_project_ids(store, conn, rows))


def write_labels(store: Store, conn: sa.Connection, rows: Rows) -> None:
    """Upsert rows from :func:`check_labels`: a label already stored for an id is replaced, value and t."""
    if rows:
        conn.execute(_upsert(conn.dialect, labels, ("value", "t")), _with_project_ids(store, conn, rows))


def _check_columns(where: str, r: PredictionRows | LabelRows) -> None:
    for name, value, longest in (("project", r.project, MAX_PROJECT), ("subject", r.subject, MAX_SUBJECT)):
        if not isinstance(value, str) or not 0 < len(value) <= longest:
            raise ValueError(
                f"{where}.{name}: expected a non-empty string of at most {longest} characters, "
                f"got {value!r:.80}"
            )
    n = len(r.ids)
    for name in ("t", "values"):
        got = len(getattr(r, name))
        if got != n:
            raise ValueError(
                f"{where}.{name} (subject {r.subject!r}): expected one entry per id ({n}), got {got}"
            )
    for j, pid in enumerate(r.ids):
        if not isinstance(pid, str) or not 0 < len(pid) <= MAX_ID:
            got = f"{len(pid)} characters" if isinstance(pid, str) else type(pid).__name__
            raise ValueError(
                f"{where}.ids[{j}]: expected a prediction id of 1 to {MAX_ID} characters, got {got}"
            )


def _times(where: str, ts: list[float]) -> list[float]:
    out = []
    for j, t in enumerate(ts):
        if isinstance(t, bool) or not isinstance(t, numbers.Real) or not math.isfinite(t):
            raise ValueError(f"{where}.t[{j}]: expected finite seconds since the epoch, got {t!r}")
        out.append(float(t))
    return out


def _in_lock_order(rows: dict[tuple[str, str, str], dict[str, Any]]) -> Rows:
    # Rows sorted by key make concurrent writers of overlapping ids take PostgreSQL's row locks in one
    # order, so that they queue instead of deadlocking.
    return [(k[0], rows[k]) for k in sorted(rows)]


def _with_project_ids(store: Store, conn: sa.Connection, rows: Rows) -> list[dict[str, Any]]:
    ids = {project: store.project_id(conn, project) for project in {p for p, _ in rows}}
    return [{**row, "project_id": ids[project]} for project, row in rows]


def _upsert(dialect: sa.Dialect, table: sa.Table, update: tuple[str, ...]) -> Any:
    """``INSERT ... ON CONFLICT (primary key) DO UPDATE`` of the ``update`` columns, for the dialect."""
    if dialect.name == "sqlite":
        stmt = sqlite.insert(table)
    elif dialect.name == "postgresql":
        stmt = postgresql.insert(table)
    else:
        raise StoreError(f"unsupported database {dialect.name!r}")
    return stmt.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={c: stmt.excluded[c] for c in update},
    )
