"""Every named statement the queries send, with the parameters each one takes."""

from __future__ import annotations

from typing import Any

from queries.compiler import compile_filter
from queries.external import EXTERNAL_CALLS
from queries.recovery import PAIRS_IN_WINDOW
from queries.service_map import map_statement
from queries.services import SERVICES_BY_ID
from queries.traversal import DOWNSTREAM_HOP, MADE, MADE_ALL, SERVED, SERVED_ALL, UPSTREAM_HOP
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
]
