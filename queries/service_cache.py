"""The embedded store's services held in this process, for blast radius answers.

A blast radius names hundreds of services; reading them costs a read of every
service as Arrow and a ServiceNode per row (5 to 8 ms, and thousands of objects
the garbage collector must then walk). The embedded store's writer reports any
write that may change services (a batch carrying services, any retention run:
`topology/store/changes.py`), so the services read once stay exact until then.
The generation is read before the read that fills the cache (its own snapshot),
as for the other caches. The API's answers take the services' first and last
seen from the same copy (`ServiceRecord`): only those writes change them too.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from queries.services import SERVICE_COLUMNS, ServiceNode, rows_of, services_by_id
from topology.store.base import GraphStore
from topology.store.changes import Changes, changes_of
from topology.store.statement import Statement

ALL_SERVICES = Statement.same(
    "all_services", f"MATCH (s:Service) RETURN {SERVICE_COLUMNS}, "
    "s.first_seen AS first_seen, s.last_seen AS last_seen")
# LadybugDB tests `s.id IN $ids` by scanning the list for every service: for longer
# lists, reading every service as Arrow and picking is several times cheaper.
LONG_LIST = 32


@dataclass(frozen=True)
class ServiceRecord:
    """A service with when it was first and last seen (the API's service fields)."""

    node: ServiceNode
    first_seen: int | None
    last_seen: int | None


@dataclass(frozen=True)
class Held:
    generation: int  # Changes.generation read before the read that filled it
    nodes: dict[str, ServiceNode]
    records: dict[str, ServiceRecord]


class ServiceCache:
    """One per store (`Changes.cache`): every service, as nodes and as records."""

    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self._lock = threading.Lock()
        self._held: Held | None = None

    @property
    def filled(self) -> bool:
        """Whether a copy was ever read (it may be stale)."""
        return self._held is not None

    def fresh(self) -> Held | None:
        """The copy held, when no write since may have changed services."""
        with self._lock:
            held = self._held
        if held is not None and not self.changes.services_changed_since(held.generation):
            return held
        return None

    def current(self, store: GraphStore) -> Held:
        """The copy, read again first when stale."""
        held = self.fresh()
        if held is not None:
            return held
        generation = self.changes.generation  # before the read's snapshot
        records = {row["id"]: ServiceRecord(ServiceNode.of(row), row["first_seen"],
                                            row["last_seen"])
                   for row in rows_of(store.read_arrow(ALL_SERVICES))}
        held = Held(generation, {sid: r.node for sid, r in records.items()}, records)
        with self._lock:
            if self._held is None or self._held.generation < generation:
                self._held = held
        return held


def cache_of(changes: Changes) -> ServiceCache:
    return changes.cache("services", lambda: ServiceCache(changes))


def all_services(store: GraphStore, changes: Changes) -> Mapping[str, ServiceNode]:
    return cache_of(changes).current(store).nodes


def known_services(store: GraphStore, ids: Collection[str]) -> dict[str, ServiceNode]:
    """The services among `ids` that exist: on the embedded store from the copy held
    in this process, elsewhere read."""
    changes = changes_of(store)
    if changes is not None:
        held = all_services(store, changes)
        return {sid: held[sid] for sid in ids if sid in held}
    if len(ids) > LONG_LIST:
        table = store.read_arrow(ALL_SERVICES).drop_columns(["first_seen", "last_seen"])
        picked = [i for i, sid in enumerate(table.column("id").to_pylist()) if sid in ids] \
            if table.num_rows else []
        return {row["id"]: ServiceNode.of(row) for row in table.take(picked).to_pylist()}
    return services_by_id(store, ids)
