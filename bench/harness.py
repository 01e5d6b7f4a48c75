"""What the benchmarks share: peak-memory measurement, anchor virtualenvs, and the worker protocol.

Standard library only: the anchors' own venvs (whylogs, Evidently, ...) import this module too.

- ``PeakRSS``: peak resident memory over a ``with`` block. On Linux it resets the kernel's high-water mark
  (``VmHWM``) by writing ``5`` to ``/proc/self/clear_refs``. Where that is refused, it samples
  ``/proc/self/statm`` every millisecond from a thread. ``method`` says which one was used.
- ``anchor_python``: the interpreter of ``bench/.venv-<tool>``, created on first use from a pinned
  requirements file, so an anchor's library versions (numpy<2, pandas<3, ...) never enter the project's
  venv.
- ``run_json_worker``: runs a worker subprocess and returns the JSON object it printed after ``JSON_MARK``,
  with the wall time of the whole process.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

JSON_MARK = "BENCH_JSON "


def status_bytes(field: str) -> int:
    """A field of /proc/self/status (VmRSS, VmHWM, ...) in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # the kernel writes kB
    raise RuntimeError(f"no {field} in /proc/self/status")


class PeakRSS:
    """Peak RSS over a ``with`` block, and RSS just before it, in bytes (Linux)."""

    def __init__(self) -> None:
        self.method = ""
        self.before = self.peak = 0
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRSS:
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.method = "VmHWM reset through /proc/self/clear_refs"
        except OSError:
            self.method = "RSS sampled every 1 ms from /proc/self/statm"
            self._sampler = threading.Thread(target=self._sample, daemon=True)
        self.before = self.peak = status_bytes("VmRSS")
        if self._sampler is not None:
            self._sampler.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            self.peak = max(self.peak, self._rss())
        else:
            self.peak = status_bytes("VmHWM")


def wandb_offline_env(tmp: str) -> dict[str, str]:
    """The environment for wandb offline, quiet, with every file it writes under ``tmp`` (set it before
    importing wandb: it reads some of these at import)."""
    return {
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_ERROR_REPORTING": "false",
        "WANDB_DISABLE_GIT": "true",
        "WANDB_DISABLE_CODE": "true",
        "WANDB_CONSOLE": "off",
        "WANDB_DIR": tmp,
        "WANDB_CONFIG_DIR": f"{tmp}/config",
        "WANDB_CACHE_DIR": f"{tmp}/cache",
        "WANDB_DATA_DIR": f"{tmp}/data",
        "WANDB_ARTIFACT_DIR": f"{tmp}/artifacts",
    }


def anchor_python(venv: Path, requirements: Path, probe: str, env: dict[str, str] | None = None) -> str:
    """``venv``'s interpreter, (re)creating the venv from ``requirements`` unless ``probe`` imports there."""
    py = venv / "bin" / "python"
    if py.exists() and subprocess.run([str(py), "-c", probe], capture_output=True, env=env).returncode == 0:
        return str(py)
    print(f"installing into {venv} (once) from {requirements.name} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run([*pip, "-r", str(requirements)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip install -r {requirements} failed:\n{done.stderr[-2000:]}")
    return str(py)


def run_json_worker(
    cmd: list[str], *, tool: str, cwd: Path, env: dict[str, str], timeout: float
) -> tuple[dict[str, Any], float]:
    """(the JSON result the worker printed, the worker process's wall time in seconds)."""
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"the {tool} worker did not finish in {timeout:.0f} s") from exc
    wall = time.perf_counter() - t0
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(JSON_MARK):
            return json.loads(line[len(JSON_MARK) :]), wall
    raise RuntimeError(f"the {tool} worker exited {done.returncode} with no result:\n{done.stderr[-3000:]}")
