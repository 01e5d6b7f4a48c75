"""Reading tables from files: a CSV or Parquet file, or a directory of them (read as one table)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "csv"}


def data_files(path: str | Path) -> list[Path]:
    """The CSV/Parquet files at ``path`` (itself, or the files under a directory, sorted)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no file or directory at {p}")
    if p.is_file():
        if p.suffix.lower() not in FORMATS:
            raise ValueError(f"{p.name}: expected a .csv, .tsv or .parquet file")
        return [p]
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in FORMATS)
    if not files:
        raise ValueError(f"{p}: the directory holds no .csv, .tsv or .parquet files")
    return files


def read_table(path: str | Path, on_file: Callable[[Path], None] | None = None) -> pa.Table:
    """One Arrow table from a file or a directory of files; ``on_file`` is called after each file is read.

    Files of one directory are concatenated; their schemas are unified (a column missing from some files
    is null there), so a daily partition that gained a column still reads.
    """
    tables = []
    for f in data_files(path):
        if FORMATS[f.suffix.lower()] == "parquet":
            tables.append(pq.read_table(f))
        else:
            delimiter = "\t" if f.suffix.lower() == ".tsv" else ","
            tables.append(pacsv.read_csv(f, parse_options=pacsv.ParseOptions(delimiter=delimiter)))
        if on_file is not None:
            on_file(f)
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="permissive")


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None, chunk: int = 1 << 20) -> str:
    """sha256 (hex) of a file's bytes, read in chunks; ``on_bytes(n)`` after each (a progress bar's hook)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
            if on_bytes is not None:
                on_bytes(len(block))
    return h.hexdigest()


def digest_files(path: str | Path) -> str:
    """sha256 (hex) of the data files at ``path``: their paths relative to it, sizes and contents' sha256, in
    order.

    The identity of a partition's contents, for writes that must be applied once however often they are
    re-run (a profile's own bytes cannot serve: quantile sketches are randomised, so profiling the same rows
    twice gives equal summaries in different bytes)."""
    import hashlib

    root = Path(path)
    h = hashlib.sha256()
    for f in data_files(root):
        name = f.name if root.is_file() else f.relative_to(root).as_posix()
        h.update(f"{name}\0{f.stat().st_size}\0{sha256_file(f)}\0".encode())
    return h.hexdigest()
