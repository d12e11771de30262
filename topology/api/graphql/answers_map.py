"""Answers built on the bucket aggregates: map, service detail, catalogue, externals, diff.

Every answer reads through the principal's scope (`Scope.compile`), so what
is cut at the list cap, counted in totals or compared in a diff is only what
the principal may see.
"""

from __future__ import annotations

from queries.compiler import CompiledFilter
from queries.window import EMPTY, Traffic, Window, add, traffic
from topology.api.graphql import build
from topology.api.graphql import types as t
from topology.api.graphql.context import Ctx, cap
from topology.api.graphql.data import (
    end_ids,
    external_only,
    external_statement,
    fetch_exemplars,
    fetch_pair_table,
    fetch_pairs,
    fetch_series,
    focused,
    keep,
    service_sums,
    service_traffic,
    step_seconds,
)
from topology.api.graphql.records import fetch_services
from topology.api.graphql.windows import time_range

ERROR_RATE_DELTA = 0.05  # the named window_diff's defaults
P99_RATIO = 1.5


def service_map(
    ctx: Ctx, window: Window, filter_text: str, *, series: bool = False,
    exemplars: bool = False,
) -> t.ServiceMap:
    compiled = ctx.scope.compile(filter_text)
    table, truncated = keep(fetch_pair_table(ctx.store, compiled, window), ctx.max_items)
    records = fetch_services(ctx.store, end_ids(table))
    extras = _extras(ctx, compiled, window, series, exemplars)
    services, cut = cap(build.service_columns(records, service_sums(table), window),
                        ctx.max_items)
    edges = build.edges(table, window, records, *extras)
    return t.ServiceMap(window=time_range(window), services=services, edges=edges,
                        truncated=truncated or cut)


Extras = tuple[dict[tuple[str, str], dict[int, list[int]]] | None, int,
               dict[tuple[str, str], list[str]] | None]


def _extras(ctx: Ctx, compiled: CompiledFilter, window: Window, series: bool,
            exemplars: bool) -> Extras:
    """Time series (and their step) and exemplars, read only when the query selects them."""
    step = step_seconds(window, int(ctx.settings.bucket_width))
    points = fetch_series(ctx.store, compiled, window, step) if series else None
    traces = fetch_exemplars(ctx.store, compiled, window) if exemplars else None
    return points, step, traces


def service_detail(
    ctx: Ctx, service_id: str, window: Window, *, series: bool = False, exemplars: bool = False,
) -> t.ServiceDetail:
    ctx.visible_node(service_id)
    focus_compiled = focused(ctx.scope.compile(""), service_id)
    table, _ = keep(fetch_pair_table(ctx.store, focus_compiled, window), ctx.max_items)
    records = fetch_services(ctx.store, {service_id} | end_ids(table))
    numbers = build.service_stats(service_sums(table), window.seconds)
    edges = build.edges(table, window, records,
                        *_extras(ctx, focus_compiled, window, series, exemplars))
    incoming = [e for e in edges if e.server == service_id]
    outgoing = [e for e in edges if e.client == service_id]
    service = records[service_id]
    return t.ServiceDetail(
        service=build.of_numbers(service.node, numbers.get(service_id) or build.stats(
            EMPTY, window), service),
        incoming=incoming, outgoing=outgoing,
        callers=build.services_of(records, numbers, window,
                                  sorted({e.client for e in incoming})),
        callees=build.services_of(records, numbers, window,
                                  sorted({e.server for e in outgoing})),
    )


def service_list(ctx: Ctx, window: Window, filter_text: str, search: str) -> t.ServiceList:
    """Services at either end of the calls in the window matching the filter, by name."""
    compiled = ctx.scope.compile(filter_text)
    table = fetch_pair_table(ctx.store, compiled, window)
    records = fetch_services(ctx.store, end_ids(table))
    needle = search.strip().lower()
    matching = sorted((r for r in records.values() if needle in r.node.name.lower()),
                      key=lambda r: (r.node.name.lower(), r.node.id))
    kept, truncated = cap(matching, ctx.max_items)
    numbers = build.service_stats(service_sums(table), window.seconds)
    return t.ServiceList(
        window=time_range(window),
        services=build.services_of(records, numbers, window, [r.node.id for r in kept]),
        total=len(matching), truncated=truncated,
    )


def external_dependencies(ctx: Ctx, window: Window, filter_text: str) -> t.ExternalDependencies:
    """External services called in the window by calls matching the filter, busiest first."""
    compiled = ctx.scope.compile(filter_text)
    compiled = external_only(compiled)
    statement = external_statement(compiled)
    per_caller: dict[str, dict[str, Traffic]] = {}
    naming: dict[str, set[str]] = {}
    for row in ctx.store.read(statement, {**compiled.params, **window.params()}):
        callers = per_caller.setdefault(row["server"], {})
        part = traffic(row)
        known = callers.get(row["client"])
        callers[row["client"]] = part if known is None else add(known, part)
        naming.setdefault(row["server"], set()).add(row["naming"])
    ids = set(per_caller) | {c for callers in per_caller.values() for c in callers}
    records = fetch_services(ctx.store, ids)
    caller_services = ctx.services(sorted({c for v in per_caller.values() for c in v}), window)
    result = []
    for server, callers in per_caller.items():
        total = EMPTY
        for part in callers.values():
            total = add(total, part)
        node = build.service(records[server].node, window, total, records[server])
        busiest = sorted(callers.items(), key=lambda item: (-item[1].requests, item[0]))
        result.append(t.ExternalDependency(
            service=node, hostname=node.name,
            naming=[t.Naming(n) for n in sorted(naming[server]) if n in _NAMINGS],
            stats=node.stats, health=node.health,
            callers=[t.Caller(service=caller_services[c], requests=p.requests, errors=p.errors)
                     for c, p in busiest if c in caller_services],
        ))
    result.sort(key=lambda d: (-d.stats.requests, d.service.id))
    kept, truncated = cap(result, ctx.max_items)
    return t.ExternalDependencies(window=time_range(window), dependencies=kept,
                                  truncated=truncated)


_NAMINGS = {n.value for n in t.Naming}


def topology_diff(ctx: Ctx, before: Window, after: Window, filter_text: str) -> t.TopologyDiff:
    """Added/removed services and edges, and edges whose error rate or p99 moved."""
    compiled = ctx.scope.compile(filter_text)
    old = fetch_pairs(ctx.store, compiled, before)
    new = fetch_pairs(ctx.store, compiled, after)
    old_ids = {sid for pair in old for sid in pair}
    new_ids = {sid for pair in new for sid in pair}
    records = fetch_services(ctx.store, old_ids | new_ids)
    old_traffic = service_traffic(old.values())
    new_traffic = service_traffic(new.values())
    changed = []
    for pair in sorted(old.keys() & new.keys()):
        change = _change(old[pair].traffic(), new[pair].traffic(), pair)
        if change is not None:
            changed.append(change)
    added = build.services(records, new_traffic, after, sorted(new_ids - old_ids))
    removed = build.services(records, old_traffic, before, sorted(old_ids - new_ids))
    lists = [
        added, removed,
        [t.EdgeRef(client=c, server=s) for c, s in sorted(new.keys() - old.keys())],
        [t.EdgeRef(client=c, server=s) for c, s in sorted(old.keys() - new.keys())],
        changed,
    ]
    truncated = any(len(items) > ctx.max_items for items in lists)
    lists = [items[:ctx.max_items] for items in lists]
    return t.TopologyDiff(
        before=time_range(before), after=time_range(after), services_added=lists[0],
        services_removed=lists[1], edges_added=lists[2], edges_removed=lists[3],
        edges_changed=lists[4], truncated=truncated,
    )


def _change(old: Traffic, new: Traffic, pair: tuple[str, str]) -> t.EdgeChange | None:
    reasons = []
    if abs(new.error_rate - old.error_rate) >= ERROR_RATE_DELTA:
        reasons.append("error_rate")
    old_p99, new_p99 = old.quantile(0.99), new.quantile(0.99)
    if old_p99 and new_p99 and max(new_p99 / old_p99, old_p99 / new_p99) >= P99_RATIO:
        reasons.append("p99")
    if not reasons:
        return None
    return t.EdgeChange(
        client=pair[0], server=pair[1], error_rate_before=old.error_rate,
        error_rate_after=new.error_rate, p99_before_ms=old_p99, p99_after_ms=new_p99,
        reasons=reasons,
    )
