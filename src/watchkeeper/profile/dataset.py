"""``Profile``: the mergeable summary of a dataset (or of a window of traffic), one ``ColumnProfile`` per
column.

Merging is associative and commutative, column by column; a column that one side lacks is taken from the
other, so its ``count`` is lower than the profile's ``rows`` and the gap shows in ``summary()``.

Binary format (little-endian), version 1::

    b"WKPF"   magic
    u8        format version
    u64       rows
    u32       number of columns
    per column: u32 name length, UTF-8 name, u32 blob length, column blob (see ColumnProfile.encode)
    u32       CRC-32 of everything before it

The sketches inside keep their own version byte and checksum. A blob of a newer format version is refused
with a message saying so.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from watchkeeper.profile.column import KINDS, ColumnProfile
from watchkeeper.profile.frames import as_frame
from watchkeeper.sketch.base import BlobReader, BlobWriter

MAGIC = b"WKPF"
FORMAT_VERSION = 1


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

    def __init__(self, columns: Mapping[str, ColumnProfile] | None = None, rows: int = 0) -> None:
        self.columns: dict[str, ColumnProfile] = dict(columns or {})
        self.rows = rows

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
        return Profile(cols, rows=self.rows + other.rows)

    def __add__(self, other: object) -> Profile:
        if not isinstance(other, Profile):
            return NotImplemented
        return self.merge(other)

    def to_bytes(self) -> bytes:
        out = BlobWriter()
        out.raw(MAGIC)
        out.pack("BQI", FORMAT_VERSION, self.rows, len(self.columns))
        for name, col in self.columns.items():
            out.text(name)
            inner = BlobWriter()
            col.encode(inner)
            blob = inner.getvalue()
            out.pack("I", len(blob))
            out.raw(blob)
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
            reader.finish()
        except (struct.error, UnicodeDecodeError, KeyError) as exc:
            raise ValueError(f"profile blob is corrupt: {exc}") from exc
        return cls(cols, rows=rows)

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
        return f"Profile(rows={self.rows}, columns={len(self.columns)}: {desc})"


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
