"""The map's window read from partial sums kept in memory per bucket start and tier block.

The embedded store is the only writer of its file and reports each write after
commit (`topology/store/changes.py`). A window splits into units that stay put
while the window slides (`tiering.plan`): the finest buckets at its edges, one
unit per bucket start (every bucket stored at that start), and the whole tier
blocks between them, one unit per block. Each unit's sums per series id, with
the histogram packed as the tiers pack it, are kept here, keyed by the statement
and its parameters. A unit is read again only when a write since touched one of
its starts, when a retention run may have changed it, for a block still being
filled when the tiers' high moved (its end is part of its key), and, for a
filter that reads services, when services may have changed. A map of the last
hour then reads the newest minute or nothing, and adds about fifteen tables of
one row per series in memory.

Exactness, as in the health cache: the generation is read before the snapshot
the units are read from (`read_traffic_table` does), and an entry is only used
while nothing it holds changed after that generation.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from queries import fold, series, series_window, tiering
from queries.compiler import CompiledFilter
from queries.window import start_runs
from topology.store import tiers
from topology.store.base import GraphStore
from topology.store.changes import Changes, changes_of
from topology.store.statement import Statement
from topology.store.tiers import TierRange

UNCACHED = pa.table({})  # the window is not read from units: read it as before
MAX_STARTS = 32  # bucket starts a window may read from the buckets to use units
ROW_BUDGET = 600_000  # unit rows held per store, about 150 bytes each
TOTALS = 8  # queries whose last sum of units is kept (a map view refreshing)
_COUNTERS = ("requests", "errors", "latency", "total",
             *(f"b{i}" for i in range(tiers.PACKED)))
UNIT_SCHEMA = pa.schema([("sid", pa.int64()), *(
    (name, pa.float64() if name == "latency" else pa.int64()) for name in _COUNTERS)])


@dataclass(frozen=True, slots=True)
class Unit:
    width: int  # 0: the buckets stored at one start; else a tier block's width
    start: int
    end: int  # the unit holds buckets starting in [start, end)


@dataclass(frozen=True, slots=True)
class Entry:
    generation: int  # Changes.generation read before the snapshot it came from
    table: pa.Table  # UNIT_SCHEMA: one row per series id


class UnitCache:
    """Unit tables of one store, least recently used dropped past `budget` rows."""

    def __init__(self, changes: Changes, budget: int = ROW_BUDGET) -> None:
        self.changes = changes
        self.budget = budget
        self._entries: OrderedDict[tuple[Hashable, Unit], Entry] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()
        # query -> (the unit tables summed, their named sum): a repeated map whose units
        # are all held, the same objects, is that sum again
        self._totals: OrderedDict[Hashable, tuple[tuple[pa.Table, ...], pa.Table]] = (
            OrderedDict())

    def get(self, query: Hashable, unit: Unit, services: bool) -> pa.Table | None:
        """The unit's table when nothing in it changed since it was read."""
        with self._lock:
            entry = self._entries.get((query, unit))
            if entry is not None:
                self._entries.move_to_end((query, unit))
        if entry is None or not self._fresh(unit, entry.generation, services):
            return None
        return entry.table

    def put(self, query: Hashable, unit: Unit, entry: Entry) -> None:
        with self._lock:
            old = self._entries.pop((query, unit), None)
            if old is not None:
                if old.generation > entry.generation:  # a later read got there first
                    self._entries[(query, unit)] = old
                    return
                self._rows -= old.table.num_rows
            self._entries[(query, unit)] = entry
            self._rows += entry.table.num_rows
            while self._rows > self.budget and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                self._rows -= dropped.table.num_rows

    @property
    def rows(self) -> int:
        return self._rows

    def total(self, query: Hashable, tables: tuple[pa.Table, ...]) -> pa.Table | None:
        """The named sum kept for these very unit tables, if it is."""
        with self._lock:
            found = self._totals.get(query)
        if found is None or len(found[0]) != len(tables):
            return None
        return found[1] if all(a is b for a, b in zip(found[0], tables, strict=True)) else None

    def keep_total(self, query: Hashable, tables: tuple[pa.Table, ...], total: pa.Table) -> None:
        with self._lock:
            self._totals[query] = (tables, total)
            self._totals.move_to_end(query)
            while len(self._totals) > TOTALS:
                self._totals.popitem(last=False)

    def _fresh(self, unit: Unit, generation: int, services: bool) -> bool:
        changes = self.changes
        if services and changes.services_changed_since(generation):
            return False
        step = changes.bucket_width
        first = unit.start + (-unit.start) % step
        return not any(changes.changed_since(start, generation)
                       for start in range(first, unit.end, step))


def units(found: tiering.Plan, tier_range: TierRange | None, step: int) -> list[Unit] | None:
    """The units of a plan (None when its bucket ranges hold too many starts)."""
    starts = [s for since, until in found.ranges
              for s in range(since + (-since) % step, until, step)]
    if len(starts) > MAX_STARTS:
        return None
    blocks = [] if tier_range is None else [
        Unit(width, start, min(start + width, tier_range.high))
        for width, first, end in found.blocks for start in range(first, end, width)]
    return [Unit(0, s, s + step) for s in starts] + blocks


def read(
    store: GraphStore, generation: int, found: tiering.Plan, tier_range: TierRange | None,
    buckets: Statement, shape: tiering.Shape, compiled: CompiledFilter | None,
    params: Mapping[str, Any],
) -> pa.Table | None:
    """`series_window.read` from units: one named row per series (None when nothing
    matched; series_window.COLLIDED after a collision of ids), or UNCACHED. `found`
    is the window's plan against `tier_range`."""
    changes = changes_of(store)
    if changes is None or changes.unaligned:
        return UNCACHED
    wanted = units(found, tier_range, changes.bucket_width)
    if wanted is None:
        return UNCACHED
    cache: UnitCache = changes.cache("map_units", lambda: UnitCache(changes))
    query = _query_key(buckets, shape, compiled, params)
    services = compiled is not None and bool({"c", "s"} & set(compiled.variables))
    held = {unit: cache.get(query, unit, services) for unit in wanted}
    missing = [unit for unit, table in held.items() if table is None]
    if missing:
        fresh = _read_units(store, missing, changes.bucket_width, buckets, shape, compiled,
                            params)
        if fresh is None:
            return UNCACHED
        for unit, table in fresh.items():
            cache.put(query, unit, Entry(generation, table))
            held[unit] = table
    tables = tuple(held[unit] for unit in wanted)
    kept = cache.total(query, tables)
    if kept is not None:
        return kept
    summed = _sum(list(tables))
    if summed is None:
        return UNCACHED
    if not summed.num_rows:
        return None
    named = series.named(store, summed, _names_of(found, params))
    if named is None:
        return series_window.COLLIDED
    cache.keep_total(query, tables, named)
    return named


def _names_of(found: tiering.Plan, params: Mapping[str, Any]
              ) -> list[tuple[Statement, Mapping[str, Any]]]:
    """Where the names of the window's series are read when the process does not know
    an id (a cached unit may hold ids read before the registry was emptied)."""
    reads: list[tuple[Statement, Mapping[str, Any]]] = [
        (series.BUCKET_NAMES, {"since": since, "until": until}) for since, until in found.ranges]
    if found.blocks:
        reads.append((tiering.tier_names(len(found.blocks)), {**params, **found.tier_params}))
    return reads


def _query_key(buckets: Statement, shape: tiering.Shape, compiled: CompiledFilter | None,
               params: Mapping[str, Any]) -> Hashable:
    filtered = (compiled.neo4j, compiled.ladybug, compiled.bindings, compiled.variables
                ) if compiled else ()
    values = tuple(sorted((k, _frozen(v)) for k, v in params.items()
                          if k not in ("since", "until")))
    return (buckets, shape, filtered, values)


def _frozen(value: Any) -> Hashable:
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    return value


def _read_units(
    store: GraphStore, missing: list[Unit], step: int, buckets: Statement,
    shape: tiering.Shape, compiled: CompiledFilter | None, params: Mapping[str, Any],
) -> dict[Unit, pa.Table] | None:
    """The missing units' tables, each unit's buckets or block read in as few statements
    as the plan allows (None when a sum could carry between packed bins)."""
    found: dict[Unit, pa.Table] = {}
    starts = sorted(u.start for u in missing if u.width == 0)
    if starts:
        statement, args, covered = _bucket_read(buckets, params, start_runs(starts, step), step)
        table = store.read_arrow(series.by_series(
            statement, shape, packed=True, per_start=True), args)
        column = table.column("start")
        for start in covered:
            found[Unit(0, start, start + step)] = table.filter(
                pc.equal(column, start)).drop_columns(["start"])
    blocks = sorted((u.width, u.start) for u in missing if u.width)
    if blocks:
        plan = tiering.Plan((), tiering.block_runs(blocks))
        args = {**params, **plan.tier_params}
        table = store.read_arrow(tiering.tier_statement(
            shape, compiled, len(plan.blocks), by_series=True, per_block=True),
            args)
        width, block = table.column("width"), table.column("block")
        for unit in (u for u in missing if u.width):
            found[unit] = table.filter(pc.and_(pc.equal(width, unit.width), pc.equal(
                block, unit.start))).drop_columns(["width", "block"])
    tables = {unit: table.select(UNIT_SCHEMA.names).cast(UNIT_SCHEMA)
              for unit, table in found.items()}
    if any(t.num_rows and pc.max(t.column("total")).as_py() >= tiers.PACK_LIMIT
           for t in tables.values()):
        return None
    return tables


def _bucket_read(
    buckets: Statement, params: Mapping[str, Any], runs: list[tuple[int, int]], step: int,
) -> tuple[Statement, dict[str, Any], list[int]]:
    """One statement over the runs: a range, the two edges of a window, or (more runs)
    the range holding them all; with the starts it reads."""
    if len(runs) == 2:
        (since, head_end), (tail_start, until) = runs
        return (tiering.edges(buckets), {**params, "since": since, "until": until,
                                         "head_end": head_end, "tail_start": tail_start},
                [*range(since, head_end, step), *range(tail_start, until, step)])
    since, until = runs[0][0], runs[-1][1]
    return buckets, {**params, "since": since, "until": until}, list(range(since, until, step))


def _sum(tables: list[pa.Table]) -> pa.Table | None:
    """The units' tables added per series id and unpacked (h0..); None when a packed
    sum could carry between bins."""
    table = pa.concat_tables(tables)
    summed = table.group_by(["sid"], use_threads=False).aggregate(
        [(name, "sum") for name in _COUNTERS])
    summed = summed.rename_columns([n.removesuffix("_sum") for n in summed.column_names])
    if summed.num_rows and pc.max(summed.column("total")).as_py() >= tiers.PACK_LIMIT:
        return None
    return fold.unpack(summed)
