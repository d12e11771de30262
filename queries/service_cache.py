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
from collections.abc import Mapping

from queries.services import SERVICE_COLUMNS, ServiceNode, rows_of
from topology.store.base import GraphStore
from topology.store.changes import Changes
from topology.store.statement import Statement

ALL_SERVICES = Statement.same("all_services", f"MATCH (s:Service) RETURN {SERVICE_COLUMNS}")


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
