"""The service map and service detail: buckets in a window, filtered, folded into edges."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from queries import fold
from queries.compiler import CompiledFilter, compile_filter
from queries.service_cache import known_services
from queries.services import ServiceNode, UnknownService
from queries.tiering import Shape, read_traffic, read_traffic_table
from queries.window import AGGREGATES, IN_WINDOW, Traffic, Window, add, traffic
from topology import histogram
from topology.store.base import GraphStore
from topology.store.statement import Dialect, Statement

TOP_PATHS = 5


@dataclass(frozen=True, slots=True)
class PathCount:
    path: str
    requests: int


@dataclass(frozen=True, slots=True)
class Edge:
    client: str
    server: str
    requests: int
    errors: int
    error_rate: float
    request_rate: float  # requests per second over the window
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    protocols: tuple[str, ...]
    top_paths: tuple[PathCount, ...]  # matching calls per path, busiest first


def _builder(cls: type) -> Callable[..., Any]:
    """A positional constructor of a frozen slotted dataclass, for building thousands:
    it stores each field through its slot descriptor, skipping the frozen `__init__`'s
    `object.__setattr__` per field (about three times the cost). Same objects: equal,
    hashing and comparing alike, still frozen afterwards."""
    names = [f.name for f in fields(cls)]
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    lines = [f"def make({', '.join(names)}):", "    o = _new(_cls)"]
    for name in names:
        scope[f"_set_{name}"] = cls.__dict__[name].__set__
        lines.append(f"    _set_{name}(o, {name})")
    lines.append("    return o")
    exec("\n".join(lines), scope)  # the source holds field names only
    return scope["make"]


_new_edge = _builder(Edge)
_new_path_count = _builder(PathCount)


@dataclass(frozen=True)
class ServiceMap:
    window: Window
    services: tuple[ServiceNode, ...]
    edges: tuple[Edge, ...]


@dataclass(frozen=True)
class ServiceDetail:
    service: ServiceNode
    incoming: tuple[Edge, ...]
    outgoing: tuple[Edge, ...]
    callers: tuple[ServiceNode, ...]
    callees: tuple[ServiceNode, ...]
    requests_in: int
    errors_in: int
    requests_out: int
    errors_out: int


_GROUPS = "k.client AS client, k.server AS server, k.protocol AS protocol, k.path AS path"
MAP_SHAPE = Shape("service_map", _GROUPS, series=True)
FOCUS_SHAPE = Shape(
    "service_map_focus", _GROUPS, " AND (k.client = $service OR k.server = $service)",
    series=True)


def map_rows(
    store: GraphStore, compiled: CompiledFilter, window: Window, *, focus: str | None = None
) -> list[dict[str, Any]]:
    """Aggregate rows per (client, server, protocol, path), from tiers and buckets;
    a group may come in several rows (`fold_edges` adds them)."""
    params = {**compiled.params, **window.params()}
    if focus is not None:
        params["service"] = focus
    return read_traffic(store, window, map_statement(compiled, focus=focus is not None),
                        FOCUS_SHAPE if focus is not None else MAP_SHAPE, compiled, params)


def map_table(
    store: GraphStore, compiled: CompiledFilter, window: Window, *, focus: str | None = None
) -> pa.Table | None:
    """`map_rows` as one Arrow table (None when nothing matched)."""
    params = {**compiled.params, **window.params()}
    if focus is not None:
        params["service"] = focus
    return read_traffic_table(
        store, window, map_statement(compiled, focus=focus is not None),
        FOCUS_SHAPE if focus is not None else MAP_SHAPE, compiled, params)


def fold_table(
    table: pa.Table | None, window: Window, top_paths: int = TOP_PATHS
) -> tuple[Edge, ...]:
    """`fold_edges` over an Arrow table: sums, quantiles, protocols and busiest paths
    computed column-wise (`fold.pairs`), then the edges built field by field in bulk."""
    if table is None:
        return ()
    with fold.no_collection():
        return _fold(table, window, top_paths)


def _fold(table: pa.Table, window: Window, top_paths: int) -> tuple[Edge, ...]:
    folded = fold.pairs(table, top_paths)
    p50, p95, p99 = fold.quantiles(folded)
    client, server, requests, errors = (folded.column(n).to_pylist() for n in (
        "client", "server", "requests", "errors"))
    seconds = window.seconds
    error_rates = [e / r if r else 0.0 for r, e in zip(requests, errors, strict=True)]
    request_rates = [r / seconds for r in requests]
    return tuple(map(_new_edge, client, server, requests, errors, error_rates, request_rates,
                     p50, p95, p99, _protocols(folded), _top_paths(folded)))


def _protocols(folded: pa.Table) -> list[tuple[str, ...]]:
    column = folded.column("protocols")
    if _all_single(column):  # the usual case: one tuple per distinct protocol, shared
        shared: dict[str, tuple[str, ...]] = {}
        return [shared.get(name) or shared.setdefault(name, (name,))
                for name in pc.list_flatten(column).to_pylist()]
    return list(map(tuple, column.to_pylist()))


def _top_paths(folded: pa.Table) -> list[tuple[PathCount, ...]]:
    paths, counts = folded.column("paths"), folded.column("path_requests")
    if _all_single(paths):
        return [(_new_path_count(path, count),) for path, count in zip(
            pc.list_flatten(paths).to_pylist(), pc.list_flatten(counts).to_pylist(),
            strict=True)]
    return [tuple(map(_new_path_count, names, numbers)) for names, numbers in zip(
        paths.to_pylist(), counts.to_pylist(), strict=True)]


def _all_single(column: pa.ChunkedArray) -> bool:
    """Every list of the column holds exactly one value."""
    lengths = pc.min_max(pc.list_value_length(column)).as_py()
    return lengths["min"] == 1 and lengths["max"] == 1


def map_statement(compiled: CompiledFilter, *, focus: bool = False) -> Statement:
    """Bucket aggregates per (client, server, protocol, path) matching the filter."""
    return Statement(
        "service_map" + ("_focus" if focus else ""),
        _map_text(compiled, Dialect.NEO4J, focus),
        _map_text(compiled, Dialect.LADYBUG, focus),
    )


def _map_text(compiled: CompiledFilter, dialect: Dialect, focus: bool) -> str:
    text = compiled.prelude(dialect) + f"MATCH (k:CallBucket) WHERE {IN_WINDOW}"
    if focus:
        text += " AND (k.client = $service OR k.server = $service)"
    joined = False
    if "c" in compiled.variables:
        text += " MATCH (c:Service {id: k.client})"
        joined = True
    if "s" in compiled.variables:
        text += " MATCH (s:Service {id: k.server})"
        joined = True
    predicate = compiled.predicate(dialect)
    if predicate != "true":
        text += f" WHERE {predicate}" if joined else f" AND {predicate}"
    return (
        text + " RETURN k.client AS client, k.server AS server, k.protocol AS protocol, "
        f"k.path AS path, {AGGREGATES[dialect.value]}"
    )


def service_map(
    store: GraphStore, window: Window, filter_text: str = "", *, top_paths: int = TOP_PATHS
) -> ServiceMap:
    """Edges whose buckets in the window match the filter, and the services at their ends."""
    compiled = compile_filter(filter_text)
    edges = fold_table(map_table(store, compiled, window), window, top_paths)
    services = known_services(store, {e.client for e in edges} | {e.server for e in edges})
    return ServiceMap(window, tuple(services[i] for i in sorted(services)), edges)


def service_detail(
    store: GraphStore, service_id: str, window: Window, filter_text: str = "",
    *, top_paths: int = TOP_PATHS,
) -> ServiceDetail:
    """Incoming and outgoing traffic of one service, with its callers and callees."""
    compiled = compile_filter(filter_text)
    edges = fold_table(map_table(store, compiled, window, focus=service_id), window, top_paths)
    incoming = tuple(e for e in edges if e.server == service_id)
    outgoing = tuple(e for e in edges if e.client == service_id)
    ids = {service_id} | {e.client for e in incoming} | {e.server for e in outgoing}
    services = known_services(store, ids)
    if service_id not in services:
        raise UnknownService(f"no service with id {service_id!r}")
    return ServiceDetail(
        services[service_id], incoming, outgoing,
        tuple(services[i] for i in sorted({e.client for e in incoming})),
        tuple(services[i] for i in sorted({e.server for e in outgoing})),
        sum(e.requests for e in incoming), sum(e.errors for e in incoming),
        sum(e.requests for e in outgoing), sum(e.errors for e in outgoing),
    )


def fold_edges(
    rows: Iterable[Mapping[str, Any]], window: Window, top_paths: int = TOP_PATHS
) -> tuple[Edge, ...]:
    """Fold per-path aggregate rows into one edge per (client, server)."""
    totals: dict[tuple[str, str], Traffic] = {}
    protocols: dict[tuple[str, str], set[str]] = {}
    paths: dict[tuple[str, str], dict[str, int]] = {}
    for row in rows:
        pair = (row["client"], row["server"])
        part = traffic(row)
        known = totals.get(pair)
        totals[pair] = part if known is None else add(known, part)
        protocols.setdefault(pair, set()).add(row["protocol"])
        per_path = paths.setdefault(pair, {})
        per_path[row["path"]] = per_path.get(row["path"], 0) + part.requests
    return tuple(
        _edge(pair, totals[pair], protocols[pair], paths[pair], window, top_paths)
        for pair in sorted(totals)
    )


def _edge(
    pair: tuple[str, str], total: Traffic, protocols: set[str], paths: dict[str, int],
    window: Window, top_paths: int,
) -> Edge:
    busiest = sorted(paths.items(), key=lambda item: (-item[1], item[0]))[:top_paths]
    p50, p95, p99 = histogram.p50_p95_p99(total.hist)
    return Edge(
        pair[0], pair[1], total.requests, total.errors, total.error_rate,
        total.requests / window.seconds, p50, p95, p99, tuple(sorted(protocols)),
        tuple(PathCount(path, count) for path, count in busiest),
    )
