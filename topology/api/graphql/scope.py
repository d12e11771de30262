"""What a principal may see: all services, or those of some namespaces.

A namespace-limited principal sees the services of its namespaces and the
external nodes they call, in every query. Scoping happens in the store query
(an extra predicate ANDed to the compiled filter), so caps, totals and
truncation count only what the principal may see. Asking for a service out of
scope answers exactly like asking for one that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from queries.compiler import CompiledFilter, compile_filter
from queries.services import ServiceNode
from topology.model import EXTERNAL_KINDS
from topology.store.base import GraphStore
from topology.store.statement import Statement

_EXTERNAL = list(EXTERNAL_KINDS)
# Called external nodes are visible; external callers (External Clients) are not.
_CALLED_EXTERNAL = [kind for kind in EXTERNAL_KINDS if kind != "External client"]
_PAIR_SCOPE = ("c.namespace IN $scope_ns AND "
               "(s.namespace IN $scope_ns OR s.kind IN $scope_external)")

CALLED_FROM_SCOPE = Statement.same(
    "called_from_scope",
    "MATCH (a:Service)-[:CALLS]->(b:Service) WHERE b.id = $id AND a.namespace IN $scope_ns "
    "RETURN count(a) AS n",
)


@dataclass(frozen=True)
class Scope:
    """None namespaces: everything. Otherwise the namespaces a principal may read."""

    namespaces: frozenset[str] | None = None

    @classmethod
    def of(cls, principal: Any) -> Scope:
        namespaces = getattr(principal, "namespaces", None)
        return cls(None if namespaces is None else frozenset(namespaces))

    @property
    def limited(self) -> bool:
        return self.namespaces is not None

    def params(self) -> dict[str, Any]:
        return {"scope_ns": sorted(self.namespaces or ()), "scope_external": _CALLED_EXTERNAL}

    def compile(self, filter_text: str) -> CompiledFilter:
        """The user's filter (errors positioned in the user's text), ANDed with the scope."""
        compiled = compile_filter(filter_text)
        if not self.limited:
            return compiled
        return replace(
            compiled,
            neo4j=f"({_PAIR_SCOPE}) AND ({compiled.neo4j})",
            ladybug=f"({_PAIR_SCOPE}) AND ({compiled.ladybug})",
            param_items=compiled.param_items + tuple(self.params().items()),
            variables=compiled.variables | {"c", "s"},
        )

    def sees_pair(self, client: ServiceNode, server: ServiceNode) -> bool:
        if not self.limited:
            return True
        assert self.namespaces is not None
        return client.namespace in self.namespaces and not client.external and (
            (server.namespace in self.namespaces and not server.external)
            or server.kind in _CALLED_EXTERNAL)

    def sees_service(self, store: GraphStore, service: ServiceNode) -> bool:
        """In scope: own namespace, or an external node some in-scope service calls."""
        if not self.limited:
            return True
        assert self.namespaces is not None
        if not service.external:
            return service.namespace in self.namespaces
        if service.kind not in _CALLED_EXTERNAL:
            return False
        rows = store.read(CALLED_FROM_SCOPE, {"id": service.id, **self.params()})
        return bool(rows and rows[0]["n"])

    def visible(self, store: GraphStore, services: Iterable[ServiceNode]) -> list[ServiceNode]:
        return [s for s in services if self.sees_service(store, s)]
