"""A window's traffic per series, read by series id and named once (the map's read).

The bucket and tier reads group by the integer series id (`sid`, queries/series.py);
their tables are summed per id in Arrow and only then named, one name lookup per
series instead of one per row read. When covering the window's head with a whole
tier block minus what precedes the start reads fewer rows (`subtracting.split`),
the minus parts are read too and subtracted; the bucket rows of both parts then
come from one statement over the two edges of the window, grouped by side, and
the tier rows of both parts from one statement, grouped by side too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from queries import fold, series, subtracting, tiering
from queries.compiler import CompiledFilter
from queries.window import Window
from topology.store.base import GraphStore
from topology.store.statement import Statement
from topology.store.tiers import TierRange

COLLIDED = pa.table({})  # two series share an id: read by the names instead
Names = list[tuple[Statement, Mapping[str, Any]]]


def read(
    store: GraphStore, window: Window, tier_range: TierRange | None, buckets: Statement,
    shape: tiering.Shape, compiled: CompiledFilter | None, params: Mapping[str, Any],
) -> pa.Table | None:
    """One row per series with the AGGREGATES columns (h0..) and its names (None when
    nothing matched; COLLIDED after a collision of ids)."""
    names_of: Names = []
    split = subtracting.split(window, tier_range)
    if split is None:
        table = fold.concat(_part(store, buckets, shape, compiled, params,
                                  tiering.plan(window, tier_range), names_of))
        summed = None if table is None else fold.sums(table, ["sid"], ordered=False)
    else:
        plus, minus = _split(store, buckets, shape, compiled, params, split, names_of)
        summed = subtracting.subtract(plus, minus)
    if summed is None or not summed.num_rows:
        return None
    named = series.named(store, summed, names_of)
    return COLLIDED if named is None else named


def _part(
    store: GraphStore, buckets: Statement, shape: tiering.Shape,
    compiled: CompiledFilter | None, params: Mapping[str, Any], part: tiering.Plan,
    names_of: Names, *, counted: bool = False,
) -> list[pa.Table]:
    """The tables of one plan's bucket ranges and tier blocks, grouped by `sid`."""
    reads = tiering.bucket_reads(buckets, part, params)
    tables = [series.bucket_sums(store, shape, statement, args, counted=counted)
              for statement, args in reads]
    names_of.extend((series.BUCKET_NAMES, args) for _, args in reads)
    if part.blocks:
        tables.append(tiering.tier_table(store, shape, compiled, part, params,
                                         by_series=True, counted=counted))
        names_of.append((tiering.tier_names(len(part.blocks)),
                         {**params, **part.tier_params}))
    return tables


def _split(
    store: GraphStore, buckets: Statement, shape: tiering.Shape,
    compiled: CompiledFilter | None, params: Mapping[str, Any], split: subtracting.Split,
    names_of: Names,
) -> tuple[list[pa.Table], list[pa.Table]]:
    """The tables to add and to subtract. Bucket rows before the start (minus) and at
    the end (plus) come from one edges statement grouped by side when both exist; the
    tier rows of both from one statement when no tier row is in both."""
    plus, minus = split.plus, split.minus
    tables: tuple[list[pa.Table], list[pa.Table]] = ([], [])
    ranges = minus.ranges, plus.ranges
    if len(ranges[0]) == len(ranges[1]) == 1 and ranges[0][0][1] <= ranges[1][0][0]:
        (since, head_end), (tail_start, until) = ranges[0][0], ranges[1][0]
        args = {**params, "since": since, "until": until, "head_end": head_end,
                "tail_start": tail_start}
        _sides(series.bucket_sums(store, shape, tiering.edges(buckets), args, counted=True,
                                  signed=True), tables)
        names_of.append((series.BUCKET_NAMES, args))
        plus, minus = tiering.Plan((), plus.blocks), tiering.Plan((), minus.blocks)
    if plus.blocks and minus.blocks and not _overlap(plus.blocks, minus.blocks):
        both = tiering.Plan((), plus.blocks + minus.blocks)
        _sides(tiering.tier_table(store, shape, compiled, both, params, by_series=True,
                                  counted=True, minus=len(minus.blocks)), tables)
        names_of.append((tiering.tier_names(len(both.blocks)), {**params, **both.tier_params}))
        plus, minus = tiering.Plan(plus.ranges, ()), tiering.Plan(minus.ranges, ())
    tables[0].extend(_part(store, buckets, shape, compiled, params, plus, names_of,
                           counted=True))
    tables[1].extend(_part(store, buckets, shape, compiled, params, minus, names_of,
                           counted=True))
    return tables


def _sides(table: pa.Table, tables: tuple[list[pa.Table], list[pa.Table]]) -> None:
    """A table grouped by `minus` split into the lists of rows to add and to subtract."""
    before = table.column("minus")
    tables[0].append(table.filter(pc.invert(before)).drop_columns(["minus"]))
    tables[1].append(table.filter(before).drop_columns(["minus"]))


def _overlap(a: tuple[tuple[int, int, int], ...], b: tuple[tuple[int, int, int], ...]) -> bool:
    """Whether two block runs share a tier row (same width, overlapping starts)."""
    return any(wa == wb and sa < eb and sb < ea for wa, sa, ea in a for wb, sb, eb in b)
