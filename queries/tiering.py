"""Window decomposition: whole tier blocks in the middle, finest buckets at the edges.

Every traffic query (map, detail, external, diff, blast-radius health) reads
the same way: a bucket statement (over CallBucket, the window's edges) and a
tier statement (over CallTier, whole blocks), both returning the same group
columns with the AGGREGATES columns, read in one snapshot with the tier range
they were planned against. Where the store has no tiers (Neo4j), or the filter
reads bucket counters (`status`, `error`: a match depends on the bucket), the
whole window comes from the buckets, as before.

A window selects buckets by start: [since, until). Tiers hold the finest buckets
starting in [low, high) (`topology/store/tiers.py`); a tier row of width w at
block b holds the buckets starting in [b, min(b + w, high)). The plan covers
[max(since, low), min(until, high)) greedily with the widest block that starts
there and ends inside, and leaves to the buckets only what precedes the first
block and follows the last: an unaligned last hour reads about 2 x 2.5 minutes
of buckets plus 5 to 10 tier rows per series, instead of 60 bucket rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from queries import fold, series, series_window, window_cache
from queries.compiler import CompiledFilter
from queries.window import IN_WINDOW, Window
from topology import histogram
from topology.store import tiers
from topology.store.base import GraphStore, Reader
from topology.store.changes import changes_of
from topology.store.statement import Dialect, Statement
from topology.store.tiers import TierRange

Row = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    ranges: tuple[tuple[int, int], ...]  # bucket-start ranges read from CallBucket
    blocks: tuple[tuple[int, int, int], ...]  # (width, first, end): tier rows starting there

    @property
    def tier_params(self) -> dict[str, int]:
        params = {"t_first": min(b[1] for b in self.blocks),
                  "t_end": max(b[2] for b in self.blocks)}
        for i, (width, first, end) in enumerate(self.blocks):
            params.update({f"t_w{i}": width, f"t_a{i}": first, f"t_b{i}": end})
        return params


def plan(window: Window, tier_range: TierRange | None) -> Plan:
    """Which tier blocks and which bucket ranges make up the window, exactly."""
    whole = Plan(((window.since, window.until),), ())
    if tier_range is None or not tier_range.levels:
        return whole
    low, high, levels = tier_range.low, tier_range.high, tier_range.levels
    start, stop = max(window.since, low), min(window.until, high)
    position = -(-start // levels[0]) * levels[0]
    first = position
    chosen: list[tuple[int, int]] = []
    while position < stop:
        for width in reversed(levels):
            if position % width == 0 and min(position + width, high) <= stop:
                chosen.append((width, position))
                position = min(position + width, high)
                break
        else:
            break
    if not chosen:
        return whole
    ranges = tuple(r for r in ((window.since, first), (position, window.until)) if r[0] < r[1])
    return Plan(ranges, block_runs(chosen))


def block_runs(chosen: list[tuple[int, int]]) -> tuple[tuple[int, int, int], ...]:
    """Consecutive blocks of one width as (width, first start, last start + width)."""
    runs: list[list[int]] = []
    for width, start in chosen:
        if runs and runs[-1][0] == width and runs[-1][2] == start:
            runs[-1][2] = start + width
        else:
            runs.append([width, start, start + width])
    return tuple((w, a, b) for w, a, b in runs)


# -- statements over the tiers -------------------------------------------------

def _aggregates(dialect: Dialect, packed: bool) -> str:
    """The AGGREGATES columns over tier rows: histogram bins packed two per column,
    or, for groups whose packed sums could carry, summed bin by bin."""
    def total(expression: str, alias: str) -> str:
        if dialect is Dialect.LADYBUG:
            return f"CAST(sum({expression}) AS INT64) AS {alias}"
        return f"sum({expression}) AS {alias}"

    columns = [total("k.requests", "requests"), total("k.errors", "errors"),
               "sum(k.latency_sum) AS latency", total("k.total", "total")]
    if packed:
        columns += [total(f"k.b{i}", f"b{i}") for i in range(tiers.PACKED)]
    else:
        for i in range(histogram.BIN_COUNT):
            column = f"k.b{i // 2}"
            part = (f"{column} % {tiers.PACK_LIMIT}" if i % 2 == 0
                    else f"{column} / {tiers.PACK_LIMIT}")
            columns.append(total(part, f"h{i}"))
    return ", ".join(columns)


AGGREGATES = {
    (dialect, packed): _aggregates(dialect, packed)
    for dialect in Dialect for packed in (True, False)
}


@dataclass(frozen=True)
class Shape:
    """A traffic query's shape, shared by its bucket and tier statements."""

    name: str
    returns: str  # group columns over `k`
    where: str = ""  # extra conditions on `k`, e.g. " AND k.server IN $ids"
    server_where: str = ""  # a condition on the server `s`, which joins it
    # returns groups per (client, server, protocol, path): tier rows may be grouped
    # by their series id instead (`tiers.SeriesNames`)
    series: bool = False


def _slot(i: int) -> str:
    return f"(k.width = $t_w{i} AND k.bucket >= $t_a{i} AND k.bucket < $t_b{i})"


def _blocks(slots: int) -> str:
    blocks = " OR ".join(_slot(i) for i in range(slots))
    return f"MATCH (k:CallTier) WHERE k.bucket >= $t_first AND k.bucket < $t_end AND ({blocks})"


def tier_text(
    shape: Shape, compiled: CompiledFilter | None, dialect: Dialect, slots: int, packed: bool,
    by_series: bool = False, counted: bool = False, minus: int = 0, per_block: bool = False,
) -> str:
    text = (compiled.prelude(dialect) if compiled else "") + _blocks(slots) + shape.where
    variables = compiled.variables if compiled else frozenset()
    joined = False
    if "c" in variables:
        text += " MATCH (c:Service {id: k.client})"
        joined = True
    if "s" in variables or shape.server_where:
        text += " MATCH (s:Service {id: k.server})"
        joined = True
    predicates = [p for p in (compiled.predicate(dialect) if compiled else "true",
                              shape.server_where) if p and p != "true"]
    if predicates:
        text += (" WHERE " if joined else " AND ") + " AND ".join(predicates)
    returns = "k.sid AS sid" if by_series else shape.returns
    if per_block:  # grouped by tier row too: one result row per series and block
        returns += ", k.width AS width, k.bucket AS block"
    if minus:  # the last `minus` slots hold blocks to subtract: grouped apart
        slot = " OR ".join(_slot(i) for i in range(slots - minus, slots))
        returns += f", ({slot}) AS minus"
    if counted:  # the finest buckets summed, to tell a series present in the window
        returns += (", CAST(sum(k.nbuckets) AS INT64) AS n" if dialect is Dialect.LADYBUG
                    else ", sum(k.nbuckets) AS n")
    return f"{text} RETURN {returns}, {AGGREGATES[dialect, packed]}"


_CACHE: dict[tuple, Statement] = {}
_CACHE_SIZE = 512


def tier_statement(
    shape: Shape, compiled: CompiledFilter | None, slots: int, packed: bool = True,
    by_series: bool = False, counted: bool = False, minus: int = 0, per_block: bool = False,
) -> Statement:
    """The tier statement of a shape and filter (cached by text-relevant parts:
    parameter values never reach the text)."""
    key = (shape, slots, packed, by_series, counted, minus, per_block) + (
        (compiled.neo4j, compiled.ladybug, compiled.bindings, compiled.variables)
        if compiled else ())
    found = _CACHE.get(key)
    if found is None:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        found = _CACHE[key] = Statement(
            f"{shape.name}_tiers" + ("" if packed else "_unpacked")
            + ("_by_series" if by_series else "") + ("_counted" if counted else "")
            + ("_signed" if minus else "") + ("_per_block" if per_block else ""),
            *(tier_text(shape, compiled, dialect, slots, packed, by_series, counted, minus,
                        per_block)
              for dialect in (Dialect.NEO4J, Dialect.LADYBUG)),
        )
    return found


# Both edges of a window in one statement: a second grouped result costs more
# than testing the range of every bucket in the window.
_EDGES = f"{IN_WINDOW} AND (k.bucket < $head_end OR k.bucket >= $tail_start)"
_EDGE_STATEMENTS: dict[Statement, Statement] = {}


def edges(buckets: Statement) -> Statement:
    found = _EDGE_STATEMENTS.get(buckets)
    if found is None:
        texts = [buckets.neo4j, buckets.ladybug]
        if any(text.count(IN_WINDOW) != 1 for text in texts):
            raise ValueError(f"statement {buckets.name} does not select buckets by window")
        found = _EDGE_STATEMENTS[buckets] = Statement(
            f"{buckets.name}_edges", *(text.replace(IN_WINDOW, _EDGES) for text in texts))
    return found


def bucket_reads(
    buckets: Statement, found: Plan, params: Mapping[str, Any]
) -> list[tuple[Statement, dict[str, Any]]]:
    """The statements (and parameters) reading the plan's bucket ranges."""
    if len(found.ranges) == 2:
        (since, head_end), (tail_start, until) = found.ranges
        return [(edges(buckets), {**params, "since": since, "until": until,
                                   "head_end": head_end, "tail_start": tail_start})]
    return [(buckets, {**params, "since": since, "until": until})
            for since, until in found.ranges]


def _from_packed(row: Row) -> Row:
    hist = tiers.unpack(row.pop(f"b{i}") or 0 for i in range(tiers.PACKED))
    for i, count in enumerate(hist):
        row[f"h{i}"] = count
    return row


def read_traffic(
    store: GraphStore, window: Window, buckets: Statement, shape: Shape,
    compiled: CompiledFilter | None, params: Mapping[str, Any],
    on_plan: Callable[[Plan], None] | None = None,
) -> list[Row]:
    """Rows of `buckets` over the window's edges and of the tier statement over its
    middle, read in one snapshot: group columns plus the AGGREGATES columns (h0..),
    several rows per group where both parts hold it (callers fold them)."""
    with store.snapshot() as read:
        usable = compiled is None or not compiled.per_bucket
        found = plan(window, store.tier_range(read) if usable else None)
        if on_plan is not None:
            on_plan(found)
        rows: list[Row] = []
        for statement, args in bucket_reads(buckets, found, params):
            rows += series.bucket_rows(read, store.dialect, shape, statement, args)
        if found.blocks:
            rows += _tier_rows(read, shape, compiled, found, params)
    return rows


def _tier_rows(
    read: Reader, shape: Shape, compiled: CompiledFilter | None, found: Plan,
    params: Mapping[str, Any],
) -> list[Row]:
    args = {**params, **found.tier_params}
    rows = read(tier_statement(shape, compiled, len(found.blocks)), args)
    if all((row["total"] or 0) < tiers.PACK_LIMIT for row in rows):
        return [_from_packed(row) for row in rows]
    return read(tier_statement(shape, compiled, len(found.blocks), packed=False), args)


def read_traffic_table(
    store: GraphStore, window: Window, buckets: Statement, shape: Shape,
    compiled: CompiledFilter | None, params: Mapping[str, Any],
) -> pa.Table | None:
    """`read_traffic` as one Arrow table (h0.. columns, tier rows unpacked), or None
    when nothing matched. A series shape on the embedded store is read and summed
    by series id, and named once per series (`queries/series_window.py`), from the
    partial sums kept in memory where it can (`queries/window_cache.py`)."""
    changes = changes_of(store)
    generation = 0 if changes is None else changes.generation  # before the snapshot
    with store.snapshot():
        usable = compiled is None or not compiled.per_bucket
        tier_range = store.tier_range() if usable else None
        found = plan(window, tier_range)
        if series.usable(store, shape):
            table = window_cache.read(store, generation, found, tier_range, buckets, shape,
                                      compiled, params)
            if table is window_cache.UNCACHED:
                table = series_window.read(store, window, tier_range, buckets, shape,
                                           compiled, params)
            if table is not series_window.COLLIDED:
                return table
        tables = [store.read_arrow(statement, args)
                  for statement, args in bucket_reads(buckets, found, params)]
        if found.blocks:
            tables.append(tier_table(store, shape, compiled, found, params))
    return fold.concat(tables)


def tier_table(
    store: GraphStore, shape: Shape, compiled: CompiledFilter | None, found: Plan,
    params: Mapping[str, Any], *, by_series: bool = False, counted: bool = False,
    minus: int = 0,
) -> pa.Table:
    """The tier rows of the plan's blocks, unpacked (h0..), grouped by the shape's
    columns or by `sid` (`counted`: with `n`, the finest buckets they hold; `minus`:
    the last blocks grouped apart, flagged by a `minus` column)."""
    args = {**params, **found.tier_params}
    slots = len(found.blocks)
    flags = {"by_series": by_series, "counted": counted, "minus": minus}
    packed = store.read_arrow(tier_statement(shape, compiled, slots, **flags), args)
    if not packed.num_rows or pc.max(packed.column("total")).as_py() < tiers.PACK_LIMIT:
        return fold.unpack(packed)
    return store.read_arrow(tier_statement(shape, compiled, slots, packed=False, **flags),
                            args).drop_columns(["total"])


_SERIES_NAMES: dict[int, Statement] = {}


def tier_names(slots: int) -> Statement:
    statement = _SERIES_NAMES.get(slots)
    if statement is None:
        statement = _SERIES_NAMES[slots] = Statement.same(
            "tier_series_names", _blocks(slots) + " RETURN DISTINCT k.client AS client, "
            "k.server AS server, k.protocol AS protocol, k.path AS path")
    return statement
