"""Every Neo4j text the compiler and the named queries produce passes Neo4j's linter."""

from __future__ import annotations

import pytest

from queries.compiler import compile_filter
from queries.service_map import map_statement
from tests.neo4j_lint import LinterUnavailable, lint_cypher
from tests.queries.corpus import CORPUS
from tests.queries.statements import NAMED, WINDOW
from topology.store.statement import Dialect


def test_every_neo4j_text_lints_clean() -> None:
    items = [(name, statement.text(Dialect.NEO4J), params) for name, statement, params in NAMED]
    for text, rules in CORPUS:
        compiled = compile_filter(text)
        statement = map_statement(compiled)
        items.append((f"map {rules}: {text!r}", statement.text(Dialect.NEO4J),
                      {**compiled.params, **WINDOW}))
    # the focus clause is one fixed fragment: lint it with each kind of prelude/join
    for text in ("", "client.label.team contains x", "server.namespace = a v1"):
        compiled = compile_filter(text)
        items.append((f"map focus: {text!r}", map_statement(compiled, focus=True).text(
            Dialect.NEO4J), {**compiled.params, **WINDOW, "service": "x"}))
    try:
        problems = lint_cypher(items)
    except LinterUnavailable as exc:
        pytest.fail(str(exc))
    assert problems == []
