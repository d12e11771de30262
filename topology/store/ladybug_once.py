"""The embedded store's write connection, without LadybugDB's client keeping statements.

LadybugDB's Python client (0.22, pybind backend) caches every statement that
`execute` prepares, keyed by the text and the parameters' types. An arrow table
parameter is keyed by the object itself, so every write's tables (`LOAD FROM
$rows`, `COPY ... FROM $rows`) add entries that are never used again, and each
entry keeps its prepared statement, and with it the scanned table, for the
connection's life. Measured on bench/store.py's data: the writer's RSS grew by
about 70 MB per 10,000-row write, and with a 256 MB buffer pool the fifth such
write failed ("the buffer pool is full"). A statement prepared explicitly and
dropped after its run leaves nothing behind; the work is the same (a statement
over a new table is prepared anew either way).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

if TYPE_CHECKING:
    import ladybug


class Conn(Protocol):
    """What the write paths use of a connection."""

    def execute(self, query: str, parameters: dict[str, Any] | None = None) -> Any: ...


class Writer:
    """`execute` as the connection's, except that a statement with an arrow table
    parameter is prepared for that one run (module docstring)."""

    def __init__(self, conn: ladybug.Connection) -> None:
        self.conn = conn
        # the explicit path exists for the pybind backend; another one keeps `execute`
        using_pybind = getattr(conn, "_using_pybind_backend", None)
        self.once = bool(using_pybind and using_pybind())

    def execute(self, query: str, parameters: dict[str, Any] | None = None) -> Any:
        if not (self.once and parameters and _has_table(parameters)):
            return self.conn.execute(query, parameters)
        with warnings.catch_warnings():  # explicit prepare is deprecated, not removed
            warnings.simplefilter("ignore", DeprecationWarning)
            prepared = self.conn.prepare(query, parameters)
        return self.conn.execute(prepared, parameters)


def _has_table(parameters: Mapping[str, Any]) -> bool:
    return any(isinstance(value, pa.Table) for value in parameters.values())
