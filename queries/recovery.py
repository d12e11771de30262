"""Recovery order: the stages in which services should come back, dependencies first.

The pair graph (CALLS seen in the window) is condensed into strongly connected
components (Tarjan, iterative): a dependency cycle cannot be ordered, so its
services share one stage. A component's stage is one more than the highest
stage among the components it calls; stage 0 depends on nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from queries.services import ServiceNode, UnknownService, services_by_id
from queries.window import Window
from topology.store.base import GraphStore
from topology.store.statement import Statement

PAIRS_IN_WINDOW = Statement(
    "pairs_in_window",
    "MATCH (a:Service)-[r:CALLS]->(b:Service) WHERE r.first_seen < $until AND "
    "r.last_seen > $since RETURN a.id AS client, b.id AS server",
    # the embedded store: each pair's bounds in its CallPair node (docs/storage.md)
    "MATCH (p:CallPair) WHERE p.first_seen < $until AND p.last_seen > $since "
    "RETURN p.client AS client, p.server AS server",
)


@dataclass(frozen=True)
class Stage:
    number: int  # 0 first
    services: tuple[ServiceNode, ...]
    cycles: tuple[tuple[str, ...], ...]  # dependency cycles (service ids) inside the stage


@dataclass(frozen=True)
class RecoveryOrder:
    stages: tuple[Stage, ...]


def components(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan's algorithm without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(sorted(component))
    return found


def stages(graph: Mapping[str, Iterable[str]]) -> list[list[list[str]]]:
    """Components grouped by stage; an edge a -> b means a depends on b."""
    comps = components(graph)
    owner = {member: i for i, comp in enumerate(comps) for member in comp}
    # Tarjan emits a component only after every component it reaches, so one
    # pass in emission order sees dependencies first.
    level: list[int] = []
    for i, comp in enumerate(comps):
        deps = {owner[t] for m in comp for t in graph.get(m, ()) if owner[t] != i}
        level.append(1 + max((level[d] for d in deps), default=-1))
    grouped: dict[int, list[list[str]]] = {}
    for i, comp in enumerate(comps):
        grouped.setdefault(level[i], []).append(comp)
    return [sorted(grouped[n]) for n in sorted(grouped)]


def recovery_order(
    store: GraphStore, window: Window, service_ids: Iterable[str] | None = None
) -> RecoveryOrder:
    """Stages for the given services and everything they depend on (or for all)."""
    graph: dict[str, set[str]] = {}
    for row in store.read(PAIRS_IN_WINDOW, window.params()):
        graph.setdefault(row["client"], set()).add(row["server"])
        graph.setdefault(row["server"], set())
    if service_ids is not None:
        wanted = sorted(set(service_ids))
        known = services_by_id(store, wanted)
        if missing := [sid for sid in wanted if sid not in known]:
            raise UnknownService(f"no service with id {missing[0]!r}")
        keep = closure(graph, wanted)
        graph = {sid: graph.get(sid, set()) & keep for sid in keep}
    services = services_by_id(store, graph)
    result = []
    for number, comps in enumerate(stages(graph)):
        members = sorted(m for comp in comps for m in comp)
        result.append(Stage(
            number, tuple(services[m] for m in members if m in services),
            tuple(tuple(comp) for comp in comps if len(comp) > 1),
        ))
    return RecoveryOrder(tuple(result))


def closure(graph: Mapping[str, set[str]], roots: list[str]) -> set[str]:
    """The roots and everything they reach in `graph`."""
    seen = set(roots)
    todo = list(roots)
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen

