"""Per-service traffic over a window from per-start aggregates kept in this process.

Blast-radius health needs, per dependent, the calls it served in the window
(else the calls it made). Read from the store that is a grouped pass by the
server (then the client) string over the window's buckets and tier rows, about
350 ms over 10,000 pairs. Here the window is cut into its bucket starts (a
window selects buckets by start, `queries/window.py`), and for every start the
per-service sums of both sides are kept as numpy arrays: summing 60 starts of
1,000 services costs a few milliseconds. A start is read from the store only
when missing or stale: the embedded store's writer reports each start it wrote
and what the retention job changed (`topology/store/changes.py`), so an entry
is exact until then, and a live window re-reads only its current minute.

Reads the CallBucket counters through `window.AGGREGATES` (histogram bins,
requests, errors, latency). Used only for windows of at most MAX_STARTS starts
(memory stays bounded); longer windows, Neo4j, and stores whose buckets are not
aligned to the bucket width take the grouped read (`None` from `cached_health`).
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from queries.window import AGGREGATES, IN_WINDOW, Traffic, Window
from topology import histogram
from topology.store import tiers
from topology.store.base import GraphStore
from topology.store.changes import Changes, changes_of
from topology.store.statement import Statement

MAX_STARTS = 130  # a bit over two hours of one-minute buckets
# Sums of aligned runs of starts kept next to the starts, widest first: a last hour
# at an unaligned minute is about 8 parts instead of 60.
BLOCKS = (30, 15, 5)
SIDES = ("server", "client")  # served, else made
COUNTS = ("n", "requests", "errors", *(f"h{i}" for i in range(histogram.BIN_COUNT)))


def _statement(side: str) -> Statement:
    def text(dialect: str) -> str:
        return (f"MATCH (k:CallBucket) WHERE {IN_WINDOW} RETURN k.bucket AS bucket, "
                f"k.{side} AS id, count(*) AS n, {AGGREGATES[dialect]}")
    return Statement(f"health_by_start_as_{side}", text("neo4j"), text("ladybug"))


BY_START = {side: _statement(side) for side in SIDES}


def _by_series(dialect: str) -> str:
    return (f"MATCH (k:CallBucket) WHERE {IN_WINDOW} RETURN k.bucket AS bucket, "
            f"k.sid AS sid, count(*) AS n, {AGGREGATES[dialect]}")


# One statement grouped by the integer series id (embedded store only: Neo4j buckets
# have no `sid`); both sides' sums are made from it here, with the names of each id
# from `tiers.SERIES`. After a collision of two series on one id: BY_START.
BY_SERIES = Statement("health_by_start_by_series", _by_series("neo4j"), _by_series("ladybug"))
_RENAMED = {f"{name}_sum": name for name in ("latency", *COUNTS)}
SERIES_NAMES = Statement.same(
    "health_series_names", f"MATCH (k:CallBucket) WHERE {IN_WINDOW} "
    "RETURN DISTINCT k.client AS client, k.server AS server, k.protocol AS protocol, "
    "k.path AS path")


# One side of one start: service id -> its counters packed into one integer
# (COUNTS as little-endian 64-bit fields: summing packed integers sums every
# counter at once, and no field carries into the next while each value is below
# 2**56 and at most MAX_STARTS are summed), and service id -> latency sum.
_FIELDS = struct.Struct(f"<{len(COUNTS)}Q")
_VALUE_LIMIT = 2**56


@dataclass(frozen=True)
class Part:
    counts: dict[str, int]
    latency: dict[str, float]


EMPTY_PART = Part({}, {})


@dataclass(frozen=True)
class Entry:
    generation: int  # Changes.generation read before the snapshot it came from
    sides: tuple[Part, ...]  # as SIDES


class HealthCache:
    """One per store (`Changes.cache`)."""

    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        # (starts per block, first start) -> (the entries summed, their sums)
        self._blocks: dict[tuple[int, int], tuple[tuple[Entry, ...], tuple[Part, ...]]] = {}

    def starts(self, window: Window) -> range:
        width = self.changes.bucket_width
        return range(-(-window.since // width) * width, window.until, width)

    def health(
        self, store: GraphStore, ids: list[str], window: Window
    ) -> dict[str, Traffic] | None:
        starts = self.starts(window)
        generation = self.changes.generation  # before the snapshot (module docstring)
        with store.snapshot():
            entries = self._fresh(starts)
            missing = [s for s in starts if s not in entries]
            read = self._read(store, missing, generation) if missing else {}
        if read is None:
            return None
        entries.update(read)
        return _sum(ids, self._composed(starts, entries))

    def _composed(self, starts: range, entries: dict[int, Entry]) -> list[tuple[Part, ...]]:
        """The window's starts as few parts as possible: greedily the widest block
        of BLOCKS that starts at the position and ends inside the window."""
        width = self.changes.bucket_width
        composed = []
        position = starts.start
        while position < starts.stop:
            for size in BLOCKS:
                if position % (size * width) == 0 and position + size * width <= starts.stop:
                    composed.append(self._block(size, position, entries))
                    position += size * width
                    break
            else:
                composed.append(entries[position].sides)
                position += width
        return composed

    def _block(self, size: int, first: int, entries: dict[int, Entry]) -> tuple[Part, ...]:
        width = self.changes.bucket_width
        members = tuple(entries[first + i * width] for i in range(size))
        with self._lock:
            known = self._blocks.get((size, first))
        if known is not None and all(a is b for a, b in zip(known[0], members, strict=True)):
            return known[1]
        summed = tuple(_merged([m.sides[side] for m in members]) for side in range(len(SIDES)))
        with self._lock:
            self._blocks[(size, first)] = (members, summed)
            oldest = min(self._entries, default=first)
            for key in [k for k in self._blocks if k[1] < oldest]:
                del self._blocks[key]
        return summed

    def _fresh(self, starts: range) -> dict[int, Entry]:
        found = {}
        with self._lock:
            for start in starts:
                entry = self._entries.get(start)
                if entry is not None and not self.changes.changed_since(start, entry.generation):
                    self._entries.move_to_end(start)
                    found[start] = entry
        return found

    def _read(
        self, store: GraphStore, missing: list[int], generation: int
    ) -> dict[int, Entry] | None:
        """Read the missing starts (contiguous runs, in the caller's snapshot);
        None when a bucket there starts off the grid of bucket starts, or a counter
        is too large to pack."""
        width = self.changes.bucket_width
        runs: list[list[int]] = []
        for start in missing:
            if runs and runs[-1][1] == start:
                runs[-1][1] = start + width
            else:
                runs.append([start, start + width])
        wanted = set(missing)
        try:
            sides = by_series(store, runs, wanted)
            if sides is None:
                sides = _by_names(store, runs, wanted)
        except Unanswerable:
            return None
        entries = {start: Entry(generation, sides.get(start, (EMPTY_PART,) * len(SIDES)))
                   for start in missing}
        with self._lock:
            for start, entry in entries.items():
                self._entries[start] = entry
                self._entries.move_to_end(start)
            while len(self._entries) > MAX_STARTS:
                self._entries.popitem(last=False)
        return entries


class Unanswerable(Exception):
    """A bucket starts off the grid of starts, or a counter is too large to pack."""


def by_series(
    store: GraphStore, runs: list[list[int]], wanted: set[int]
) -> dict[int, tuple[Part, ...]] | None:
    """Per start, both sides' parts from one statement per run grouped by the series
    id (one row per series and start): the ids' ends come from `tiers.SERIES`, and
    the rows are summed per (start, service) by Arrow's group_by. None after a collision of
    series ids (or a bucket without one): read by the names then."""
    registry = tiers.SERIES
    if registry.collided:
        return None
    tables = [table for since, until in runs
              if (table := store.read_arrow(BY_SERIES, {"since": since, "until": until}))
              .num_rows]
    if not tables:
        return {}
    table = pa.concat_tables(tables)
    if table.column("sid").null_count:
        return None
    sids = table.column("sid").to_pylist()
    names = registry.names
    if any(sid not in names for sid in sids):
        for since, until in runs:
            for row in store.read(SERIES_NAMES, {"since": since, "until": until}):
                registry.add(row["client"], row["server"], row["protocol"], row["path"])
        if registry.collided or any(sid not in names for sid in sids):
            return None
    starts = pc.unique(table.column("bucket")).to_pylist()
    if any(start not in wanted for start in starts):
        raise Unanswerable
    ends = list(zip(*(names[sid][:2] for sid in sids), strict=True))
    table = table.append_column("server", pa.array(ends[1], pa.string())).append_column(
        "client", pa.array(ends[0], pa.string()))
    found: dict[int, list[Part]] = {start: [] for start in starts}
    for side in SIDES:
        grouped = table.group_by(["bucket", side]).aggregate(
            [(name, "sum") for name in ("latency", *COUNTS)])
        parts = _parts([grouped.rename_columns(
            ["id" if name == side else _RENAMED.get(name, name) for name in grouped.column_names])])
        for start in starts:
            found[start].append(parts.get(start, EMPTY_PART))
    return {start: tuple(parts) for start, parts in found.items()}


def _by_names(
    store: GraphStore, runs: list[list[int]], wanted: set[int]
) -> dict[int, tuple[Part, ...]]:
    """Per start, both sides' parts from one grouped statement per side and run."""
    tables: dict[str, list[pa.Table]] = {side: [] for side in SIDES}
    for since, until in runs:
        for side in SIDES:
            tables[side].append(store.read_arrow(
                BY_START[side], {"since": since, "until": until}))
    parts = {side: _parts(tables[side]) for side in SIDES}
    if any(start not in wanted for found in parts.values() for start in found):
        raise Unanswerable
    starts = {start for found in parts.values() for start in found}
    return {start: tuple(parts[side].get(start, EMPTY_PART) for side in SIDES)
            for start in starts}


def _parts(tables: list[pa.Table]) -> dict[int, Part]:
    """Per start, the packed rows of one side."""
    parts: dict[int, Part] = {}
    for table in tables:
        if not table.num_rows:
            continue
        columns = [table.column(name).to_pylist()
                   for name in ("bucket", "id", "latency", *COUNTS)]
        pack = _FIELDS.pack
        for bucket, sid, latency, *counts in zip(*columns, strict=True):
            values = [value or 0 for value in counts]
            if min(values) < 0 or max(values) >= _VALUE_LIMIT:
                raise Unanswerable
            part = parts.get(bucket)
            if part is None:
                part = parts[bucket] = Part({}, {})
            part.counts[sid] = int.from_bytes(pack(*values), "little")
            part.latency[sid] = latency or 0.0
    return parts


def _merged(parts: list[Part]) -> Part:
    counts: dict[str, int] = {}
    latency: dict[str, float] = {}
    for part in parts:
        for sid, value in part.counts.items():
            counts[sid] = counts.get(sid, 0) + value
        for sid, value in part.latency.items():
            latency[sid] = latency.get(sid, 0.0) + value
    return Part(counts, latency)


def _sum(ids: list[str], composed: list[tuple[Part, ...]]) -> dict[str, Traffic]:
    """Served, else made: the first side on which the service has buckets."""
    found: dict[str, Traffic] = {}
    size = _FIELDS.size
    for side in range(len(SIDES)):
        parts = [sides[side] for sides in composed if sides[side].counts]
        for sid in ids:
            if sid in found:
                continue
            total = sum(part.counts.get(sid, 0) for part in parts)
            if not total:
                continue
            values = _FIELDS.unpack(total.to_bytes(size, "little"))
            if values[0] == 0:
                continue
            latency = sum(part.latency.get(sid, 0.0) for part in parts)
            found[sid] = Traffic(values[1], values[2], latency, values[3:])
    return found


def cached_health(store: GraphStore, ids: list[str], window: Window) -> dict[str, Traffic] | None:
    """Per service: served, else made, in the window; None when the cache cannot
    answer exactly (no change log, a long window, unaligned buckets)."""
    changes = changes_of(store)
    if changes is None or changes.unaligned:
        return None
    cache: HealthCache = changes.cache("health", lambda: HealthCache(changes))
    if len(cache.starts(window)) > MAX_STARTS:
        return None
    return cache.health(store, ids, window)
