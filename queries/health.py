"""Per-service traffic over a window from per-start aggregates kept in this process.

Blast-radius health needs, per dependent, the calls it served in the window
(else the calls it made). Read from the store that is a grouped pass by the
server (then the client) string over the window's buckets and tier rows, about
350 ms over 10,000 pairs. Here the window is cut into its bucket starts (a
window selects buckets by start, `queries/window.py`), and for every start the
per-service sums of both sides are kept (`queries/health_reads.py`); blocks of
5/15/30 aligned starts are kept summed too. A start is read from the store only
when missing or stale: the embedded store's writer reports each start it wrote
and what the retention job changed (`topology/store/changes.py`), so an entry is
exact until then.

Live ingest writes into the newest minute between queries. For the newest
starts (`Changes.keys_floor`) an entry also keeps its rows per bucket, and the
writer reports the keys of the buckets it wrote there: a stale entry re-reads
only those buckets (by key) and replaces their contribution, instead of the
whole minute (10,000 rows).

Exactness: an entry records `Changes.generation` before the snapshot it was
read in; the writer reports after commit. A write the snapshot missed has a
later generation, so it marks the start (and its bucket keys) as changed since the
entry; one the snapshot held may be marked too, which only costs a re-read of
current values. Used only for windows of at most MAX_STARTS starts (memory stays
bounded); longer windows, Neo4j, and stores whose buckets are not aligned to
the bucket width take the grouped read (`None` from `cached_health`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

from queries.health_reads import (
    BY_START,
    EMPTY_PART,
    FIELDS,
    SIDES,
    Part,
    Rows,
    Unanswerable,
    bucket_rows,
    by_names,
    patched,
    sides_of,
)
from queries.window import Traffic, Window, start_runs
from topology.store import tiers
from topology.store.base import GraphStore
from topology.store.changes import NO_FLOOR, TRACKED_STARTS, Changes, changes_of

__all__ = ["BY_START", "HealthCache", "cached_health"]

MAX_STARTS = 130  # a bit over two hours of one-minute buckets
# Sums of aligned runs of starts kept next to the starts, widest first: a last hour
# at an unaligned minute is about 8 parts instead of 60.
BLOCKS = (30, 15, 5)
PATCH_LIMIT = 256  # more buckets written into a start since its entry: read it whole


@dataclass(frozen=True)
class Entry:
    generation: int  # Changes.generation read before the snapshot it came from
    sides: tuple[Part, ...]  # as SIDES
    rows: Rows | None = None  # per bucket, for starts at or above Changes.keys_floor


class HealthCache:
    """One per store (`Changes.cache`)."""

    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self._lock = threading.Lock()
        self._entries: OrderedDict[int, Entry] = OrderedDict()
        # (starts per block, first start) -> (the entries summed, their sums)
        self._blocks: dict[tuple[int, int], tuple[tuple[Entry, ...], tuple[Part, ...]]] = {}
        # the last window's head parts (`_summed_head`) and their sums
        self._head: tuple[tuple[tuple[Part, ...], ...], tuple[Part, ...]] | None = None

    def starts(self, window: Window) -> range:
        width = self.changes.bucket_width
        return range(-(-window.since // width) * width, window.until, width)

    def health(
        self, store: GraphStore, ids: list[str], window: Window
    ) -> dict[str, Traffic] | None:
        starts = self.starts(window)
        generation = self.changes.generation  # before the snapshot (module docstring)
        with store.snapshot():
            entries, stale = self._fresh(starts)
            try:
                read = self._patch(store, stale, generation)
                missing = [s for s in starts if s not in entries and s not in read]
                if missing:
                    read.update(self._read(store, missing, generation))
            except Unanswerable:
                return None
        self._install(read)
        entries.update(read)
        return _sum(ids, self._summed_head(self._composed(starts, entries)))

    def _summed_head(self, composed: list[tuple[Part, ...]]) -> list[tuple[Part, ...]]:
        """The composed parts with all but the last few (the newest starts, those live
        ingest changes) summed into one, kept while the same parts come again: a
        repeated window costs a few lookups per service instead of one per part."""
        head, tail = composed[:-TRACKED_STARTS], composed[-TRACKED_STARTS:]
        if len(head) < 2:
            return composed
        with self._lock:
            known = self._head
        if known is not None and len(known[0]) == len(head) and all(
                a is b for a, b in zip(known[0], head, strict=True)):
            return [known[1], *tail]
        summed = tuple(_merged([sides[side] for sides in head]) for side in range(len(SIDES)))
        with self._lock:
            self._head = (tuple(head), summed)
        return [summed, *tail]

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

    def _fresh(self, starts: range) -> tuple[dict[int, Entry], dict[int, Entry]]:
        """The held entries of the starts: unchanged since, and changed but holding
        their rows per bucket (worth patching)."""
        found, stale = {}, {}
        with self._lock:
            for start in starts:
                entry = self._entries.get(start)
                if entry is None:
                    continue
                self._entries.move_to_end(start)
                if not self.changes.changed_since(start, entry.generation):
                    found[start] = entry
                elif entry.rows is not None:
                    stale[start] = entry
        return found, stale

    def _patch(
        self, store: GraphStore, stale: dict[int, Entry], generation: int
    ) -> dict[int, Entry]:
        """Stale entries holding their rows, with the buckets written since re-read
        (in the caller's snapshot); those that cannot be patched are left out."""
        width = self.changes.bucket_width
        patched_entries: dict[int, Entry] = {}
        for start, entry in stale.items():
            changed = self.changes.keys_changed_since(start, entry.generation)
            if changed is None or len(changed) > PATCH_LIMIT or entry.rows is None:
                continue
            fresh = bucket_rows(store, [(start, start + width)], {start}, changed)
            if fresh is None:
                continue
            sides, rows = patched(entry.sides, entry.rows, fresh.get(start, Rows({}, {}, {})),
                                  changed)
            patched_entries[start] = Entry(generation, sides, rows)
        return patched_entries

    def _read(self, store: GraphStore, missing: list[int], generation: int
              ) -> dict[int, Entry]:
        """Read the missing starts (in the caller's snapshot): the newest ones per
        by bucket (their rows are kept), the others grouped by service."""
        width = self.changes.bucket_width
        floor = self.changes.keys_floor
        if floor == NO_FLOOR:  # before the writer's first report: the window's newest
            floor = max(missing) - (TRACKED_STARTS - 1) * width
        newest = [s for s in missing if s >= floor] if not tiers.SERIES.collided else []
        entries: dict[int, Entry] = {}
        if newest:
            found = bucket_rows(store, start_runs(newest, width), set(newest))
            if found is not None:
                entries = {start: Entry(generation, sides_of(rows), rows) if (
                    rows := found.get(start)) else Entry(generation, _EMPTY_SIDES, Rows({}, {}, {}))
                           for start in newest}
        rest = [s for s in missing if s not in entries]
        if rest:
            found_parts = by_names(store, start_runs(rest, width), set(rest))
            entries.update({start: Entry(generation, found_parts.get(start, _EMPTY_SIDES))
                            for start in rest})
        return entries

    def _install(self, entries: dict[int, Entry]) -> None:
        if not entries:
            return
        floor = self.changes.keys_floor
        with self._lock:
            for start, entry in entries.items():
                self._entries[start] = entry
                self._entries.move_to_end(start)
            while len(self._entries) > MAX_STARTS:
                self._entries.popitem(last=False)
            for start, entry in list(self._entries.items()):  # rows only where patched
                if entry.rows is not None and start < floor:
                    self._entries[start] = replace(entry, rows=None)


_EMPTY_SIDES = (EMPTY_PART,) * len(SIDES)


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
    size = FIELDS.size
    for side in range(len(SIDES)):
        parts = [sides[side] for sides in composed if sides[side].counts]
        counts = [part.counts.get for part in parts]
        latencies = [part.latency.get for part in parts]
        for sid in ids:
            if sid in found:
                continue
            total = sum([get(sid, 0) for get in counts])
            if not total:
                continue
            values = FIELDS.unpack(total.to_bytes(size, "little"))
            if values[0] == 0:
                continue
            latency = sum([get(sid, 0.0) for get in latencies])
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
