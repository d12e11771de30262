"""Rows for the embedded store's statements, handed to LadybugDB as CSV files.

The write path sends its rows to LadybugDB in bulk (`LOAD FROM $rows ...`,
`COPY CallBucket FROM $rows`). LadybugDB 0.22 scans a table parameter only from
pyarrow, pandas or polars, and importing pyarrow maps 25-50 MB of its
libraries into the process (libarrow, libparquet, libarrow_compute; more
when the files sit in the page cache as large folios), a tenth to a fifth of
what `topology worker` may use (docs/delivery.md, "The worker without
pyarrow"). So a statement's rows are a `Rows` object, and `Writer.execute`
writes them to a file LadybugDB reads itself (`LOAD WITH HEADERS (...) FROM
'file'`), typed by the statement's schema:

- every string is quoted, and quoted strings come back as they were (NUL,
  newlines, carriage returns, quotes, commas, backslashes; an unquoted empty
  field would be NULL);
- lists do not survive LadybugDB's CSV (an element keeps its quotes, or is
  split at its commas), so a list column travels as a list parameter indexed
  by the row's number (`$exemplars[row_index + 1]`);
- a file cannot be a parameter (`LOAD FROM $path` is refused), so the file's
  path is written into the statement: it is the store's own staging file,
  whose path `Staging` checks needs no escaping. Values still reach Cypher
  only as the file's contents or as parameters.

Writing the file costs what building the arrow columns did (about 65 ms for
20,000 bucket rows here), but LadybugDB reads a file more slowly than an arrow
table: at the issue's load a worker's transaction took 0.42 s instead of 0.27
(docs/delivery.md). It reads the file without parallel scanning
(`parallel=false`: a quoted newline needs it), which the worker's one writer
thread does not have anyway.

A statement over a file is prepared for its one run and dropped: LadybugDB's
Python client (pybind backend) caches every statement `execute` prepares,
keyed by its text and its parameters' types, for the connection's life, and
the update statements' column sets vary with the data.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import ladybug

# (column, LadybugDB type): INT64, DOUBLE, STRING, or STRING[] (a list parameter)
Schema = tuple[tuple[str, str], ...]
ROWS = "$rows"
_LOAD_ROWS = "LOAD FROM " + ROWS
_INDEX = "row_index"
_LIST = "STRING[]"
_SCALARS = frozenset(("INT64", "DOUBLE", "STRING"))
_UNSAFE_IN_PATH = frozenset("'\"\\`") | frozenset(map(chr, range(32)))


class Conn(Protocol):
    """What the write paths use of a connection."""

    def execute(self, query: str, parameters: dict[str, Any] | None = None) -> Any: ...


def names(schema: Schema) -> tuple[str, ...]:
    return tuple(name for name, _ in schema)


def pick(schema: Schema, wanted: Sequence[str]) -> Schema:
    """The columns of `schema` named in `wanted`, in that order."""
    types = dict(schema)
    return tuple((name, types[name]) for name in wanted)


class Rows:
    """Columns of equal length, typed by a schema (the catalogue's, never user text)."""

    __slots__ = ("columns", "schema")

    def __init__(self, schema: Schema, columns: Mapping[str, Sequence[Any]]) -> None:
        lengths = {len(columns[name]) for name in names(schema)}
        if len(lengths) > 1:
            raise ValueError(f"columns of one statement's rows differ in length: {lengths}")
        for name, type_ in schema:
            if type_ not in _SCALARS and type_ != _LIST:
                raise ValueError(f"column {name!r}: no way to send type {type_!r}")
            if type_ == "STRING" and None in columns[name]:  # it would come back as ''
                raise ValueError(f"column {name!r} holds None: the rows file has no NULL")
        self.schema = schema
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns[self.schema[0][0]]) if self.schema else 0


def records(result: Any) -> list[dict[str, Any]]:
    """A query result's rows as dicts (no arrow)."""
    columns = result.get_column_names()
    return [dict(zip(columns, row, strict=True)) for row in result.get_all()]


def columns(result: Any) -> dict[str, list[Any]]:
    """A query result's columns as lists, by name (no arrow)."""
    names_ = result.get_column_names()
    rows = result.get_all()
    return {name: [row[j] for row in rows] for j, name in enumerate(names_)}


class Staging:
    """The file a writer hands its rows over in: one at a time (the store's write lock)."""

    def __init__(self, directory: Path) -> None:
        directory = directory.resolve()
        unsafe = sorted(set(str(directory)) & _UNSAFE_IN_PATH)
        if unsafe:
            raise ValueError(
                f"the embedded store's staging directory {str(directory)!r} has {unsafe[0]!r} "
                "in its path, which a LadybugDB file name in a statement cannot hold: "
                "choose another TOPOLOGY_DATA_DIR")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.file = directory / "rows.csv"

    def load(self, rows: Rows) -> tuple[str, dict[str, list]]:
        """Write the rows' scalar columns; the LOAD clause that reads them back (every
        column under its own name) and the list parameters it uses."""
        scalars = [(name, type_) for name, type_ in rows.schema if type_ != _LIST]
        lists = [name for name, type_ in rows.schema if type_ == _LIST]
        with self.file.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
            writer.writerow([_INDEX, *(name for name, _ in scalars)])
            writer.writerows(zip(range(len(rows)), *(rows.columns[n] for n, _ in scalars),
                                 strict=True))
        declared = ", ".join(f"{name} {type_}" for name, type_ in ((_INDEX, "INT64"), *scalars))
        clause = (f"LOAD WITH HEADERS ({declared}) FROM '{self.file}' "
                  "(header=true, parallel=false)")
        params: dict[str, list] = {}
        picked = []
        for name in lists:
            values = [list(v or ()) for v in rows.columns[name]]
            if any(values):
                params[name] = values
                picked.append(f"${name}[{_INDEX} + 1] AS {name}")
            else:  # a parameter of empty lists only has no element type
                picked.append(f"CAST([] AS STRING[]) AS {name}")
        if picked:
            clause += " WITH *, " + ", ".join(picked)
        return clause, params

    def clear(self) -> None:
        self.file.unlink(missing_ok=True)

    def remove(self) -> None:
        self.clear()
        with suppress(OSError):  # not empty: something else put a file there; leave it
            self.directory.rmdir()


def statement(query: str, rows: Rows, clause: str) -> str:
    """The query with its `$rows` read from the clause: `LOAD FROM $rows` becomes the
    clause; any other `$rows` (`COPY T FROM $rows`) a subquery returning the
    schema's columns in order."""
    if query.count(ROWS) != 1:
        raise ValueError(f"a statement over rows names {ROWS} once: {query[:80]!r}")
    if _LOAD_ROWS in query:
        return query.replace(_LOAD_ROWS, clause)
    return query.replace(ROWS, f"({clause} RETURN {', '.join(names(rows.schema))})")


class Writer:
    """`execute` as the connection's, except that a `rows` parameter that is `Rows`
    is written to the staging file and read from there (module docstring)."""

    def __init__(self, conn: ladybug.Connection, staging: Staging) -> None:
        self.conn = conn
        self.staging = staging
        # the explicit path exists for the pybind backend; another one keeps `execute`
        using_pybind = getattr(conn, "_using_pybind_backend", None)
        self.once = bool(using_pybind and using_pybind())

    def execute(self, query: str, parameters: dict[str, Any] | None = None) -> Any:
        rows = (parameters or {}).get("rows")
        if not isinstance(rows, Rows):
            return self.conn.execute(query, parameters)
        clause, lists = self.staging.load(rows)
        params = {k: v for k, v in (parameters or {}).items() if k != "rows"} | lists
        text = statement(query, rows, clause)
        try:
            if not self.once:
                return self.conn.execute(text, params)
            with warnings.catch_warnings():  # explicit prepare is deprecated, not removed
                warnings.simplefilter("ignore", DeprecationWarning)
                prepared = self.conn.prepare(text, params)
            return self.conn.execute(prepared, params)
        finally:
            self.staging.clear()
