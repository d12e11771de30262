"""Answers built on the per-pair CALLS walks: dependencies, blast radius, recovery order.

An unlimited principal gets the named queries as they are. A namespace-limited
one walks only through services it may see (`walk_scoped`): a path through a
hidden namespace would reveal that namespace's services, so such paths are
not walked at all.
"""

from __future__ import annotations

from queries import recovery as named_recovery
from queries import traversal as named
from queries.traversal import MAX_DEPTH, Direction, call_pair_hop
from queries.window import EMPTY, Thresholds, Window
from topology.api.graphql import types as t
from topology.api.graphql.context import Ctx, cap
from topology.api.graphql.errors import BAD_INPUT, LIMIT_EXCEEDED, ApiError
from topology.api.graphql.records import fetch_services
from topology.model import EXTERNAL_KINDS
from topology.store.statement import Statement

_PAIR = "r.first_seen < $until AND r.last_seen > $since"
_INSIDE = "(b.namespace IN $scope_ns AND NOT b.kind IN $scope_all_external)"
# The embedded store keeps each pair's bounds in a CallPair node, looked up by the
# relationship's `pid` (`call_pair_hop`, docs/storage.md).
DOWNSTREAM_SCOPED = Statement(
    "api_downstream_hop_scoped",
    f"MATCH (a:Service)-[r:CALLS]->(b:Service) WHERE a.id IN $frontier AND {_PAIR} AND "
    f"({_INSIDE} OR b.kind IN $scope_external) RETURN a.id AS source, b.id AS target",
    call_pair_hop("(a:Service)-[r:CALLS]->(b:Service)",
                  f" AND ({_INSIDE} OR b.kind IN $scope_external)"),
)
UPSTREAM_SCOPED = Statement(
    "api_upstream_hop_scoped",
    f"MATCH (b:Service)-[r:CALLS]->(a:Service) WHERE a.id IN $frontier AND {_PAIR} AND "
    f"{_INSIDE} RETURN a.id AS source, b.id AS target",
    call_pair_hop("(b:Service)-[r:CALLS]->(a:Service)", f" AND {_INSIDE}"),
)


def check_depth(depth: int) -> None:
    if depth < 1:
        raise ApiError(BAD_INPUT, f"depth must be at least 1, got {depth}")
    if depth > MAX_DEPTH:
        raise ApiError(LIMIT_EXCEEDED, f"depth is at most {MAX_DEPTH}, got {depth}")


def walk_scoped(
    ctx: Ctx, root: str, direction: Direction, depth: int, window: Window
) -> dict[str, tuple[int, str | None]]:
    """Breadth-first like the named walk, through visible services only."""
    hop = DOWNSTREAM_SCOPED if direction is Direction.DOWNSTREAM else UPSTREAM_SCOPED
    params = {**ctx.scope.params(), "scope_all_external": list(EXTERNAL_KINDS),
              **window.params()}
    return named.breadth_first(
        lambda frontier: ctx.store.read(hop, {**params, "frontier": frontier}), root, depth
    )


def dependencies(
    ctx: Ctx, service_id: str, direction: Direction, depth: int, window: Window
) -> t.Dependencies:
    check_depth(depth)
    ctx.visible_node(service_id)
    if ctx.scope.limited:
        reached = walk_scoped(ctx, service_id, direction, depth, window)
        found = [(sid, d, list(named.path_to(reached, sid)))
                 for sid, (d, _) in sorted(reached.items(), key=lambda i: (i[1][0], i[0]))
                 if sid != service_id]
    else:
        answer = named.dependencies(ctx.store, service_id, window, direction=direction,
                                    depth=depth)
        found = [(d.service.id, d.distance, list(d.path)) for d in answer.services]
    kept, truncated = cap(found, ctx.max_items)
    services = ctx.services([service_id, *(sid for sid, _, _ in kept)], window)
    return t.Dependencies(
        root=services[service_id], direction=t.Direction(direction.value), depth=depth,
        services=[t.Dependency(service=services[sid], distance=d, path=path)
                  for sid, d, path in kept if sid in services],
        truncated=truncated,
    )


def blast_radius(ctx: Ctx, service_id: str, depth: int, window: Window) -> t.BlastRadius:
    check_depth(depth)
    ctx.visible_node(service_id)
    limits = Thresholds()
    if ctx.scope.limited:
        reached = walk_scoped(ctx, service_id, Direction.UPSTREAM, depth, window)
        ids = sorted((sid for sid in reached if sid != service_id),
                     key=lambda i: (reached[i][0], i))
        states = named.health(ctx.store, ids, window)
        rows = []
        for sid in ids:
            state = states.get(sid, EMPTY)
            rows.append((sid, reached[sid][0], list(named.path_to(reached, sid))[::-1],
                         state.degraded(limits), state.requests, state.error_rate,
                         state.quantile(0.99)))
    else:
        answer = named.blast_radius(ctx.store, service_id, window, depth=depth,
                                    thresholds=limits)
        rows = [(d.service.id, d.distance, list(d.path), d.degraded, d.requests,
                 d.error_rate, d.p99_ms) for d in answer.dependents]
    total, degraded = len(rows), sum(1 for row in rows if row[3])
    kept, truncated = cap(rows, ctx.max_items)
    services = ctx.services([service_id, *(row[0] for row in kept)], window)
    noun = "service" if total == 1 else "services"
    return t.BlastRadius(
        target=services[service_id], depth=depth,
        dependents=[t.Dependent(service=services[sid], distance=d, path=path, degraded=bad,
                                requests=requests, error_rate=rate, p99_ms=p99)
                    for sid, d, path, bad, requests, rate, p99 in kept],
        total=total, degraded=degraded, summary=f"{total} dependent {noun}, {degraded} degraded",
        truncated=truncated,
    )


def recovery_order(ctx: Ctx, service_ids: list[str] | None, window: Window) -> t.RecoveryOrder:
    if service_ids is not None:
        if len(service_ids) > ctx.max_items:
            raise ApiError(LIMIT_EXCEEDED, f"serviceIds holds at most {ctx.max_items} ids")
        for sid in sorted(set(service_ids)):
            ctx.visible_node(sid)
    if ctx.scope.limited:
        groups = _scoped_stages(ctx, service_ids, window)
    else:
        answer = named_recovery.recovery_order(ctx.store, window, service_ids)
        groups = [([s.id for s in stage.services], [list(c) for c in stage.cycles])
                  for stage in answer.stages]
    members = [sid for ids, _ in groups for sid in ids]
    kept_members, truncated = cap(members, ctx.max_items)
    allowed = set(kept_members)
    services = ctx.services(kept_members, window)
    stages = []
    for number, (ids, cycles) in enumerate(groups):
        shown = [services[sid] for sid in ids if sid in allowed and sid in services]
        if shown:
            stages.append(t.RecoveryStage(number=number, services=shown, cycles=cycles))
    return t.RecoveryOrder(stages=stages, truncated=truncated)


def _scoped_stages(
    ctx: Ctx, service_ids: list[str] | None, window: Window
) -> list[tuple[list[str], list[list[str]]]]:
    rows = ctx.store.read(named_recovery.PAIRS_IN_WINDOW, window.params())
    records = fetch_services(ctx.store, {r["client"] for r in rows} | {r["server"] for r in rows})
    graph: dict[str, set[str]] = {}
    for row in rows:
        client, server = records.get(row["client"]), records.get(row["server"])
        if client is None or server is None or not ctx.scope.sees_pair(client.node, server.node):
            continue
        graph.setdefault(row["client"], set()).add(row["server"])
        graph.setdefault(row["server"], set())
    if service_ids is not None:
        keep = named_recovery.closure(graph, sorted(set(service_ids)))
        graph = {sid: graph.get(sid, set()) & keep for sid in keep}
    result = []
    for comps in named_recovery.stages(graph):
        members = sorted(m for comp in comps for m in comp)
        result.append((members, [comp for comp in comps if len(comp) > 1]))
    return result
