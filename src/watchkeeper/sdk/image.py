"""``wk.Image``: an image logged alone or in a ``wk.Table`` cell, stored once as a content-addressed blob.

Arrays are encoded as PNG here (8-bit grey, grey+alpha, RGB or RGBA; no filtering, zlib level 6), which
keeps the base install free of an imaging library: the format is the one in the PNG specification (W3C,
2003): signature, IHDR, IDAT holding zlib-compressed scanlines each prefixed by a filter byte, IEND, each
chunk followed by the CRC-32 of its type and data.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from watchkeeper.store.blobs import digest_bytes

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
_SUFFIX_FORMATS = {
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".gif": "gif",
    ".webp": "webp",
    ".svg": "svg",
}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an HxW or HxWxC (C in 1..4) uint8 array.

    >>> png = encode_png(np.zeros((2, 3), dtype=np.uint8))
    >>> png[:8] == _PNG_SIGNATURE, png_size(png)
    (True, (3, 2))
    """
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    h, w, c = pixels.shape
    rows = np.concatenate([np.zeros((h, 1), dtype=np.uint8), pixels.reshape(h, w * c)], axis=1)
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPES[c], 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + _chunk(b"IEND", b"")
    )


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    w, h = struct.unpack(">II", data[16:24])
    return w, h


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
        arr = np.transpose(arr, (1, 2, 0))  # channels-first (PyTorch) to channels-last
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
        raise ValueError(f"Image: expected an HxW or HxWxC array with C in 1..4, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.nan_to_num(arr, nan=0.0, posinf=1.0, neginf=0.0)
        scale = 255.0 if finite.size and float(finite.max()) <= 1.0 else 1.0
        return np.clip(np.rint(finite * scale), 0, 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        return np.clip(arr, 0, 255).astype(np.uint8)
    raise TypeError(f"Image: cannot make pixels of an array of dtype {arr.dtype}")


class Image:
    """An image from a file path, raw PNG/JPEG bytes, a numpy array, a PIL image or a matplotlib figure.

    >>> img = Image(np.full((4, 6, 3), 255, dtype=np.uint8), caption="white")
    >>> img.format, img.width, img.height, len(img.digest)
    ('png', 6, 4, 64)
    """

    def __init__(self, data: Any, caption: str | None = None) -> None:
        self.caption = caption
        self.data, self.format = self._encode(data)
        self.digest = digest_bytes(self.data)
        self.width, self.height = png_size(self.data) if self.format == "png" else (None, None)

    @staticmethod
    def _encode(data: Any) -> tuple[bytes, str]:
        if isinstance(data, str | Path):
            path = Path(data)
            if not path.is_file():
                raise FileNotFoundError(f"Image: no file at {path}")
            fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
            if fmt is None:
                raise ValueError(f"Image: {path.name}: expected one of {', '.join(_SUFFIX_FORMATS)}")
            return path.read_bytes(), fmt
        if isinstance(data, bytes | bytearray):
            raw = bytes(data)
            if raw.startswith(_PNG_SIGNATURE):
                return raw, "png"
            if raw.startswith(b"\xff\xd8\xff"):
                return raw, "jpeg"
            raise ValueError("Image: bytes are neither PNG nor JPEG")
        if isinstance(data, np.ndarray):
            return encode_png(_to_uint8(data)), "png"
        if hasattr(data, "savefig"):  # a matplotlib figure
            buf = io.BytesIO()
            data.savefig(buf, format="png")
            return buf.getvalue(), "png"
        if hasattr(data, "save") and hasattr(data, "mode"):  # a PIL image
            buf = io.BytesIO()
            data.save(buf, format="PNG")
            return buf.getvalue(), "png"
        if hasattr(data, "detach") and hasattr(data, "cpu"):  # a torch tensor
            return encode_png(_to_uint8(data.detach().cpu().numpy())), "png"
        raise TypeError(
            f"Image: expected a path, PNG/JPEG bytes, a numpy array, a PIL image or a matplotlib figure, "
            f"got {type(data).__name__}"
        )

    def to_cell(self) -> dict[str, Any]:
        ref = {"digest": self.digest, "format": self.format, "width": self.width, "height": self.height}
        if self.caption is not None:
            ref["caption"] = self.caption
        return {"$image": ref}

    def __repr__(self) -> str:
        return f"Image({self.format}, {self.width}x{self.height}, {self.digest[:12]})"
