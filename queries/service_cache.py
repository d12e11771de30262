"""The embedded store's services held in this process, for blast radius answers.

A blast radius names hundreds of services; reading them costs a read of every
service as Arrow and a ServiceNode per row (5 to 8 ms, and thousands of objects
the garbage collector must then walk). The embedded store's writer reports any
write that may change services (a batch carrying services, any retention run:
`topology/store/changes.py`), so the services read once stay exact until then.
The generation is read before the read that fills the cache (its own snapshot),
as for the other caches.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping

from queries.services import SERVICE_COLUMNS, ServiceNode, rows_of, services_by_id
from topology.store.base import GraphStore
from topology.store.changes import Changes, changes_of
from topology.store.statement import Statement

ALL_SERVICES = Statement.same("all_services", f"MATCH (s:Service) RETURN {SERVICE_COLUMNS}")
# LadybugDB tests `s.id IN $ids` by scanning the list for every service: for longer
# lists, reading every service as Arrow and picking is several times cheaper.
LONG_LIST = 32


class ServiceCache:
    """One per store (`Changes.cache`): service id -> ServiceNode."""

    def __init__(self, changes: Changes) -> None:
        self.changes = changes
        self._lock = threading.Lock()
        self._held: tuple[int, dict[str, ServiceNode]] | None = None

    def all(self, store: GraphStore) -> Mapping[str, ServiceNode]:
        with self._lock:
            held = self._held
        if held is not None and not self.changes.services_changed_since(held[0]):
            return held[1]
        generation = self.changes.generation  # before the read's snapshot
        services = {row["id"]: ServiceNode.of(row)
                    for row in rows_of(store.read_arrow(ALL_SERVICES))}
        with self._lock:
            if self._held is None or self._held[0] < generation:
                self._held = (generation, services)
        return services


def all_services(store: GraphStore, changes: Changes) -> Mapping[str, ServiceNode]:
    cache: ServiceCache = changes.cache("services", lambda: ServiceCache(changes))
    return cache.all(store)


def known_services(store: GraphStore, ids: Collection[str]) -> dict[str, ServiceNode]:
    """The services among `ids` that exist: on the embedded store from the copy held
    in this process, elsewhere read."""
    changes = changes_of(store)
    if changes is not None:
        held = all_services(store, changes)
        return {sid: held[sid] for sid in ids if sid in held}
    if len(ids) > LONG_LIST:
        table = store.read_arrow(ALL_SERVICES)
        picked = [i for i, sid in enumerate(table.column("id").to_pylist()) if sid in ids] \
            if table.num_rows else []
        return {row["id"]: ServiceNode.of(row) for row in table.take(picked).to_pylist()}
    return services_by_id(store, ids)
