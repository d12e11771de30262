"""Every Neo4j text the filter compiler can produce passes Neo4j's own linter."""

from __future__ import annotations

import pytest

from queries.compiler import compile_filter
from tests.neo4j_lint import LinterUnavailable, lint_cypher
from tests.queries.corpus import CORPUS
from topology.store.statement import Dialect

WRAPPER = (
    "MATCH (k:CallBucket) MATCH (c:Service {{id: k.client}}) "
    "MATCH (s:Service {{id: k.server}}) WHERE {predicate} RETURN count(*) AS n"
)


def test_filter_corpus_lints_clean_in_neo4j() -> None:
    items = []
    for text, rules in CORPUS:
        compiled = compile_filter(text)
        query = compiled.prelude(Dialect.NEO4J) + WRAPPER.format(
            predicate=compiled.predicate(Dialect.NEO4J))
        items.append((f"filter {rules}: {text!r}", query, compiled.params))
    try:
        problems = lint_cypher(items)
    except LinterUnavailable as exc:
        pytest.fail(str(exc))
    assert problems == []
