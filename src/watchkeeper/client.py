"""A read client for a watchkeeper server's query API: what the ``watchkeeper`` commands and
``wk.load_reference`` use when the URI is ``http://...`` or ``https://...`` instead of a database.

The routes and their answers are those of :mod:`watchkeeper.server.query` and
:mod:`watchkeeper.server.artifacts` (``docs/server.md``, "Query API"). Answers come back as the store's own
dataclasses (:class:`~watchkeeper.store.RunInfo`, ``SeriesSummary``, ``TableRef``, ``ReferenceInfo``,
:class:`~watchkeeper.store.ArtifactVersion`), so the CLI prints the same rows whatever it reads from. The wire
rules are undone on the way in: a statistic that is NaN arrives as ``null`` and ±infinity as ``"inf"`` /
``"-inf"``; config, summaries and metadata arrive in the tagged form of :mod:`watchkeeper.store.codec`.

Errors, in the exception tree of :mod:`watchkeeper.errors` and the built-ins the store raises:

* the server cannot be reached (refused, timed out) or fails: ``StoreError`` naming the URL;
* 401 (no token, an unknown or revoked one) and 403 (a token of another project): ``StoreError`` naming
  the token problem and how to pass a token;
* 404: ``KeyError`` naming what is missing (a run, a reference), as the store raises it;
* 400 and 422: ``ValueError`` naming the parameter.

One request per call and no retries: a person or a script reading is better told at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from watchkeeper.errors import StoreError
from watchkeeper.sdk.http import USER_AGENT, _check_url, _describe, _detail, _positive, _seg, _version
from watchkeeper.store import ArtifactVersion, RunInfo, codec
from watchkeeper.store.profiles import ReferenceInfo
from watchkeeper.store.runs import STATUSES
from watchkeeper.store.samples import TableRef
from watchkeeper.store.signals import SeriesSummary

MAX_RUNS = 1000
"""The most runs one ``GET /api/v1/runs`` answers (``watchkeeper.server.query.MAX_RUNS``)."""
_CONSISTENT_TRIES = 3

__all__ = ["MAX_RUNS", "Client", "MergedProfile", "RunDetail"]


@dataclass(frozen=True, slots=True)
class RunDetail:
    """One run and what ``watchkeeper runs show`` prints of it."""

    info: RunInfo
    series: list[SeriesSummary]
    tables: list[TableRef]
    references: list[ReferenceInfo]
    artifacts: list[ArtifactVersion]


@dataclass(frozen=True, slots=True)
class MergedProfile:
    """The window profiles of a subject merged over a range: the merged profile's bytes
    (``Profile.from_bytes``), how many windows of how many runs went into it, and their extent."""

    data: bytes
    windows: int
    rows: int
    runs: list[str]
    window_start: float | None
    window_end: float | None


class Client:
    """Reads from the watchkeeper server at ``url`` (``http://host:port`` or ``https://host[/path]``).

    ``token``: the bearer token (``watchkeeper token create --scope read`` is enough); ``timeout``: seconds
    per request; ``token_hint``: how the caller passes a token, named in the error for a 401;
    ``http_transport``: an ``httpx`` transport to use instead of the network (tests).
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        token_hint: str = "WATCHKEEPER_TOKEN",
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = _check_url(url)
        if token is not None and (not isinstance(token, str) or not token.strip() or not token.isascii()):
            raise ValueError(f"token must be a non-empty ASCII string, got {type(token).__name__}")
        self.token = token.strip() if token else None
        self.timeout = _positive("timeout", timeout)
        self.token_hint = token_hint
        headers = {"user-agent": USER_AGENT, "accept": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0)),
            transport=http_transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries -------------------------------------------------------------------------------------------

    def projects(self) -> list[str]:
        """The names of the projects the token may read."""
        doc = self._json("/api/v1/projects")
        with self._reading("/api/v1/projects"):
            return [str(p["name"]) for p in doc["projects"]]

    def runs(
        self,
        project: str | None = None,
        *,
        status: str | None = None,
        job_type: str | None = None,
        model: str | None = None,
        version: str | None = None,
        limit: int = 100,
    ) -> list[RunInfo]:
        """Runs, newest first, of ``project`` or of every project the token may read (``Runs.list``)."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_RUNS:
            raise ValueError(f"limit: a server answers 1 to {MAX_RUNS} runs at a time, got {limit!r}")
        params = {"project": project, "status": status, "job_type": job_type, "model": model}
        params |= {"version": version, "limit": limit}
        doc = self._json("/api/v1/runs", {k: v for k, v in params.items() if v is not None})
        with self._reading("/api/v1/runs"):
            return [_run_info(r) for r in doc["runs"]]

    def run(self, ref: str, project: str | None = None) -> RunDetail:
        """The run with id ``ref``, or else the one run named ``ref`` (in ``project`` when given), with its
        logged keys, tables, references and artifacts (``Runs.get`` and what ``runs show`` adds)."""
        doc = None
        if ref and "/" not in ref and ref not in (".", ".."):
            with contextlib.suppress(KeyError):  # not an id: perhaps a name
                doc = self._json(f"/api/v1/runs/{_seg(ref)}")
        if doc is None:
            doc = self._json(f"/api/v1/runs/{_seg(self._run_id_named(ref, project))}")
        with self._reading("/api/v1/runs/{id}"):
            info = _run_info(doc)
            series = [
                SeriesSummary(
                    name=s["name"],
                    step=s["step"],
                    t=float(s["t"]),
                    last=_float(s["last"]),
                    count=int(s["count"]),
                    min=_float(s["min"]),
                    max=_float(s["max"]),
                )
                for s in doc["series"]
            ]
            tables = [TableRef(key=t["key"], step=t["step"], rows=int(t["rows"])) for t in doc["tables"]]
            artifacts = [_version({"project": info.project, **a}) for a in doc["artifacts"]]
        references = [r for r in self.references(info.project) if r.run_id == info.id]
        return RunDetail(info, series, tables, references, artifacts)

    def _run_id_named(self, name: str, project: str | None) -> str:
        """The id of the one run named ``name`` among the newest runs the token may read."""
        found = [r for r in self.runs(project, limit=MAX_RUNS) if r.name == name]
        where = f" in project {project!r}" if project else ""
        if not found:
            raise KeyError(f"no run with id or name {name!r}{where}")
        if len(found) > 1:
            ids = ", ".join(f"{r.id} ({r.project})" for r in found[:10])
            raise KeyError(f"{len(found)} runs are named {name!r}: {ids}; give the run id instead")
        return found[0].id

    def references(self, project: str | None = None, model: str | None = None) -> list[ReferenceInfo]:
        """Reference profiles of ``project`` (or of every readable project), by model, version, name."""
        params = {k: v for k, v in (("project", project), ("model", model)) if v is not None}
        doc = self._json("/api/v1/profiles/references", params)
        with self._reading("/api/v1/profiles/references"):
            return [
                ReferenceInfo(
                    project=r["project"],
                    model=r["model"],
                    version=r["version"],
                    name=r["name"],
                    profile_id=int(r["profile_id"]),
                    rows=int(r["rows"]),
                    run_id=r["run_id"],
                    created_at=float(r["created_at"]),
                )
                for r in doc["references"]
            ]

    def artifacts(self, project: str | None = None) -> list[ArtifactVersion]:
        """Artifact versions by name then version, of ``project`` or of every readable project
        (``Artifacts.list``)."""
        names = [project] if project is not None else self.projects()
        out: list[ArtifactVersion] = []
        for name in names:
            doc = self._json(f"/api/v1/artifacts/{_seg(name)}")
            with self._reading("/api/v1/artifacts/{project}"):
                out.extend(_version(v) for v in doc["versions"])
        return sorted(out, key=lambda v: (v.name, v.version))

    def merged_profile(
        self, project: str, subject: str, start: float | None = None, end: float | None = None
    ) -> MergedProfile:
        """The window profiles of ``subject`` overlapping ``[start, end)``, merged by the server.

        Two requests: the binary profile and, when it has windows, the JSON summary (which names the runs
        and the windows' extent). When a window arrived between them (their window or row counts differ),
        both are asked again, a few times at most."""
        params: dict[str, Any] = {"project": project, "subject": subject}
        params |= {k: v for k, v in (("start", start), ("end", end)) if v is not None}
        path = "/api/v1/profiles/merged"
        for _ in range(_CONSISTENT_TRIES):
            r = self._get(path, {**params, "format": "binary"}, accept="application/octet-stream")
            with self._reading(path):
                windows, rows = int(r.headers["x-watchkeeper-windows"]), int(r.headers["x-watchkeeper-rows"])
            if windows == 0:
                return MergedProfile(r.content, 0, rows, [], None, None)
            doc = self._json(path, {**params, "format": "json", "q": 0.5})
            with self._reading(path):
                if (windows, rows) == (int(doc["windows"]), int(doc["rows"])):
                    return MergedProfile(
                        data=r.content,
                        windows=windows,
                        rows=rows,
                        runs=[str(x) for x in doc["runs"]],
                        window_start=None if doc["window_start"] is None else float(doc["window_start"]),
                        window_end=None if doc["window_end"] is None else float(doc["window_end"]),
                    )
        raise StoreError(
            f"the windows of {subject!r} on the server at {self.url} kept changing while they were read "
            f"({_CONSISTENT_TRIES} tries); try again",
            transient=True,
        )

    def reference_profile(self, project: str, model: str, version: str, name: str = "train") -> bytes:
        """The bytes of the reference profile ``name`` of a model version (``Profile.from_bytes``);
        KeyError when there is none."""
        params = {"project": project, "model": model, "version": str(version), "name": name}
        return self._get("/api/v1/profiles/reference", params, accept="application/octet-stream").content

    # -- requests ------------------------------------------------------------------------------------------

    def _get(
        self, path: str, params: dict[str, Any] | None = None, *, accept: str | None = None
    ) -> httpx.Response:
        headers = {"accept": accept} if accept else None
        try:
            r = self._client.get(path, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            raise StoreError(
                f"the watchkeeper server at {self.url} did not answer GET {path} within {self.timeout:g} s "
                f"({_describe(exc)})",
                transient=True,
            ) from exc
        except httpx.HTTPError as exc:
            raise StoreError(
                f"cannot reach the watchkeeper server at {self.url}: {_describe(exc)}", transient=True
            ) from exc
        if r.is_success:
            return r
        detail = _detail(r)
        if r.status_code == 401:
            problem = "refused the token" if self.token else "needs a token"
            raise StoreError(
                f"the server at {self.url} {problem} (HTTP 401: {detail}); pass a valid token with "
                f"{self.token_hint} (a read token of the project is enough: "
                "watchkeeper token create --project P --scope read)",
                transient=False,
            )
        if r.status_code == 403:
            raise StoreError(
                f"the server at {self.url} does not let this token read that (HTTP 403: {detail}); use a "
                "token of that project (scope read or write)",
                transient=False,
            )
        if r.status_code == 404:
            if detail == "Not Found":  # FastAPI's answer for a route it does not have
                raise StoreError(
                    f"the server at {self.url} has no route GET {path} (HTTP 404): is it a watchkeeper "
                    "server of this version?",
                    transient=False,
                )
            raise KeyError(detail)
        if r.status_code in (400, 422):
            raise ValueError(f"GET {path}: {detail}")
        raise StoreError(
            f"GET {path}: the server at {self.url} failed (HTTP {r.status_code}: {detail})",
            transient=r.status_code >= 500,
        )

    def _json(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self._get(path, params)
        try:
            doc = r.json()
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            raise StoreError(
                f"GET {path}: {self.url} answered HTTP {r.status_code} with something that is not a JSON "
                f"object ({r.headers.get('content-type', 'no content type')}): is it a watchkeeper server?",
                transient=False,
            )
        return doc

    @contextlib.contextmanager
    def _reading(self, path: str) -> Iterator[None]:
        """Turns a malformed answer (a missing field, a wrong type) into a StoreError naming the route."""
        try:
            yield
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(
                f"GET {path}: the answer of {self.url} is not what a watchkeeper server of this version "
                f"sends ({type(exc).__name__}: {exc})",
                transient=False,
            ) from exc


def _float(x: Any) -> float:
    """A statistic off the wire: null is NaN, "inf" and "-inf" the infinities."""
    if x is None:
        return float("nan")
    return float(x)


def _run_info(doc: dict[str, Any]) -> RunInfo:
    return RunInfo(
        id=doc["id"],
        project=doc["project"],
        name=doc["name"],
        job_type=doc["job_type"],
        group=doc["group"],
        notes=doc["notes"],
        tags=list(doc["tags"] or []),
        config=codec.decode(doc["config"] or {}),
        summary=codec.decode(doc["summary"] or {}),
        model=doc["model"],
        version=doc["version"],
        status=doc["status"],
        host=doc["host"],
        pid=doc["pid"],
        created_at=float(doc["created_at"]),
        heartbeat_at=float(doc["heartbeat_at"]),
        ended_at=None if doc["ended_at"] is None else float(doc["ended_at"]),
        exit_code=doc["exit_code"],
        error=doc["error"],
        last_step=doc["last_step"],
    )
