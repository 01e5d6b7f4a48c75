"""An autoencoder detector: a small neural network learns to reconstruct normal feature rows through a
narrow bottleneck; a row it reconstructs badly is anomalous.

Each feature is min-max scaled on the training rows, ``x~_j = (x_j - min_j) / (max_j - min_j)`` (a constant
column gets range 1, so it maps to 0; values outside the training range are kept, not clipped). The network
is a symmetric MLP: the encoder ``f`` takes the ``d`` features through the ``hidden`` widths in order (the
last is the bottleneck), the decoder ``g`` mirrors it back to ``d``; ReLU after every layer but the
bottleneck and the output. (A ReLU on the bottleneck can silence code units for good and leave fewer than
the data's dimensions: on the 8-feature, rank-2 rows of the tests, 6 of 18 seeded fits then scored a ROC AUC
of 0.55 to 0.91, against at least 0.997 for all 18 with a linear bottleneck.) The score of a row is its mean
squared reconstruction error in the scaled space,

    score(x) = (1/d) * sum_j (x~_j - g(f(x~))_j) ** 2,

the reconstruction-error detector of M. Sakurada and T. Yairi, "Anomaly detection using autoencoders with
nonlinear dimensionality reduction", MLSDA 2014 (after G. E. Hinton and R. R. Salakhutdinov, "Reducing the
dimensionality of data with neural networks", Science 313, 2006). Training minimises the mean of the score
over the normal rows with Adam (D. P. Kingma and J. Ba, ICLR 2015); a held-out ``validation`` fraction stops
training after ``patience`` epochs without improvement and the best weights are kept (early stopping,
L. Prechelt, "Early stopping - but when?", 1998).

A bottleneck as wide as the input or wider lets the network learn to copy its input, anomalies included;
``fit`` warns when it is.

PyTorch is optional (``pip install 'watchkeeper[torch]'``) and imported on first use. ``save`` writes a
TorchScript file that scores raw rows on its own (see :mod:`watchkeeper.anomaly.saved`).
"""

from __future__ import annotations

import copy
import functools
import itertools
import logging
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from watchkeeper.anomaly.base import Detector, _safe_log
from watchkeeper.anomaly.saved import (
    SCORE_CHUNK_ROWS,
    import_torch,
    quiet_torchscript,
    score_rows,
    torch_threads,
    write_torchscript,
)

_log = logging.getLogger(__name__)


@functools.cache
def _network_class() -> type:
    """The ``nn.Module`` (defined here so that importing this module does not import torch)."""
    torch = import_torch("Autoencoder")
    nn = torch.nn

    class ReconstructionError(nn.Module):
        """Raw rows in, one score per row out: min-max scaling, encoder, decoder, mean squared error."""

        def __init__(
            self, n_features: int, hidden: Sequence[int], dropout: float, data_min: Any, data_range: Any
        ) -> None:
            super().__init__()
            self.n_features = n_features
            # float64 scaling: a KPI with a large offset (a byte count, a timestamp) keeps its resolution
            self.register_buffer("data_min", torch.as_tensor(data_min, dtype=torch.float64))
            self.register_buffer("data_range", torch.as_tensor(data_range, dtype=torch.float64))
            widths = [n_features, *hidden]
            layers: list[Any] = []
            for a, b in itertools.pairwise(widths[:-1]):
                layers += _dense(nn, a, b, dropout)
            layers.append(nn.Linear(widths[-2], widths[-1]))
            self.encoder = nn.Sequential(*layers)
            back = widths[::-1]
            layers = []
            for a, b in itertools.pairwise(back[:-1]):
                layers += _dense(nn, a, b, dropout)
            layers.append(nn.Linear(back[-2], back[-1]))
            self.decoder = nn.Sequential(*layers)

        def scale(self, x: torch.Tensor) -> torch.Tensor:
            if x.dim() != 2 or x.size(1) != self.n_features:
                raise ValueError(
                    f"expected a (rows, {self.n_features}) tensor of raw feature values, got shape {x.shape}"
                )
            return ((x.to(torch.float64) - self.data_min) / self.data_range).to(torch.float32)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            z = self.scale(x)
            return (self.decoder(self.encoder(z)) - z).square().mean(dim=1)

    return ReconstructionError


def _dense(nn: Any, a: int, b: int, dropout: float) -> list[Any]:
    layers = [nn.Linear(a, b), nn.ReLU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return layers


class Autoencoder(Detector):
    """Reconstruction error of a symmetric MLP autoencoder trained on normal rows (see the module docstring).

    ``hidden``: layer widths of the encoder, the last is the bottleneck; ``epochs``, ``batch_size``, ``lr``,
    ``weight_decay`` (Adam's L2 term), ``dropout`` (after each hidden layer, in training only):
    the training; ``validation``: the fraction of the fit rows held out for early stopping after
    ``patience`` epochs without a better validation loss (0: no split, train all epochs; ``patience=None``:
    no early stopping; with a split, the weights of the best validation loss are kept); ``seed``: two fits
    on the same rows give the same scores; ``device``: a torch device; ``threads``: torch intra-op threads
    while fitting and scoring (None: PyTorch's default, one per core). On a host whose cores are busy with
    other processes, ``threads=1`` can be much faster: PyTorch's OpenMP workers wait for each other. Scoring
    1M rows x 15 features with hidden (64, 32) on 2 cores measured about 7 M rows/s with 2 threads on an idle
    host, but 0.2 to 0.9 M rows/s with 2 threads and 2 to 3 M rows/s with 1 thread while other processes ran.

    After ``fit``: ``history`` holds one ``{"epoch", "train_loss", "val_loss"}`` per epoch.
    """

    name = "autoencoder"

    def __init__(
        self,
        hidden: Sequence[int] = (64, 32),
        *,
        epochs: int = 50,
        batch_size: int = 256,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        dropout: float = 0.0,
        validation: float = 0.1,
        patience: int | None = 5,
        seed: int = 0,
        device: str = "cpu",
        threads: int | None = None,
    ) -> None:
        if isinstance(hidden, int | np.integer):
            hidden = (int(hidden),)
        try:
            widths = tuple(int(h) for h in hidden)
            ok = len(widths) > 0 and all(w >= 1 and w == h for w, h in zip(widths, hidden, strict=True))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                f"Autoencoder: hidden must be a non-empty sequence of positive ints, got {hidden!r}"
            )
        self.hidden = widths
        self.epochs = _positive_int("epochs", epochs)
        self.batch_size = _positive_int("batch_size", batch_size)
        self.lr = _number("lr", lr, low=0.0, low_open=True)
        self.weight_decay = _number("weight_decay", weight_decay, low=0.0)
        self.dropout = _number("dropout", dropout, low=0.0, high=1.0)
        self.validation = _number("validation", validation, low=0.0, high=1.0)
        self.patience = None if patience is None else _positive_int("patience", patience)
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise ValueError(f"Autoencoder: seed must be an int, got {seed!r}")
        self.seed = int(seed)
        if not isinstance(device, str) or not device:
            raise ValueError(f"Autoencoder: device must be a torch device name such as 'cpu', got {device!r}")
        self.device = device
        self.threads = None if threads is None else _positive_int("threads", threads)
        self.history: list[dict[str, float]] = []
        self._net: Any = None
        self._optimizer: Any = None
        self._generator: Any = None

    # -- the Detector interface ----------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "dropout": self.dropout,
            "validation": self.validation,
            "patience": self.patience,
            "seed": self.seed,
            "device": self.device,
            "threads": self.threads,
        }

    def _fit(self, X: np.ndarray, *, run: Any = None) -> None:
        torch = import_torch("Autoencoder")
        n, d = X.shape
        if self.hidden[-1] >= d:
            warnings.warn(
                f"Autoencoder: the bottleneck ({self.hidden[-1]} units) is not narrower than the input ({d} "
                "features), so the network can learn to copy its rows, anomalies included; use a last hidden "
                f"width below {d}",
                UserWarning,
                stacklevel=3,
            )
        data_min = X.min(axis=0)
        data_range = X.max(axis=0) - data_min
        data_range[data_range == 0] = 1.0
        self.history = []
        with torch_threads(torch, self.threads), torch.random.fork_rng(devices=self._rng_devices(torch)):
            torch.manual_seed(self.seed)
            self._generator = torch.Generator().manual_seed(self.seed)
            net = _network_class()(d, self.hidden, self.dropout, data_min, data_range).to(self.device)
            self._net = net
            self._optimizer = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            rows = torch.from_numpy(X).to(self.device)
            n_val = round(self.validation * n)
            if n_val >= n:
                n_val = n - 1
            order = torch.randperm(n, generator=self._generator).to(self.device)
            train, val = rows[order[n_val:]], rows[order[:n_val]]
            self._train(torch, train, val if n_val > 0 else None, self.epochs, self.patience, run)
        if run is not None and self.history:
            best = min(self.history, key=lambda h: h.get("val_loss", h["train_loss"]))
            _safe_log(
                run,
                summary={
                    f"anomaly/{self.name}/epochs": len(self.history),
                    f"anomaly/{self.name}/best_epoch": int(best["epoch"]),
                    f"anomaly/{self.name}/best_loss": best.get("val_loss", best["train_loss"]),
                },
            )

    def _score(self, X: np.ndarray) -> np.ndarray:
        return score_rows(self._net, X, device=self.device, threads=self.threads)

    # -- beyond the interface ------------------------------------------------------------------------------

    def partial_fit(self, X: Any, epochs: int = 1, *, run: Any = None) -> Self:
        """Fine-tune on new normal rows for ``epochs`` epochs (no validation split, no early stopping); the
        scaling stays the one fitted first, so scores remain comparable. Rows with a NaN feature are left
        out. The threshold is not recalibrated: call ``calibrate`` again if the scores shift."""
        torch = import_torch("Autoencoder")
        m = self._matrix(X, "partial_fit")
        epochs = _positive_int("epochs", epochs, where="partial_fit")
        clean = m[~np.isnan(m).any(axis=1)]
        if len(clean) == 0:
            raise ValueError(f"{self.name}.partial_fit: no rows without NaN features (got {len(m)} rows)")
        with torch_threads(torch, self.threads), torch.random.fork_rng(devices=self._rng_devices(torch)):
            # dropout draws from the global generator: seed it from ours (a sequence of fits is reproducible)
            torch.manual_seed(int(torch.randint(2**62, (1,), generator=self._generator)))
            self._train(torch, torch.from_numpy(clean).to(self.device), None, epochs, None, run)
        return self

    def scale(self, X: Any) -> np.ndarray:
        """``X`` in the min-max scaled space the network sees (float32 precision)."""
        torch = import_torch("Autoencoder")
        m = self._matrix(X, "scale")
        with torch.inference_mode():
            return self._net.scale(torch.tensor(m, device=self.device)).to("cpu").numpy().astype(np.float64)

    @property
    def data_min(self) -> np.ndarray:
        """Per feature, the minimum over the fit rows."""
        return self._buffer("data_min")

    @property
    def data_range(self) -> np.ndarray:
        """Per feature, max - min over the fit rows (1 for a constant feature)."""
        return self._buffer("data_range")

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a TorchScript file: ``torch.jit.load(path)(x)`` scores a raw ``(rows, features)`` tensor with
        the columns in the order of :attr:`columns`; :func:`watchkeeper.anomaly.saved.load` restores the
        detector with its columns, threshold and calibration. Returns the path."""
        torch = import_torch("Autoencoder.save")
        if self._net is None:
            raise ValueError(f"{self.name}.save: the detector is not fitted; call fit() first")
        # a copy on the CPU (portable); in eval mode, so dropout layers pass rows through unchanged
        net = copy.deepcopy(self._net).to("cpu").eval().requires_grad_(False)  # (x) -> scores, no autograd
        with quiet_torchscript():
            scripted = torch.jit.script(net)
        meta = {
            "detector": self.name,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": {**self.params(), "hidden": list(self.hidden)},
            "columns": list(self.columns or []),
            "threshold": self.threshold,
            "calibration": None if self.calibration is None else self.calibration.as_dict(),
            "input": "a (rows, features) float32 or float64 tensor of raw feature values, in 'columns' order",
            "output": "one score per row: mean squared reconstruction error in the min-max scaled space",
            "torch": torch.__version__,
        }
        return write_torchscript(path, scripted, meta)

    # -- internals -----------------------------------------------------------------------------------------

    def _train(self, torch: Any, train: Any, val: Any, epochs: int, patience: int | None, run: Any) -> None:
        net, opt, gen = self._net, self._optimizer, self._generator
        n = len(train)
        best_loss, best_state, waited = math.inf, None, 0
        first = len(self.history) + 1
        for epoch in range(first, first + epochs):
            net.train()
            total = 0.0
            for idx in torch.randperm(n, generator=gen).split(self.batch_size):
                loss = net(train[idx.to(self.device)]).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach().item() * len(idx)
            row = {"epoch": epoch, "train_loss": total / n}
            if val is not None:
                net.eval()
                with torch.no_grad():
                    row["val_loss"] = float(
                        torch.cat([net(v) for v in val.split(SCORE_CHUNK_ROWS)]).mean()  # chunks bound memory
                    )
            self.history.append(row)
            if run is not None:
                _log_epoch(run, row)
            if val is None:
                continue
            if row["val_loss"] < best_loss:
                best_loss, waited = row["val_loss"], 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                waited += 1
                if patience is not None and waited >= patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()

    def _buffer(self, name: str) -> np.ndarray:
        if self._net is None:
            raise ValueError(f"{self.name}.{name}: the detector is not fitted; call fit() first")
        return getattr(self._net, name).to("cpu").numpy().copy()

    def _rng_devices(self, torch: Any) -> list[int]:
        dev = torch.device(self.device)
        return [dev.index or 0] if dev.type == "cuda" else []

    # pickling: the network class is built at run time (so that torch loads lazily) and cannot be pickled by
    # reference; pickle its weights, optimiser and generator states and rebuild on unpickling
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._net is not None:
            state["_net"] = {k: v.to("cpu") for k, v in self._net.state_dict().items()}
            state["_optimizer"] = self._optimizer.state_dict()
            state["_generator"] = self._generator.get_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        net_state, opt_state, gen_state = state.pop("_net"), state.pop("_optimizer"), state.pop("_generator")
        self.__dict__.update(state)
        self._net = self._optimizer = self._generator = None
        if net_state is None:
            return
        torch = import_torch("Autoencoder")
        d = len(net_state["data_min"])
        net = _network_class()(d, self.hidden, self.dropout, net_state["data_min"], net_state["data_range"])
        net.load_state_dict(net_state)
        self._net = net.to(self.device).eval()
        self._optimizer = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        self._optimizer.load_state_dict(opt_state)
        self._generator = torch.Generator()
        self._generator.set_state(gen_state)


def _log_epoch(run: Any, row: dict[str, float]) -> None:
    try:
        run.log({f"anomaly/{k}": v for k, v in row.items() if k != "epoch"} | {"epoch": row["epoch"]})
    except Exception:  # logging must never stop the training
        _log.warning("watchkeeper.anomaly: could not log the autoencoder's epoch to the run", exc_info=True)


def _positive_int(field: str, value: Any, *, where: str = "Autoencoder") -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{where}: {field} must be a positive int, got {value!r}")
    return int(value)


def _number(
    field: str, value: Any, *, low: float, high: float | None = None, low_open: bool = False
) -> float:
    """A float in [low, high) (or (low, high) with low_open)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    bad = isinstance(value, bool) or not math.isfinite(v) or v < low or (low_open and v == low)
    if high is not None and v >= high:
        bad = True
    if bad:
        lo = "(" if low_open else "["
        hi = f"{high:g})" if high is not None else "inf)"
        raise ValueError(f"Autoencoder: {field} must be a number in {lo}{low:g}, {hi}, got {value!r}")
    return v
