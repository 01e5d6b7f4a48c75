"""``Profile``: the mergeable summary of a dataset (or of a window of traffic), one ``ColumnProfile`` per
column.

Merging is associative and commutative, column by column; a column that one side lacks is taken from the
other, so its ``count`` is lower than the profile's ``rows`` and the gap shows in ``summary()``.

A profile of serving traffic also carries ``traffic`` (requests, errors, latency, stages, usage: see
:mod:`watchkeeper.profile.traffic`) and ``roles``, which columns were model inputs and which were its outputs
(a column without a role is an input).

Binary format (little-endian), version 2::

    b"WKPF"   magic
    u8        format version
    u64       rows
    u32       number of columns
    per column: u32 name length, UTF-8 name, u32 blob length, column blob (see ColumnProfile.encode)
    u32       number of sections (version 2 only)
    per section: u32 tag length, UTF-8 tag ("traffic" or "roles"), u32 blob length, blob
    u32       CRC-32 of everything before it

A profile without traffic or roles is written as version 1 (no section count), which every reader reads.
The sketches inside keep their own version byte and checksum. A blob of a newer format version, or with a
section this version does not know, is refused with a message saying so.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from watchkeeper.profile.column import KINDS, ColumnProfile
from watchkeeper.profile.frames import as_frame
from watchkeeper.profile.traffic import Traffic
from watchkeeper.sketch.base import BlobReader, BlobWriter

MAGIC = b"WKPF"
FORMAT_VERSION = 2
ROLES = ("input", "output")


class Profile:
    """A dataset profile.

    >>> import pyarrow as pa
    >>> a = profile(pa.table({"x": [1.0, 2.0, 3.0], "c": ["a", "b", "a"]}))
    >>> b = profile(pa.table({"x": [4.0], "c": ["a"]}))
    >>> both = a.merge(b)
    >>> both.rows, both["x"].mean, both["c"].top(1)[0].value, both["c"].top(1)[0].count
    (4, 2.5, 'a', 3)
    >>> Profile.from_bytes(both.to_bytes()) == both
    True
    """

    def __init__(
        self,
        columns: Mapping[str, ColumnProfile] | None = None,
        rows: int = 0,
        *,
        traffic: Traffic | None = None,
        roles: Mapping[str, str] | None = None,
    ) -> None:
        self.columns: dict[str, ColumnProfile] = dict(columns or {})
        self.rows = rows
        self.traffic = traffic
        self.roles: dict[str, str] = dict(roles or {})
        for name, role in self.roles.items():
            if role not in ROLES:
                raise ValueError(f"roles: column {name!r}: role must be one of {ROLES}, got {role!r}")

    def role(self, name: str) -> str:
        """``"input"`` or ``"output"``: what column ``name`` was to the model."""
        return self.roles.get(name, "input")

    def inputs(self) -> list[str]:
        return [n for n in self.columns if self.role(n) == "input"]

    def outputs(self) -> list[str]:
        return [n for n in self.columns if self.role(n) == "output"]

    @property
    def format_version(self) -> int:
        """The format version ``to_bytes`` writes: 1 unless the profile has traffic or roles."""
        return 2 if (self.traffic is not None or self.roles) else 1

    def __getitem__(self, name: str) -> ColumnProfile:
        try:
            return self.columns[name]
        except KeyError:
            raise KeyError(f"the profile has no column {name!r} (it has {len(self.columns)})") from None

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def merge(self, other: Profile) -> Profile:
        """The profile of both datasets together."""
        if not isinstance(other, Profile):
            raise TypeError(f"can only merge a Profile with a Profile, got {type(other).__name__}")
        cols = dict(self.columns)
        for name, col in other.columns.items():
            mine = cols.get(name)
            cols[name] = col if mine is None else mine.merge(col)
        if self.traffic is None or other.traffic is None:
            traffic = self.traffic or other.traffic
        else:
            traffic = self.traffic.merge(other.traffic)
        return Profile(
            cols, rows=self.rows + other.rows, traffic=traffic, roles={**other.roles, **self.roles}
        )

    def __add__(self, other: object) -> Profile:
        if not isinstance(other, Profile):
            return NotImplemented
        return self.merge(other)

    def to_bytes(self) -> bytes:
        out = BlobWriter()
        out.raw(MAGIC)
        version = self.format_version
        out.pack("BQI", version, self.rows, len(self.columns))
        for name, col in self.columns.items():
            out.text(name)
            inner = BlobWriter()
            col.encode(inner)
            _blob_out(out, inner.getvalue())
        if version >= 2:
            sections = []
            if self.traffic is not None:
                sections.append(("traffic", self.traffic.encode()))
            if self.roles:
                roles = BlobWriter()
                roles.pack("I", len(self.roles))
                for name in sorted(self.roles):
                    roles.text(name)
                    roles.pack("B", ROLES.index(self.roles[name]))
                sections.append(("roles", roles.getvalue()))
            out.pack("I", len(sections))
            for tag, blob in sections:
                out.text(tag)
                _blob_out(out, blob)
        body = out.getvalue()
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, blob: bytes | bytearray | memoryview) -> Profile:
        data = bytes(blob)
        if len(data) < 21 or data[:4] != MAGIC:
            raise ValueError("not a watchkeeper profile (bad magic bytes or too short)")
        version = data[4]
        if version > FORMAT_VERSION:
            raise ValueError(
                f"this profile was written by a newer watchkeeper (profile format version {version}); this "
                f"watchkeeper reads up to version {FORMAT_VERSION}: upgrade watchkeeper to read it"
            )
        (crc,) = struct.unpack_from("<I", data, len(data) - 4)
        body = data[:-4]
        if zlib.crc32(body) != crc:
            raise ValueError("profile blob is corrupt or truncated (checksum mismatch)")
        reader = BlobReader(body, 5, "profile")
        try:
            rows, ncols = reader.unpack("QI")
            cols = {}
            for _ in range(ncols):
                name = reader.text()
                inner = BlobReader(reader.take(reader.one("I")), 0, f"profile column {name!r}")
                cols[name] = ColumnProfile.decode(name, inner)
                inner.finish()
            traffic, roles = None, {}
            if version >= 2:
                for _ in range(reader.one("I")):
                    tag = reader.text()
                    inner = BlobReader(reader.take(reader.one("I")), 0, f"profile section {tag!r}")
                    if tag == "traffic":
                        traffic = Traffic.decode(inner)
                    elif tag == "roles":
                        for _ in range(inner.one("I")):
                            name = inner.text()
                            roles[name] = ROLES[inner.one("B")]
                    else:
                        raise ValueError(
                            f"profile section {tag!r} is unknown: a newer watchkeeper wrote it; "
                            "upgrade watchkeeper to read it"
                        )
                    inner.finish()
            reader.finish()
        except (struct.error, UnicodeDecodeError, KeyError, IndexError) as exc:
            raise ValueError(f"profile blob is corrupt: {exc}") from exc
        return cls(cols, rows=rows, traffic=traffic, roles=roles)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Profile):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    def summary_rows(self) -> list[dict[str, Any]]:
        return [col.to_dict() for col in self.columns.values()]

    def summary(self) -> Any:
        """A pandas DataFrame, one row per column: kind, counts, moments, quartiles, distinct, top value."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is optional
            raise ImportError("Profile.summary() returns a pandas DataFrame: pip install pandas") from exc
        return pd.DataFrame(self.summary_rows()).set_index("column")

    def __repr__(self) -> str:
        kinds: dict[str, int] = {}
        for col in self.columns.values():
            kinds[col.kind] = kinds.get(col.kind, 0) + 1
        desc = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        extra = ""
        if self.traffic is not None:
            calls = self.traffic.calls
            extra = f", requests={calls.requests}, errors={calls.error_count}"
        return f"Profile(rows={self.rows}, columns={len(self.columns)}: {desc}{extra})"


def _blob_out(out: BlobWriter, blob: bytes) -> None:
    out.pack("I", len(blob))
    out.raw(blob)


def profile(data: Any, *, schema: Mapping[str, str] | None = None) -> Profile:
    """Profile ``data``: a pandas/polars DataFrame, a pyarrow Table, a numpy array, a dict of columns or a
    list of dicts.

    ``schema`` overrides the inferred kind of named columns (``{"zip": "categorical"}``); its kinds are
    ``numeric``, ``categorical``, ``text``, ``boolean``, ``vector`` and ``datetime``.
    """
    frame = as_frame(data)
    schema = dict(schema or {})
    unknown = sorted(set(schema) - set(frame.names))
    if unknown:
        raise ValueError(f"schema names columns that are not in the data: {unknown}")
    for name, kind in schema.items():
        if kind not in KINDS:
            raise ValueError(f"schema: column {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    cols = {}
    for name, values in frame.columns():
        try:
            cols[name] = ColumnProfile(name, schema.get(name)).update(values)
        except Exception as exc:
            raise ValueError(f"column {name!r}: could not be profiled: {exc}") from exc
    return Profile(cols, rows=frame.rows)
