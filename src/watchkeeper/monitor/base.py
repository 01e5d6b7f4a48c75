"""What every monitor receives and returns: one closed window of one deployment in, signal points out.

A monitor is a function ``derive(ctx: WindowContext) -> Iterable[Derived]``, one concern per module
(operations, data drift, predictions, performance, labels, staleness, cost). The runner
(``watchkeeper.monitor.runner``) finds closed windows, merges the replicas' profiles of each, builds the
context once and calls every monitor; each derived value becomes a point of the signal ``name`` with
``labels`` under the deployment's subject (``model:<model>@<version>``), at time ``ctx.end``, replacing what
an earlier pass over the same window wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from watchkeeper.profile import Profile
    from watchkeeper.store.profiles import ReferenceInfo
    from watchkeeper.store.runs import RunInfo
    from watchkeeper.store.store import Store


@dataclass(frozen=True, slots=True)
class MonitorSettings:
    """Settings of the monitors, one object for all of them (the server reads them from its config).

    ``reference`` is the name of the reference each model version is compared with. ``positive_label`` is
    the class counted by ``positive_rate`` and the positive class of binary performance metrics.
    ``low_confidence`` is the confidence below which a prediction counts as low-confidence.
    ``daily_budget`` maps a model name to its cost budget per day (in the unit costs are logged in).
    ``label_horizon`` is how far back (seconds) windows are re-scored when late labels arrive.
    ``baseline_keys`` maps a performance metric to the keys of the training run's summary that hold its
    baseline, tried in order. ``label_column`` names the reference's target column (label drift); ``None``
    looks for a column named ``label``, ``target``, ``y`` or ``class``. ``retention`` is the roll-up policy
    of old window profiles (``AGE:SIZE`` levels, see :mod:`watchkeeper.monitor.retention`; ``none`` keeps
    every window) and ``retention_drop_after`` the age past which window profiles are deleted (None: never).
    """

    reference: str = "train"
    alpha: float = 0.01
    positive_label: Any = 1
    low_confidence: float = 0.6
    daily_budget: Mapping[str, float] = field(default_factory=dict)
    label_horizon: float = 7 * 86400.0
    baseline_keys: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {
            "accuracy": ("accuracy", "val_accuracy", "eval/accuracy", "val/accuracy", "test_accuracy"),
            "f1": ("f1", "val_f1", "eval/f1", "val/f1", "test_f1"),
            "roc_auc": ("roc_auc", "auc", "val_auc", "val_roc_auc", "eval/roc_auc", "test_auc"),
            "rmse": ("rmse", "val_rmse", "eval/rmse", "test_rmse"),
            "mae": ("mae", "val_mae", "eval/mae", "test_mae"),
        }
    )
    label_column: str | None = None
    retention: str = "8d:1h,32d:1d"
    retention_drop_after: float | None = None

    def retention_policy(self) -> Any:
        """The :class:`~watchkeeper.monitor.retention.RetentionPolicy` these settings describe (its ages
        checked against ``label_horizon``)."""
        from watchkeeper.monitor.retention import RetentionPolicy

        return RetentionPolicy.parse(
            self.retention, drop_after=self.retention_drop_after, min_age=self.label_horizon
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "monitor") -> MonitorSettings:
        """Settings from a YAML/JSON mapping (``watchkeeper monitor --settings FILE``); durations may be
        written ``7d``. Unknown keys and wrong types are refused naming the key."""
        from watchkeeper.alerting.rules import parse_duration

        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown settings {unknown}, expected some of {sorted(known)}")
        out: dict[str, Any] = {}
        for key, value in data.items():
            w = f"{where}.{key}"
            if key in ("reference", "label_column"):
                if not (isinstance(value, str) and value) and not (key == "label_column" and value is None):
                    raise ValueError(f"{w}: expected a non-empty string, got {value!r}")
            elif key in ("alpha", "low_confidence"):
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
                    raise ValueError(f"{w}: expected a number between 0 and 1, got {value!r}")
            elif key == "label_horizon":
                value = parse_duration(value)
            elif key == "retention":
                if not isinstance(value, str):
                    raise ValueError(f"{w}: expected AGE:SIZE levels such as '8d:1h,32d:1d', got {value!r}")
            elif key == "retention_drop_after":
                value = None if value is None else parse_duration(value)
            elif key == "daily_budget":
                if not isinstance(value, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool) and v > 0
                    for k, v in value.items()
                ):
                    raise ValueError(
                        f"{w}: expected a mapping of model name to a positive budget, got {value!r}"
                    )
                value = dict(value)
            elif key == "baseline_keys":
                if not isinstance(value, Mapping) or not all(
                    isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value.values()
                ):
                    raise ValueError(
                        f"{w}: expected a mapping of metric to a list of summary keys, got {value!r}"
                    )
                value = {**cls().baseline_keys, **{k: tuple(v) for k, v in value.items()}}
            out[key] = value
        settings = cls(**out)
        try:
            settings.retention_policy()
        except ValueError as exc:
            hint = ""
            if "retention" not in data:
                hint = (
                    f" (the default retention {settings.retention} rolls windows up sooner than "
                    "label_horizon allows: set retention to levels older than it, or none)"
                )
            raise ValueError(f"{where}.retention: {exc}{hint}") from None
        return settings


@dataclass(slots=True)
class WindowContext:
    """One closed window of one deployment, with what monitors compare it against.

    ``profile`` is the merge of every replica's profile of the window (``None`` for a pass that only
    re-scores late labels). ``reference`` is the model version's reference profile, ``None`` when it has
    none; ``training_run`` the run that logged that reference (or the model version's training run).
    """

    store: Store
    project: str
    model: str
    version: str
    subject: str
    start: float
    end: float
    profile: Profile | None
    reference: Profile | None
    reference_info: ReferenceInfo | None
    training_run: RunInfo | None
    settings: MonitorSettings
    now: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class Derived:
    """One value a monitor derived: the signal ``name`` with ``labels`` (``feature``, ``endpoint``,
    ``class``, ...) takes ``value`` at the window's end. NaN is a value (e.g. an empty window's p99)."""

    name: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)


class Monitor(Protocol):
    def __call__(self, ctx: WindowContext) -> Iterable[Derived]: ...
