"""Every Neo4j text the GraphQL answers send passes Neo4j's own linter."""

from __future__ import annotations

from typing import Any

import pytest

from queries.compiler import compile_filter
from queries.service_map import MAP_SHAPE, map_statement
from queries.tiering import Plan, tier_statement
from tests.neo4j_lint import LABELS, LinterUnavailable, lint_cypher
from topology.api.graphql import answers_graph, data, records
from topology.api.graphql.scope import CALLED_FROM_SCOPE, Scope
from topology.store.statement import Dialect, Statement

WINDOW = {"since": 0, "until": 60}
FILTERS = ("", "server.namespace = shop and client.label.team contains ay v1.traces")
SHOP = Scope(frozenset({"shop"}))
TIERS = Plan((), ((300, 0, 600), (1800, 1800, 3600))).tier_params


def statements() -> list[tuple[str, Statement, dict[str, Any]]]:
    found: list[tuple[str, Statement, dict[str, Any]]] = []
    for scope in (Scope(), SHOP):
        for text in FILTERS:
            compiled = scope.compile(text)
            label = f"scoped={scope.limited} filter={text!r}"
            params = {**compiled.params, **WINDOW}
            found.append((f"map {label}", map_statement(compiled), params))
            found.append((f"map tiers {label}", tier_statement(MAP_SHAPE, compiled, 2),
                          {**compiled.params, **TIERS}))
            focused = data.focused(compiled, "x")
            found.append((f"focus {label}", map_statement(focused), {
                **focused.params, **WINDOW}))
            found.append((f"focus tiers {label}", tier_statement(MAP_SHAPE, focused, 2),
                          {**focused.params, **TIERS}))
            found.append((f"series {label}", data.filtered_statement(
                "s", compiled, data._SERIES_RETURNS), params))
            found.append((f"exemplars {label}", data.filtered_statement(
                "e", compiled, data._EXEMPLAR_RETURNS), params))
            external = data.external_only(compiled)
            found.append((f"external {label}", data.external_statement(external), {
                **external.params, **WINDOW}))
    hop = {"frontier": [], "scope_all_external": [], **SHOP.params(), **WINDOW}
    found += [
        ("services_full", records.SERVICES_FULL, {"ids": []}),
        ("called_from_scope", CALLED_FROM_SCOPE, {"id": "x", **SHOP.params()}),
        ("downstream_scoped", answers_graph.DOWNSTREAM_SCOPED, hop),
        ("upstream_scoped", answers_graph.UPSTREAM_SCOPED, hop),
    ]
    return found


def test_every_neo4j_text_lints_clean() -> None:
    items = [(name, statement.text(Dialect.NEO4J), params)
             for name, statement, params in statements()]
    assert compile_filter(FILTERS[1]).params  # the filtered cases carry parameters
    try:
        # CallTier: the pre-aggregated tiers (docs/storage.md), embedded store only today
        problems = lint_cypher(items, labels=(*LABELS, "CallTier"))
    except LinterUnavailable as exc:
        pytest.fail(str(exc))
    assert problems == []
