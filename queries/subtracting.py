"""A window's head covered by a whole tier block minus what precedes the window.

`tiering.plan` reads the minutes between the window's start and the first block
boundary from the buckets (up to 29 minutes before a 30-minute block). When it
reads fewer rows, the head can instead come from the wider block that contains
the start, minus the part of that block before the start: tier blocks and
buckets of [anchor, since), subtracted. Counters and histograms subtract
exactly; a series present only before the start sums to zero buckets (the
reads count them: `n`, tier rows' `nbuckets`) and is dropped, so it never
becomes an edge. Only the series-keyed map read uses it (`series_window`):
float sums such as `latency` then differ from the buckets' in their last bits,
as through the tiers already.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from queries import fold, tiering
from queries.window import Window
from topology.model import MINUTE
from topology.store.tiers import TierRange


@dataclass(frozen=True)
class Split:
    plus: tiering.Plan  # [anchor, until)
    minus: tiering.Plan  # [anchor, since), subtracted


def rows(found: tiering.Plan) -> int:
    """Rows per series a plan reads: finest buckets and tier rows."""
    buckets = sum(-(-b // MINUTE) - -(-a // MINUTE) for a, b in found.ranges)
    return buckets + sum(-(-(b - a) // w) for w, a, b in found.blocks)


def split(window: Window, tier_range: TierRange | None) -> Split | None:
    """The cheapest head-subtracting decomposition of the window, when it reads fewer
    rows per series than `plan` (None otherwise)."""
    base = tiering.plan(window, tier_range)
    if tier_range is None or not base.blocks:
        return None
    best, fewest = None, rows(base)
    for width in tier_range.levels:
        anchor = window.since - window.since % width
        if anchor < tier_range.low or anchor == window.since:
            continue
        plus = tiering.plan(Window(anchor, window.until), tier_range)
        if not plus.blocks or any(since == anchor for since, _ in plus.ranges):
            continue  # the block at the anchor is not covered by the tiers
        minus = tiering.plan(Window(anchor, window.since), tier_range)
        count = rows(plus) + rows(minus)
        if count < fewest:
            best, fewest = Split(plus, minus), count
    return best


COUNTERS = ("requests", "errors", "latency", *fold.HIST, "n")


def negated(table: pa.Table) -> pa.Table:
    """The table with its counters negated (the parts to subtract)."""
    for name in COUNTERS:
        index = table.schema.get_field_index(name)
        table = table.set_column(index, name, pc.negate(table.column(name)))
    return table


def present(table: pa.Table) -> pa.Table:
    """Series summed per sid (with `n`) that hold at least one bucket, without `n`."""
    summed = table.group_by(["sid"], use_threads=False).aggregate(
        [(name, "sum") for name in COUNTERS])
    summed = summed.rename_columns([name.removesuffix("_sum") for name in summed.column_names])
    return summed.filter(pc.greater(summed.column("n"), 0)).drop_columns(["n"])


def subtract(plus: list[pa.Table], minus: list[pa.Table]) -> pa.Table | None:
    """The plus tables added and the minus tables subtracted, per series id (tables
    with `n`), keeping the series that hold at least one bucket."""
    table = fold.concat(plus + [negated(t) for t in minus])
    return None if table is None else present(table)
