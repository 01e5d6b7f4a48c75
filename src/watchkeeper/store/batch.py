"""The unit of writing: one ``Batch`` carries everything a writer has gathered since its last write.

The store applies a batch in one transaction, whole or not at all, and remembers its id so that a batch sent
twice (a retry after a lost acknowledgement) is acknowledged without being applied twice. Every kind of write
goes through this one path, so a backend implements a single write method.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class RunStart:
    """A new run. Idempotent: starting a run id that exists changes nothing."""

    id: str
    project: str
    name: str
    created_at: float
    job_type: str | None = None
    group: str | None = None
    notes: str | None = None
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    version: str | None = None
    host: str | None = None
    pid: int | None = None


@dataclass(slots=True)
class RunUpdate:
    """Changes to a run; fields left at None are not touched. ``config`` and ``summary`` replace the stored
    dicts whole (the SDK owns them and sends them complete)."""

    id: str
    heartbeat_at: float | None = None
    status: str | None = None
    config: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    tags: list[str] | None = None
    notes: str | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    error: str | None = None
    last_step: int | None = None


@dataclass(slots=True)
class Points:
    """Scalar points of one subject, column-wise: ``name[i]`` had ``value[i]`` at ``t[i]`` (and ``step[i]``).

    ``labels`` apply to every point of the object. A NaN value is kept as NaN.
    """

    project: str
    subject: str
    name: list[str]
    step: list[int | None]
    t: list[float]
    value: list[float]
    run_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.name)


@dataclass(slots=True)
class SampleRows:
    """Rows of a logged table (or sampled requests): each row a dict of JSON-encoded cells."""

    project: str
    key: str
    t: float
    rows: list[dict[str, Any]]
    run_id: str | None = None
    step: int | None = None


@dataclass(slots=True)
class ArtifactFile:
    path: str  # relative path inside the artifact, "/"-separated
    digest: str  # sha256 hex of the content, which is already in the blob store
    size: int


@dataclass(slots=True)
class ArtifactLog:
    """A run logged an artifact: a new version of ``name`` unless the latest has the same content."""

    project: str
    name: str
    type: str
    files: list[ArtifactFile]
    run_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    t: float = 0.0


@dataclass(slots=True)
class ProfileLog:
    """A serialised profile (``watchkeeper.profile.Profile.to_bytes()``): a window of traffic, or a model
    version's reference when ``reference`` names it (model, version, name); a reference logged again under
    the same name replaces the earlier one."""

    project: str
    subject: str
    kind: str  # "window", "reference", "rollup"
    window_start: float
    window_end: float
    rows: int
    data: bytes
    format_version: int = 1
    run_id: str | None = None
    reference: tuple[str, str, str] | None = None  # (model, version, name)


@dataclass(slots=True)
class PredictionRows:
    """Predictions of one deployment that carry ids, kept so labels arriving later can be joined to them.

    Column-wise: prediction ``ids[i]`` was made at ``t[i]`` and output ``values[i]`` (a dict such as
    ``{"score": 0.93, "label": 1}``, JSON-encodable: the SDK encodes it with :mod:`watchkeeper.store.codec`).
    A prediction id sent again keeps the first prediction.
    """

    project: str
    subject: str
    ids: list[str]
    t: list[float]
    values: list[dict[str, Any]]
    run_id: str | None = None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class LabelRows:
    """Ground truth for predictions of one deployment, by prediction id; a later label for the same id
    replaces the earlier one.

    Column-wise: the label of prediction ``ids[i]`` is ``values[i]`` (JSON-encodable), known at ``t[i]``. A
    label may arrive before its prediction: it joins once the prediction comes.
    """

    project: str
    subject: str
    ids: list[str]
    values: list[Any]
    t: list[float]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class Batch:
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    runs: list[RunStart] = field(default_factory=list)
    run_updates: list[RunUpdate] = field(default_factory=list)
    points: list[Points] = field(default_factory=list)
    samples: list[SampleRows] = field(default_factory=list)
    artifacts: list[ArtifactLog] = field(default_factory=list)
    profiles: list[ProfileLog] = field(default_factory=list)
    predictions: list[PredictionRows] = field(default_factory=list)
    labels: list[LabelRows] = field(default_factory=list)
    blobs: dict[str, bytes] = field(default_factory=dict)  # digest -> content, written before the rows
    # Points of this batch replace those stored for the same series at the same times: a monitor that
    # recomputes a window (a late replica's profile, late labels) writes its values again, not a second
    # point. Set by server-side writers only; it is not part of the wire format.
    replace_points: bool = False

    def __bool__(self) -> bool:
        return bool(
            self.runs
            or self.run_updates
            or self.points
            or self.samples
            or self.artifacts
            or self.profiles
            or self.predictions
            or self.labels
            or self.blobs
        )

    @property
    def point_count(self) -> int:
        return sum(len(p) for p in self.points)


@dataclass(slots=True, frozen=True)
class ArtifactVersion:
    """A stored artifact version, as returned by a write and by the artifact queries."""

    project: str
    name: str
    version: int
    type: str
    digest: str
    size: int
    file_count: int
    created_by: str | None
    created_at: float
    metadata: dict[str, Any]

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"


@dataclass(slots=True)
class WriteResult:
    applied: bool  # False when the batch id had been applied before
    artifacts: list[ArtifactVersion] = field(default_factory=list)
