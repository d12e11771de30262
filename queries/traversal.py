"""Walks over the per-pair CALLS relationships: dependencies and blast radius.

Walks never touch CallBucket nodes (one per pair per minute per path would
multiply paths): a breadth-first walk reads one hop of CALLS per level, which
also gives the shortest distance and one shortest path to every service. A
pair belongs to a window when it was seen in it (first_seen < until and
last_seen > since). Health (degraded or not) does read buckets, but only an
aggregate per service over the window. On the embedded store both come from
in-process caches its writer keeps exact (`queries/adjacency.py`,
`queries/health.py`); elsewhere, or where a cache cannot answer, from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from queries.adjacency import Adjacency, PairIndex
from queries.health import cached_health
from queries.service_cache import LONG_LIST, known_services
from queries.services import ServiceNode, UnknownService
from queries.tiering import Shape, read_traffic
from queries.window import (
    AGGREGATES,
    EMPTY,
    IN_WINDOW,
    Thresholds,
    Traffic,
    Window,
    add,
    traffic,
)
from topology.store.base import GraphStore
from topology.store.changes import changes_of, reading_begins
from topology.store.statement import Statement

MAX_DEPTH = 20
_PAIR_IN_WINDOW = "r.first_seen < $until AND r.last_seen > $since"
# The embedded store keeps each pair's bounds in a CallPair node (docs/storage.md);
# its CALLS relationship holds the CallPair's id (`pid`). A hop expands CALLS from
# the frontier, then looks each pair's bounds up by id: the WITH makes LadybugDB
# use the primary key index (a MATCH on `r.pid` directly hash-joins a scan of
# every CallPair; a scan of CallPair by client or server tests the frontier list
# on every row, 2-4x slower than the relationship hop for 100 services).
CALL_PAIR_IN_WINDOW = "p.first_seen < $until AND p.last_seen > $since"


def call_pair_hop(pattern: str, only: str = "") -> str:
    """LadybugDB hop over `pattern` (binding a, r, b) with the window on CallPair."""
    return (
        f"MATCH {pattern} WHERE a.id IN $frontier{only} "
        "WITH a.id AS source, b.id AS target, r.pid AS pid "
        f"MATCH (p:CallPair {{id: pid}}) WHERE {CALL_PAIR_IN_WINDOW} "
        "RETURN source, target"
    )


DOWNSTREAM_HOP = Statement(
    "downstream_hop",
    "MATCH (a:Service)-[r:CALLS]->(b:Service) WHERE a.id IN $frontier AND "
    f"{_PAIR_IN_WINDOW} RETURN a.id AS source, b.id AS target",
    call_pair_hop("(a:Service)-[r:CALLS]->(b:Service)"),
)
UPSTREAM_HOP = Statement(
    "upstream_hop",
    "MATCH (b:Service)-[r:CALLS]->(a:Service) WHERE a.id IN $frontier AND "
    f"{_PAIR_IN_WINDOW} RETURN a.id AS source, b.id AS target",
    call_pair_hop("(b:Service)-[r:CALLS]->(a:Service)"),
)


def _health_shape(side: str, *, listed: bool) -> Shape:
    only = f" AND k.{side} IN $ids" if listed else ""
    return Shape(f"health_as_{side}" + ("" if listed else "_all"), f"k.{side} AS id", only)


def _health_statement(side: str, *, listed: bool) -> Statement:
    only = f" AND k.{side} IN $ids" if listed else ""

    def text(dialect: str) -> str:
        return (
            f"MATCH (k:CallBucket) WHERE {IN_WINDOW}{only} "
            f"RETURN k.{side} AS id, {AGGREGATES[dialect]}"
        )
    suffix = "" if listed else "_all"
    return Statement(f"health_as_{side}{suffix}", text("neo4j"), text("ladybug"))


SERVED = _health_statement("server", listed=True)
MADE = _health_statement("client", listed=True)
# LadybugDB tests `x IN $list` by scanning the list for every bucket, so for
# many services one grouped pass over the window is cheaper than a long list.
SERVED_ALL = _health_statement("server", listed=False)
MADE_ALL = _health_statement("client", listed=False)


class Direction(StrEnum):
    DOWNSTREAM = "downstream"  # what the service calls, transitively
    UPSTREAM = "upstream"  # what calls the service, transitively


@dataclass(frozen=True)
class Dependency:
    service: ServiceNode
    distance: int  # shortest number of hops from the root
    path: tuple[str, ...]  # service ids from the root to this service along a shortest path


@dataclass(frozen=True)
class Dependencies:
    root: ServiceNode
    direction: Direction
    depth: int
    services: tuple[Dependency, ...]  # by distance, then id


@dataclass(frozen=True)
class Dependent:
    service: ServiceNode
    distance: int
    path: tuple[str, ...]  # from this dependent down to the target, e.g. (frontend, checkout, db)
    degraded: bool
    requests: int
    error_rate: float
    p99_ms: float | None


@dataclass(frozen=True)
class BlastRadius:
    target: ServiceNode
    depth: int
    dependents: tuple[Dependent, ...]
    total: int
    degraded: int

    @property
    def summary(self) -> str:
        noun = "service" if self.total == 1 else "services"
        return f"{self.total} dependent {noun}, {self.degraded} degraded"


def breadth_first(
    hop: Callable[[list[str]], Iterable[Mapping[str, Any]]], root: str, depth: int
) -> dict[str, tuple[int, str | None]]:
    """Service id -> (distance, previous id on a shortest path), one `hop` read per level.

    `hop(frontier)` returns rows with `source` (in the frontier) and `target`.
    """
    reached: dict[str, tuple[int, str | None]] = {root: (0, None)}
    frontier = [root]
    for distance in range(1, depth + 1):
        if not frontier:
            break
        rows = hop(frontier)
        frontier = []
        for source, target in sorted((row["source"], row["target"]) for row in rows):
            if target not in reached:
                reached[target] = (distance, source)
                frontier.append(target)
    return reached


def walk(
    store: GraphStore, root: str, direction: Direction, depth: int, window: Window
) -> dict[str, tuple[int, str | None]]:
    """Breadth-first: service id -> (distance, previous id on a shortest path).

    Over the embedded store the pairs come from this process's exact copy of them
    (`queries/adjacency.py`); otherwise one hop statement per level."""
    if not 1 <= depth <= MAX_DEPTH:
        raise ValueError(f"depth must be between 1 and {MAX_DEPTH}, got {depth}")
    changes = changes_of(store)
    if changes is not None:
        index: PairIndex = changes.cache("pairs", PairIndex)
        reading_begins(store)
        return index.with_pairs(
            store, lambda pairs: held_walk(pairs, root, direction, depth, window))
    return read_walk(store, root, direction, depth, window)


def read_walk(
    store: GraphStore, root: str, direction: Direction, depth: int, window: Window
) -> dict[str, tuple[int, str | None]]:
    """`walk` reading one hop statement per level from the store."""
    hop = DOWNSTREAM_HOP if direction is Direction.DOWNSTREAM else UPSTREAM_HOP
    return breadth_first(
        lambda frontier: store.read(hop, {"frontier": frontier, **window.params()}), root, depth
    )


def held_walk(
    pairs: Adjacency, root: str, direction: Direction, depth: int, window: Window
) -> dict[str, tuple[int, str | None]]:
    """`breadth_first` over held pairs seen in the window (as _PAIR_IN_WINDOW), with
    no row per pair: a walk reaching hundreds of services allocates little (fewer
    objects, fewer collections by the garbage collector)."""
    by_end = pairs.downstream if direction is Direction.DOWNSTREAM else pairs.upstream
    since, until = window.since, window.until
    reached: dict[str, tuple[int, str | None]] = {root: (0, None)}
    frontier = [root]
    for distance in range(1, depth + 1):
        if not frontier:
            break
        previous, frontier = frontier, []
        for source in sorted(previous):  # as breadth_first: by (source, target)
            for target in sorted(target for target, (first, last)
                                 in by_end.get(source, {}).items()
                                 if first < until and last > since and target not in reached):
                reached[target] = (distance, source)
                frontier.append(target)
    return reached


def _chain(reached: dict[str, tuple[int, str | None]], service: str) -> tuple[str, ...]:
    """From the service along previous ids to the root: `path_to` reversed."""
    chain = [service]
    while (previous := reached[chain[-1]][1]) is not None:
        chain.append(previous)
    return tuple(chain)


def path_to(reached: dict[str, tuple[int, str | None]], service: str) -> tuple[str, ...]:
    path = [service]
    while (previous := reached[path[-1]][1]) is not None:
        path.append(previous)
    return tuple(reversed(path))


def dependencies(
    store: GraphStore, service_id: str, window: Window, *,
    direction: Direction = Direction.DOWNSTREAM, depth: int = 5,
) -> Dependencies:
    """Services the given one depends on (downstream) or that depend on it (upstream)."""
    reached = walk(store, service_id, direction, depth, window)
    services = _known(store, service_id, reached)
    items = tuple(
        Dependency(services[sid], distance, path_to(reached, sid))
        for sid, (distance, _) in sorted(reached.items(), key=lambda i: (i[1][0], i[0]))
        if sid != service_id
    )
    return Dependencies(services[service_id], direction, depth, items)


def health(store: GraphStore, ids: list[str], window: Window) -> dict[str, Traffic]:
    """Per service: the calls it served in the window, else the calls it made."""
    cached = cached_health(store, ids, window)
    if cached is not None:
        return cached
    return read_health(store, ids, window)


def read_health(store: GraphStore, ids: list[str], window: Window) -> dict[str, Traffic]:
    """`health` read from the store: a grouped pass per side over the window."""
    found: dict[str, Traffic] = {}
    for side, listed, grouped in (("server", SERVED, SERVED_ALL), ("client", MADE, MADE_ALL)):
        missing = [sid for sid in ids if sid not in found]
        if not missing:
            break
        if len(missing) > LONG_LIST:
            rows = read_traffic(store, window, grouped, _health_shape(side, listed=False),
                                None, window.params())
        else:
            rows = read_traffic(store, window, listed, _health_shape(side, listed=True),
                                None, {"ids": missing, **window.params()})
        wanted = set(missing)
        for row in rows:
            if row["id"] in wanted:
                part = traffic(row)
                known = found.get(row["id"])
                found[row["id"]] = part if known is None else add(known, part)
    return found


def blast_radius(
    store: GraphStore, service_id: str, window: Window, *, depth: int = 5,
    thresholds: Thresholds | None = None,
) -> BlastRadius:
    """Every service that depends on the given one, transitively, and which are degraded."""
    reached = walk(store, service_id, Direction.UPSTREAM, depth, window)
    services = _known(store, service_id, reached)
    ids = sorted(sid for sid in reached if sid != service_id)
    states = health(store, ids, window)
    limits = thresholds or Thresholds()
    dependents = []
    for sid in sorted(ids, key=lambda i: (reached[i][0], i)):
        state = states.get(sid, EMPTY)
        p99 = state.quantile(0.99)  # once: Traffic.degraded would estimate it again
        degraded = state.error_rate > limits.error_rate or (
            p99 is not None and p99 > limits.p99_ms)
        dependents.append(Dependent(
            services[sid], reached[sid][0], _chain(reached, sid),
            degraded, state.requests, state.error_rate, p99,
        ))
    return BlastRadius(
        services[service_id], depth, tuple(dependents), len(dependents),
        sum(d.degraded for d in dependents),
    )


def _known(
    store: GraphStore, root: str, reached: dict[str, tuple[int, str | None]]
) -> dict[str, ServiceNode]:
    services = known_services(store, reached)
    if root not in services:
        raise UnknownService(f"no service with id {root!r}")
    return services
