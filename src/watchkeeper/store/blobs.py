"""Content-addressed file storage for artifacts and images: a blob is named by the sha256 of its bytes.

Layout: ``<root>/sha256/<2 hex>/<62 hex>``. Writes go to a temporary file in the same directory and are
renamed into place, so a reader never sees half a blob and two writers of the same content cannot collide.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

CHUNK = 1 << 20


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_file(path: Path) -> tuple[str, int]:
    """sha256 hex and size of a file, read in chunks."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


class BlobStore:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"blob digest must be 64 lowercase hex characters, got {digest!r}")
        return self.root / "sha256" / digest[:2] / digest[2:]

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def put_bytes(self, data: bytes, digest: str | None = None) -> str:
        digest = digest or digest_bytes(data)
        target = self.path(digest)
        if not target.exists():
            self._write(target, lambda f: f.write(data))
        return digest

    def put_file(self, source: Path, digest: str) -> str:
        target = self.path(digest)
        if not target.exists():
            with open(source, "rb") as src:
                self._write(target, lambda f: shutil.copyfileobj(src, f, CHUNK))
        return digest

    def read(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    @staticmethod
    def _write(target: Path, fill) -> None:  # type: ignore[no-untyped-def]
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                fill(f)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
