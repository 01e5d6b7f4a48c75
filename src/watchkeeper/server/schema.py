"""The server's wire schemas, published in its OpenAPI document: the ingest request, the answers of the query
and artifact routes, and the error bodies every route can answer with.

The ingest request is the JSON form of a Batch (see :mod:`watchkeeper.store.wire`), validated whole before
anything is written, so a bad batch gets a 422 naming the field and leaves the store untouched; the bounds
here are the store's (column lengths and integer widths, no NUL character, which PostgreSQL cannot hold in
text), so what validates here is also what every backend can store. ``IngestBatch.to_batch()`` gives the
store's Batch.

The same models validate the header of the binary form (:data:`watchkeeper.store.wire.BINARY_TYPE`), with
the validation context ``{"sizes": True}``: there a profile's ``data`` and a blob's value are their sizes in
the payload, and ``to_batch(payload)`` cuts the payload into them. Profile bytes are decoded from base64 once,
while validating, and kept as bytes.

Errors: 422 answers ``{"detail": [{"field": ..., "message": ...}]}`` (:class:`ValidationProblem`; a check
against the store's contents may answer one message that starts with the field); every other 4xx and 503
answers ``{"detail": "message"}`` (:class:`Problem`). :func:`problems` declares them on a route.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from watchkeeper.store import Batch, SampleRows, wire
from watchkeeper.store.schema import series
from watchkeeper.store.signals import labels_key


def no_nul(value: str) -> str:
    """Text without U+0000: PostgreSQL refuses it in text columns, so no backend gets it."""
    if "\x00" in value:
        raise ValueError(f"contains a NUL character (U+0000) at offset {value.index(chr(0))}; text may not")
    return value


Text = Annotated[str, AfterValidator(no_nul)]
Name = Annotated[Text, Field(min_length=1, max_length=128)]
Subject = Annotated[Text, Field(min_length=1, max_length=320)]
RunId = Annotated[Text, Field(min_length=1, max_length=64)]
Key = Annotated[Text, Field(min_length=1, max_length=256)]
Time = Annotated[float, Field(allow_inf_nan=False)]
Value = float | None  # null is NaN; "inf" and "-inf" parse as the infinities
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]  # an INTEGER column
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]  # a BIGINT column
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
MAX_LABELS_KEY: int = series.c.labels_key.type.length
"""The most characters a label set may take as ``k=v`` pairs (the store's ``labels_key`` column)."""
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def _bytes_in(what: str) -> Any:
    """A validator of bytes sent as base64 in the JSON form, or as a size in the binary form's header."""

    def validate(value: Any, info: ValidationInfo) -> bytes | int:
        if info.context and info.context.get("sizes"):
            if type(value) is int and value >= 0:
                return value
            raise ValueError(f"expected the size in bytes of the {what} in the payload, got {value!r:.80}")
        if not isinstance(value, str):
            raise ValueError(f"expected the {what} as a base64 string, got {type(value).__name__}")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"expected base64: {exc}") from None

    return validate


ProfileData = Annotated[
    bytes | int,
    PlainValidator(_bytes_in("profile")),
    WithJsonSchema({"type": "string", "description": "The profile's bytes (Profile.to_bytes()), base64"}),
]
"""Bytes once validated: decoded from base64 once (the JSON form), or a size until ``to_batch`` (binary)."""
BlobData = Annotated[bytes | int, PlainValidator(_bytes_in("blob")), WithJsonSchema({"type": "string"})]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _same_lengths(record: BaseModel, names: tuple[str, ...]) -> None:
    lengths = {n: len(getattr(record, n)) for n in names}
    if len(set(lengths.values())) > 1:
        first = names[0]
        for n in names[1:]:
            if lengths[n] != lengths[first]:
                raise ValueError(
                    f"{n} has {lengths[n]} entries but {first} has {lengths[first]}: one entry per {first}"
                )


class RunStartIn(_Record):
    id: RunId
    project: Name
    name: Annotated[Text, Field(min_length=1, max_length=256)]
    created_at: Time
    job_type: Annotated[Text, Field(max_length=64)] | None = None
    group: Annotated[Text, Field(max_length=256)] | None = None
    notes: Text | None = None
    tags: list[str] = []
    config: dict[str, Any] = {}
    model: Annotated[Text, Field(max_length=256)] | None = None
    version: Annotated[Text, Field(max_length=128)] | None = None
    host: Annotated[Text, Field(max_length=256)] | None = None
    pid: Int32 | None = None


class RunUpdateIn(_Record):
    id: RunId
    heartbeat_at: Time | None = None
    status: Literal["running", "finished", "failed", "crashed"] | None = None
    config: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    tags: list[str] | None = None
    notes: Text | None = None
    ended_at: Time | None = None
    exit_code: Int32 | None = None
    error: Text | None = None
    last_step: Int64 | None = None


class PointsIn(_Record):
    project: Name
    subject: Subject
    name: list[Key]
    step: list[Int64 | None]
    t: list[Time]
    value: list[Value]
    run_id: RunId | None = None
    labels: dict[Text, Text] = {}

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        size = len(labels_key(v))
        if size > MAX_LABELS_KEY:
            raise ValueError(f"the labels take {size} characters as k=v pairs, at most {MAX_LABELS_KEY}")
        return v

    @model_validator(mode="after")
    def _lengths(self) -> PointsIn:
        _same_lengths(self, ("name", "step", "t", "value"))
        return self


class SampleRowsIn(_Record):
    project: Name
    key: Key
    t: Time
    rows: list[dict[str, Any]]
    run_id: RunId | None = None
    step: Int64 | None = None


class ArtifactFileIn(_Record):
    path: Annotated[Text, Field(min_length=1, max_length=1024)]
    digest: str
    size: Count

    @field_validator("digest")
    @classmethod
    def _digest(cls, v: str) -> str:
        if not _DIGEST.match(v):
            raise ValueError("expected the sha256 of the content as 64 lowercase hex digits")
        return v


class ArtifactLogIn(_Record):
    project: Name
    name: Annotated[Text, Field(min_length=1, max_length=256)]
    type: Annotated[Text, Field(min_length=1, max_length=64)]
    files: list[ArtifactFileIn]
    run_id: RunId | None = None
    metadata: dict[str, Any] = {}
    t: Time = 0.0

    @field_validator("files")
    @classmethod
    def _paths(cls, v: list[ArtifactFileIn]) -> list[ArtifactFileIn]:
        seen: set[str] = set()
        for f in v:
            if f.path in seen:
                raise ValueError(f"the path {f.path[:200]!r} appears more than once")
            seen.add(f.path)
        if sum(f.size for f in v) > 2**63 - 1:
            raise ValueError("the sizes add up to more than 2**63 - 1 bytes, the most the store holds")
        return v


class ProfileLogIn(_Record):
    project: Name
    subject: Subject
    kind: Literal["window", "reference", "rollup"]
    window_start: Time
    window_end: Time
    rows: Count
    data: ProfileData
    format_version: Annotated[int, Field(ge=1, le=2**15 - 1)] = 1
    run_id: RunId | None = None
    reference: (
        tuple[
            Annotated[Text, Field(max_length=256)],
            Annotated[Text, Field(max_length=128)],
            Annotated[Text, Field(max_length=128)],
        ]
        | None
    ) = Field(default=None, description="(model, version, name)")

    @model_validator(mode="after")
    def _window(self) -> ProfileLogIn:
        if self.window_end < self.window_start:
            raise ValueError("window_end is before window_start")
        return self


class PredictionRowsIn(_Record):
    project: Name
    subject: Subject
    ids: list[Key]
    t: list[Time]
    values: list[dict[str, Any]]
    run_id: RunId | None = None

    @model_validator(mode="after")
    def _lengths(self) -> PredictionRowsIn:
        _same_lengths(self, ("ids", "t", "values"))
        return self


class LabelRowsIn(_Record):
    project: Name
    subject: Subject
    ids: list[Key]
    values: list[Any]
    t: list[Time]

    @model_validator(mode="after")
    def _lengths(self) -> LabelRowsIn:
        _same_lengths(self, ("ids", "values", "t"))
        return self


class IngestBatch(_Record):
    """Everything one writer gathered since its last send; applied in one transaction, exactly once per id."""

    wire: Literal[1] = 1
    id: Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    runs: list[RunStartIn] = []
    run_updates: list[RunUpdateIn] = []
    points: list[PointsIn] = []
    samples: list[SampleRowsIn] = []
    artifacts: list[ArtifactLogIn] = []
    profiles: list[ProfileLogIn] = []
    predictions: list[PredictionRowsIn] = []
    labels: list[LabelRowsIn] = []
    blobs: dict[str, BlobData] = Field(default={}, description="sha256 hex digest -> content, base64")

    @field_validator("blobs")
    @classmethod
    def _blobs(cls, v: dict[str, bytes | int]) -> dict[str, bytes | int]:
        for digest in v:
            if not _DIGEST.match(digest):
                raise ValueError(f"blob key {digest[:80]!r}: expected a sha256 as 64 lowercase hex digits")
        return v

    def projects(self) -> set[str]:
        """Every project the batch writes to (what a token must be allowed to write)."""
        out: set[str] = set()
        for key in ("runs", "points", "samples", "artifacts", "profiles", "predictions", "labels"):
            out.update(r.project for r in getattr(self, key))
        return out

    def to_batch(self, payload: memoryview | bytes | None = None) -> Batch:
        """The store's Batch; ``payload``: the binary form's payload, which a header validated with the
        context ``{"sizes": True}`` describes (:class:`BatchProblem` when its sizes do not fit it)."""
        profiles = [p.model_dump() for p in self.profiles]
        blobs: dict[str, Any] = dict(self.blobs)
        if payload is not None:
            _cut(payload, profiles, blobs)
        batch = Batch(id=self.id, blobs=blobs)
        for key in ("runs", "run_updates", "points", "artifacts", "predictions", "labels"):
            records = getattr(self, key)
            if records:
                setattr(batch, key, [_record(key, i, r.model_dump()) for i, r in enumerate(records)])
        batch.profiles = [_record("profiles", i, p) for i, p in enumerate(profiles)]
        # rows stay as they came (the store keeps cells encoded): no copy, no decoding
        batch.samples = [SampleRows(s.project, s.key, s.t, s.rows, s.run_id, s.step) for s in self.samples]
        return batch


def _record(key: str, i: int, doc: dict[str, Any]) -> Any:
    try:
        return wire.record_from_json(key, doc)
    except wire.UndecodableValue as exc:
        raise BatchProblem(f"{key}[{i}].{exc.field}", f"expected a tagged value, {exc.reason}") from None


class BatchProblem(ValueError):
    """A validated document that still cannot become a Batch: the sizes in a binary header that do not fit
    its payload, or a tagged value that is not one; ``field`` names the first record at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _cut(payload: memoryview | bytes, profiles: list[dict[str, Any]], blobs: dict[str, Any]) -> None:
    """Replace the sizes in ``profiles`` (dumped records) and ``blobs`` with their bytes from ``payload``."""
    view = memoryview(payload)
    offset = 0
    wanted = [(f"profiles[{i}].data", p, "data") for i, p in enumerate(profiles)]
    wanted += [(f"blobs.{d}", blobs, d) for d in blobs]
    for field, holder, key in wanted:
        size = holder[key]
        if not isinstance(size, int):
            raise BatchProblem(field, "expected a size in the binary form's header, got bytes")
        if offset + size > len(view):
            raise BatchProblem(
                field,
                f"its {size} bytes start at byte {offset} of the payload, which has only {len(view)}",
            )
        holder[key] = bytes(view[offset : offset + size])
        offset += size
    if offset != len(view):
        raise BatchProblem(
            "body", f"the payload has {len(view)} bytes, the header's sizes add up to {offset}"
        )


class IngestResult(BaseModel):
    id: str
    applied: bool = Field(description="False when this batch id had been applied before (a resend)")


# -- errors --------------------------------------------------------------------------------------------------


class FieldProblem(BaseModel):
    field: str = Field(
        description='The input at fault: "points[0].t" in a body, "query.start", "path.run_id"'
    )
    message: str = Field(description="What was wrong, and what was expected")


class ValidationProblem(BaseModel):
    """The body of a 422."""

    detail: list[FieldProblem] | str = Field(
        description="The fields at fault; a check against the store's contents (an unknown run, say) may "
        "answer one message that starts with the field instead"
    )


class Problem(BaseModel):
    """The body of every other 4xx, and of a 503."""

    detail: str


_PROBLEMS = {
    400: "The body cannot be read (damaged gzip or deflate), or a digest that is not a sha256",
    401: "No bearer token, or an unknown or revoked one",
    403: "The token may not read, or write, that project",
    404: "No such run, artifact or file",
    413: "The body is over the server's limit (counted after decompression)",
    415: "A Content-Encoding other than gzip, deflate or identity, or a Content-Type the route does not read",
    422: "Input that does not validate, with the fields at fault",
    503: "The store cannot be reached; retry later",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries of a route for the error codes it can answer with."""
    return {
        code: {"model": ValidationProblem if code == 422 else Problem, "description": _PROBLEMS[code]}
        for code in codes
    }


# -- answers of the query and artifact routes ----------------------------------------------------------------

Num = Annotated[
    Literal["inf", "-inf"] | float | None,
    Field(description="A float; NaN is null and the infinities are the strings inf and -inf"),
]


class _Answer(BaseModel):
    # a key the handler adds but the model lacks is an error in the tests, not a silently dropped field
    model_config = ConfigDict(extra="forbid")


class HealthOut(_Answer):
    status: Literal["ok"]
    version: str


class ProjectOut(_Answer):
    name: str
    created_at: float
    runs: int


class ProjectsOut(_Answer):
    projects: list[ProjectOut]


class RunOut(_Answer):
    id: str
    project: str
    name: str
    status: str
    job_type: str | None
    group: str | None
    tags: list[str]
    notes: str | None
    model: str | None
    version: str | None
    created_at: float
    heartbeat_at: float
    ended_at: float | None
    duration: float
    exit_code: int | None
    error: str | None
    last_step: int | None
    host: str | None
    pid: int | None
    config: dict[str, Any] = Field(description='As stored: non-finite floats tagged {"$float": "nan"}')
    summary: dict[str, Any]


class RunsOut(_Answer):
    runs: list[RunOut]
    truncated: bool
    limit: int


class SeriesLastOut(_Answer):
    name: str
    step: int | None
    t: float
    last: Num
    count: int
    min: Num
    max: Num


class TableOut(_Answer):
    key: str
    step: int | None
    rows: int


class RunReferenceOut(_Answer):
    model: str
    version: str
    name: str
    rows: int
    created_at: float


class ArtifactVersionOut(_Answer):
    project: str
    name: str
    version: int
    ref: str
    type: str
    digest: str = Field(description="The sha256 of the version's manifest")
    size: int
    file_count: int
    created_by: str | None
    created_at: float
    metadata: dict[str, Any]


class RunArtifactOut(_Answer):
    ref: str
    name: str
    version: int
    type: str
    digest: str
    size: int
    file_count: int
    created_by: str | None
    created_at: float
    metadata: dict[str, Any]


class RunDetailOut(RunOut):
    series: list[SeriesLastOut] = Field(description="The last value of every logged key")
    tables: list[TableOut]
    references: list[RunReferenceOut]
    artifacts: list[RunArtifactOut]


class _SeriesId(_Answer):
    subject: str
    run_id: str | None
    labels: dict[str, str]


class PointsOut(_SeriesId):
    """Raw points, oldest first."""

    t: list[float]
    step: list[int | None]
    value: list[Num]
    truncated: bool


class BucketsOut(_SeriesId):
    """One entry per non-empty bucket: its start, the point and NaN counts, and the statistics."""

    t: list[float]
    count: list[int]
    nan: list[int]
    mean: list[Num]
    min: list[Num]
    max: list[Num]
    last: list[Num]


class SignalsOut(_Answer):
    name: str
    start: float | None
    end: float | None
    bucket: float | None
    limit: int | None
    truncated: bool
    series: list[PointsOut | BucketsOut]


class SeriesNameOut(_Answer):
    name: str
    labels: dict[str, str]
    subject: str
    run_id: str | None
    count: int | None
    t: float | None
    step: int | None
    last: Num


class SeriesNamesOut(_Answer):
    series: list[SeriesNameOut]


class LatencyQuantilesOut(_Answer):
    q: list[float]
    calls: list[Num] | None = Field(description="Milliseconds, one per q")
    http: list[Num] | None
    endpoints: dict[str, list[Num]]
    stages: dict[str, list[Num]]


class MergedProfileOut(_Answer):
    project: str
    subject: str
    start: float | None
    end: float | None
    windows: int
    rows: int
    runs: list[str]
    window_start: float | None
    window_end: float | None
    columns: dict[str, dict[str, Any]] = Field(description="Per column: its role and its statistics")
    traffic: dict[str, Any] | None
    latency_quantiles: LatencyQuantilesOut


class ReferenceOut(_Answer):
    project: str
    model: str
    version: str
    name: str
    profile_id: int
    rows: int
    run_id: str | None
    created_at: float


class ReferencesOut(_Answer):
    references: list[ReferenceOut]


class SampleOut(_Answer):
    sample_id: int
    run_id: str | None
    key: str
    endpoint: str | None
    step: int | None
    t: float
    data: dict[str, Any]


class SamplesOut(_Answer):
    rows: list[SampleOut]
    limit: int
    truncated: bool
    filtered_in_python: list[str]
    scanned: int | None
    scan_limit: int | None
    scan_limited: bool


class AlertRuleOut(_Answer):
    id: int
    name: str
    project: str | None
    enabled: bool
    spec: dict[str, Any]


class AlertOut(_Answer):
    rule: AlertRuleOut
    labels: dict[str, Any]
    state: str
    active_at: float | None
    fired_at: float | None
    resolved_at: float | None
    last_value: Num
    last_notified_at: float | None


class AlertsOut(_Answer):
    alerts: list[AlertOut]


class VersionsOut(_Answer):
    versions: list[ArtifactVersionOut]


class ManifestFileOut(_Answer):
    path: str
    digest: str
    size: int


class ManifestOut(_Answer):
    version: ArtifactVersionOut
    files: list[ManifestFileOut]


class BlobOut(_Answer):
    digest: str
    size: int


BINARY = {"schema": {"type": "string", "format": "binary"}}
"""The OpenAPI content entry of a raw-bytes body."""
