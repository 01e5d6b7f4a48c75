"""The SDK's HTTP transport: a run's batches go to a watchkeeper server (``wk.init(uri="http://...")``).

**Wire.** One ``httpx.Client`` per transport (HTTP/1.1, keep-alive). A batch is ``POST /api/v1/ingest`` with
the strict JSON of :func:`watchkeeper.store.wire.to_json` (``json.dumps(allow_nan=False)``), gzip-compressed;
or, for a batch that carries profile bytes or blobs, once an answer of the server listed the binary form in
its ``Accept-Post`` header, :func:`watchkeeper.store.wire.to_binary` (``Content-Type:
application/vnd.watchkeeper.batch``: the raw bytes, neither base64 nor gzip, which cost about 7 ms of CPU per
window profile and saved little). A binary body answered 415 or 422 is sent again as JSON, and the binary
form is used again only once the server lists it again. Spooled batches are always gzip JSON. Requests
carry ``Authorization: Bearer <token>`` when there is a token and a ``User-Agent`` naming the watchkeeper
version. Artifact files are ``PUT /api/v1/blobs/<sha256>?project=P`` (raw bytes, skipped when a
``HEAD`` says the server has them) and are read back through ``/api/v1/artifacts/...`` (see
:mod:`watchkeeper.server.artifacts`).

**Delivery.** ``send`` tries a few times with exponential backoff and full jitter (a random delay in
``[0, min(2 s, 0.2 s * 2**attempt)]``, AWS's "Exponential Backoff And Jitter", 2015), never spending more
than ``retry_time`` seconds, so the writer thread does not stall. Connection errors, timeouts and answers
408, 425, 429, 500, 502, 503 and 504 are worth retrying; any other 4xx is a refusal for good and raises
``StoreError(transient=False)``, which the writer reports and drops. When the retries are used up, the batch
goes to the on-disk :class:`~watchkeeper.sdk.spool.Spool` and ``send`` returns ``WriteResult(applied=False)``
as if the batch were written. Before each send, spooled batches are resent oldest first, and while any are
left a new batch is spooled behind them, so the server always receives one process's batches in order (a
run's start before its points). After a failure the server is probed again only after a growing pause (0.5
s, doubling to 10 s): a writer does not spend its time on a server that is away. Resending is idempotent
because the server applies a batch id once; a spooled batch is deleted only once the server acknowledged it,
and one it refuses with a 4xx (or with 500 five times) is moved to ``rejected/`` with an error log.

**At init.** ``wk.init`` sends the run's start synchronously. A server that cannot be reached does not stop
the application: the start is spooled like any batch, a warning says so, and the run appears on the server
when it is back. A server that answers 401 or 403 makes ``init`` raise ``StoreError`` naming the token
problem, since nothing the run logs could ever be accepted.

**Artifacts are synchronous.** ``log_artifact`` returns the version the server assigns, so an artifact batch
is never spooled: its files are uploaded and its batch sent while the caller waits (after the spool is
drained, so the run exists on the server), and ``StoreError`` is raised when the server cannot be reached.
``use_artifact`` needs the server too. Reference profiles (``log_reference``) are ordinary batches and are
spooled when the server is away.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import platform
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from watchkeeper._version import __version__
from watchkeeper.errors import StoreError
from watchkeeper.sdk.spool import DEFAULT_MAX_BYTES, Sent, Spool, format_bytes
from watchkeeper.store import ArtifactLog, ArtifactVersion, Batch, WriteResult, codec, wire
from watchkeeper.store.artifacts import manifest_digest

try:
    import httpx
except ModuleNotFoundError as exc:  # pragma: no cover - httpx is a dependency of the HTTP transport only
    raise ModuleNotFoundError(
        "sending to a watchkeeper server (wk.init(uri='http://...')) needs httpx: pip install httpx"
    ) from exc

log = logging.getLogger("watchkeeper")

INGEST = "/api/v1/ingest"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
BACKOFF_BASE = 0.2
BACKOFF_CAP = 2.0
PROBE_MIN, PROBE_MAX = 0.5, 10.0
SYNC_DRAIN_SECONDS = 60.0  # how long an artifact call may spend emptying the spool first
CLOSE_DRAIN_SECONDS = 30.0
POISON_AFTER = 5  # a spooled batch answered with 500 this many times is moved aside
USER_AGENT = f"watchkeeper/{__version__} python/{platform.python_version()} httpx/{httpx.__version__}"
_GZIP_JSON = {"content-type": wire.JSON_TYPE, "content-encoding": "gzip"}
_BINARY = {"content-type": wire.BINARY_TYPE}
_NOT_READ = frozenset({415, 422})  # what a server that does not read the binary form answers to it


class _Unreachable(StoreError):
    """The server did not answer (or answered "retry later") within the retry budget."""


def default_spool_dir(url: str, token: str | None = None) -> Path:
    """``<base>/<host>-<port>[-<hash>]``: base is ``WATCHKEEPER_SPOOL_DIR``, else
    ``$XDG_CACHE_HOME/watchkeeper/spool`` (``~/.cache/...``). The hash (of the URL's path and the token) is
    there when either is set, so processes that send to the same server with the same token share one
    spool, and a batch is never resent with another token than the one it was made under.

    >>> default_spool_dir("http://127.0.0.1:8080", None).name
    '127.0.0.1-8080'
    """
    base = os.environ.get("WATCHKEEPER_SPOOL_DIR")
    if base:
        root = Path(base)
    else:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(cache) / "watchkeeper" / "spool"
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    key = f"{parts.hostname}-{port}"
    extra = parts.path.rstrip("/") + (f"\0{token}" if token else "")
    if extra:
        key += "-" + hashlib.sha256(extra.encode()).hexdigest()[:12]
    return root / "".join(c if c.isalnum() or c in ".-_" else "_" for c in key)


class HttpTransport:
    """Sends a run's batches to the watchkeeper server at ``url`` (see the module docstring).

    ``token``: the bearer token (``watchkeeper token create``); ``project``: the project blobs are uploaded
    for (default: the project of the first run start sent); ``spool_dir``: see :func:`default_spool_dir`;
    ``spool_max_bytes``: the spool's bound; ``timeout``: seconds per request (connecting: at most 5);
    ``retries`` and ``retry_time``: attempts and seconds one call may spend before it spools or raises;
    ``http_transport``: an ``httpx`` transport to use instead of the network (tests).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        project: str | None = None,
        spool_dir: str | os.PathLike[str] | None = None,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = 10.0,
        retries: int = 4,
        retry_time: float = 4.0,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = _check_url(url)
        if token is not None and (not isinstance(token, str) or not token.strip() or not token.isascii()):
            raise ValueError(f"token must be a non-empty ASCII string, got {type(token).__name__}")
        self.token = token.strip() if token else None
        self.project = project
        self.timeout = _positive("timeout", timeout)
        self.retry_time = _positive("retry_time", retry_time)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
            raise ValueError(f"retries must be an int >= 1, got {retries!r}")
        self.retries = retries
        self.spool = Spool(
            spool_dir if spool_dir is not None else default_spool_dir(self.url, self.token), spool_max_bytes
        )
        headers = {"user-agent": USER_AGENT, "accept": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        self._http_transport = http_transport
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0)),
            transport=http_transport,
        )
        self._lock = threading.RLock()
        self._outage_since: float | None = None  # time.monotonic() of the first failure of this outage
        self._probe_at = 0.0
        self._probe_delay = PROBE_MIN
        self._poison: dict[str, int] = {}
        self._closed = False
        self._binary = False  # the server's last answer listed the binary form in Accept-Post
        self.resent = 0  # spooled batches the server acknowledged

    # -- batches -----------------------------------------------------------------------------------------

    def send(self, batch: Batch) -> WriteResult:
        """Send ``batch``; spool it when the server cannot take it now (``applied=False``, see the module
        docstring). Raises ``StoreError(transient=False)`` when the server refuses it for good."""
        if self.project is None and batch.runs:
            self.project = batch.runs[0].project
        binary = self._binary and bool(batch.profiles or batch.blobs)
        body = _encode_binary(batch) if binary else _encode(batch)
        if batch.artifacts:
            return self._send_artifacts(batch, body, binary)
        with self._lock:
            if self._spool_in_the_way():
                self._spool(_encode(batch) if binary else body, batch)
                return WriteResult(applied=False)
            try:
                applied = self._post_batch(batch, body, binary)
            except _Unreachable:
                self._spool(_encode(batch) if binary else body, batch)
                return WriteResult(applied=False)
        return WriteResult(applied=applied)

    def _post_batch(self, batch: Batch, body: bytes, binary: bool) -> bool:
        batch_id = batch.id
        headers = _BINARY if binary else _GZIP_JSON
        r = self._with_retries(
            f"batch {batch_id}", lambda: self._client.post(INGEST, content=body, headers=headers)
        )
        if binary and r.status_code in _NOT_READ:
            # a server (or one replica behind the address) that does not read the binary form: the JSON
            # form decides; a batch the server refuses in both forms is refused for its content
            json_body = _encode(batch)
            r = self._with_retries(
                f"batch {batch_id}",
                lambda: self._client.post(INGEST, content=json_body, headers=_GZIP_JSON),
            )
        if not r.is_success:
            raise StoreError(self._refusal(r, f"batch {batch_id}"), transient=False)
        self._binary = wire.BINARY_TYPE in r.headers.get("accept-post", "")
        applied = _acknowledged(r, batch_id)
        if applied is None:
            self._failed("an answer that is not a watchkeeper acknowledgement")
            raise _Unreachable(
                f"batch {batch_id}: {self.url} answered HTTP {r.status_code} without acknowledging the batch "
                "(is it a watchkeeper server?)"
            )
        self._recovered()
        return applied

    def _spool_in_the_way(self) -> bool:
        """Resend spooled batches oldest first; True while some are left (a new batch must queue behind)."""
        if self.spool.is_empty():
            return False
        if time.monotonic() < self._probe_at:
            return True
        return not self.spool.drain(self._resend, time.monotonic() + self.retry_time).empty

    def _drain_waiting(self, seconds: float) -> bool:
        """Resend the spool for at most ``seconds``, waiting while another process holds it (it finishes or
        gives up soon); True when it is empty."""
        deadline = time.monotonic() + seconds
        while True:
            result = self.spool.drain(self._resend, deadline)
            if not result.busy or time.monotonic() >= deadline:
                return result.empty
            time.sleep(0.05)

    def _resend(self, body: bytes, path: Path) -> Sent:
        """One attempt at one spooled batch: the spool is the retry."""
        batch_id = path.name.split("-", 3)[-1].split(".", 1)[0]
        try:
            r = self._client.post(INGEST, content=body, headers=_GZIP_JSON)
        except httpx.HTTPError as exc:
            self._failed(_describe(exc))
            return Sent.FAILED
        if r.is_success:
            if _acknowledged(r, batch_id) is None:
                self._failed("an answer that is not a watchkeeper acknowledgement")
                return Sent.FAILED
            self._poison.pop(path.name, None)
            self.resent += 1
            self._recovered()
            return Sent.ACKNOWLEDGED
        if r.status_code in RETRY_STATUSES:
            strikes = self._poison.get(path.name, 0) + 1 if r.status_code == 500 else 0
            self._poison[path.name] = strikes
            if strikes < POISON_AFTER:
                self._failed(f"HTTP {r.status_code}: {_detail(r)}")
                return Sent.FAILED
        self._poison.pop(path.name, None)
        log.error(
            "watchkeeper: the server at %s refused spooled batch %s (HTTP %d: %s); moved it to %s",
            self.url,
            batch_id,
            r.status_code,
            _detail(r),
            self.spool.rejected_dir,
        )
        return Sent.REJECTED

    def _spool(self, body: bytes, batch: Batch) -> None:
        try:
            self.spool.put(body, batch.id, starts_run=bool(batch.runs))
        except OSError as exc:
            raise StoreError(
                f"the server at {self.url} cannot take batch {batch.id} now, and it could not be spooled in "
                f"{self.spool.dir}: {exc}",
                transient=True,
            ) from exc
        if batch.runs:
            log.warning(
                "watchkeeper: run %s is not on the server at %s yet: its start is spooled in %s and is sent "
                "when the server can be reached",
                ", ".join(r.id for r in batch.runs),
                self.url,
                self.spool.dir,
            )

    def _failed(self, reason: str) -> None:
        now = time.monotonic()
        self._probe_at = now + self._probe_delay * random.uniform(0.5, 1.0)
        self._probe_delay = min(self._probe_delay * 2, PROBE_MAX)
        if self._outage_since is None:
            self._outage_since = now
            log.warning(
                "watchkeeper: the server at %s cannot be reached (%s); batches are kept in the spool %s "
                "(at most %s) and sent when it is back",
                self.url,
                reason,
                self.spool.dir,
                format_bytes(self.spool.max_bytes),
            )

    def _recovered(self) -> None:
        self._probe_at = 0.0
        self._probe_delay = PROBE_MIN
        if self._outage_since is not None:
            log.warning(
                "watchkeeper: the server at %s can be reached again after %.0f s",
                self.url,
                time.monotonic() - self._outage_since,
            )
            self._outage_since = None

    # -- artifacts ---------------------------------------------------------------------------------------

    def _send_artifacts(self, batch: Batch, body: bytes, binary: bool) -> WriteResult:
        with self._lock:
            if not self.spool.is_empty():  # the run (and what came before) must be on the server first
                self._drain_waiting(SYNC_DRAIN_SECONDS)
            try:
                applied = self._post_batch(batch, body, binary)
            except _Unreachable as exc:
                raise StoreError(
                    f"{exc}; the artifact was not logged (artifacts are not spooled: log_artifact returns "
                    "the version the server assigns)",
                    transient=True,
                ) from exc
        return WriteResult(applied=applied, artifacts=[self._find_version(a) for a in batch.artifacts])

    def _find_version(self, record: ArtifactLog) -> ArtifactVersion:
        """The version the server holds for ``record``: the newest of its name with the same content."""
        r = self._call("GET", f"/api/v1/artifacts/{_seg(record.project)}", params={"name": record.name})
        digest = manifest_digest(record.files)
        found = [v for v in r.json()["versions"] if v["digest"] == digest]
        if not found:
            raise StoreError(
                f"the server at {self.url} acknowledged artifact {record.name!r} but lists no version "
                "with its content",
                transient=False,
            )
        return _version(max(found, key=lambda v: v["version"]))

    def put_blob(self, digest: str, source: Path) -> None:
        """Upload a file under its sha256 ``digest``, unless the server has that content already."""
        project = self.project
        if project is None:
            raise StoreError("put_blob: no project yet (send the run's start first)", transient=False)
        path = f"/api/v1/blobs/{_seg(digest)}"
        params = {"project": project}
        if self._call("HEAD", path, params=params, missing_ok=True).status_code == 200:
            return
        size = os.path.getsize(source)

        def upload() -> httpx.Response:
            with open(source, "rb") as f:
                return self._client.put(
                    path, params=params, content=f, headers={"content-type": "application/octet-stream"}
                )

        r = self._with_retries_or_raise(f"uploading {source}", upload)
        if r.status_code == 413:
            raise StoreError(
                f"{source} ({size} bytes) is larger than the server at {self.url} accepts: {_detail(r)}; "
                "start the server with a larger --max-body-mb",
                transient=False,
            )
        if not r.is_success:
            raise StoreError(self._refusal(r, f"uploading {source}"), transient=False)

    def download_artifact(self, project: str, ref: str, dest: Path, run_id: str | None) -> Path:
        """Copy an artifact version's files into ``dest`` (each checked against its sha256) and record that
        ``run_id`` used it."""
        base = f"/api/v1/artifacts/{_seg(project)}/{_seg(ref)}"
        if run_id is not None:
            with self._lock:  # the run must be on the server before its use is recorded
                if not self.spool.is_empty():
                    self._drain_waiting(SYNC_DRAIN_SECONDS)
            manifest = self._call("POST", f"{base}/use", json={"run_id": run_id}).json()
        else:
            manifest = self._call("GET", f"{base}/manifest").json()
        version = manifest["version"]
        resolved_ref = f"{version['name']}:v{version['version']}"
        resolved = f"/api/v1/artifacts/{_seg(project)}/{_seg(resolved_ref)}/files/"
        dest = Path(dest)
        for f in manifest["files"]:
            target = dest.joinpath(*_relative_parts(f["path"]))
            self._download(resolved + quote(f["path"], safe="/"), target, f["digest"], int(f["size"]))
        return dest

    def _download(self, url: str, target: Path, digest: str, size: int) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
        got: list[tuple[str, int]] = []

        def fetch() -> httpx.Response:
            with self._client.stream("GET", url) as r:
                if r.status_code != 200:
                    r.read()
                    return r
                h, n = hashlib.sha256(), 0
                with open(tmp, "wb") as out:
                    for chunk in r.iter_bytes(1 << 20):
                        h.update(chunk)
                        n += len(chunk)
                        out.write(chunk)
                got.append((h.hexdigest(), n))
                return r

        try:
            r = self._with_retries_or_raise(f"downloading {target.name}", fetch)
            if r.status_code != 200:
                self._raise_for(r, f"downloading {target.name}")
            if got[-1] != (digest, size):
                raise StoreError(
                    f"downloading {target.name}: got {got[-1][1]} bytes with sha256 {got[-1][0]}, expected "
                    f"{size} bytes with sha256 {digest}",
                    transient=True,
                )
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    # -- requests ----------------------------------------------------------------------------------------

    def _with_retries(self, what: str, attempt: Callable[[], httpx.Response]) -> httpx.Response:
        """Call ``attempt`` until an answer not worth retrying comes (returned, 2xx or 4xx), with backoff
        and full jitter, within ``retries`` attempts and ``retry_time`` seconds; else raise _Unreachable."""
        deadline = time.monotonic() + self.retry_time
        last, wait, tried = "", 0.0, 0
        for n in range(self.retries):
            if n:
                delay = max(wait, random.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2**n)))
                if time.monotonic() + delay > deadline:
                    break
                time.sleep(delay)
            tried += 1
            try:
                r = attempt()
            except httpx.HTTPError as exc:
                last, wait = _describe(exc), 0.0
                continue
            if r.status_code in RETRY_STATUSES:
                last, wait = f"HTTP {r.status_code}: {_detail(r)}", _retry_after(r)
                continue
            return r
        self._failed(last)
        raise _Unreachable(
            f"{what}: the server at {self.url} did not take it in {tried} attempt(s) within "
            f"{self.retry_time:g} s: {last}"
        )

    def _with_retries_or_raise(self, what: str, attempt: Callable[[], httpx.Response]) -> httpx.Response:
        try:
            return self._with_retries(what, attempt)
        except _Unreachable as exc:
            raise StoreError(str(exc), transient=True) from exc

    def _call(self, method: str, path: str, *, missing_ok: bool = False, **kw: Any) -> httpx.Response:
        """One request with retries; 4xx answers raised as KeyError (404), ValueError (400, 422) or
        StoreError (401, 403 and the rest)."""
        r = self._with_retries_or_raise(f"{method} {path}", lambda: self._client.request(method, path, **kw))
        if r.is_success or (missing_ok and r.status_code == 404):
            self._recovered()
            return r
        self._raise_for(r, f"{method} {path}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise_for(self, r: httpx.Response, what: str) -> None:
        if r.status_code == 404:
            raise KeyError(_detail(r))
        if r.status_code in (400, 422):
            raise ValueError(f"{what}: {_detail(r)}")
        raise StoreError(self._refusal(r, what), transient=False)

    def _refusal(self, r: httpx.Response, what: str) -> str:
        detail = _detail(r)
        if r.status_code == 401:
            how = (
                "pass a valid token with wk.init(token=...) or WATCHKEEPER_TOKEN"
                if self.token
                else "this server needs a token: pass one with wk.init(token=...) or WATCHKEEPER_TOKEN"
            )
            return (
                f"the server at {self.url} refused the token (HTTP 401: {detail}); {how} "
                "(create one with: watchkeeper token create --project P --scope write)"
            )
        if r.status_code == 403:
            return (
                f"the server at {self.url} does not allow this token to do that (HTTP 403: {detail}); use a "
                "token with scope write for this project"
            )
        return f"{what}: the server at {self.url} refused it (HTTP {r.status_code}: {detail})"

    # -- life cycle --------------------------------------------------------------------------------------

    def close(self) -> None:
        """Resend what is spooled (for at most 30 s, waiting for another process that is resending; what is
        left stays on disk for the next process that sends to this server), then close the connections."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if not self.spool.is_empty():
                    self._drain_waiting(CLOSE_DRAIN_SECONDS)
                    count, size = self.spool.size()
                    if count:
                        log.warning(
                            "watchkeeper: %d batch(es) (%s) are still in the spool %s; the next "
                            "watchkeeper process that sends to %s resends them",
                            count,
                            format_bytes(size),
                            self.spool.dir,
                            self.url,
                        )
                self.spool.end_burst()
            except OSError:  # closing: report, never raise
                log.exception("watchkeeper: could not resend the spool %s", self.spool.dir)
            finally:
                self._client.close()

    def after_fork(self) -> HttpTransport:
        # the parent's connections stay the parent's: a new client, the same spool
        child = HttpTransport(
            self.url,
            self.token,
            project=self.project,
            spool_dir=self.spool.dir,
            spool_max_bytes=self.spool.max_bytes,
            timeout=self.timeout,
            retries=self.retries,
            retry_time=self.retry_time,
            http_transport=self._http_transport,
        )
        child._binary = self._binary
        return child


def _encode(batch: Batch) -> bytes:
    try:
        text = json.dumps(wire.to_json(batch), allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"batch {batch.id} cannot be sent as JSON: {exc}", transient=False) from exc
    return gzip.compress(text.encode(), compresslevel=5, mtime=0)


def _encode_binary(batch: Batch) -> bytes:
    try:
        return wire.to_binary(batch)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"batch {batch.id} cannot be sent as JSON: {exc}", transient=False) from exc


def _acknowledged(r: httpx.Response, batch_id: str) -> bool | None:
    """``applied`` of an ingest answer for ``batch_id``; None when the answer is not one."""
    try:
        doc = r.json()
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("id") != batch_id:
        return None
    return bool(doc.get("applied"))


def _detail(r: httpx.Response) -> str:
    try:
        detail = r.json().get("detail")
    except (ValueError, AttributeError):
        return r.text[:300] or r.reason_phrase
    if isinstance(detail, list):  # validation errors: [{"field": ..., "message": ...}]
        return "; ".join(f"{d.get('field')}: {d.get('message')}" for d in detail[:5] if isinstance(d, dict))
    return str(detail)[:500]


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _retry_after(r: httpx.Response) -> float:
    with contextlib.suppress(ValueError):
        return min(max(float(r.headers.get("retry-after", "0")), 0.0), BACKOFF_CAP)
    return 0.0


def _version(doc: dict[str, Any]) -> ArtifactVersion:
    return ArtifactVersion(
        project=doc["project"],
        name=doc["name"],
        version=int(doc["version"]),
        type=doc["type"],
        digest=doc["digest"],
        size=int(doc["size"]),
        file_count=int(doc["file_count"]),
        created_by=doc.get("created_by"),
        created_at=float(doc["created_at"]),
        metadata=codec.decode(doc.get("metadata") or {}),
    )


def _seg(value: str) -> str:
    """One URL path segment (``:`` kept readable)."""
    return quote(value, safe=":")


def _relative_parts(path: str) -> tuple[str, ...]:
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or any(p in ("..", ".", "") for p in parts):
        raise StoreError(
            f"the server sent an artifact file path {path!r} outside the artifact", transient=False
        )
    return parts


def _check_url(url: Any) -> str:
    if not isinstance(url, str):
        raise ValueError(f"uri must be a string such as http://host:8080, got {type(url).__name__}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"uri: expected http://host:port or https://host[:port][/path], got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"uri: a server URL has no query or fragment, got {url!r}")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"uri: {exc} in {url!r}") from None
    return url.strip().rstrip("/")


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)
