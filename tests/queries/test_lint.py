"""Every Neo4j text the compiler and the named queries produce passes Neo4j's linter.

A service-map text is a fixed skeleton around the filter predicate. The
skeletons are linted whole (NAMED, with and without joins, prelude and focus);
every corpus predicate is linted inside a short query with the same variables,
which keeps the linter's time (it grows with query length) within bounds.
"""

from __future__ import annotations

import pytest

from queries.compiler import compile_filter
from queries.service_map import map_statement
from tests.neo4j_lint import LABELS, LinterUnavailable, lint_cypher
from tests.queries.corpus import CORPUS
from tests.queries.statements import NAMED, WINDOW
from topology.store.statement import Dialect

PREDICATE_WRAPPER = (
    "MATCH (k:CallBucket) MATCH (c:Service {{id: k.client}}) "
    "MATCH (s:Service {{id: k.server}}) WHERE {predicate} RETURN count(*) AS n"
)
SKELETON_FILTERS = ("client.label.team contains x", "server.namespace = a v1", "status >= 500")


def test_every_neo4j_text_lints_clean() -> None:
    items = [(name, statement.text(Dialect.NEO4J), params) for name, statement, params in NAMED]
    for text in SKELETON_FILTERS:
        compiled = compile_filter(text)
        for focus in (False, True):
            params = {**compiled.params, **WINDOW, **({"service": "x"} if focus else {})}
            items.append((f"map focus={focus}: {text!r}",
                          map_statement(compiled, focus=focus).text(Dialect.NEO4J), params))
    for text, rules in CORPUS:
        compiled = compile_filter(text)
        query = compiled.prelude(Dialect.NEO4J) + PREDICATE_WRAPPER.format(
            predicate=compiled.predicate(Dialect.NEO4J))
        items.append((f"filter {rules}: {text!r}", query, compiled.params))
    try:
        # CallTier: the pre-aggregated tiers (docs/storage.md), embedded store only today
        problems = lint_cypher(items, labels=(*LABELS, "CallTier"))
    except LinterUnavailable as exc:
        pytest.fail(str(exc))
    assert problems == []
