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
    looks for a column named ``label``, ``target``, ``y`` or ``class``.
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
