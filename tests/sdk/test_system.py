"""System metrics: readings agree with psutil read independently, rates follow real I/O, the timer thread
survives a failing emit, and GPUs are read through a fake NVML."""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
import threading
import time
import types
from collections.abc import Callable
from types import SimpleNamespace

import psutil
import pytest

from watchkeeper.sdk.system import SystemMetrics

RATE_KEYS = {
    "system/disk_read_bytes_per_s",
    "system/disk_write_bytes_per_s",
    "system/net_sent_bytes_per_s",
    "system/net_recv_bytes_per_s",
}
LEVEL_KEYS = {
    "system/cpu_percent",
    "system/memory_percent",
    "system/memory_used_bytes",
    "system/memory_available_bytes",
    "system/process_cpu_percent",
    "system/process_rss_bytes",
    "system/process_memory_percent",
    "system/process_threads",
}


def _ignore(reading: dict[str, float]) -> None:
    pass


def _has_counters() -> tuple[bool, bool]:
    """Whether this container exposes (disk, network) I/O counters to psutil."""
    try:
        disk = psutil.disk_io_counters() is not None
    except (OSError, RuntimeError):
        disk = False
    try:
        net = psutil.net_io_counters() is not None
    except (OSError, RuntimeError):
        net = False
    return disk, net


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_levels_agree_with_psutil() -> None:
    reading = SystemMetrics(_ignore, gpu=False).sample()
    rss = psutil.Process().memory_info().rss
    memory = psutil.virtual_memory()
    assert reading.keys() >= LEVEL_KEYS
    assert all(k.startswith("system/") and isinstance(v, float) for k, v in reading.items())
    assert reading["system/process_rss_bytes"] == pytest.approx(rss, rel=0.10)
    assert reading["system/memory_used_bytes"] == pytest.approx(memory.used, rel=0.05)
    assert reading["system/memory_available_bytes"] == pytest.approx(memory.available, rel=0.05)
    assert 0.0 <= reading["system/memory_percent"] <= 100.0
    assert 0.0 <= reading["system/cpu_percent"] <= 100.0
    assert reading["system/process_threads"] == pytest.approx(psutil.Process().num_threads(), abs=3)
    if hasattr(psutil.Process, "num_fds"):
        assert reading["system/process_open_fds"] == pytest.approx(psutil.Process().num_fds(), abs=5)


def test_process_cpu_follows_a_busy_loop_and_an_idle_sleep() -> None:
    metrics = SystemMetrics(_ignore, gpu=False)
    got = []
    for _ in range(3):  # a shared machine may not give this process a whole CPU for 0.5 s: try again
        metrics.sample()
        wall, cpu = time.monotonic(), time.process_time()
        while time.monotonic() - wall < 0.5:
            pass
        busy = metrics.sample()["system/process_cpu_percent"]
        independent = 100.0 * (time.process_time() - cpu) / (time.monotonic() - wall)
        assert busy == pytest.approx(independent, abs=10.0)
        got.append(independent)
        if independent >= 60.0:
            assert busy > 50.0
            break
    else:
        pytest.skip(f"machine too busy: the process got only {[round(g) for g in got]} % of a CPU spinning")

    time.sleep(0.5)
    idle = metrics.sample()["system/process_cpu_percent"]
    assert idle < 50.0


def test_a_sample_right_after_construction_covers_the_time_since_construction() -> None:
    wall, cpu = time.monotonic(), time.process_time()
    metrics = SystemMetrics(_ignore, gpu=False)  # primes the CPU counters: no meaningless 0.0 first
    while time.monotonic() - wall < 0.3:
        pass
    first = metrics.sample()
    independent = 100.0 * (time.process_time() - cpu) / (time.monotonic() - wall)
    assert first["system/process_cpu_percent"] == pytest.approx(independent, abs=15.0)
    assert first["system/process_cpu_percent"] > 0.0
    assert first["system/cpu_percent"] > 0.0  # this process alone kept one CPU busy


def test_host_cpu_agrees_with_psutil_cpu_percent_over_the_same_window() -> None:
    metrics = SystemMetrics(_ignore, gpu=False)
    metrics.sample()
    psutil.cpu_percent(interval=None)
    wall = time.monotonic()
    while time.monotonic() - wall < 0.3:
        pass
    ours = metrics.sample()["system/cpu_percent"]
    theirs = psutil.cpu_percent(interval=None)
    assert 0.0 < ours <= 100.0
    assert ours == pytest.approx(theirs, abs=10.0)


def test_the_timers_first_reading_is_meaningful() -> None:
    """psutil.cpu_percent remembers its previous call per thread; priming in the caller's thread must still
    give the timer thread a first reading that covers the time since construction."""
    readings: list[dict[str, float]] = []
    metrics = SystemMetrics(readings.append, interval=0.3, gpu=False)
    metrics.start()
    try:
        wall = time.monotonic()
        while not readings and time.monotonic() - wall < 2.0:
            pass  # keep one CPU busy until the first reading
    finally:
        metrics.stop()
    assert readings
    assert readings[0]["system/cpu_percent"] > 5.0
    assert readings[0]["system/process_cpu_percent"] > 5.0


def test_rates_are_counter_differences_over_elapsed_time(monkeypatch) -> None:
    """A hand-computed case on fake counters and a fake clock: a counter that goes backwards (a disk
    unplugged from the sum) gives no rate, and a source that disappears gives no keys, not an error."""
    disks = iter([(1_000, 2_000), (1_500, 6_000), (1_500, 1_000)])
    nets = iter([(300, 400), (300, 50), RuntimeError("no /proc/net/dev")])
    clock = iter([10.0, 12.0, 14.0])

    def disk_io_counters():
        read, write = next(disks)
        return SimpleNamespace(read_bytes=read, write_bytes=write)

    def net_io_counters():
        value = next(nets)
        if isinstance(value, Exception):
            raise value
        return SimpleNamespace(bytes_sent=value[0], bytes_recv=value[1])

    monkeypatch.setattr(psutil, "disk_io_counters", disk_io_counters)
    monkeypatch.setattr(psutil, "net_io_counters", net_io_counters)
    monkeypatch.setattr("watchkeeper.sdk.system.time", SimpleNamespace(monotonic=lambda: next(clock)))
    metrics = SystemMetrics(_ignore, gpu=False)
    assert not RATE_KEYS & metrics.sample().keys()
    second = metrics.sample()
    assert {k: v for k, v in second.items() if k in RATE_KEYS} == {
        "system/disk_read_bytes_per_s": 250.0,
        "system/disk_write_bytes_per_s": 2_000.0,
        "system/net_sent_bytes_per_s": 0.0,
    }
    third = metrics.sample()
    assert {k: v for k, v in third.items() if k in RATE_KEYS} == {"system/disk_read_bytes_per_s": 0.0}


def test_no_counters_in_the_container_means_no_rate_keys(monkeypatch) -> None:
    def unavailable(*args, **kwargs):
        raise NotImplementedError("/proc/diskstats and /sys/block/*/stat are not available")

    monkeypatch.setattr(psutil, "disk_io_counters", unavailable)
    monkeypatch.setattr(psutil, "net_io_counters", lambda *args, **kwargs: None)
    metrics = SystemMetrics(_ignore, gpu=False)
    readings = [metrics.sample(), metrics.sample()]
    assert not RATE_KEYS & (readings[0].keys() | readings[1].keys())
    assert readings[1].keys() >= LEVEL_KEYS


def test_first_sample_has_no_rates_and_the_second_has_them() -> None:
    disk, net = _has_counters()
    metrics = SystemMetrics(_ignore, gpu=False)
    assert not RATE_KEYS & metrics.sample().keys()
    time.sleep(0.05)
    second = metrics.sample()
    expected = set()
    if disk:
        expected |= {"system/disk_read_bytes_per_s", "system/disk_write_bytes_per_s"}
    if net:
        expected |= {"system/net_sent_bytes_per_s", "system/net_recv_bytes_per_s"}
    assert RATE_KEYS & second.keys() == expected
    assert all(second[k] >= 0.0 for k in expected)


def _bracket(
    metrics: SystemMetrics, raw: Callable[[], tuple[int, ...]], action: Callable[[], object]
) -> tuple[dict[str, float], list[tuple[float, float]], list[tuple[float, float]]]:
    """Two samples around ``action()``, with raw counters and clocks read just outside and just inside the
    sampler's window. Returns the second reading and, per counter, the (elapsed, delta) over the inner and
    over the outer window: the sampler's own window lies between the two."""
    t_outer0, raw_outer0 = time.monotonic(), raw()
    metrics.sample()
    t_inner0, raw_inner0 = time.monotonic(), raw()
    action()
    t_inner1, raw_inner1 = time.monotonic(), raw()
    reading = metrics.sample()
    t_outer1, raw_outer1 = time.monotonic(), raw()
    inner = [(t_inner1 - t_inner0, b - a) for a, b in zip(raw_inner0, raw_inner1, strict=True)]
    outer = [(t_outer1 - t_outer0, b - a) for a, b in zip(raw_outer0, raw_outer1, strict=True)]
    return reading, inner, outer


def _assert_rate_within(rate: float, inner: tuple[float, float], outer: tuple[float, float]) -> None:
    """The rate times the sampler's elapsed time lies between the inner and the outer counter deltas."""
    assert rate >= 0.0
    assert rate * outer[0] >= inner[1]
    assert rate * inner[0] <= outer[1]


def test_disk_write_rate_covers_an_fsynced_write(tmp_path) -> None:
    if not _has_counters()[0]:
        pytest.skip("psutil.disk_io_counters() gives nothing in this container")
    size = 20 * 2**20

    def write() -> None:
        with open(tmp_path / "blob", "wb") as f:
            f.write(os.urandom(size))
            f.flush()
            os.fsync(f.fileno())

    def raw() -> tuple[int, int]:
        counters = psutil.disk_io_counters()
        return counters.read_bytes, counters.write_bytes

    reading, inner, outer = _bracket(SystemMetrics(_ignore, gpu=False), raw, write)
    if inner[1][1] < 0.5 * size:
        pytest.skip(f"disk counters counted {inner[1][1]} bytes of an fsynced {size}-byte write (tmpfs?)")
    _assert_rate_within(reading["system/disk_read_bytes_per_s"], inner[0], outer[0])
    _assert_rate_within(reading["system/disk_write_bytes_per_s"], inner[1], outer[1])
    assert reading["system/disk_write_bytes_per_s"] * outer[1][0] >= 0.5 * size


def test_net_rates_cover_loopback_traffic() -> None:
    if not _has_counters()[1]:
        pytest.skip("psutil.net_io_counters() gives nothing in this container")
    size = 4 * 2**20
    received = 0

    def exchange() -> None:
        nonlocal received
        with socket.create_server(("127.0.0.1", 0)) as server:

            def drain() -> None:
                nonlocal received
                conn, _ = server.accept()
                with conn:
                    while chunk := conn.recv(1 << 16):
                        received += len(chunk)

            reader = threading.Thread(target=drain)
            reader.start()
            with socket.create_connection(server.getsockname()) as client:
                client.sendall(b"\0" * size)
            reader.join(5)

    def raw() -> tuple[int, int]:
        counters = psutil.net_io_counters()
        return counters.bytes_sent, counters.bytes_recv

    reading, inner, outer = _bracket(SystemMetrics(_ignore, gpu=False), raw, exchange)
    assert received == size
    if inner[0][1] < size:
        pytest.skip(f"network counters counted {inner[0][1]} bytes of {size} sent over loopback")
    _assert_rate_within(reading["system/net_sent_bytes_per_s"], inner[0], outer[0])
    _assert_rate_within(reading["system/net_recv_bytes_per_s"], inner[1], outer[1])
    assert reading["system/net_sent_bytes_per_s"] * outer[0][0] >= size


def test_timer_emits_until_stopped() -> None:
    readings: list[dict[str, float]] = []
    metrics = SystemMetrics(readings.append, interval=0.05, gpu=False)
    metrics.start()
    try:
        assert _wait_for(lambda: len(readings) >= 4, timeout=0.5), f"only {len(readings)} emits in 0.5 s"
        names = [t.name for t in threading.enumerate()]
        assert "watchkeeper-system" in names
    finally:
        t0 = time.monotonic()
        metrics.stop()
        took = time.monotonic() - t0
        alive = "watchkeeper-system" in [t.name for t in threading.enumerate()]
    assert took < 1.0
    assert not alive  # stop() joined the thread before returning
    assert all(r.keys() >= LEVEL_KEYS for r in readings)
    assert not RATE_KEYS & readings[0].keys()
    disk, net = _has_counters()
    if disk and net:
        assert all(r.keys() >= RATE_KEYS for r in readings[1:])
    count = len(readings)
    time.sleep(0.2)
    assert len(readings) == count
    assert "watchkeeper-system" not in [t.name for t in threading.enumerate()]
    metrics.stop()  # a second stop is harmless


def test_stop_before_start_is_harmless() -> None:
    metrics = SystemMetrics(_ignore, interval=0.05, gpu=False)
    metrics.stop()
    metrics.stop()


def test_failing_emit_is_logged_once_per_error_type_and_the_timer_survives(caplog) -> None:
    calls = 0

    def emit(reading: dict[str, float]) -> None:
        nonlocal calls
        calls += 1
        raise (ValueError if calls <= 4 else KeyError)("downstream is broken")

    metrics = SystemMetrics(emit, interval=0.02, gpu=False)
    with caplog.at_level(logging.DEBUG, logger="watchkeeper"):
        metrics.start()
        try:
            assert _wait_for(lambda: calls >= 8, timeout=2.0), f"emit called {calls} times"
        finally:
            metrics.stop()
    failures = [r for r in caplog.records if r.name == "watchkeeper" and r.levelno >= logging.WARNING]
    assert [r.exc_info[0] for r in failures] == [ValueError, KeyError]


def _fake_nvml(devices: list[dict[str, float]], calls: list[str]) -> types.ModuleType:
    """A stand-in for ``pynvml`` reporting ``devices``; records every call it receives."""
    nvml = types.ModuleType("pynvml")
    nvml.NVML_TEMPERATURE_GPU = 0

    def recorded(name: str, fn: Callable) -> Callable:
        def call(*args):
            calls.append(name)
            return fn(*args)

        return call

    nvml.nvmlInit = recorded("nvmlInit", lambda: None)
    nvml.nvmlShutdown = recorded("nvmlShutdown", lambda: None)
    nvml.nvmlDeviceGetCount = recorded("nvmlDeviceGetCount", lambda: len(devices))
    nvml.nvmlDeviceGetHandleByIndex = recorded("nvmlDeviceGetHandleByIndex", lambda i: devices[i])
    nvml.nvmlDeviceGetUtilizationRates = recorded(
        "nvmlDeviceGetUtilizationRates", lambda h: SimpleNamespace(gpu=h["util"], memory=0)
    )
    nvml.nvmlDeviceGetMemoryInfo = recorded(
        "nvmlDeviceGetMemoryInfo",
        lambda h: SimpleNamespace(used=h["used"], total=h["total"], free=h["total"] - h["used"]),
    )
    nvml.nvmlDeviceGetTemperature = recorded("nvmlDeviceGetTemperature", lambda h, sensor: h["temp"])
    nvml.nvmlDeviceGetPowerUsage = recorded("nvmlDeviceGetPowerUsage", lambda h: h["mw"])
    return nvml


DEVICES = [
    {"util": 87, "used": 6 * 2**30, "total": 24 * 2**30, "temp": 71, "mw": 245_500},
    {"util": 3, "used": 2**30, "total": 16 * 2**30, "temp": 40, "mw": 61_250},
]


def test_gpus_are_read_through_nvml(monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(DEVICES, calls))
    reading = SystemMetrics(_ignore, gpu=True).sample()
    gpu = {k: v for k, v in reading.items() if k.startswith("system/gpu.")}
    assert gpu == {
        "system/gpu.0.utilization_percent": 87.0,
        "system/gpu.0.memory_used_bytes": 6.0 * 2**30,
        "system/gpu.0.memory_percent": 25.0,
        "system/gpu.0.temperature_c": 71.0,
        "system/gpu.0.power_watts": 245.5,
        "system/gpu.1.utilization_percent": 3.0,
        "system/gpu.1.memory_used_bytes": 1.0 * 2**30,
        "system/gpu.1.memory_percent": 6.25,
        "system/gpu.1.temperature_c": 40.0,
        "system/gpu.1.power_watts": 61.25,
    }
    assert calls.count("nvmlInit") == 1


def test_a_field_the_gpu_does_not_support_is_left_out(monkeypatch) -> None:
    nvml = _fake_nvml(DEVICES[:1], [])

    def not_supported(handle):
        raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")

    nvml.nvmlDeviceGetPowerUsage = not_supported
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    reading = SystemMetrics(_ignore, gpu=True).sample()
    gpu = {k for k in reading if k.startswith("system/gpu.")}
    assert gpu == {
        "system/gpu.0.utilization_percent",
        "system/gpu.0.memory_used_bytes",
        "system/gpu.0.memory_percent",
        "system/gpu.0.temperature_c",
    }


def test_no_pynvml_means_no_gpu_keys(monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with caplog.at_level(logging.DEBUG, logger="watchkeeper"):
        metrics = SystemMetrics(_ignore, gpu=True)
        readings = [metrics.sample() for _ in range(3)]
    assert not any(k.startswith("system/gpu.") for r in readings for k in r)
    ours = [r for r in caplog.records if r.name == "watchkeeper"]
    assert len(ours) <= 1
    assert all(r.levelno == logging.DEBUG for r in ours)


def test_failing_nvml_init_means_no_gpu_keys(monkeypatch) -> None:
    calls: list[str] = []
    nvml = _fake_nvml(DEVICES, calls)

    def no_driver():
        calls.append("nvmlInit")
        raise RuntimeError("NVML Shared Library Not Found")

    nvml.nvmlInit = no_driver
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    reading = SystemMetrics(_ignore, gpu=True).sample()
    assert not any(k.startswith("system/gpu.") for k in reading)
    assert calls == ["nvmlInit"]


def test_gpu_false_never_touches_nvml(monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(DEVICES, calls))
    metrics = SystemMetrics(_ignore, gpu=False)
    reading = metrics.sample()
    assert calls == []
    assert not any(k.startswith("system/gpu.") for k in reading)


@pytest.mark.parametrize("interval", [0, -1.0, math.inf, math.nan, "10", None, True])
def test_interval_must_be_a_positive_finite_number(interval) -> None:
    with pytest.raises(ValueError, match=r"interval must be a positive finite number.*got"):
        SystemMetrics(_ignore, interval=interval)
