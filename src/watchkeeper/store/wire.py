"""A :class:`~watchkeeper.store.Batch` as JSON, the body of the server's ingest route.

The SDK's HTTP transport sends ``to_json(batch)`` (gzip-compressed); the server validates the document against
its schema (``watchkeeper.server.schema``, which names the field of any error) and turns it back into a
``Batch`` with ``from_json``. One format, written here once, so the embedded and the server paths store the
same thing.

JSON has no NaN or infinity and no bytes, so:

* a point's value that is NaN is ``null`` (the store's own rule: NULL means NaN) and ±infinity is the string
  ``"inf"`` or ``"-inf"``;
* config, summaries, metadata, sample cells, prediction values and labels are encoded with
  :mod:`watchkeeper.store.codec` (non-finite floats and datetimes tagged); ``from_json`` decodes them again,
  except sample cells, which the store keeps encoded as they come;
* profile data and blobs are base64.

>>> from watchkeeper.store.batch import Points
>>> b = Batch(id="b1", points=[Points("p", "run1", ["loss"], [0], [1.0], [float("nan")], run_id="run1")])
>>> doc = to_json(b)
>>> doc["points"][0]["value"]
[None]
>>> from_json(doc).points[0].value
[nan]
"""

from __future__ import annotations

import base64
import math
from dataclasses import fields
from typing import Any

from watchkeeper.store import codec
from watchkeeper.store.batch import (
    ArtifactFile,
    ArtifactLog,
    Batch,
    LabelRows,
    Points,
    PredictionRows,
    ProfileLog,
    RunStart,
    RunUpdate,
    SampleRows,
)

WIRE_VERSION = 1

_RECORDS: dict[str, type] = {
    "runs": RunStart,
    "run_updates": RunUpdate,
    "points": Points,
    "samples": SampleRows,
    "artifacts": ArtifactLog,
    "profiles": ProfileLog,
    "predictions": PredictionRows,
    "labels": LabelRows,
}
_JSON_FIELDS = {"config", "summary", "metadata", "rows", "values"}
# sample rows stay encoded: the store keeps them so
_DECODED_FIELDS = {"config", "summary", "metadata", "values"}


def _float_out(x: float) -> Any:
    x = float(x)
    if math.isfinite(x):
        return x
    if x != x:
        return None
    return "inf" if x > 0 else "-inf"


def _float_in(x: Any) -> float:
    if x is None:
        return math.nan
    return float(x)  # "inf" and "-inf" parse as such


def _record_out(name: str, record: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(record):
        v = getattr(record, f.name)
        if name == "points" and f.name == "value":
            v = [_float_out(x) for x in v]
        elif name == "profiles" and f.name == "data":
            v = base64.b64encode(v).decode("ascii")
        elif name == "artifacts" and f.name == "files":
            v = [{"path": a.path, "digest": a.digest, "size": a.size} for a in v]
        elif f.name in _JSON_FIELDS and v is not None:
            v = codec.encode(v, where=f"{name}.{f.name}")
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def to_json(batch: Batch) -> dict[str, Any]:
    """A JSON-serialisable document of ``batch`` (strict JSON: no NaN tokens)."""
    doc: dict[str, Any] = {"wire": WIRE_VERSION, "id": batch.id}
    for key in _RECORDS:
        records = getattr(batch, key)
        if records:
            doc[key] = [_record_out(key, r) for r in records]
    if batch.blobs:
        doc["blobs"] = {d: base64.b64encode(b).decode("ascii") for d, b in batch.blobs.items()}
    return doc


def _record_in(name: str, doc: dict[str, Any]) -> Any:
    cls = _RECORDS[name]
    kw = dict(doc)
    if name == "points":
        kw["value"] = [_float_in(x) for x in kw["value"]]
    elif name == "profiles":
        kw["data"] = base64.b64decode(kw["data"])
        if kw.get("reference") is not None:
            kw["reference"] = tuple(kw["reference"])
    elif name == "artifacts":
        kw["files"] = [ArtifactFile(**f) for f in kw["files"]]
    for key in _DECODED_FIELDS & kw.keys():
        if kw[key] is not None:
            kw[key] = codec.decode(kw[key])
    return cls(**kw)


def from_json(doc: dict[str, Any]) -> Batch:
    """The Batch of a document made by :func:`to_json` (already validated: see the server's schema)."""
    batch = Batch(id=doc["id"])
    for key in _RECORDS:
        setattr(batch, key, [_record_in(key, r) for r in doc.get(key) or []])
    batch.blobs = {d: base64.b64decode(b) for d, b in (doc.get("blobs") or {}).items()}
    return batch
