"""A :class:`~watchkeeper.store.Batch` on the wire: the JSON form and the binary form of the body of the
server's ingest route.

The SDK's HTTP transport sends ``to_json(batch)`` (gzip-compressed), or ``to_binary(batch)`` when the batch
carries profile bytes or blobs and the server reads that form; the server validates the document against its
schema (``watchkeeper.server.schema``, which names the field of any error) and turns it into a ``Batch``.
``from_json`` and ``from_binary`` are the reference decoders of the two forms. One format, written here once,
so the embedded and the server paths store the same thing.

JSON has no NaN or infinity and no bytes, so:

* a point's value that is NaN is ``null`` (the store's own rule: NULL means NaN) and ±infinity is the string
  ``"inf"`` or ``"-inf"``;
* config, summaries, metadata, sample cells, prediction values and labels are encoded with
  :mod:`watchkeeper.store.codec` (non-finite floats and datetimes tagged); ``from_json`` decodes them again,
  except sample cells, which the store keeps encoded as they come;
* profile data and blobs are base64.

The binary form (``Content-Type: application/vnd.watchkeeper.batch``) carries the same document without
base64: profile bytes barely compress (a window profile deflates to about 70% of its size, at 2-3 ms per
profile), so base64 (+33%) and gzip over them cost the sender and the server far more CPU than the bytes
they save. The body is a frame::

    magic  b"WKB1"        4 bytes: the form and its version
    flags  1 byte         bit 0: the header is zlib-compressed; the other bits are 0
    length 4 bytes        the header's size in the body, unsigned big-endian
    header length bytes   the JSON document of ``to_json``, except that each profile's ``data`` and each
                          blob's value is its size in bytes (an integer)
    payload               the profiles' bytes, in the order of ``profiles``, then the blobs' bytes, in the
                          order of ``blobs``, back to back: the sizes in the header add up to its length

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
import json
import math
import struct
import zlib
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
JSON_TYPE = "application/json"
BINARY_TYPE = "application/vnd.watchkeeper.batch"
"""The media type of the binary form."""
MAGIC = b"WKB1"
HEADER_ZLIB = 0x01
_FRAME = struct.Struct(">4sBI")  # magic, flags, header length

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


def _record_out(name: str, record: Any, binary: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(record):
        v = getattr(record, f.name)
        if name == "points" and f.name == "value":
            v = [_float_out(x) for x in v]
        elif name == "profiles" and f.name == "data":
            v = len(v) if binary else base64.b64encode(v).decode("ascii")
        elif name == "artifacts" and f.name == "files":
            v = [{"path": a.path, "digest": a.digest, "size": a.size} for a in v]
        elif f.name in _JSON_FIELDS and v is not None:
            v = codec.encode(v, where=f"{name}.{f.name}")
        elif isinstance(v, tuple):
            v = list(v)
        out[f.name] = v
    return out


def to_json(batch: Batch, *, sizes: bool = False) -> dict[str, Any]:
    """A JSON-serialisable document of ``batch`` (strict JSON: no NaN tokens); with ``sizes``, the header of
    the binary form (each profile's data and each blob its size in bytes)."""
    doc: dict[str, Any] = {"wire": WIRE_VERSION, "id": batch.id}
    for key in _RECORDS:
        records = getattr(batch, key)
        if records:
            doc[key] = [_record_out(key, r, sizes) for r in records]
    if batch.blobs:
        doc["blobs"] = {
            d: len(b) if sizes else base64.b64encode(b).decode("ascii") for d, b in batch.blobs.items()
        }
    return doc


def to_binary(batch: Batch, *, compress_header: bool = True) -> bytes:
    """The binary form of ``batch`` (see the module docstring); the header is deflated at level 1 unless
    ``compress_header`` is false. Raises ``TypeError``/``ValueError`` for a value JSON cannot hold."""
    header = json.dumps(to_json(batch, sizes=True), allow_nan=False, separators=(",", ":")).encode()
    flags = 0
    if compress_header:
        header, flags = zlib.compress(header, 1), HEADER_ZLIB
    parts = [_FRAME.pack(MAGIC, flags, len(header)), header]
    parts += [p.data for p in batch.profiles]
    parts += list(batch.blobs.values())
    return b"".join(parts)


def split_binary(body: bytes | memoryview, max_header: int) -> tuple[bytes, memoryview]:
    """(the header's JSON text, the payload) of a body in the binary form; ``ValueError`` saying what is
    wrong with the frame, and for a header that inflates past ``max_header`` bytes."""
    view = memoryview(body)
    if len(view) < _FRAME.size:
        raise ValueError(f"the body has {len(view)} bytes, fewer than the {_FRAME.size} of the frame's start")
    magic, flags, length = _FRAME.unpack_from(view)
    if magic != MAGIC:
        raise ValueError(f"expected the body to start with {MAGIC!r} (the binary batch form), got {magic!r}")
    if flags & ~HEADER_ZLIB:
        raise ValueError(f"unknown flags {flags:#04x} in the frame (known: {HEADER_ZLIB:#04x}, header zlib)")
    end = _FRAME.size + length
    if end > len(view):
        raise ValueError(f"the header is {length} bytes but the body ends {end - len(view)} bytes before it")
    header = bytes(view[_FRAME.size : end])
    if flags & HEADER_ZLIB:
        inflate = zlib.decompressobj()
        try:
            text = inflate.decompress(header, max_header + 1)
        except zlib.error as exc:
            raise ValueError(f"the header is not valid zlib: {exc}") from None
        if len(text) > max_header or inflate.unconsumed_tail:
            raise ValueError(f"the header inflates to more than {max_header} bytes")
        if not inflate.eof or inflate.unused_data:
            raise ValueError("the zlib header is truncated or followed by extra bytes")
        header = text
    return header, view[end:]


def record_from_json(name: str, doc: dict[str, Any]) -> Any:
    """The record (``name``: a key of a Batch, such as ``"points"``) of its JSON document."""
    cls = _RECORDS[name]
    kw = dict(doc)
    if name == "points":
        kw["value"] = [_float_in(x) for x in kw["value"]]
    elif name == "profiles":
        if isinstance(kw["data"], str):
            kw["data"] = base64.b64decode(kw["data"])
        if kw.get("reference") is not None:
            kw["reference"] = tuple(kw["reference"])
    elif name == "artifacts":
        kw["files"] = [ArtifactFile(**f) for f in kw["files"]]
    for key in _DECODED_FIELDS & kw.keys():
        if kw[key] is not None:
            try:
                kw[key] = codec.decode(kw[key])
            except (KeyError, TypeError, ValueError) as exc:  # a tag that is not one: {"$float": "x"}
                raise UndecodableValue(key, f"{type(exc).__name__}: {exc}") from exc
    return cls(**kw)


class UndecodableValue(ValueError):
    """A field holding a tagged value (``{"$float": ...}``, ``{"$datetime": ...}``) that is not one."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: not a value watchkeeper.store.codec can decode ({reason})")
        self.field = field
        self.reason = reason


def from_json(doc: dict[str, Any]) -> Batch:
    """The Batch of a document made by :func:`to_json` (already validated: see the server's schema);
    profile data and blobs may be bytes already."""
    batch = Batch(id=doc["id"])
    for key in _RECORDS:
        setattr(batch, key, [record_from_json(key, r) for r in doc.get(key) or []])
    batch.blobs = {
        d: b if isinstance(b, bytes) else base64.b64decode(b) for d, b in (doc.get("blobs") or {}).items()
    }
    return batch


def from_binary(body: bytes, max_header: int = 64 * 1024 * 1024) -> Batch:
    """The Batch of a body made by :func:`to_binary` (trusted: the server validates the header against its
    schema instead); ``ValueError`` for a frame whose sizes do not add up to its payload."""
    header, payload = split_binary(body, max_header)
    doc = json.loads(header)
    offset = 0

    def take(size: int) -> bytes:
        nonlocal offset
        if offset + size > len(payload):
            raise ValueError(f"the payload has {len(payload)} bytes, fewer than the header's sizes")
        offset += size
        return bytes(payload[offset - size : offset])

    for record in doc.get("profiles") or []:
        record["data"] = take(record["data"])
    doc["blobs"] = {d: take(size) for d, size in (doc.get("blobs") or {}).items()}
    if offset != len(payload):
        raise ValueError(f"{len(payload) - offset} bytes of the payload are not in the header's sizes")
    return from_json(doc)
