"""The on-disk spool of the HTTP transport: batches the server could not take, kept until it can.

Layout of a spool directory (one per server URL and token, see
:func:`watchkeeper.sdk.http.default_spool_dir`)::

    <dir>/
      .lock                                   flock(2) held by the process that is resending
      00001719843210123456789-0004242-000017-<batch id>.json.gz        one batch: the gzip JSON body
      00001719843210123456790-0004242-000018-<batch id>.run.json.gz    a batch that starts a run
      .tmp-...                                a file being written (ignored; renamed into place when whole)
      rejected/                               batches the server refused for good, kept for inspection

* **Names sort oldest-first.** The name starts with the wall-clock time in nanoseconds (zero-padded), then
  the process id and a per-process sequence number, so a plain sort of the names is the order the batches
  were spooled in, across every process that shares the directory.
* **Atomic files.** A batch is written to a ``.tmp-`` file, fsync'ed, then renamed to its final name: a
  reader sees a whole batch or none. A temporary file left by a process killed mid-write is ignored and
  removed once it is an hour old.
* **Shared by processes.** Every process that sends to the same server with the same token uses the same
  directory, so batches left by a process that exited (or crashed) while the server was away are sent by the
  next one. Only one process resends at a time: :meth:`Spool.drain` takes a non-blocking ``flock`` on
  ``.lock`` and leaves the work to the holder when it is taken. A file is deleted only after the server
  acknowledged it; resending twice is harmless anyway, since the server applies a batch id once.
* **Bounded in bytes.** Past ``max_bytes`` the *oldest* batches are dropped: monitoring is read for the
  present (alerts, the current window, the dashboard), and the newest data is what a user misses most when
  an outage ends. Batches that start a run are never dropped (they are tiny, and without them every later
  batch of the run would be refused). A burst of drops logs one warning when it starts and one with the
  totals (batches and bytes) when it ends, never one per batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one process per spool directory, no cross-process lock
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("watchkeeper")

DEFAULT_MAX_BYTES = 256 * 1024 * 1024
SUFFIX = ".json.gz"
RUN_SUFFIX = ".run.json.gz"
STALE_TMP_SECONDS = 3600.0
_SCAN_EVERY = 1.0  # seconds between full rescans of the directory's size when nothing is over the bound


class Sent(Enum):
    """What became of one spooled file handed to the sender."""

    ACKNOWLEDGED = "acknowledged"  # the server has it (applied now or before): delete the file
    REJECTED = "rejected"  # the server refuses it for good: move it aside
    FAILED = "failed"  # try again later: stop resending for now


@dataclass(frozen=True, slots=True)
class DrainResult:
    sent: int = 0
    rejected: int = 0
    busy: bool = False  # another process holds the lock and is resending
    empty: bool = False  # nothing is left in the spool


class Spool:
    """A directory of spooled batch bodies, oldest first, at most ``max_bytes`` in total."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ValueError(f"spool_max_bytes must be a positive number of bytes, got {max_bytes!r}")
        self.dir = Path(directory)
        self.max_bytes = max_bytes
        self.rejected_dir = self.dir / "rejected"
        self._lock = threading.Lock()
        self._seq = 0
        self._last_ns = 0
        self._approx_bytes: int | None = None
        self._scanned_at = 0.0
        self._cleaned = False
        # the current burst of drops (see the module docstring), and totals over the spool's life
        self._burst_batches = 0
        self._burst_bytes = 0
        self.dropped_batches = 0
        self.dropped_bytes = 0
        self.spooled = 0

    # -- writing -----------------------------------------------------------------------------------------

    def put(self, body: bytes, batch_id: str, *, starts_run: bool = False) -> Path:
        """Store one batch body atomically; drop the oldest batches if the spool is over its bound."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with self._lock:
            now = max(time.time_ns(), self._last_ns + 1)  # strictly increasing in this process
            self._last_ns = now
            self._seq = (self._seq + 1) % 1_000_000
            seq = self._seq
        safe_id = "".join(c for c in batch_id if c.isalnum() or c in "-_")[:64] or "batch"
        name = f"{now:023d}-{os.getpid():07d}-{seq:06d}-{safe_id}{RUN_SUFFIX if starts_run else SUFFIX}"
        target = self.dir / name
        tmp = self.dir / f".tmp-{name}"
        try:
            with open(tmp, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.spooled += 1
        self._enforce_bound(len(body))
        return target

    def _enforce_bound(self, added: int) -> None:
        now = time.monotonic()
        with self._lock:
            if self._approx_bytes is not None and now - self._scanned_at < _SCAN_EVERY:
                self._approx_bytes += added
                if self._approx_bytes <= self.max_bytes:
                    return
            files = [(p, _size(p)) for p in self.pending()]
            total = sum(s for _, s in files)
            self._scanned_at = now
            dropped, dropped_bytes = 0, 0
            for path, size in files:  # oldest first
                if total <= self.max_bytes:
                    break
                if path.name.endswith(RUN_SUFFIX):
                    continue
                with contextlib.suppress(FileNotFoundError):  # another process sent or dropped it
                    path.unlink()
                    dropped += 1
                    dropped_bytes += size
                total -= size
            self._approx_bytes = total
            if not dropped:
                return
            first = self._burst_batches == 0
            self._burst_batches += dropped
            self._burst_bytes += dropped_bytes
            self.dropped_batches += dropped
            self.dropped_bytes += dropped_bytes
        if first:
            log.warning(
                "watchkeeper: the spool %s is over its bound of %s; dropped the oldest %d batch(es) "
                "(%s) to make room; further drops are counted and reported when the server takes "
                "batches again",
                self.dir,
                format_bytes(self.max_bytes),
                dropped,
                format_bytes(dropped_bytes),
            )

    def end_burst(self) -> None:
        """Report the totals of the current burst of drops, if any (the server is back, or we are closing)."""
        with self._lock:
            batches, size = self._burst_batches, self._burst_bytes
            self._burst_batches = self._burst_bytes = 0
        if batches:
            log.warning(
                "watchkeeper: %d batch(es) (%s) were dropped from the spool %s while the server was away, "
                "because it was over its bound of %s",
                batches,
                format_bytes(size),
                self.dir,
                format_bytes(self.max_bytes),
            )

    # -- reading -----------------------------------------------------------------------------------------

    def pending(self) -> list[Path]:
        """The spooled batches, oldest first (temporary files and rejected batches excluded)."""
        try:
            names = [e.name for e in os.scandir(self.dir) if e.name.endswith(SUFFIX) and e.name[0] != "."]
        except FileNotFoundError:
            return []
        return [self.dir / n for n in sorted(names)]

    def is_empty(self) -> bool:
        try:
            with os.scandir(self.dir) as it:
                return not any(e.name.endswith(SUFFIX) and e.name[0] != "." for e in it)
        except FileNotFoundError:
            return True

    def size(self) -> tuple[int, int]:
        """(batches, bytes) waiting."""
        files = self.pending()
        return len(files), sum(_size(p) for p in files)

    def drain(self, send: Callable[[bytes, Path], Sent], deadline: float | None = None) -> DrainResult:
        """Hand spooled batches to ``send`` oldest first until one fails, the spool is empty or the
        ``time.monotonic()`` ``deadline`` passes. Does nothing (``busy``) while another process drains."""
        with self._locked() as held:
            if not held:
                return DrainResult(busy=True, empty=self.is_empty())
            self._clean_stale_tmp()
            sent = rejected = 0
            for path in self.pending():
                if deadline is not None and time.monotonic() > deadline:
                    break
                try:
                    body = path.read_bytes()
                except FileNotFoundError:  # dropped for the bound meanwhile
                    continue
                outcome = send(body, path)
                if outcome is Sent.FAILED:
                    return DrainResult(sent=sent, rejected=rejected, empty=False)
                if outcome is Sent.REJECTED:
                    self._move_aside(path)
                    rejected += 1
                else:
                    path.unlink(missing_ok=True)
                    sent += 1
                with self._lock:
                    if self._approx_bytes is not None:
                        self._approx_bytes = max(0, self._approx_bytes - len(body))
            empty = self.is_empty()
        if empty:
            self.end_burst()
        return DrainResult(sent=sent, rejected=rejected, empty=empty)

    def _move_aside(self, path: Path) -> None:
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, self.rejected_dir / path.name)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[bool]:
        self.dir.mkdir(parents=True, exist_ok=True)
        if fcntl is None:  # pragma: no cover
            with self._lock:
                yield True
            return
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _clean_stale_tmp(self) -> None:
        """Remove temporary files of writers that died mid-write (once per process)."""
        if self._cleaned:
            return
        self._cleaned = True
        cutoff = time.time() - STALE_TMP_SECONDS
        for entry in os.scandir(self.dir):
            if entry.name.startswith(".tmp-"):
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def format_bytes(n: int) -> str:
    """1536 -> "1.5 KiB (1536 bytes)"."""
    if n < 1024:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit} ({n} bytes)"
