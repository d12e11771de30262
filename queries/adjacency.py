"""The CALLS pairs of the embedded store held in this process, for walks.

A breadth-first walk over the store reads one hop of CALLS per level (about
30 ms for depth 5 over 10,000 pairs). The embedded store's writer reports
every pair it writes (`topology/store/changes.py`), so the pairs with their
first/last seen can be read once and kept exact: a write of a known pair only
widens its seen range (min/max, order-free and idempotent), a write naming a
pair we do not hold (a new pair, or one the store did not create because an
end is unknown) and any deletion by the retention job drop the index, which
the next walk reads again.

While a walk loads the pairs, the writes reported meanwhile are journalled and
replayed onto the loaded pairs before they are installed; if one named an
unknown pair or pairs were deleted, the load serves its own walk (its snapshot
is consistent) and is not installed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from topology.store.base import GraphStore
from topology.store.changes import Pair
from topology.store.statement import Statement

ALL_PAIRS = Statement(
    "all_pairs",
    "MATCH (a:Service)-[r:CALLS]->(b:Service) RETURN a.id AS client, b.id AS server, "
    "r.first_seen AS first_seen, r.last_seen AS last_seen",
    # the embedded store: each pair's bounds in its CallPair node (docs/storage.md)
    "MATCH (p:CallPair) RETURN p.client AS client, p.server AS server, "
    "p.first_seen AS first_seen, p.last_seen AS last_seen",
)

T = TypeVar("T")
Seen = list[int]  # [first_seen, last_seen], shared by both directions' maps


class Adjacency:
    """Pairs by client (downstream) and by server (upstream)."""

    def __init__(self) -> None:
        self.pairs: dict[Pair, Seen] = {}
        self.downstream: dict[str, dict[str, Seen]] = {}
        self.upstream: dict[str, dict[str, Seen]] = {}

    def put(self, client: str, server: str, first: int, last: int) -> None:
        seen = [first, last]
        self.pairs[(client, server)] = seen
        self.downstream.setdefault(client, {})[server] = seen
        self.upstream.setdefault(server, {})[client] = seen

    def widen(self, seen: dict[Pair, tuple[int, int]]) -> bool:
        """Merge reported bounds; False when one names a pair not held."""
        complete = True
        for pair, (first, last) in seen.items():
            known = self.pairs.get(pair)
            if known is None:
                complete = False
                continue
            if first < known[0]:
                known[0] = first
            if last > known[1]:
                known[1] = last
        return complete


class PairIndex:
    """One per store (`Changes.cache`); a pair listener of its writer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: Adjacency | None = None
        self._epoch = 0  # bumped whenever the held pairs are dropped
        self._journals: list[list[dict[Pair, tuple[int, int]]]] = []

    # -- the writer's reports ------------------------------------------------------

    def pairs_seen(self, seen: dict[Pair, tuple[int, int]]) -> None:
        with self._lock:
            for journal in self._journals:
                journal.append(seen)
            if self._held is not None and not self._held.widen(seen):
                self._drop()

    def pairs_deleted(self) -> None:
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        self._held = None
        self._epoch += 1

    # -- walks -------------------------------------------------------------------

    def with_pairs(self, store: GraphStore, use: Callable[[Adjacency], T]) -> T:
        """`use(adjacency)` under the index lock (writers' reports wait: walks take
        a few milliseconds)."""
        with self._lock:
            if self._held is not None:
                return use(self._held)
            journal: list[dict[Pair, tuple[int, int]]] = []
            self._journals.append(journal)
            epoch = self._epoch
        try:
            loaded = _load(store)
        except BaseException:
            with self._lock:
                self._journals.remove(journal)
            raise
        with self._lock:  # the journal ends where the install happens: no report between
            self._journals.remove(journal)
            if self._held is not None:
                return use(self._held)
            installable = epoch == self._epoch
            replayed = _load_copy(loaded) if journal else loaded
            for seen in journal:
                installable = replayed.widen(seen) and installable
            if installable:
                self._held = replayed
                return use(replayed)
        return use(loaded)


def _load(store: GraphStore) -> Adjacency:
    table = store.read_arrow(ALL_PAIRS)
    found = Adjacency()
    if table.num_rows:
        columns = [table.column(n).to_pylist()
                   for n in ("client", "server", "first_seen", "last_seen")]
        for client, server, first, last in zip(*columns, strict=True):
            found.put(client, server, first, last)
    return found


def _load_copy(loaded: Adjacency) -> Adjacency:
    copy = Adjacency()
    for (client, server), (first, last) in loaded.pairs.items():
        copy.put(client, server, first, last)
    return copy
