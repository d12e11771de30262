"""Every Neo4j text the GraphQL answers send passes Neo4j's own linter."""

from __future__ import annotations

from typing import Any

import pytest

from queries.compiler import compile_filter
from tests.neo4j_lint import LinterUnavailable, lint_cypher
from topology.api.graphql import answers_graph, data
from topology.api.graphql.scope import CALLED_FROM_SCOPE, Scope
from topology.store.statement import Dialect, Statement

WINDOW = {"since": 0, "until": 60}
FILTERS = ("", "server.namespace = shop and client.label.team contains ay v1.traces")
SHOP = Scope(frozenset({"shop"}))


def statements() -> list[tuple[str, Statement, dict[str, Any]]]:
    found: list[tuple[str, Statement, dict[str, Any]]] = []
    for scope in (Scope(), SHOP):
        for text in FILTERS:
            compiled = scope.compile(text)
            label = f"scoped={scope.limited} filter={text!r}"
            params = {**compiled.params, **WINDOW}
            found.append((f"map {label}", data.map_statement(compiled), params))
            focused = data.focused(compiled, "x")
            found.append((f"focus {label}", data.map_statement(focused), {
                **focused.params, **WINDOW}))
            found.append((f"series {label}", data.filtered_statement(
                "s", compiled, data._SERIES_RETURNS), params))
            found.append((f"exemplars {label}", data.filtered_statement(
                "e", compiled, data._EXEMPLAR_RETURNS), params))
            external = data.external_only(compiled)
            found.append((f"external {label}", data.external_statement(external), {
                **external.params, **WINDOW}))
    hop = {"frontier": [], "scope_all_external": [], **SHOP.params(), **WINDOW}
    found += [
        ("services_full", data.SERVICES_FULL, {"ids": []}),
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
        problems = lint_cypher(items)
    except LinterUnavailable as exc:
        pytest.fail(str(exc))
    assert problems == []
