"""Where alert rules read signals from: ``SeriesSource`` implementations.

``MemorySource`` holds series in memory (tests, and rules evaluated over data a caller already has);
``StoreSource`` reads the store's signals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from watchkeeper.alerting.model import Matcher, RangeSeries
from watchkeeper.store.profiles import parse_model_subject

if TYPE_CHECKING:
    from watchkeeper.store.store import Store

SeriesTuple = tuple[str, Mapping[str, str], ArrayLike, ArrayLike]


class MemorySource:
    """A ``SeriesSource`` over series given as ``(name, labels, t, value)``; points are sorted by time
    (stably, so of two points at one time the later given wins as "latest").

    >>> src = MemorySource([("latency_p99_ms", {"model": "a"}, [0, 60, 120], [410, 520, 480])])
    >>> [s.value.tolist() for s in src.select("latency_p99_ms", [Matcher("model", "=", "a")], 60, 120)]
    [[520.0, 480.0]]
    """

    def __init__(self, series: Iterable[SeriesTuple] = ()) -> None:
        self._by_name: dict[str, list[RangeSeries]] = {}
        for item in series:
            self.add(*item)

    def add(self, name: str, labels: Mapping[str, str], t: ArrayLike, value: ArrayLike) -> None:
        """Add one series; a second series with the same name and labels is refused."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"series name: expected a non-empty str, got {name!r}")
        labels = dict(labels)
        for k, v in labels.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError(f"series {name!r}: labels must map str to str, got {k!r}: {v!r}")
        if "__name__" in labels:
            raise ValueError(f"series {name!r}: the name is given apart, not as the label __name__")
        times = np.asarray(t, dtype=np.float64)
        values = np.asarray(value, dtype=np.float64)
        if times.ndim != 1 or values.shape != times.shape:
            raise ValueError(
                f"series {name!r}: t and value must be 1-D of one length, "
                f"got shapes {times.shape} and {values.shape}"
            )
        if not np.isfinite(times).all():
            raise ValueError(f"series {name!r}: t must be finite seconds")
        existing = self._by_name.setdefault(name, [])
        if any(dict(s.labels) == labels for s in existing):
            raise ValueError(f"series {name!r} with labels {labels} is given twice")
        order = np.argsort(times, kind="stable")
        existing.append(RangeSeries(name, labels, times[order], values[order]))

    def select(self, name: str, matchers: Sequence[Matcher], start: float, end: float) -> list[RangeSeries]:
        out = []
        for s in self._by_name.get(name, ()):
            if all(m.matches(s.labels) for m in matchers):
                lo = int(np.searchsorted(s.t, start, side="left"))
                hi = int(np.searchsorted(s.t, end, side="right"))
                out.append(RangeSeries(name, dict(s.labels), s.t[lo:hi], s.value[lo:hi]))
        return out

    def names(self) -> set[str]:
        return set(self._by_name)


# -- the store --------------------------------------------------------------------------------------------


def subject_labels(subject: str, run_id: str | None) -> dict[str, str]:
    """The labels a series' subject gives it: ``model`` and ``version`` for a deployment
    (``model:fraud-clf@1.3.0``), ``run`` for a run's own scalars, else ``subject``."""
    deployment = parse_model_subject(subject)
    if deployment is not None:
        return {"model": deployment[0], "version": deployment[1]}
    if run_id is not None and subject == run_id:
        return {"run": run_id}
    return {"subject": subject}


class StoreSource:
    """Signals read from a store for rule evaluation: the series called ``name`` whose labels (their own,
    plus ``project`` and the subject's, see ``subject_labels``) pass the matchers. Equality matchers on
    ``project``, ``model`` and ``version`` are pushed into the query; the rest filter the (few) series rows
    in Python before any point is read."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def select(self, name: str, matchers: Sequence[Matcher], start: float, end: float) -> list[RangeSeries]:
        import sqlalchemy as sa

        from watchkeeper.store.schema import points, projects, series

        eq = {m.label: m.value for m in matchers if m.op == "="}
        q = (
            sa.select(series.c.id, series.c.subject, series.c.run_id, series.c.labels, projects.c.name)
            .join(projects, projects.c.id == series.c.project_id)
            .where(series.c.name == name)
        )
        if "project" in eq:
            q = q.where(projects.c.name == eq["project"])
        if "model" in eq and "version" in eq:
            q = q.where(series.c.subject == f"model:{eq['model']}@{eq['version']}")
        elif "model" in eq:
            q = q.where(series.c.subject.like(f"model:{_like_escape(eq['model'])}@%", escape="\\"))
        with self._store.connect() as conn:
            found: dict[int, dict[str, str]] = {}
            for sid, subject, run_id, labels, project in conn.execute(q):
                full = {**(labels or {}), **subject_labels(subject, run_id), "project": project}
                if all(m.matches(full) for m in matchers):
                    found[sid] = full
            if not found:
                return []
            rows = conn.execute(
                sa.select(points.c.series_id, points.c.t, points.c.value)
                .where(points.c.series_id.in_(list(found)), points.c.t >= start, points.c.t <= end)
                .order_by(points.c.series_id, points.c.t)
            ).all()
        by_id: dict[int, tuple[list[float], list[float]]] = {sid: ([], []) for sid in found}
        for sid, t, v in rows:
            ts, vs = by_id[sid]
            ts.append(t)
            vs.append(np.nan if v is None else v)
        return [
            RangeSeries(name, found[sid], np.asarray(ts, dtype=np.float64), np.asarray(vs, dtype=np.float64))
            for sid, (ts, vs) in by_id.items()
        ]

    def names(self) -> set[str]:
        import sqlalchemy as sa

        from watchkeeper.store.schema import series

        with self._store.connect() as conn:
            return {r[0] for r in conn.execute(sa.select(series.c.name).distinct())}


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
