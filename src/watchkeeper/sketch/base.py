"""The small base class every sketch sits on, its registry and its binary envelope.

A sketch is a bounded-size, mergeable summary of a stream of values. Each concrete sketch implements five
hooks (``_update``, ``_merge_into``, ``_check_compatible``, ``_encode``, ``_decode``) and ``describe``; this
module supplies the rest of the contract once:

- ``update(values)`` takes a 1-D array (anything ``np.asarray`` accepts) and updates in vectorised batches;
- ``merge(other)`` / ``a + b`` return a new sketch equal to one fed both streams; a merge of two different
  kinds, or of incompatible parameters, raises ``ValueError`` naming both;
- ``to_bytes()`` / ``from_bytes(blob)`` write and read a compact binary form, bit-for-bit stable;
- ``copy()``, ``==`` (equal serialised state) and pickling (through the binary form).

Binary envelope (little-endian)::

    byte 0        format version of the sketch kind (FORMAT_VERSION of the class that wrote it)
    byte 1        kind id (one byte, unique per sketch class, see ``Sketch.registry()``)
    bytes 2..-4   payload, written by the class's ``_encode``
    last 4 bytes  CRC-32 of everything before it, so a corrupt blob is refused instead of misread

Every sketch class registers itself by subclassing with a ``kind=`` keyword; the generic
``Sketch.from_bytes(blob)`` dispatches on the kind byte.
"""

from __future__ import annotations

import struct
import zlib
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt

__all__ = ["BlobReader", "BlobWriter", "Sketch"]

InputKind = Literal["numeric", "categorical", "any"]

_HEADER = struct.Struct("<BB")
_CRC = struct.Struct("<I")


class Sketch(ABC):
    """Base class of every mergeable sketch.

    Subclasses declare ``class MySketch(Sketch, kind=7)``; the kind id is stable forever because it is
    written into every blob. ``FORMAT_VERSION`` is the newest payload layout the class can read and the
    one it writes.
    """

    KIND: ClassVar[int]
    FORMAT_VERSION: ClassVar[int] = 1
    #: What ``update`` is meant to receive, used by the catalogue-wide contract tests to generate input.
    INPUT_KIND: ClassVar[InputKind] = "numeric"
    _registry: ClassVar[dict[int, type[Sketch]]] = {}

    def __init_subclass__(cls, *, kind: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if kind is None:
            return
        if not 0 < kind < 256:
            raise ValueError(f"sketch kind id must be in 1..255 (got {kind})")
        taken = Sketch._registry.get(kind)
        if taken is not None and taken.__qualname__ != cls.__qualname__:
            raise ValueError(f"sketch kind id {kind} is taken by {taken.__name__} (got {cls.__name__})")
        cls.KIND = kind
        Sketch._registry[kind] = cls

    @staticmethod
    def registry() -> dict[int, type[Sketch]]:
        """Every registered sketch class, keyed by its kind id."""
        return dict(sorted(Sketch._registry.items()))

    # -- the hooks a sketch implements -----------------------------------------------------------------

    @abstractmethod
    def _update(self, values: np.ndarray) -> None:
        """Fold a 1-D batch into this sketch, vectorised."""

    @abstractmethod
    def _check_compatible(self, other: Self) -> None:
        """Raise ``ValueError`` if ``other`` (same class) cannot be merged into this sketch."""

    @abstractmethod
    def _merge_into(self, other: Self) -> None:
        """Fold ``other`` (same class, compatible) into this sketch in place."""

    @abstractmethod
    def _encode(self, out: BlobWriter) -> None:
        """Write the payload."""

    @classmethod
    @abstractmethod
    def _decode(cls, blob: BlobReader, version: int) -> Self:
        """Read a payload written by ``_encode`` of format ``version`` (<= FORMAT_VERSION)."""

    @abstractmethod
    def describe(self) -> dict[str, float]:
        """The headline numbers of this sketch as a flat dict (used in reports and contract tests)."""

    # -- the contract, implemented once ----------------------------------------------------------------

    def update(self, values: npt.ArrayLike) -> Self:
        """Update with a batch of values (a 1-D array, list, or a scalar); returns ``self``."""
        arr = _as_1d(self._coerce(values))
        if arr.size:
            self._update(arr)
        return self

    @classmethod
    def _coerce(cls, values: npt.ArrayLike) -> np.ndarray:
        """Turn update input into an array.

        A list or tuple given to a sketch that is not purely numeric becomes an ``object`` array, because
        ``np.asarray([1, "a"])`` would turn the int into the string ``"1"``.
        """
        if isinstance(values, np.ndarray):
            return values
        if cls.INPUT_KIND != "numeric" and isinstance(values, (list, tuple)):
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            return arr
        return np.asarray(values)

    def merge(self, other: Sketch) -> Self:
        """A new sketch equal to one fed both this sketch's stream and ``other``'s."""
        if type(other) is not type(self):
            raise ValueError(
                f"cannot merge {type(self).__name__} with {type(other).__name__}: only sketches of the same "
                "kind merge"
            )
        self._check_compatible(other)  # type: ignore[arg-type]
        merged = self.copy()
        merged._merge_into(other)  # type: ignore[arg-type]
        return merged

    def __add__(self, other: object) -> Self:
        if not isinstance(other, Sketch):
            return NotImplemented
        return self.merge(other)

    def copy(self) -> Self:
        """An independent copy with the same state."""
        return type(self).from_bytes(self.to_bytes())

    def to_bytes(self) -> bytes:
        """The compact binary form: version byte, kind byte, payload, CRC-32."""
        out = BlobWriter()
        out.raw(_HEADER.pack(self.FORMAT_VERSION, self.KIND))
        self._encode(out)
        body = out.getvalue()
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, blob: bytes | bytearray | memoryview) -> Self:
        """Read a sketch written by ``to_bytes``; on ``Sketch`` itself, dispatch on the kind byte.

        Raises ``ValueError`` for a truncated or corrupt blob, a blob of another kind than ``cls``, and a
        blob written by a newer format version than this watchkeeper reads.
        """
        data = bytes(blob)
        if len(data) < _HEADER.size + _CRC.size:
            raise ValueError(f"sketch blob is truncated: {len(data)} bytes, need at least 6")
        version, kind = _HEADER.unpack_from(data, 0)
        target = Sketch._registry.get(kind)
        if target is None:
            raise ValueError(f"unknown sketch kind id {kind} in blob (known: {sorted(Sketch._registry)})")
        if cls is not Sketch and target is not cls:
            raise ValueError(f"blob holds a {target.__name__}, expected a {cls.__name__}")
        if version > target.FORMAT_VERSION:
            raise ValueError(
                f"{target.__name__} blob was written by a newer watchkeeper format version {version} "
                f"(this one reads up to {target.FORMAT_VERSION})"
            )
        if version == 0:
            raise ValueError(f"{target.__name__} blob has invalid format version 0")
        (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
        body = data[: -_CRC.size]
        if zlib.crc32(body) != crc:
            raise ValueError(f"{target.__name__} blob is corrupt or truncated (checksum mismatch)")
        reader = BlobReader(body, _HEADER.size, target.__name__)
        try:
            sketch = target._decode(reader, version)
        except ValueError:
            raise
        except (struct.error, IndexError, KeyError, TypeError, OverflowError, UnicodeDecodeError) as exc:
            raise ValueError(f"{target.__name__} blob is corrupt: {exc}") from exc
        reader.finish()
        return sketch  # type: ignore[return-value]

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return (_restore, (self.to_bytes(),))

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in list(self.describe().items())[:6]
        )
        return f"{type(self).__name__}({fields})"


def _restore(blob: bytes) -> Sketch:
    return Sketch.from_bytes(blob)


def _as_1d(values: npt.ArrayLike) -> np.ndarray:
    arr = values if isinstance(values, np.ndarray) else np.asarray(values)
    if arr.ndim == 0:
        return arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"sketch update expects a 1-D array of values (got shape {arr.shape})")
    return arr


class BlobWriter:
    """Appends little-endian fields to a payload."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def raw(self, data: bytes) -> None:
        self._parts.append(data)

    def pack(self, fmt: str, *values: Any) -> None:
        self._parts.append(struct.pack("<" + fmt, *values))

    def array(self, arr: np.ndarray, dtype: str) -> None:
        """Write a length-prefixed array of a fixed little-endian dtype."""
        data = np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("<"))
        self.pack("Q", data.size)
        self._parts.append(data.tobytes())

    def uint_array(self, arr: np.ndarray) -> None:
        """Write non-negative integers with the narrowest of uint8/16/32/64 that holds them all."""
        top = int(arr.max()) if arr.size else 0
        code = 0 if top < 1 << 8 else 1 if top < 1 << 16 else 2 if top < 1 << 32 else 3
        self.pack("B", code)
        self.array(arr, ("u1", "u2", "u4", "u8")[code])

    def text(self, value: str) -> None:
        data = value.encode("utf-8")
        self.pack("I", len(data))
        self._parts.append(data)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class BlobReader:
    """Reads fields written by ``BlobWriter``; every shortfall is a ``ValueError``."""

    def __init__(self, data: bytes, offset: int, name: str) -> None:
        self._data = data
        self._pos = offset
        self._name = name

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if n < 0 or end > len(self._data):
            raise ValueError(f"{self._name} blob is truncated (needed {n} bytes at offset {self._pos})")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        st = struct.Struct("<" + fmt)
        return st.unpack(self.take(st.size))

    def one(self, fmt: str) -> Any:
        return self.unpack(fmt)[0]

    def array(self, dtype: str) -> np.ndarray:
        n = self.one("Q")
        dt = np.dtype(dtype).newbyteorder("<")
        if n > len(self._data):
            raise ValueError(f"{self._name} blob is corrupt: array length {n} exceeds the blob")
        return np.frombuffer(self.take(n * dt.itemsize), dtype=dt).astype(dt.newbyteorder("="))

    def uint_array(self) -> np.ndarray:
        code = self.one("B")
        if code > 3:
            raise ValueError(f"{self._name} blob is corrupt: unknown integer width code {code}")
        return self.array(("u1", "u2", "u4", "u8")[code]).astype(np.uint64)

    def text(self) -> str:
        return self.take(self.one("I")).decode("utf-8")

    def finish(self) -> None:
        if self._pos != len(self._data):
            raise ValueError(
                f"{self._name} blob is corrupt: {len(self._data) - self._pos} unread bytes after the payload"
            )
