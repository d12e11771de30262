"""The lean executor answers exactly what graphql-core's standard execution answers,
with column-held lists projected into dicts or encoded as JSON fragments."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
import strawberry

from tests.topology.api.graphql import scenario as sc
from tests.topology.api.graphql.support import WINDOW_A, WINDOW_B, operations
from topology.api.auth import Principal
from topology.api.graphql import build_schema
from topology.api.graphql.executor import JSON_FRAGMENTS
from topology.api.graphql.schema import Query
from topology.settings import Settings
from topology.store.base import GraphStore

VARIABLES: dict[str, dict[str, Any]] = {
    "ServiceMap": {"window": WINDOW_A},
    "ServiceMapDetail": {"window": WINDOW_A, "filter": "client.namespace = shop"},
    "Service": {"id": sc.sid(sc.CHECKOUT), "window": WINDOW_A},
    "Services": {"window": WINDOW_B},
    "Dependencies": {"serviceId": sc.sid(sc.FRONTEND), "window": WINDOW_A},
    "BlastRadius": {"serviceId": sc.sid(sc.POSTGRES), "window": WINDOW_A},
    "RecoveryOrder": {"window": WINDOW_A},
    "ExternalDependencies": {"window": WINDOW_A},
    "TopologyDiff": {"before": WINDOW_A, "after": WINDOW_B},
    "ValidateFilter": {"filter": "path =~ \"(\""},
    "FilterFields": {},
}
EXTRA = {  # aliases, __typename, @skip/@include, inline fragments, nulls
    "Extra": """query Extra($with: Boolean!) {
      m: serviceMap(window: {from: "2025-11-21T08:00:00+00:00", to: "2025-11-21T08:10:00+00:00"}) {
        __typename
        e: edges { ... on Edge { c: client s: server } stats { p99Ms } health @include(if: $with) }
        services @skip(if: $with) { id firstSeen }
      }
      v: validateFilter(filter: "ok") { valid line column message }
    }""",
    # the same field under two aliases, nested fragments merged with plain fields,
    # __typename inside nested objects, enums in lists and nested objects, nulls
    # (no p50 without traffic, no lastSeen), an empty list, a skipped nested field
    "Merged": """
    fragment Numbers on TrafficStats { __typename requests p50Ms p95Ms }
    fragment Ends on Edge { client server }
    query Merged($window: WindowInput, $filter: String! = "", $no: Boolean! = false) {
      serviceMap(window: $window, filter: $filter) {
        edges {
          ...Ends
          first: stats { ...Numbers errorRate }
          again: stats { p99Ms ...Numbers }
          stats { requests @skip(if: $no) errors @include(if: $no) }
          h: health
          health
          topPaths { __typename path requests }
          exemplarTraceIds
          timeSeries { start requests }
          ... on Edge { client weight }
        }
        services { __typename id labels { key } stats { ...Numbers } health external }
        window { seconds from }
      }
      externalDependencies(window: $window) {
        dependencies { naming health service { id health } callers { requests } }
        truncated
      }
      filterFields { name type }
    }""",
    # column-held edges: only __typename (no column to count by), items of nested lists
    # with only __typename (that list cannot be zipped: the rows are iterated), a
    # nested list selected twice under aliases
    "Typenames": """query Typenames($window: WindowInput, $id: ID!) {
      serviceMap(window: $window) {
        a: edges { __typename }
        b: edges { client topPaths { __typename } }
        c: edges { p: topPaths { path } q: topPaths { requests path } stats { p99Ms } }
        service: edges { server timeSeries { __typename start } }
      }
      service(id: $id, window: $window) { incoming { client topPaths { path } } }
    }""",
}


def execute(schema: strawberry.Schema, store: GraphStore, settings: Settings, text: str,
            name: str, variables: dict, *, fragments: bool = False) -> Any:
    context = {"principal": Principal("t", frozenset({"read"}), None), "store": store,
               "settings": settings, "clock": time.time, JSON_FRAGMENTS: fragments}
    result = asyncio.run(schema.execute(text, variable_values=variables, operation_name=name,
                                        context_value=context))
    assert result.errors is None, result.errors
    return result.data


CASES = [(name, text, VARIABLES[name]) for name, text in operations().items()] + [
    ("Extra", EXTRA["Extra"], {"with": True}), ("Extra", EXTRA["Extra"], {"with": False}),
    ("Merged", EXTRA["Merged"], {"window": WINDOW_A}),
    ("Merged", EXTRA["Merged"], {"window": WINDOW_B, "no": True,
                                 "filter": "server.namespace = data"}),
    ("Merged", EXTRA["Merged"], {"window": WINDOW_A, "filter": "server.service.name = nothing"}),
    ("Typenames", EXTRA["Typenames"], {"window": WINDOW_A, "id": sc.sid(sc.CHECKOUT)}),
]


@pytest.mark.parametrize("fragments", [False, True], ids=["dicts", "fragments"])
@pytest.mark.parametrize(("name", "text", "variables"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_lean_equals_standard(golden: tuple[Settings, GraphStore], name: str, text: str,
                              variables: dict, fragments: bool) -> None:
    settings, store = golden
    standard = strawberry.Schema(query=Query)
    lean = build_schema(settings)
    expected = execute(standard, store, settings, text, name, variables)
    # byte for byte, as the response is encoded: same values, same key order
    assert (orjson.dumps(execute(lean, store, settings, text, name, variables,
                                 fragments=fragments))
            == orjson.dumps(expected))
    assert expected  # the case answers something


@pytest.mark.parametrize(("operation", "fragments"), [
    ("ServiceMap", True), ("ServiceMapDetail", True), ("ServiceMap", False)])
def test_column_lists_become_fragments_when_asked(
        golden: tuple[Settings, GraphStore], operation: str, fragments: bool) -> None:
    """The map's services and edges (held as columns) are encoded as JSON fragments
    only when the context asks for it; the equality above then covers that path."""
    settings, store = golden
    data = execute(build_schema(settings), store, settings, operations()[operation],
                   operation, VARIABLES[operation], fragments=fragments)
    answer = data["serviceMap"]
    for name in ("services", "edges"):
        assert isinstance(answer[name], orjson.Fragment) is fragments, name
    assert isinstance(answer["window"], dict)
