"""The ingest route's request schema: the JSON form of a Batch (see :mod:`watchkeeper.store.wire`), validated
whole before anything is written, so a bad batch gets a 422 naming the field and leaves the store untouched.

Pydantic models published in the OpenAPI schema; ``IngestBatch.to_batch()`` gives the store's Batch.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from watchkeeper.store import Batch, wire

Name = Annotated[str, Field(min_length=1, max_length=128)]
Subject = Annotated[str, Field(min_length=1, max_length=320)]
RunId = Annotated[str, Field(min_length=1, max_length=64)]
Key = Annotated[str, Field(min_length=1, max_length=256)]
Time = Annotated[float, Field(allow_inf_nan=False)]
Value = float | None  # null is NaN; "inf" and "-inf" parse as the infinities
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


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
    name: Annotated[str, Field(min_length=1, max_length=256)]
    created_at: Time
    job_type: Annotated[str, Field(max_length=64)] | None = None
    group: Annotated[str, Field(max_length=256)] | None = None
    notes: str | None = None
    tags: list[str] = []
    config: dict[str, Any] = {}
    model: Annotated[str, Field(max_length=256)] | None = None
    version: Annotated[str, Field(max_length=128)] | None = None
    host: Annotated[str, Field(max_length=256)] | None = None
    pid: int | None = None


class RunUpdateIn(_Record):
    id: RunId
    heartbeat_at: Time | None = None
    status: Literal["running", "finished", "failed", "crashed"] | None = None
    config: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    tags: list[str] | None = None
    notes: str | None = None
    ended_at: Time | None = None
    exit_code: int | None = None
    error: str | None = None
    last_step: int | None = None


class PointsIn(_Record):
    project: Name
    subject: Subject
    name: list[Key]
    step: list[int | None]
    t: list[Time]
    value: list[Value]
    run_id: RunId | None = None
    labels: dict[str, str] = {}

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
    step: int | None = None


class ArtifactFileIn(_Record):
    path: Annotated[str, Field(min_length=1, max_length=1024)]
    digest: str
    size: Annotated[int, Field(ge=0)]

    @field_validator("digest")
    @classmethod
    def _digest(cls, v: str) -> str:
        if not _DIGEST.match(v):
            raise ValueError("expected the sha256 of the content as 64 lowercase hex digits")
        return v


class ArtifactLogIn(_Record):
    project: Name
    name: Annotated[str, Field(min_length=1, max_length=256)]
    type: Annotated[str, Field(min_length=1, max_length=64)]
    files: list[ArtifactFileIn]
    run_id: RunId | None = None
    metadata: dict[str, Any] = {}
    t: Time = 0.0


class ProfileLogIn(_Record):
    project: Name
    subject: Subject
    kind: Literal["window", "reference", "rollup"]
    window_start: Time
    window_end: Time
    rows: Annotated[int, Field(ge=0)]
    data: str = Field(description="The profile's bytes (Profile.to_bytes()), base64")
    format_version: Annotated[int, Field(ge=1)] = 1
    run_id: RunId | None = None
    reference: tuple[str, str, str] | None = Field(default=None, description="(model, version, name)")

    @field_validator("data")
    @classmethod
    def _base64(cls, v: str) -> str:
        try:
            base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"expected base64: {exc}") from None
        return v

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
    blobs: dict[str, str] = Field(default={}, description="sha256 hex digest -> content, base64")

    @field_validator("blobs")
    @classmethod
    def _blobs(cls, v: dict[str, str]) -> dict[str, str]:
        for digest, data in v.items():
            if not _DIGEST.match(digest):
                raise ValueError(f"blob key {digest[:80]!r}: expected a sha256 as 64 lowercase hex digits")
            try:
                base64.b64decode(data, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError(f"blob {digest}: expected base64: {exc}") from None
        return v

    def projects(self) -> set[str]:
        """Every project the batch writes to (what a token must be allowed to write)."""
        out: set[str] = set()
        for key in ("runs", "points", "samples", "artifacts", "profiles", "predictions", "labels"):
            out.update(r.project for r in getattr(self, key))
        return out

    def to_batch(self) -> Batch:
        return wire.from_json(self.model_dump(exclude={"wire"}))


class IngestResult(BaseModel):
    id: str
    applied: bool = Field(description="False when this batch id had been applied before (a resend)")
