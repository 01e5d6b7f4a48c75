"""System metrics for a run, like the system panel of Weights & Biases: the host's CPU, memory, disk and
network, this process's CPU and memory, and NVIDIA GPUs where NVML is available.

A reading is a flat ``dict[str, float]`` with every key prefixed ``system/``. Levels (percentages, bytes in
use, thread counts) are read as they are at the moment of the sample. Rates are computed from cumulative
counters: ``(counter_now - counter_before) / (monotonic_now - monotonic_before)``, in bytes per second over
the time since the previous sample, so the first sample has no rate keys. A counter that went backwards (a
disk or interface disappeared) gives no rate rather than a negative one.

psutil calls used: ``cpu_times()`` for the host's busy share of all CPUs since the previous sample
(computed as ``psutil.cpu_percent(interval=None)`` does, but remembered per instance: psutil remembers per
calling thread), ``Process.cpu_percent(interval=None)`` for this process since the previous sample (per CPU,
so above 100 with several busy threads), both primed at construction so the first sample is meaningful;
``virtual_memory()``, ``disk_io_counters()``, ``net_io_counters()``, ``Process.memory_info()``,
``memory_percent()``, ``num_threads()`` and ``num_fds()`` (POSIX only). Counters a container does not expose
are left out, never raised. GPUs are read
through NVML (``import pynvml``, from the nvidia-ml-py package), which is optional: without it, or without a
driver, there are simply no ``system/gpu.*`` keys.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import psutil

log = logging.getLogger("watchkeeper")


def _open_nvml() -> ModuleType | None:
    """The initialised ``pynvml`` module, or None when it is not installed or finds no driver. It stays
    initialised for the life of the process: cheap, and released at exit."""
    try:
        import pynvml
    except ImportError:
        log.debug("watchkeeper: pynvml is not installed; no GPU metrics")
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError subclasses: no driver, no device, insufficient permissions
        log.debug("watchkeeper: NVML could not be initialised (%s); no GPU metrics", exc)
        return None
    return pynvml


def _read_gpus(nvml: ModuleType) -> dict[str, float]:
    """One reading of every NVML device; a field a device does not support (often power) is left out."""
    try:
        count = nvml.nvmlDeviceGetCount()
    except Exception:
        return {}
    fields: dict[str, Callable[[object], float]] = {
        "utilization_percent": lambda h: nvml.nvmlDeviceGetUtilizationRates(h).gpu,
        "temperature_c": lambda h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
        "power_watts": lambda h: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0,  # NVML reports milliwatts
    }
    out: dict[str, float] = {}
    for i in range(count):
        prefix = f"system/gpu.{i}."
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
        except Exception:
            continue
        for name, read in fields.items():
            with contextlib.suppress(Exception):
                out[prefix + name] = float(read(handle))
        with contextlib.suppress(Exception):
            memory = nvml.nvmlDeviceGetMemoryInfo(handle)
            out[prefix + "memory_used_bytes"] = float(memory.used)
            out[prefix + "memory_percent"] = 100.0 * memory.used / memory.total
    return out


def _busy_percent(before: Any, after: Any) -> float:
    """Busy share of all CPUs between two ``psutil.cpu_times()`` readings, as ``psutil.cpu_percent`` computes
    it: idle and iowait are idle time; on Linux guest times are already inside user and nice."""
    delta = {f: max(0.0, t - before._asdict()[f]) for f, t in after._asdict().items()}
    total = sum(delta.values()) - delta.get("guest", 0.0) - delta.get("guest_nice", 0.0)
    idle = delta["idle"] + delta.get("iowait", 0.0)
    return 100.0 * (total - idle) / total if total > 0 else 0.0


def _counters() -> dict[str, float]:
    """Cumulative byte counters, keyed by the rate each one gives; a source psutil cannot read is left out."""
    out: dict[str, float] = {}
    # without /proc/diskstats psutil raises NotImplementedError, a RuntimeError
    with contextlib.suppress(OSError, RuntimeError):
        disk = psutil.disk_io_counters()  # None when the container shows no physical disk
        if disk is not None:
            out["system/disk_read_bytes_per_s"] = disk.read_bytes
            out["system/disk_write_bytes_per_s"] = disk.write_bytes
    with contextlib.suppress(OSError, RuntimeError):
        net = psutil.net_io_counters()
        if net is not None:
            out["system/net_sent_bytes_per_s"] = net.bytes_sent
            out["system/net_recv_bytes_per_s"] = net.bytes_recv
    return out


class SystemMetrics:
    """Samples CPU, memory, disk, network (and GPU where present) on a timer and hands each reading to emit().

    CPU counters are primed at construction, so a ``sample()`` right after construction covers the time
    since construction. Rates need a previous sample: the first one has none.

    >>> readings = []
    >>> metrics = SystemMetrics(readings.append, interval=60, gpu=False)
    >>> first = metrics.sample()
    >>> 0.0 <= first["system/memory_percent"] <= 100.0 and first["system/process_rss_bytes"] > 0
    True
    >>> "system/disk_read_bytes_per_s" in first  # no previous sample to take a difference from
    False
    """

    def __init__(
        self, emit: Callable[[dict[str, float]], None], *, interval: float = 10.0, gpu: bool = True
    ) -> None:
        valid = isinstance(interval, int | float) and not isinstance(interval, bool)
        if not (valid and math.isfinite(interval) and interval > 0):
            raise ValueError(f"interval must be a positive finite number of seconds, got {interval!r}")
        self._emit = emit
        self.interval = float(interval)
        self._process = psutil.Process()
        # CPU shares are differences since the previous reading; take the first one now, so the first sample
        # is meaningful. The host share is kept here, not by psutil.cpu_percent(), whose memory is per
        # calling thread (the timer's first call would return 0.0) and shared with anyone else calling it.
        self._cpu_times = psutil.cpu_times()
        self._process.cpu_percent(interval=None)  # per Process object: the first call returns 0.0
        self._nvml = _open_nvml() if gpu else None
        self._previous: tuple[float, dict[str, float]] | None = None
        self._lock = threading.Lock()  # sample() from the timer and from the caller share the counters
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._logged: set[type[BaseException]] = set()

    def sample(self) -> dict[str, float]:
        """One reading now; rates and CPU shares cover the time since the previous reading."""
        with self._lock:
            memory = psutil.virtual_memory()
            cpu_times, previous_cpu_times = psutil.cpu_times(), self._cpu_times
            self._cpu_times = cpu_times
            out = {
                "system/cpu_percent": _busy_percent(previous_cpu_times, cpu_times),
                "system/memory_percent": float(memory.percent),
                "system/memory_used_bytes": float(memory.used),
                "system/memory_available_bytes": float(memory.available),
            }
            now, counters = time.monotonic(), _counters()
            if self._previous is not None:
                before, previous = self._previous
                for key, new in counters.items():
                    old = previous.get(key)
                    if old is not None and new >= old and now > before:  # a vanished disk can lower a sum
                        out[key] = (new - old) / (now - before)
            self._previous = (now, counters)
            process = self._process
            with process.oneshot():
                out["system/process_cpu_percent"] = float(process.cpu_percent(interval=None))
                out["system/process_rss_bytes"] = float(process.memory_info().rss)
                out["system/process_memory_percent"] = float(process.memory_percent())
                out["system/process_threads"] = float(process.num_threads())
                if hasattr(process, "num_fds"):  # POSIX only
                    out["system/process_open_fds"] = float(process.num_fds())
            if self._nvml is not None:
                out.update(_read_gpus(self._nvml))
            return out

    def start(self) -> None:
        """Start the daemon thread that calls ``emit(sample())`` every ``interval`` seconds."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("SystemMetrics is already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="watchkeeper-system", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._emit(self.sample())
            except Exception as exc:  # the host process must never see an error of ours
                if type(exc) not in self._logged:
                    self._logged.add(type(exc))
                    log.warning(
                        "watchkeeper: system metrics failed; further %s errors are not logged",
                        type(exc).__name__,
                        exc_info=exc,
                    )

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and wait up to ``timeout`` seconds for it; safe to call twice or before start().

        Once it returns no reading is emitted any more, unless an ``emit`` running outlasts ``timeout``."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
