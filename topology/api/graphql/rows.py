"""Row twins of the output types answers build by the thousand (edges, their stats,
paths and time series points): named tuples with the same attribute names.

The schema is made from the Strawberry types (types.py); execution, lean or
standard, only reads attributes. A named tuple is built positionally in C,
about a third of the cost of a keyword-only dataclass, and a map of 20,000
edges would build some 80,000 of them. A test checks each twin has exactly the
fields of its type, in the same order. The map's edges go further: `Columns`
holds them column-wise, and the twins are built only when something iterates
the edges instead of the lean executor projecting them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, overload

import pyarrow as pa

from topology.api.graphql.health import Health


class StatsRow(NamedTuple):
    """t.TrafficStats"""

    requests: int
    request_rate: float
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class PathRow(NamedTuple):
    """t.PathCount"""

    path: str
    requests: int


class PointRow(NamedTuple):
    """t.SeriesPoint"""

    start: datetime | None
    requests: int
    errors: int


class EdgeRow(NamedTuple):
    """t.Edge"""

    client: str
    server: str
    protocols: list[str]
    stats: StatsRow
    health: Health
    weight: float
    top_paths: list[PathRow]
    time_series: list[PointRow]
    exemplar_trace_ids: list[str]


class Coded:
    """A column of a few distinct objects (enum members), held as an Arrow array of
    indices into them: the JSON path encodes each member once and takes the texts
    by index (`json_columns.py`), with no Python object per row."""

    __slots__ = ("codes", "members")

    def __init__(self, codes: pa.Array | pa.ChunkedArray, members: Sequence[Any]) -> None:
        self.codes = codes
        self.members = members

    def __len__(self) -> int:
        return len(self.codes)

    def to_pylist(self) -> list[Any]:
        members = self.members
        return [members[code] for code in self.codes.to_pylist()]


Column = list[Any] | pa.Array | pa.ChunkedArray | Coded | Callable[[], Any]
HELD = (pa.Array, pa.ChunkedArray, Coded)  # columns `Columns.column` converts to lists


class Columns(Sequence[Any]):
    """A list of output objects held column by column: the map's edges.

    `columns` maps attribute paths ("client", "stats.p99_ms": nested objects
    flattened) to one value per object (a list, or an Arrow array of the values
    as Python sees them), or to a function computing them, called only when a
    query selects that field. The lean executor projects a selection straight
    from the columns (`executor.py`: `column`, as Python lists; its JSON path
    `json_columns.py`: `raw`, Arrow arrays and `Coded` left as they are), with no object per
    edge; anything else (the standard execution path, an answer filtering the
    list) sees it as a plain sequence of the row twins, built once by `rows`
    when first needed.
    """

    __slots__ = ("_columns", "_length", "_lists", "_make_rows", "_rows")

    def __init__(self, length: int, columns: Mapping[str, Column],
                 rows: Callable[[Columns], list[Any]]) -> None:
        self._length = length
        self._columns = dict(columns)
        self._lists: dict[str, list[Any]] = {}
        self._make_rows = rows
        self._rows: list[Any] | None = None

    def raw(self, path: str) -> Any:
        """The column as held: a list, an Arrow array or `Coded`."""
        found = self._columns[path]
        if callable(found):
            found = self._columns[path] = found()
        return found

    def column(self, path: str) -> list[Any]:
        """The column as a Python list."""
        found = self.raw(path)
        if isinstance(found, HELD):
            listed = self._lists.get(path)
            if listed is None:
                listed = self._lists[path] = found.to_pylist()
            return listed
        return found

    def rows(self) -> list[Any]:
        if self._rows is None:
            self._rows = self._make_rows(self)
        return self._rows

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: int | slice) -> Any:
        return self.rows()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows())
