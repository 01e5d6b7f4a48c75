"""The save format of the detectors whose state is plain data and scikit-learn models (IsolationForest,
the robust baseline, PCA): ``b"WKDET1\\n"`` followed by a pickle of
``{"class": "<module>.<Class>", "state": det.to_state()}``. :func:`load_pickled` checks the header, imports
the class (a watchkeeper :class:`Detector`) and calls its ``from_state``.

A pickle runs code when it is loaded: load only files you trust. Models pickled by one scikit-learn version
may not load, or not score the same, under another. (The autoencoder saves TorchScript instead; see
:mod:`watchkeeper.anomaly.saved`, which reads both.)
"""

from __future__ import annotations

import importlib
import os
import pickle
import tempfile
from typing import Any, Self

from watchkeeper.anomaly.base import Detector
from watchkeeper.anomaly.calibrate import Calibration

#: the first bytes of a pickled detector file
PICKLE_MAGIC = b"WKDET1\n"


class PickledDetector(Detector):
    """A detector saved as a pickle of its state: subclasses implement ``to_state()`` (starting from
    :meth:`common_state`) and the classmethod ``from_state(state)`` (calling :meth:`restore_common`)."""

    def to_state(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        raise NotImplementedError

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the detector to ``path`` (see :func:`load_pickled`)."""
        _save_pickled(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Self:
        """Read a detector saved by :meth:`save`; only load files you trust (a pickle runs code)."""
        det = load_pickled(path)
        if not isinstance(det, cls):
            raise ValueError(
                f"{cls.__name__}.load: {os.fspath(path)!r} holds a {type(det).__name__}, not a {cls.__name__}"
            )
        return det

    def common_state(self) -> dict[str, Any]:
        """The part of the state that the base class owns."""
        return {
            "params": self.params(),
            "columns": None if self.columns is None else list(self.columns),
            "threshold": self.threshold,
            "calibration": None if self.calibration is None else self.calibration.as_dict(),
        }

    def restore_common(self, state: dict[str, Any]) -> None:
        self.columns = state["columns"]
        self.threshold = state["threshold"]
        self.calibration = None if state["calibration"] is None else Calibration(**state["calibration"])


def _save_pickled(det: Detector, path: str | os.PathLike[str]) -> None:
    """Write ``PICKLE_MAGIC`` + pickle of ``{"class", "state"}``, through a temporary file renamed into
    place, so a crash never leaves half a file under ``path``."""
    cls = type(det)
    payload = {"class": f"{cls.__module__}.{cls.__qualname__}", "state": det.to_state()}  # type: ignore[attr-defined]
    data = PICKLE_MAGIC + pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    target = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".wkdet-", dir=os.path.dirname(os.path.abspath(target)))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_pickled(path: str | os.PathLike[str]) -> Detector:
    """Read a detector written by ``save`` (a file starting with ``PICKLE_MAGIC``).

    The class must be a :class:`Detector` in a ``watchkeeper`` module with a ``from_state``. Unpickling runs
    code chosen by whoever wrote the file: load only files you trust.
    """
    with open(path, "rb") as f:
        head = f.read(len(PICKLE_MAGIC))
        if head != PICKLE_MAGIC:
            raise ValueError(
                f"load_pickled: {os.fspath(path)!r} is not a pickled watchkeeper detector "
                f"(expected the header {PICKLE_MAGIC!r}, got {head!r})"
            )
        payload = pickle.load(f)
    if not isinstance(payload, dict) or not {"class", "state"} <= payload.keys():
        raise ValueError(
            f"load_pickled: {os.fspath(path)!r}: expected a dict with 'class' and 'state', got "
            f"{type(payload).__name__}"
        )
    qualified = payload["class"]
    module, _, name = str(qualified).rpartition(".")
    if not module.startswith("watchkeeper."):
        raise ValueError(f"load_pickled: expected a watchkeeper detector class, got {qualified!r}")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"load_pickled: detector class {qualified!r} not found in this watchkeeper") from exc
    if not (isinstance(cls, type) and issubclass(cls, Detector) and hasattr(cls, "from_state")):
        raise ValueError(f"load_pickled: {qualified!r} is not a detector that can be restored from its state")
    return cls.from_state(payload["state"])
