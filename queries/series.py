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

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from queries import fold
from queries.window import AGGREGATES, IN_WINDOW
from topology import histogram
from topology.store import tiers
from topology.store.base import GraphStore, Reader
from topology.store.statement import Dialect, Statement

if TYPE_CHECKING:
    from queries.tiering import Shape

Row = dict[str, Any]
_CACHE_SIZE = 512


def usable(store: GraphStore, shape: Shape) -> bool:
    """Whether reads of the shape may group by the series id."""
    return shape.series and store.dialect is Dialect.LADYBUG and not tiers.SERIES.collided


def bucket_sums(
    store: GraphStore, shape: Shape, buckets: Statement, args: Mapping[str, Any],
    *, counted: bool = False, signed: bool = False,
) -> pa.Table:
    """A bucket read grouped by `sid` (the shape must be `usable`): sid plus the
    AGGREGATES columns (h0..). The histogram is summed packed two bins per column,
    like the tiers' (13 sums instead of 26: most of the database's cost), and read
    again bin by bin when a group's total could carry between bins. `counted` adds
    `n`, the number of buckets summed; `signed` (an edges statement) groups by
    `minus` too: whether the buckets precede `$head_end`."""
    table = store.read_arrow(by_series(buckets, shape, True, counted, signed), args)
    if not table.num_rows or pc.max(table.column("total")).as_py() < tiers.PACK_LIMIT:
        return fold.unpack(table)
    return store.read_arrow(by_series(buckets, shape, False, counted, signed), args)


def bucket_rows(
    read: Reader, dialect: Dialect, shape: Shape, buckets: Statement, args: Mapping[str, Any]
) -> list[Row]:
    """`bucket_table` as rows."""
    if shape.series and dialect is Dialect.LADYBUG and not tiers.SERIES.collided:
        rows = read(by_series(buckets, shape), args)
        registry = tiers.SERIES
        if any(row["sid"] not in registry.names for row in rows):
            for row in read(BUCKET_NAMES, args):
                registry.add(row["client"], row["server"], row["protocol"], row["path"])
        if not registry.collided:
            return [_with_names(row, registry.names[row.pop("sid")]) for row in rows]
    return read(buckets, args)


def _with_names(row: Row, names: tuple[str, str, str, str]) -> Row:
    client, server, protocol, path = names
    return {"client": client, "server": server, "protocol": protocol, "path": path, **row}


_BY_SERIES: dict[tuple[Statement, Shape, bool, bool, bool, bool], Statement] = {}
_AGGREGATES = AGGREGATES["ladybug"]
_BINS = [f"k.h{i}" for i in range(histogram.BIN_COUNT)]
# The AGGREGATES columns with the histogram packed as in the tiers (bin 2i in the low
# 31 bits, bin 2i + 1 above) and its total, which tells when a sum could carry.
_PACKED = ", ".join([
    _AGGREGATES.split(", CAST(sum(k.h0)")[0],
    f"CAST(sum({' + '.join(_BINS)}) AS INT64) AS total",
    *(f"CAST(sum({' + '.join(_BINS[2 * i:2 * i + 1])}"
      + (f" + {_BINS[2 * i + 1]} * {tiers.PACK_LIMIT}" if 2 * i + 1 < len(_BINS) else "")
      + f") AS INT64) AS b{i}" for i in range(tiers.PACKED))])


def by_series(
    buckets: Statement, shape: Shape, packed: bool = False, counted: bool = False,
    signed: bool = False, per_start: bool = False,
) -> Statement:
    """The bucket statement grouping by `sid` instead of the shape's group columns,
    its histogram `packed` or not, `counted` or not, `signed` or not, and `per_start`
    (grouped by the bucket start too, returned as `start`) or not (LadybugDB text
    only: Neo4j buckets have no series id)."""
    key = (buckets, shape, packed, counted, signed, per_start)
    found = _BY_SERIES.get(key)
    if found is None:
        returns = f"RETURN {shape.returns}, "
        if buckets.ladybug.count(returns) != 1:
            raise ValueError(f"statement {buckets.name} does not return {shape.returns}")
        if signed and "$head_end" not in buckets.ladybug:
            raise ValueError(f"statement {buckets.name} does not read a window's edges")
        text = buckets.ladybug.replace(
            returns, "RETURN k.sid AS sid, " + ("k.bucket < $head_end AS minus, " if signed
                                                else "")
            + ("k.bucket AS start, " if per_start else "")
            + ("count(*) AS n, " if counted else ""))
        if packed:
            if not text.endswith(_AGGREGATES):
                raise ValueError(f"statement {buckets.name} does not end with the aggregates")
            text = text.removesuffix(_AGGREGATES) + _PACKED
        if len(_BY_SERIES) >= _CACHE_SIZE:
            _BY_SERIES.clear()
        found = _BY_SERIES[key] = Statement(
            f"{buckets.name}_by_series" + ("_packed" if packed else "")
            + ("_counted" if counted else "") + ("_signed" if signed else "")
            + ("_per_start" if per_start else ""),
            buckets.neo4j, text)
    return found


# Names of every series of buckets in the window (the registry's fallback: all
# of them, not only the missing ids, so that a collision with a known id shows).
BUCKET_NAMES = Statement.same(
    "bucket_series_names", f"MATCH (k:CallBucket) WHERE {IN_WINDOW} "
    "RETURN DISTINCT k.client AS client, k.server AS server, k.protocol AS protocol, "
    "k.path AS path")
def named(store: GraphStore, table: pa.Table,
          names_of: Sequence[tuple[Statement, Mapping[str, Any]]]) -> pa.Table | None:
    """The table with the names of its series ids in place of them (None after a
    collision of ids). Names missing from the registry are read with `names_of`."""
    with fold.no_collection():
        return _named(store, table, names_of)


def _named(store: GraphStore, table: pa.Table,
           names_of: Sequence[tuple[Statement, Mapping[str, Any]]]) -> pa.Table | None:
    registry = tiers.SERIES
    sids = table.column("sid").to_pylist()
    known = registry.names
    if any(sid not in known for sid in sids):
        for statement, args in names_of:
            for row in store.read(statement, args):
                registry.add(row["client"], row["server"], row["protocol"], row["path"])
    if registry.collided:
        return None
    names = [known[sid] for sid in sids]
    columns = {name: pa.array(values, pa.string()) for name, values in zip(
        ("client", "server", "protocol", "path"), zip(*names, strict=True), strict=True)}
    return pa.table({**columns, **{n: table.column(n) for n in table.column_names
                                   if n != "sid"}})
