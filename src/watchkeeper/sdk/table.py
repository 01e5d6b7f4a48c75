"""``wk.Table``: rows logged together under one key, as W&B's ``wandb.Table``; stored as sample rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from watchkeeper.sdk.image import Image
from watchkeeper.store import codec


class Table:
    """A table of named columns. Cells are numbers, strings, booleans, None, datetimes, lists of those, or
    ``wk.Image``.

    >>> t = Table(columns=["query", "prediction"], data=[["a", 1], ["b", 0]])
    >>> t.add_data("c", 1)
    >>> len(t), t.columns
    (3, ['query', 'prediction'])
    """

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        data: Sequence[Sequence[Any]] | None = None,
        dataframe: Any = None,
    ) -> None:
        if dataframe is not None:
            if data is not None:
                raise ValueError("Table: give data= or dataframe=, not both")
            columns, data = _from_dataframe(dataframe)
        if columns is None:
            width = len(data[0]) if data else 0
            columns = [f"col{i}" for i in range(width)]
        self.columns = [str(c) for c in columns]
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"Table: column names must be unique, got {self.columns}")
        self.data: list[list[Any]] = []
        for row in data or []:
            self.add_data(*row)

    def add_data(self, *values: Any) -> None:
        if len(values) != len(self.columns):
            raise ValueError(
                f"Table: row {len(self.data)} has {len(values)} values, expected {len(self.columns)} "
                f"(columns {self.columns})"
            )
        self.data.append(list(values))

    def add_column(self, name: str, data: Sequence[Any]) -> None:
        if len(data) != len(self.data):
            raise ValueError(
                f"Table: column {name!r} has {len(data)} values, the table has {len(self.data)} rows"
            )
        if name in self.columns:
            raise ValueError(f"Table: column {name!r} exists")
        self.columns.append(name)
        for row, v in zip(self.data, data, strict=True):
            row.append(v)

    def __len__(self) -> int:
        return len(self.data)

    def encode(self, key: str) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
        """Rows as dicts of JSON cells and the image blobs they reference; errors name row and column."""
        rows = []
        blobs: dict[str, bytes] = {}
        for i, row in enumerate(self.data):
            out = {}
            for col, v in zip(self.columns, row, strict=True):
                if isinstance(v, Image):
                    blobs[v.digest] = v.data
                    out[col] = v.to_cell()
                else:
                    out[col] = codec.encode(v, where=f"{key}: row {i}, column {col!r}")
            rows.append(out)
        return rows, blobs

    def __repr__(self) -> str:
        return f"Table(columns={self.columns}, rows={len(self.data)})"


def _from_dataframe(df: Any) -> tuple[list[str], list[list[Any]]]:
    if hasattr(df, "to_dict") and hasattr(df, "columns") and hasattr(df, "itertuples"):  # pandas
        return [str(c) for c in df.columns], [list(r) for r in df.itertuples(index=False, name=None)]
    if hasattr(df, "rows") and hasattr(df, "columns"):  # polars
        return list(df.columns), [list(r) for r in df.rows()]
    if hasattr(df, "to_pylist") and hasattr(df, "column_names"):  # pyarrow
        cols = list(df.column_names)
        return cols, [[r[c] for c in cols] for r in df.to_pylist()]
    raise TypeError(f"Table: dataframe= expects a pandas, polars or pyarrow table, got {type(df).__name__}")
