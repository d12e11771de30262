"""Every named statement the queries send, with the parameters each one takes."""

from __future__ import annotations

from typing import Any

from queries import series
from queries.adjacency import ALL_PAIRS
from queries.compiler import compile_filter
from queries.external import EXTERNAL_CALLS, EXTERNAL_SHAPE
from queries.health_reads import BUCKETS, BUCKETS_BY_KEY, BY_START, SERIES_NAMES
from queries.recovery import PAIRS_IN_WINDOW
from queries.service_cache import ALL_SERVICES
from queries.service_map import FOCUS_SHAPE, MAP_SHAPE, map_statement
from queries.services import SERVICES_BY_ID
from queries.tiering import Plan, edges, tier_statement
from queries.traversal import (
    DOWNSTREAM_HOP,
    MADE,
    MADE_ALL,
    SERVED,
    SERVED_ALL,
    UPSTREAM_HOP,
    _health_shape,
)
from topology.store.statement import Statement

WINDOW = {"since": 0, "until": 60}
GOLDEN_FILTER = "server.namespace = shop and client.label.team contains ay v1.traces"


def _map(name: str, text: str, *, focus: bool = False) -> tuple[str, Statement, dict]:
    compiled = compile_filter(text)
    params: dict[str, Any] = {**compiled.params, **WINDOW}
    if focus:
        params["service"] = "x"
    return name, map_statement(compiled, focus=focus), params


NAMED: list[tuple[str, Statement, dict[str, Any]]] = [
    _map("service_map", ""),
    _map("service_map_filtered", GOLDEN_FILTER),
    _map("service_map_focus", "status >= 500", focus=True),
    ("services_by_id", SERVICES_BY_ID, {"ids": []}),
    ("downstream_hop", DOWNSTREAM_HOP, {"frontier": [], **WINDOW}),
    ("upstream_hop", UPSTREAM_HOP, {"frontier": [], **WINDOW}),
    ("health_as_server", SERVED, {"ids": [], **WINDOW}),
    ("health_as_client", MADE, {"ids": [], **WINDOW}),
    ("health_as_server_all", SERVED_ALL, WINDOW),
    ("health_as_client_all", MADE_ALL, WINDOW),
    ("pairs_in_window", PAIRS_IN_WINDOW, WINDOW),
    ("external_calls", EXTERNAL_CALLS, {"kinds": [], **WINDOW}),
    ("all_services", ALL_SERVICES, {}),
    ("all_pairs", ALL_PAIRS, {}),
    ("health_by_start_as_server", BY_START["server"], WINDOW),
    ("health_by_start_as_client", BY_START["client"], WINDOW),
    ("health_buckets", BUCKETS, WINDOW),
    ("health_buckets_by_key", BUCKETS_BY_KEY, {"keys": [], "ids": []}),
    ("health_series_names", SERIES_NAMES, WINDOW),
]

# Tier statements (embedded store only today; their Neo4j texts are linted all the same)
TIERS = Plan((), ((300, 0, 600), (1800, 1800, 3600))).tier_params
EDGES = {"head_end": 10, "tail_start": 50}
_FILTERED = compile_filter(GOLDEN_FILTER)
NAMED += [
    ("service_map_tiers_by_series", tier_statement(MAP_SHAPE, compile_filter(""), 2,
                                                   by_series=True), TIERS),
    ("service_map_tiers_by_series_signed", tier_statement(
        MAP_SHAPE, compile_filter(""), 2, by_series=True, counted=True, minus=1), TIERS),
    ("service_map_tiers_by_series_per_block", tier_statement(
        MAP_SHAPE, compile_filter(""), 2, by_series=True, per_block=True), TIERS),
    ("service_map_edges_by_series_packed_per_start", series.by_series(
        edges(map_statement(compile_filter(""))), MAP_SHAPE, packed=True, per_start=True),
     {**WINDOW, **EDGES}),
    ("service_map_tiers_filtered", tier_statement(MAP_SHAPE, _FILTERED, 2),
     {**_FILTERED.params, **TIERS}),
    ("service_map_focus_tiers_unpacked", tier_statement(
        FOCUS_SHAPE, compile_filter(""), 2, packed=False), {"service": "x", **TIERS}),
    ("service_map_edges", edges(map_statement(compile_filter(""))), {**WINDOW, **EDGES}),
    ("external_calls_tiers", tier_statement(EXTERNAL_SHAPE, None, 2), {"kinds": [], **TIERS}),
    ("external_calls_edges", edges(EXTERNAL_CALLS), {"kinds": [], **WINDOW, **EDGES}),
    ("health_as_server_tiers", tier_statement(_health_shape("server", listed=True), None, 2),
     {"ids": [], **TIERS}),
    ("health_as_client_all_tiers",
     tier_statement(_health_shape("client", listed=False), None, 2), TIERS),
]
