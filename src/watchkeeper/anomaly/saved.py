"""Saved detectors: the file formats a fitted detector is written in, and :func:`load`, which reads any of
them back as a :class:`~watchkeeper.anomaly.base.Detector` without the class that trained it.

Formats, told apart by the file's first bytes (a table below, :data:`_FORMATS`, maps each to its loader):

``torchscript``
    A TorchScript archive (a zip, ``PK``) written by :meth:`Autoencoder.save
    <watchkeeper.anomaly.autoencoder.Autoencoder.save>`. ``torch.jit.load(path)(x)`` maps a raw ``(rows,
    features)`` float32/float64 tensor to one score per row, so the file serves without watchkeeper; the
    archive's extra file ``watchkeeper.json`` holds the detector name, its parameters, the feature columns in
    input order, the threshold and the calibration, which :func:`load` restores into a
    :class:`ScriptedDetector`.

PyTorch is optional (``pip install 'watchkeeper[torch]'``): it is imported when a TorchScript file is
written, loaded or scored, not when this module is imported. TorchScript is deprecated by PyTorch in favour
of ``torch.export``; the format stays because a TorchScript file is scored by one call from Python, C++
(libtorch) or a serving runtime, and its deprecation warnings are silenced where watchkeeper calls it on
purpose.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any, Self

import numpy as np

from watchkeeper.anomaly.base import Detector
from watchkeeper.anomaly.calibrate import Calibration
from watchkeeper.errors import UsageError

#: the name of the JSON file inside a TorchScript archive that describes the detector
TORCHSCRIPT_META = "watchkeeper.json"
TORCHSCRIPT_FORMAT = "watchkeeper.anomaly/torchscript"
TORCHSCRIPT_FORMAT_VERSION = 1
#: rows per forward pass when scoring: enough to amortise the per-call overhead (~50 us), few enough that a
#: layer's activations (rows x width x 4 bytes: 2 MB at width 64) stay in cache. Measured on 2 cores, 1M
#: rows x 15 features, hidden (64, 32): 4096 to 32768 rows score alike; 65536 is 2 to 3 times slower.
SCORE_CHUNK_ROWS = 8192


def import_torch(what: str) -> Any:
    """``torch``, or an ImportError that says how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            f"{what} needs PyTorch, which is not installed: pip install 'watchkeeper[torch]' "
            "(or pip install torch)"
        ) from exc
    return torch


@contextmanager
def torch_threads(torch: Any, threads: int | None) -> Iterator[None]:
    """Run with ``threads`` intra-op threads, restoring the previous setting after; None keeps PyTorch's
    own choice (one thread per physical core)."""
    if threads is None or torch.get_num_threads() == threads:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def quiet_torchscript() -> Iterator[None]:
    """Silence PyTorch's deprecation warnings for ``torch.jit`` (we choose TorchScript knowingly)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit.*")
        yield


def score_rows(
    module: Any,
    X: np.ndarray,
    *,
    device: str = "cpu",
    threads: int | None = None,
    chunk_rows: int = SCORE_CHUNK_ROWS,
) -> np.ndarray:
    """Scores of the rows of ``X`` from ``module`` (raw features in, one score per row out), in chunks of
    ``chunk_rows`` rows under ``torch.inference_mode``; float64 out."""
    torch = import_torch("scoring a PyTorch detector")
    X = np.require(X, requirements=["C_CONTIGUOUS", "WRITEABLE"])  # torch.from_numpy warns on read-only
    out = np.empty(len(X), dtype=np.float64)
    on_cpu = torch.device(device).type == "cpu"
    with torch_threads(torch, threads), torch.inference_mode():
        for start in range(0, len(X), chunk_rows):
            xb = torch.from_numpy(X[start : start + chunk_rows])  # a view: no copy of the rows
            if not on_cpu:
                xb = xb.to(device, non_blocking=True)
            out[start : start + len(xb)] = module(xb).to("cpu").numpy()
    return out


def write_torchscript(path: str | os.PathLike[str], scripted: Any, meta: dict[str, Any]) -> Path:
    """Write a scripted module with ``meta`` as its ``watchkeeper.json``; returns the path."""
    torch = import_torch("saving a PyTorch detector")
    doc = {"format": TORCHSCRIPT_FORMAT, "format_version": TORCHSCRIPT_FORMAT_VERSION, **meta}
    try:
        text = json.dumps(doc, allow_nan=False, indent=1)
    except ValueError as exc:
        raise ValueError(f"save: the detector's threshold or calibration is not finite ({exc})") from exc
    path = Path(path)
    with quiet_torchscript():
        torch.jit.save(scripted, str(path), _extra_files={TORCHSCRIPT_META: text})
    return path


class ScriptedDetector(Detector):
    """A detector read from a TorchScript file: scores, predicts and calibrates, but cannot be refitted.

    ``module`` is the scripted model (raw features in, scores out); ``meta`` the file's
    ``watchkeeper.json``: ``detector`` (the name of the class that trained it), ``params``, ``columns``,
    ``threshold`` and ``calibration``.
    """

    def __init__(
        self, module: Any, meta: dict[str, Any], *, path: Path | None = None, threads: int | None = None
    ) -> None:
        self.module = module
        self.meta = meta
        self.path = path
        self.threads = threads
        self.name = str(meta.get("detector", "scripted"))
        self.columns = [str(c) for c in meta["columns"]]
        threshold = meta.get("threshold")
        self.threshold = None if threshold is None else float(threshold)
        cal = meta.get("calibration")
        if cal is not None:
            known = {f.name for f in fields(Calibration)}
            self.calibration = Calibration(**{k: v for k, v in cal.items() if k in known})

    def fit(self, X: Any, *, run: Any = None) -> Self:
        where = f" from {self.path}" if self.path is not None else ""
        raise UsageError(
            f"{self.name}.fit: this detector was loaded from a TorchScript file{where} and cannot be "
            "refitted; fit a new detector of its class (and save it again) instead"
        )

    def params(self) -> dict[str, Any]:
        return dict(self.meta.get("params") or {})

    def _score(self, X: np.ndarray) -> np.ndarray:
        return score_rows(self.module, X, threads=self.threads)

    def __repr__(self) -> str:
        where = f", path={str(self.path)!r}" if self.path is not None else ""
        return f"ScriptedDetector({self.name!r}, columns={len(self.columns or [])}{where})"


def _load_torchscript(path: Path, *, threads: int | None = None) -> Detector:
    torch = import_torch(f"loading the TorchScript detector {path}")
    extra = {TORCHSCRIPT_META: ""}
    try:
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except RuntimeError as exc:
        raise ValueError(f"load: {path} is a zip file but not a TorchScript archive ({exc})") from exc
    raw = extra[TORCHSCRIPT_META]
    if not raw:
        raise ValueError(
            f"load: {path} is a TorchScript archive without {TORCHSCRIPT_META}: it was not saved by a "
            "watchkeeper detector"
        )
    meta = json.loads(raw)
    version = meta.get("format_version")
    if meta.get("format") != TORCHSCRIPT_FORMAT or not isinstance(version, int):
        raise ValueError(f"load: {path}: {TORCHSCRIPT_META} does not describe a watchkeeper detector")
    if version > TORCHSCRIPT_FORMAT_VERSION:
        raise ValueError(
            f"load: {path} is format version {version}; this watchkeeper reads up to "
            f"{TORCHSCRIPT_FORMAT_VERSION}: upgrade watchkeeper"
        )
    module.eval()
    return ScriptedDetector(module, meta, path=path, threads=threads)


#: format tag -> (does a file starting with these bytes have the format?, loader). A detector with a file
#: format of its own adds a row here.
def _load_pickled(path: Path, *, threads: int | None = None) -> Detector:
    from watchkeeper.anomaly.pickled import load_pickled

    return load_pickled(path)


_FORMATS: dict[str, tuple[Callable[[bytes], bool], Callable[..., Detector]]] = {
    "torchscript": (lambda head: head.startswith(b"PK"), _load_torchscript),
    # IsolationForestDetector, RobustBaseline, PCADetector: a pickle behind a header (load only trusted files)
    "pickle": (lambda head: head.startswith(b"WKDET1\n"), _load_pickled),
}


def load(path: str | os.PathLike[str], *, threads: int | None = None) -> Detector:
    """Read a saved detector; the format is told by the file's first bytes. ``threads``: PyTorch threads
    used when scoring (None: PyTorch's default)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        raise FileNotFoundError(f"load: no saved detector at {path}: the file does not exist") from None
    for sniff, loader in _FORMATS.values():
        if sniff(head):
            return loader(path, threads=threads)
    raise ValueError(
        f"load: {path} is not a saved detector in a known format (known: {', '.join(_FORMATS)}); "
        f"it starts with {head[:8]!r}"
    )
