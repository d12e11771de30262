"""What the embedded store's writer changed, for the in-process caches of its readers.

The embedded store is the only writer of its file and runs in this process, so
it can tell readers exactly what each committed write touched: the bucket
starts it wrote (a per-start generation), the CALLS pairs it saw (their
first/last seen, handed to listeners such as the walk's adjacency), and what
the retention job removed or folded (every start below a bound, and the pairs
it deleted), and when services may have changed (a batch carrying services,
any retention run), and for the few newest bucket starts the keys of the buckets
written into each (so a cache can re-read only those buckets of a start). A
cache records `generation` *before* it opens the snapshot it
fills from and asks `changed_since(start, generation)` before using an entry;
the writer reports only after its transaction committed. So a write the
snapshot missed always makes the entry stale, and a reported write the
snapshot already held only costs a re-read.

Everything here runs on the write path: one pass over the batch's calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from topology.model import Batch, CallBucket
from topology.store.base import GraphStore

Pair = tuple[str, str]  # (client, server)
# The newest bucket starts whose written bucket keys are remembered: live ingest
# writes into the current minute and a little late data into the ones before.
TRACKED_STARTS = 4
NO_FLOOR = -(2**63)  # `keys_floor` before the first report


class PairListener(Protocol):
    def pairs_seen(self, seen: dict[Pair, tuple[int, int]]) -> None:
        """Pairs written with these (first_seen, last_seen) bounds (min/max-merged)."""

    def pairs_deleted(self) -> None:
        """Some pairs were deleted: forget everything."""


class Changes:
    def __init__(self, bucket_width: int) -> None:
        self.bucket_width = int(bucket_width)
        self._lock = threading.Lock()
        self._generation = 0
        self._starts: dict[int, int] = {}  # bucket start -> generation of its last write
        self._expired_at = -1  # generation of the last retention run that changed buckets
        self._expired_below = -(2**63)  # buckets starting before it may have changed then
        self._services_at = 0  # generation of the last write that may have changed services
        self._everything_at = -1  # generation of the last write whose outcome is unknown
        # start -> bucket key -> generation of its last write, for starts >= keys_floor;
        # the floor only rises, so a start at or above it was tracked since the first write
        self._keys: dict[int, dict[str, int]] = {}
        self._keys_floor = NO_FLOOR
        self.unaligned = False  # a bucket start was not a multiple of bucket_width
        self._listeners: list[PairListener] = []
        self._caches: dict[str, Any] = {}

    @property
    def generation(self) -> int:
        return self._generation

    def changed_since(self, start: int, generation: int) -> bool:
        """Whether buckets starting at `start` may differ from what a snapshot opened
        after `generation` was read saw."""
        return (self.unaligned or self._everything_at > generation
                or self._starts.get(start, -1) > generation
                or (self._expired_at > generation and start < self._expired_below))

    @property
    def keys_floor(self) -> int:
        """Starts from here on have the keys of their written buckets remembered."""
        return self._keys_floor

    def keys_changed_since(self, start: int, generation: int) -> set[str] | None:
        """The keys of the buckets starting at `start` that may differ from what a
        snapshot opened after `generation` was read saw; None when unknown (a start
        below the floor, after a retention run that may have changed it, unaligned)."""
        with self._lock:
            if (self.unaligned or start < self._keys_floor or self._everything_at > generation
                    or (self._expired_at > generation and start < self._expired_below)):
                return None
            marks = self._keys.get(start, {})
            return {key for key, written in marks.items() if written > generation}

    def services_changed_since(self, generation: int) -> bool:
        """Whether services may differ from what a snapshot opened after `generation`
        was read saw."""
        return self._services_at > generation or self._everything_at > generation

    def cache(self, name: str, factory: Callable[[], Any]) -> Any:
        """The reader cache of that name, created once (and registered as a pair
        listener when it is one)."""
        with self._lock:
            found = self._caches.get(name)
            if found is None:
                found = self._caches[name] = factory()
                if hasattr(found, "pairs_seen"):
                    self._listeners.append(found)
            return found

    # -- reported by the writer, after commit -------------------------------------

    def applied(self, batches: Sequence[Batch], keep: Sequence[bool],
                written: Mapping[str, CallBucket] | None = None,
                pairs: Mapping[Pair, Sequence[Any]] | None = None) -> None:
        """The kept batches were committed (as `written`, their buckets by key, and
        `pairs`, each pair's (first_seen, last_seen, ...), when the writer has them at
        hand: else they are made here from the batches' calls)."""
        starts: set[int] = set()
        seen: dict[Pair, tuple[int, int]] = {}
        services = any(batch.services for batch, ok in zip(batches, keep, strict=True) if ok)
        given = written is not None and pairs is not None
        if given:
            starts = {bucket.bucket for bucket in written.values()}
            seen = {pair: (bounds[0], bounds[1]) for pair, bounds in pairs.items()}
        for batch, ok in zip(batches, keep, strict=True):
            if not ok or given:
                continue
            for call in batch.calls:
                starts.add(call.bucket)
                pair = (call.client, call.server)
                first, last = call.bucket, call.bucket + call.width
                known = seen.get(pair)
                seen[pair] = (first, last) if known is None else (
                    min(known[0], first), max(known[1], last))
        if not starts and not services:
            return
        with self._lock:
            self._generation += 1
            if services:
                self._services_at = self._generation
            for start in starts:
                self._starts[start] = self._generation
            if any(start % self.bucket_width for start in starts):
                self.unaligned = True
            if starts:
                self._mark_keys(max(starts), batches, keep, written)
            if seen:
                for listener in self._listeners:
                    listener.pairs_seen(seen)

    def _mark_keys(self, newest: int, batches: Sequence[Batch], keep: Sequence[bool],
                   written: Mapping[str, CallBucket] | None) -> None:
        """Under the lock: raise the floor to the newest starts, mark the keys written
        at or above it."""
        floor = newest - (TRACKED_STARTS - 1) * self.bucket_width
        if floor > self._keys_floor:
            self._keys_floor = floor
            self._keys = {s: m for s, m in self._keys.items() if s >= floor}
        floor, generation = self._keys_floor, self._generation
        if written is None:
            written = {call.key: call for batch, ok in zip(batches, keep, strict=True) if ok
                       for call in batch.calls if call.bucket >= floor}
        for key, bucket in written.items():
            if bucket.bucket >= floor:
                marks = self._keys.get(bucket.bucket)
                if marks is None:
                    marks = self._keys[bucket.bucket] = {}
                marks[key] = generation

    def expired(self, below: int, *, pairs_deleted: bool) -> None:
        """The retention job committed changes to buckets starting before `below`
        (folded minutes into hours, deleted hours) and maybe deleted pairs."""
        with self._lock:
            self._generation += 1
            self._expired_at = self._generation
            self._services_at = self._generation  # services may have been deleted
            self._expired_below = max(self._expired_below, int(below))
            # per-start marks below the bound are implied by it from now on
            self._starts = {s: g for s, g in self._starts.items() if s >= self._expired_below}
            if pairs_deleted:
                for listener in self._listeners:
                    listener.pairs_deleted()


    def uncertain(self) -> None:
        """A write transaction's COMMIT raised, so whether it was applied is unknown
        (LadybugDB reports a failed checkpoint after a commit that did apply as an
        error): anything may have changed, every cache filled before is stale."""
        with self._lock:
            self._generation += 1
            self._everything_at = self._generation
            for listener in self._listeners:
                listener.pairs_deleted()


def reading_begins(store: GraphStore) -> None:
    """Open and close a snapshot before answering from a cache: wrappers that note
    when reading began (the API's FlightStore joins requests only until then) see
    it, so an answer never reflects a state older than that moment."""
    with store.snapshot():
        pass


def changes_of(store: object) -> Changes | None:
    """The change log of a store, looking through wrappers (`inner`); None when the
    store has none (Neo4j: its readers do not share our process)."""
    seen = 0
    while store is not None and seen < 8:
        found = getattr(store, "changes", None)
        if isinstance(found, Changes):
            return found
        store = getattr(store, "inner", None)
        seen += 1
    return None
