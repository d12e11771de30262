"""The lean executor answers exactly what graphql-core's standard execution answers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import strawberry

from tests.topology.api.graphql import scenario as sc
from tests.topology.api.graphql.support import WINDOW_A, WINDOW_B, operations
from topology.api.auth import Principal
from topology.api.graphql import build_schema
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
}


def execute(schema: strawberry.Schema, store: GraphStore, settings: Settings, text: str,
            name: str, variables: dict) -> Any:
    context = {"principal": Principal("t", frozenset({"read"}), None), "store": store,
               "settings": settings, "clock": time.time}
    result = asyncio.run(schema.execute(text, variable_values=variables, operation_name=name,
                                        context_value=context))
    assert result.errors is None, result.errors
    return result.data


CASES = [(name, text, VARIABLES[name]) for name, text in operations().items()] + [
    ("Extra", EXTRA["Extra"], {"with": True}), ("Extra", EXTRA["Extra"], {"with": False})]


@pytest.mark.parametrize(("name", "text", "variables"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_lean_equals_standard(golden: tuple[Settings, GraphStore], name: str, text: str,
                              variables: dict) -> None:
    settings, store = golden
    standard = strawberry.Schema(query=Query)
    lean = build_schema(settings)
    expected = execute(standard, store, settings, text, name, variables)
    assert execute(lean, store, settings, text, name, variables) == expected
    assert expected  # the case answers something
