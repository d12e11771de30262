"""External dependencies: third-party endpoints by hostname, and the unknown ones."""

from __future__ import annotations

from dataclasses import dataclass

from queries.services import ServiceNode, services_by_id
from queries.tiering import Shape, read_traffic
from queries.window import AGGREGATES, EMPTY, IN_WINDOW, Traffic, Window, add, traffic
from topology.model import KIND_EXTERNAL_SERVICE, KIND_UNKNOWN_EXTERNAL
from topology.store.base import GraphStore
from topology.store.statement import Statement

EXTERNAL_SERVER_KINDS = [KIND_EXTERNAL_SERVICE, KIND_UNKNOWN_EXTERNAL]


def _text(dialect: str) -> str:
    return (
        f"MATCH (k:CallBucket) WHERE {IN_WINDOW} MATCH (s:Service {{id: k.server}}) "
        "WHERE s.kind IN $kinds RETURN k.client AS client, k.server AS server, "
        f"k.naming AS naming, {AGGREGATES[dialect]}"
    )


EXTERNAL_CALLS = Statement("external_calls", _text("neo4j"), _text("ladybug"))
EXTERNAL_SHAPE = Shape(
    "external_calls", "k.client AS client, k.server AS server, k.naming AS naming",
    server_where="s.kind IN $kinds",
)


@dataclass(frozen=True)
class Caller:
    service: ServiceNode
    requests: int
    errors: int


@dataclass(frozen=True)
class ExternalDependency:
    service: ServiceNode
    hostname: str  # the service name: a hostname, or "Unknown External Service"
    naming: tuple[str, ...]  # how it was named: host (HTTP Host), dns, unknown, trace
    requests: int
    errors: int
    error_rate: float
    p99_ms: float | None
    callers: tuple[Caller, ...]  # busiest first


def external_dependencies(store: GraphStore, window: Window) -> tuple[ExternalDependency, ...]:
    """External services called in the window, busiest first, with their callers."""
    rows = read_traffic(store, window, EXTERNAL_CALLS, EXTERNAL_SHAPE, None,
                        {"kinds": EXTERNAL_SERVER_KINDS, **window.params()})
    per_caller: dict[str, dict[str, Traffic]] = {}
    naming: dict[str, set[str]] = {}
    for row in rows:
        part = traffic(row)
        callers = per_caller.setdefault(row["server"], {})
        known = callers.get(row["client"])
        callers[row["client"]] = part if known is None else add(known, part)
        naming.setdefault(row["server"], set()).add(row["naming"])
    ids = set(per_caller) | {c for callers in per_caller.values() for c in callers}
    services = services_by_id(store, ids)
    result = []
    for server, callers in per_caller.items():
        total = EMPTY
        for part in callers.values():
            total = add(total, part)
        busiest = sorted(callers.items(), key=lambda item: (-item[1].requests, item[0]))
        result.append(ExternalDependency(
            services[server], services[server].name, tuple(sorted(naming[server])),
            total.requests, total.errors, total.error_rate, total.quantile(0.99),
            tuple(Caller(services[c], t.requests, t.errors) for c, t in busiest),
        ))
    return tuple(sorted(result, key=lambda d: (-d.requests, d.service.id)))
