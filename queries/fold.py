"""Folding aggregate rows held in Arrow tables: sums per pair and quantiles, vectorised.

The map of a large graph folds tens of thousands of rows into ten thousand
edges; done row by row in Python that cost more than the database's part.
Here the sums run in Arrow's group-by and the quantile estimate runs over
whole columns, with the same floating-point operations, in the same order, as
`topology.histogram.p50_p95_p99`, so every figure is identical to it
(tests/queries/test_fold.py compares them).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import accumulate

import pyarrow as pa
import pyarrow.compute as pc

from topology import histogram
from topology.store import tiers

HIST = tuple(f"h{i}" for i in range(histogram.BIN_COUNT))
_LOWER = pa.array([0.0, *map(float, histogram.BOUNDS_MS)], pa.float64())
_UPPER = pa.array([*map(float, histogram.BOUNDS_MS), 0.0], pa.float64())
_OPEN_BIN = len(histogram.BOUNDS_MS)


_PAUSES = threading.Lock()
_paused = [0, False]  # blocks inside no_collection, whether the collector was on


@contextmanager
def no_collection() -> Iterator[None]:
    """The cyclic garbage collector paused while thousands of objects that hold no
    cycles are built: their allocations trigger collections that scan far more than
    them (a map of 10,000 edges: about 40% of the fold's time in a profile), and none
    of them can be cyclic garbage. Threads may overlap: the first to enter pauses
    the collector, the last to leave restores it as it found it."""
    with _PAUSES:
        if _paused[0] == 0:
            _paused[1] = gc.isenabled()
            gc.disable()
        _paused[0] += 1
    try:
        yield
    finally:
        with _PAUSES:
            _paused[0] -= 1
            if _paused[0] == 0 and _paused[1]:
                gc.enable()


def unpack(table: pa.Table) -> pa.Table:
    """A tier result (packed b0.., total) as a bucket result (h0..)."""
    columns = {name: table.column(name) for name in table.column_names
               if not (name.startswith("b") and name[1:].isdigit()) and name != "total"}
    for i in range(histogram.BIN_COUNT):
        packed = table.column(f"b{i // 2}")
        columns[f"h{i}"] = (pc.bit_wise_and(packed, tiers.PACK_MASK) if i % 2 == 0
                            else pc.shift_right(packed, tiers.PACK_BITS))
    return pa.table(columns)


def concat(tables: list[pa.Table]) -> pa.Table | None:
    """The non-empty tables, with their common columns cast alike, as one."""
    found = [t for t in tables if t.num_rows]
    if not found:
        return None
    if len(found) == 1:
        return found[0]
    schema = found[0].schema
    return pa.concat_tables([t.select(schema.names).cast(schema) for t in found])


_SUMMED = ("requests", "errors", "latency", *HIST)
_SUM_TYPES = {"requests": pa.int64(), "errors": pa.int64(), "latency": pa.float64(),
              **dict.fromkeys(HIST, pa.int64())}


def sums(table: pa.Table, keys: list[str], *, ordered: bool = True) -> pa.Table:
    """requests, errors, latency and h0.. summed per key, sorted by key (unless not
    `ordered`: then in the order the keys first appear)."""
    summed = table.group_by(keys, use_threads=False).aggregate([(n, "sum") for n in _SUMMED])
    renamed = [name.removesuffix("_sum") if name not in keys else name
               for name in summed.column_names]
    summed = summed.rename_columns(renamed)
    return summed.sort_by([(k, "ascending") for k in keys]) if ordered else summed


def quantiles(table: pa.Table, qs: tuple[float, ...] = (0.5, 0.95, 0.99)) -> list[list]:
    """Per row, the q-quantiles of its h0.. histogram (None where it is empty)."""
    return [found.to_pylist() for found in quantile_arrays(table, qs)]


def quantile_arrays(table: pa.Table, qs: tuple[float, ...] = (0.5, 0.95, 0.99)
                    ) -> list[pa.Array]:
    """`quantiles` as Arrow float64 arrays (null where the histogram is empty).

    The quantiles are searched for together: the rows once per quantile, as the
    chunks of one chunked array (no copy), so each compute function is called
    once for all of them (its call costs as much as a few thousand rows)."""
    n = table.num_rows
    if not n:
        return [pa.array([], pa.float64()) for _ in qs]
    hist = [pc.cast(table.column(name), pa.int64()).combine_chunks() for name in HIST]
    running = list(accumulate(hist, pc.add))
    total = pc.cast(running[-1], pa.float64())
    rank = pa.chunked_array([pc.multiply(total, q) for q in qs])
    hist = [pa.chunked_array([h] * len(qs)) for h in hist]
    running = [pa.chunked_array([r] * len(qs)) for r in running]
    index = pc.min_element_wise(_below(running, rank), _OPEN_BIN)
    lower = pc.take(_LOWER, index)
    upper = pc.take(_UPPER, index)
    seen = pc.choose(index, pc.subtract(running[-1], running[-1]), *running[:-1])
    count = pc.choose(index, *hist)
    inside = pc.add(lower, pc.divide(
        pc.multiply(pc.subtract(upper, lower),
                    pc.subtract(rank, pc.cast(seen, pa.float64()))),
        pc.cast(count, pa.float64())))
    value = pc.if_else(pc.equal(index, _OPEN_BIN), lower, inside)
    found = pc.if_else(pc.equal(running[-1], 0), pa.scalar(None, pa.float64()),
                       value).combine_chunks()
    return [found.slice(i * n, n) for i in range(len(qs))]


_STEPS = tuple(1 << i for i in reversed(range(len(HIST).bit_length())))


def _below(running: list[pa.ChunkedArray], rank: pa.ChunkedArray) -> pa.ChunkedArray:
    """Per row, how many of its running sums are below its rank: the sums grow from bin
    to bin, so a binary search over the bins (a few passes over the rows) counts them."""
    last = len(running) - 1
    found: pa.ChunkedArray | None = None  # the sums before it are all below the rank
    reach = 0  # the largest value found may hold
    for step in _STEPS:
        if found is None:  # every row probes the same bin
            below = pc.less(running[min(step - 1, last)], rank)
            if step - 1 > last:
                below = pc.and_(below, False)
            found = pc.if_else(below, pa.scalar(step, pa.int64()), pa.scalar(0, pa.int64()))
        else:
            probe = pc.add(found, step - 1)
            if reach + step - 1 <= last:
                below = pc.less(pc.choose(probe, *running), rank)
            else:
                below = pc.and_(pc.less_equal(probe, last), pc.less(
                    pc.choose(pc.min_element_wise(probe, last), *running), rank))
            found = pc.if_else(below, pc.add(found, step), found)
        reach += step
    assert found is not None
    return found


PAIR = ("client", "server")
SERIES = (*PAIR, "protocol", "path")


def pairs(table: pa.Table, top_paths: int) -> pa.Table:
    """Rows per (client, server, protocol, path), several per group allowed, folded per
    (client, server), sorted by it: `sums` plus `protocols` (distinct, sorted), `paths` and
    `path_requests` (requests per path, busiest first, ties by path, at most `top_paths`).

    Most pairs carry one series (one protocol, one path): when every pair does, once
    the rows of each series are added up, the fold is a sort and no list is grouped."""
    keys = list(PAIR)
    order = pc.sort_indices(table, [(k, "ascending") for k in keys])
    if not _repeats(table, order):  # one row per pair: sorting them is the fold
        return _one_series(table.take(order), top_paths, by_pair=True)
    count = table.group_by(keys, use_threads=False).aggregate([]).num_rows
    series = sums(table, list(SERIES), ordered=False)
    if count == series.num_rows:
        return _one_series(series, top_paths)
    folded = sums(table, keys)
    by_path = table.group_by([*keys, "path"], use_threads=False).aggregate(
        [("requests", "sum")]).sort_by([("requests_sum", "descending"), ("path", "ascending")])
    paths = _by_pair(by_path.group_by(keys, use_threads=False).aggregate(
        [("path", "list"), ("requests_sum", "list")]))
    by_protocol = table.group_by([*keys, "protocol"], use_threads=False).aggregate([]).sort_by(
        "protocol")
    protocols = _by_pair(by_protocol.group_by(keys, use_threads=False).aggregate(
        [("protocol", "list")]))
    return _with_lists(folded, protocols.column("protocol_list"), paths.column("path_list"),
                       paths.column("requests_sum_list"), top_paths)


def _repeats(table: pa.Table, order: pa.Array) -> bool:
    """Whether a pair has several rows: two neighbours once sorted by pair (`order`)
    are the same pair (cheaper than counting the pairs by hashing them)."""
    if table.num_rows < 2:
        return False
    client, server = (table.column(name).take(order) for name in PAIR)
    return pc.any(pc.and_(pc.equal(client[1:], client[:-1]),
                          pc.equal(server[1:], server[:-1]))).as_py()


def _one_series(table: pa.Table, top_paths: int, *, by_pair: bool = False) -> pa.Table:
    """`pairs` of a table holding one row per pair (`by_pair`: already sorted by it)."""
    ordered = table if by_pair else _by_pair(table)
    folded = pa.table({
        **{name: ordered.column(name) for name in PAIR},
        **{name: pc.cast(ordered.column(name), _SUM_TYPES[name]) for name in _SUMMED}})
    # 0, 1, .., n without a Python range (a few milliseconds at 20,000 rows)
    offsets = pc.cumulative_sum(pa.concat_arrays([
        pa.array([0], pa.int32()), pa.repeat(pa.scalar(1, pa.int32()), ordered.num_rows)]))

    def single(name: str, type_: pa.DataType) -> pa.Array:
        return pa.ListArray.from_arrays(
            offsets, pc.cast(ordered.column(name), type_).combine_chunks())

    return _with_lists(folded, single("protocol", pa.string()), single("path", pa.string()),
                       single("requests", pa.int64()), top_paths, longest=1)


def _with_lists(folded: pa.Table, protocols: pa.Array, paths: pa.Array,
                path_requests: pa.Array, top_paths: int, longest: int | None = None) -> pa.Table:
    """`longest`: the most items a path list holds, when known (no cut below it)."""
    if longest is None or longest > top_paths:
        paths = pc.list_slice(paths, 0, top_paths)
        path_requests = pc.list_slice(path_requests, 0, top_paths)
    return (folded.append_column("protocols", protocols)
            .append_column("paths", paths).append_column("path_requests", path_requests))


def _by_pair(table: pa.Table) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in PAIR])
