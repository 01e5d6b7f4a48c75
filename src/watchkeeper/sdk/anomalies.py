"""Online anomaly scoring of a KPI stream: ``run.watch_anomalies(detector, windows, by=...)``.

The application hands over raw KPI rows (``aw.log(frame)``); they are only queued there. The run's
background writer (or an explicit ``aw.flush()``) windows the rows whose windows are over, with the same
:class:`~watchkeeper.anomaly.Windows` the detector was trained on, scores each closed window, and records:

- ``anomaly_score{detector, entity}``: the window's score, at the window's end;
- ``anomaly{detector, entity}``: 1 when the score is above the detector's threshold, else 0;
- ``anomaly_threshold{detector}`` and ``anomalies{detector}`` (windows above it, per flush);
- ``anomaly_late_rows{detector}``: rows that came after their window had been scored (they are dropped).

These are the run's subject's signals, so alert rules and the dashboard read them like any monitor's
(``anomaly{detector="kpi"} > 0``). With ``alert=True`` a window above the threshold also sends
``run.alert`` (throttled per entity by ``alert_wait``).

With ``windows=None`` the logged rows are feature rows already (windowed upstream): each is scored as it
comes, in any order. Otherwise time is the data's own (event time): a window closes once a row at least
``lateness`` seconds past its end has been seen, for any entity, or when the run finishes. A window is
scored once; rows for it that arrive later are counted and dropped, never moved to another window. Nothing
here raises into the caller once ``log`` has accepted the rows: a failure while scoring is logged and the
rows of that flush are lost, said so in the log.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from watchkeeper.store.batch import Points

log = logging.getLogger("watchkeeper")

SCORE = "anomaly_score"
FLAG = "anomaly"
THRESHOLD = "anomaly_threshold"
COUNT = "anomalies"
LATE = "anomaly_late_rows"


class AnomalyWatch:
    """Scores a KPI stream window by window with a fitted detector; made by ``run.watch_anomalies``."""

    def __init__(
        self,
        detector: Any,
        windows: Any = None,
        *,
        by: str | list[str] | None = None,
        time: str | None = None,
        name: str | None = None,
        lateness: float = 0.0,
        alert: Callable[[str, str], None] | None = None,
        project: str = "",
        subject: str = "",
    ) -> None:
        if not callable(getattr(detector, "score", None)):
            raise TypeError(
                f"watch_anomalies: detector must have a score() method, got {type(detector).__name__}"
            )
        if getattr(detector, "columns", None) is None:
            raise ValueError("watch_anomalies: the detector is not fitted (fit it, or load a saved one)")
        if not (isinstance(lateness, int | float) and math.isfinite(lateness) and lateness >= 0):
            raise ValueError(f"watch_anomalies: lateness must be seconds >= 0, got {lateness!r}")
        self.detector = detector
        self.windows = windows
        self.by = [by] if isinstance(by, str) else list(by or [])
        self.time = time or (getattr(windows, "time", None) if windows is not None else None) or "timestamp"
        self.name = name or getattr(detector, "name", "anomaly")
        self.lateness = float(lateness)
        self._alert = alert
        self._project, self._subject = project, subject
        # two locks: the caller's log() only ever waits for a list append, never for a scoring pass
        self._lock = threading.Lock()  # one scoring pass at a time
        self._queue_lock = threading.Lock()
        self._queue: list[Any] = []  # frames as the caller gave them
        self._held = None  # rows of windows not yet over (a pandas frame)
        self._held_t = np.empty(0)  # their times, epoch seconds
        self._newest = -math.inf  # the newest row time seen (epoch seconds)
        self._done_until = -math.inf  # windows ending at or before this have been scored
        self._open_from = -math.inf  # rows before this belong to no window still open: late
        self._points: list[Points] = []
        self.late_rows = 0
        self.scored_windows = 0
        self.anomalies = 0

    # -- the application's side ----------------------------------------------------------------------------

    def log(self, rows: Any) -> None:
        """Queue KPI rows: a pandas or polars DataFrame, a dict of columns, one row as a dict of scalars, or
        a list of row dicts. Needs the time column and the ``by`` columns; cheap, scoring happens later."""
        frame = _as_frame(rows)
        missing = [c for c in [self.time, *self.by] if c not in frame.columns]
        if missing:
            raise ValueError(
                f"watch_anomalies.log: rows lack column(s) {missing} (expected the time column "
                f"{self.time!r} and the entity column(s) {self.by})"
            )
        with self._queue_lock:
            self._queue.append(frame)

    def flush(self, final: bool = False) -> Any:
        """Score every window that is over now (every window with ``final``); returns the scored windows as
        a pandas frame (entity columns, ``window_start``, ``window_end``, ``score``, ``anomaly``)."""
        with self._lock:
            return self._process(final)

    # -- the writer's side ---------------------------------------------------------------------------------

    def drain(self, final: bool = False) -> list[Points]:
        """What the run's writer sends: the points of the windows scored since the last drain."""
        with self._lock:
            try:
                self._process(final)
            except Exception:  # never stop the writer; these rows are lost and the log says so
                log.exception(
                    "watchkeeper: anomaly scoring of %r failed; the rows it held are dropped", self.name
                )
                # the pass took the queue already; drop what it held too, or every later pass fails on it
                self._held, self._held_t = None, np.empty(0)
            out, self._points = self._points, []
        return out

    # -- scoring -------------------------------------------------------------------------------------------

    def _process(self, final: bool) -> Any:
        import pandas as pd

        from watchkeeper.anomaly.windows import epoch_seconds  # the windowing's own reading of time

        with self._queue_lock:
            frames, self._queue = self._queue, []
        new = pd.concat(frames, ignore_index=True) if frames else None
        if new is not None and len(new):
            t = epoch_seconds(new, self.time)
            late = t < self._open_from
            if late.any():
                n = int(late.sum())
                self.late_rows += n
                log.warning(
                    "watchkeeper: %d row(s) for %r came after their window was scored; dropped", n, self.name
                )
                new, t = new.loc[~late], t[~late]
            if len(t) and np.isfinite(t).any():
                self._newest = max(self._newest, float(np.nanmax(t)))
            self._held = new if self._held is None else pd.concat([self._held, new], ignore_index=True)
            self._held_t = np.concatenate([self._held_t, t])
        if self._held is None or not len(self._held):
            return _empty_result(self.by)
        if self.windows is None:
            ready, ends = self._held, self._held_t
            self._held, self._held_t = None, np.empty(0)
            feats = ready.set_index([*self.by, self.time]) if self.by else ready.set_index(self.time)
            feats = feats[list(self.detector.columns)]
            starts = ends
        else:
            cutoff = math.inf if final else self._newest - self.lateness
            size, step, origin = (
                self.windows.size_ns / 1e9,
                self.windows.step_ns / 1e9,
                self.windows.origin_ns / 1e9,
            )
            # windows [s, s + size) with s + size <= cutoff are over
            last_closed_start = (
                math.floor((cutoff - size - origin) / step) * step + origin if not final else None
            )
            t_held = self._held_t
            if final:
                ready, keep, keep_t = self._held, None, np.empty(0)
            else:
                if last_closed_start + size <= self._done_until:
                    return _empty_result(self.by)
                # rows of closed windows go to the windowing; rows still needed by open ones stay
                first_open_start = last_closed_start + step
                ready = self._held.loc[t_held < last_closed_start + size]
                still_open = t_held >= first_open_start
                keep, keep_t = self._held.loc[still_open], t_held[still_open]
            if not len(ready):
                self._held, self._held_t = keep, keep_t
                return _empty_result(self.by)
            feats = self.windows.transform(ready, by=self.by or None)
            starts = feats.index.get_level_values("window_start").asi8 / 1e9
            ends = starts + size
            chosen = (ends > self._done_until) & ((ends <= cutoff) if not final else True)
            feats, starts, ends = feats.loc[chosen], starts[chosen], ends[chosen]
            self._done_until = (
                max(self._done_until, float(ends.max()) if len(ends) else self._done_until)
                if final
                else max(self._done_until, last_closed_start + size)
            )
            self._held, self._held_t = keep, keep_t
            self._open_from = self._done_until - size + step
        scores = np.asarray(self.detector.score(feats), dtype=np.float64)
        thr = getattr(self.detector, "threshold", None)
        with np.errstate(invalid="ignore"):
            flags = scores > thr if thr is not None else np.zeros(len(scores), dtype=bool)
        self._record(feats, starts, ends, scores, flags, thr)
        result = pd.DataFrame(
            {
                "window_start": pd.to_datetime(starts, unit="s", utc=True),
                "window_end": pd.to_datetime(ends, unit="s", utc=True),
                "score": scores,
                "anomaly": flags,
            }
        )
        for i, col in enumerate(self.by):
            result.insert(i, col, feats.index.get_level_values(col))
        return result

    def _add_points(
        self, names: list[str], t: list[float], values: list[float], labels: dict[str, str]
    ) -> None:
        # run_id None: these are the subject's signals, as monitors write them, not the run's history
        self._points.append(
            Points(
                self._project,
                self._subject,
                names,
                [None] * len(names),
                t,
                values,
                run_id=None,
                labels=labels,
            )
        )

    def _record(
        self,
        feats: Any,
        starts: np.ndarray,
        ends: np.ndarray,
        scores: np.ndarray,
        flags: np.ndarray,
        thr: float | None,
    ) -> None:
        n = len(scores)
        self.scored_windows += n
        self.anomalies += int(flags.sum())
        entities = _entity_labels(feats, self.by)
        base = {"detector": self.name}
        # one Points object per entity: group the windows by entity once (not a scan per entity)
        codes, uniques = _factorize(entities)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
        for k, ent in enumerate(uniques):
            idx = order[bounds[k] : bounds[k + 1]]
            labels = {**base, "entity": ent} if self.by else dict(base)
            ts = ends[idx].tolist()
            names = [SCORE] * len(idx) + [FLAG] * len(idx)
            values = scores[idx].tolist() + flags[idx].astype(np.float64).tolist()
            self._add_points(names, ts + ts, values, labels)
        t_last = float(ends.max()) if n else None
        if t_last is not None:
            names, values = [COUNT], [float(flags.sum())]
            if thr is not None:
                names.append(THRESHOLD)
                values.append(float(thr))
            if self.late_rows:
                names.append(LATE)
                values.append(float(self.late_rows))
            self._add_points(names, [t_last] * len(names), values, dict(base))
        if self._alert is not None and flags.any():
            for i in np.nonzero(flags)[0]:
                ent = entities[i]
                where = f" on {ent}" if self.by else ""
                self._alert(
                    f"{self.name}: anomaly{where}",
                    f"score {scores[i]:.4g} above the threshold {thr:.4g} in the window "
                    f"{_iso(starts[i])} to {_iso(ends[i])}",
                )


def _factorize(entities: list[str]) -> tuple[np.ndarray, list[str]]:
    """Integer codes of ``entities`` in order of first appearance, and the distinct entities."""
    index: dict[str, int] = {}
    codes = np.fromiter(
        (index.setdefault(e, len(index)) for e in entities), dtype=np.int64, count=len(entities)
    )
    return codes, list(index)


def _entity_labels(feats: Any, by: list[str]) -> list[str]:
    if not by:
        return [""] * len(feats)
    cols = [feats.index.get_level_values(c).astype(str) for c in by]
    return ["/".join(parts) for parts in zip(*cols, strict=True)]


def _iso(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _empty_result(by: list[str]) -> Any:
    import pandas as pd

    return pd.DataFrame(columns=[*by, "window_start", "window_end", "score", "anomaly"])


def _as_frame(rows: Any) -> Any:
    import pandas as pd

    if isinstance(rows, pd.DataFrame):
        return rows
    if hasattr(rows, "to_pandas"):  # polars, pyarrow
        return rows.to_pandas()
    if isinstance(rows, Mapping):
        if rows and all(np.ndim(v) == 0 for v in rows.values()):
            return pd.DataFrame([dict(rows)])
        return pd.DataFrame(dict(rows))
    if isinstance(rows, list | tuple) and all(isinstance(r, Mapping) for r in rows):
        return pd.DataFrame(list(rows))
    raise ValueError(
        f"watch_anomalies.log: expected a DataFrame, a dict of columns, a row dict or a list of row dicts, "
        f"got {type(rows).__name__}"
    )
