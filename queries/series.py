"""Series-shaped reads grouped by the series id (`sid`) instead of four strings.

Tier rows and, in the embedded store, bucket rows carry `sid`, a 63-bit hash of
(client, server, protocol, path) (`tiers.SeriesNames`). A shape whose groups
are exactly those (`Shape.series`: the map) is read grouped by the integer,
which costs the database far less than grouping by the strings, and the names
come back from the process's registry; ids it does not know are read back
with every name in the window, so that a collision of two series on one id
shows, after which every read groups by the names again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from queries.window import IN_WINDOW
from topology.store import tiers
from topology.store.base import GraphStore, Reader
from topology.store.statement import Dialect, Statement

if TYPE_CHECKING:
    from queries.tiering import Shape

Row = dict[str, Any]
_CACHE_SIZE = 512


def bucket_table(
    store: GraphStore, shape: Shape, buckets: Statement, args: Mapping[str, Any]
) -> pa.Table:
    """A bucket read as a table. The embedded store's buckets carry the series id
    too (`sid`, like tier rows): a series shape groups by it, and the names come
    back from the registry, or from the buckets when it does not know them yet."""
    by_series = (shape.series and store.dialect is Dialect.LADYBUG
                 and not tiers.SERIES.collided)
    if by_series:
        table = store.read_arrow(_by_series(buckets, shape), args)
        if not table.num_rows:
            return table
        found = named(store, table, _BUCKET_NAMES, args)
        if found is not None:
            return found
    return store.read_arrow(buckets, args)


def bucket_rows(
    read: Reader, dialect: Dialect, shape: Shape, buckets: Statement, args: Mapping[str, Any]
) -> list[Row]:
    """`bucket_table` as rows."""
    if shape.series and dialect is Dialect.LADYBUG and not tiers.SERIES.collided:
        rows = read(_by_series(buckets, shape), args)
        registry = tiers.SERIES
        if any(row["sid"] not in registry.names for row in rows):
            for row in read(_BUCKET_NAMES, args):
                registry.add(row["client"], row["server"], row["protocol"], row["path"])
        if not registry.collided:
            return [_with_names(row, registry.names[row.pop("sid")]) for row in rows]
    return read(buckets, args)


def _with_names(row: Row, names: tuple[str, str, str, str]) -> Row:
    client, server, protocol, path = names
    return {"client": client, "server": server, "protocol": protocol, "path": path, **row}


_BY_SERIES: dict[tuple[Statement, Shape], Statement] = {}


def _by_series(buckets: Statement, shape: Shape) -> Statement:
    """The bucket statement grouping by `sid` instead of the shape's group columns
    (LadybugDB text only: Neo4j buckets have no series id)."""
    found = _BY_SERIES.get((buckets, shape))
    if found is None:
        returns = f"RETURN {shape.returns}, "
        if buckets.ladybug.count(returns) != 1:
            raise ValueError(f"statement {buckets.name} does not return {shape.returns}")
        if len(_BY_SERIES) >= _CACHE_SIZE:
            _BY_SERIES.clear()
        found = _BY_SERIES[buckets, shape] = Statement(
            f"{buckets.name}_by_series", buckets.neo4j,
            buckets.ladybug.replace(returns, "RETURN k.sid AS sid, "))
    return found


# Names of every series of buckets in the window (the registry's fallback: all
# of them, not only the missing ids, so that a collision with a known id shows).
_BUCKET_NAMES = Statement.same(
    "bucket_series_names", f"MATCH (k:CallBucket) WHERE {IN_WINDOW} "
    "RETURN DISTINCT k.client AS client, k.server AS server, k.protocol AS protocol, "
    "k.path AS path")
def named(store: GraphStore, table: pa.Table, names_of: Statement, args: Mapping[str, Any]
           ) -> pa.Table | None:
    """The table with the names of its series ids in place of them (None after a
    collision of ids). Names missing from the registry are read with `names_of`."""
    registry = tiers.SERIES
    sids = table.column("sid").to_pylist()
    if any(sid not in registry.names for sid in sids):
        for row in store.read(names_of, args):
            registry.add(row["client"], row["server"], row["protocol"], row["path"])
    if registry.collided:
        return None
    names = [registry.names[sid] for sid in sids]
    columns = {name: pa.array(values, pa.string()) for name, values in zip(
        ("client", "server", "protocol", "path"), zip(*names, strict=True), strict=True)}
    return pa.table({**columns, **{n: table.column(n) for n in table.column_names
                                   if n != "sid"}})
