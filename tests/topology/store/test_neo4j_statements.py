"""Every Cypher text the Neo4j store can send passes Neo4j's parser and semantic analysis."""

from __future__ import annotations

import re

import pytest

from tests.neo4j_lint import lint_cypher
from topology.store import neo4j_statements as q

PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def test_catalogue_lints_clean() -> None:
    problems = lint_cypher((s.name, s.text, dict.fromkeys(s.params)) for s in q.STATEMENTS)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("statement", q.STATEMENTS, ids=lambda s: s.name)
def test_declared_parameters_are_exactly_those_used(statement: q.Cypher) -> None:
    # The linter reports undeclared parameters; this catches declared but unused ones,
    # which the store would reject at run time (Neo4jStore._run checks the names).
    assert set(PARAMETER.findall(statement.text)) == set(statement.params)


def test_catalogue_holds_every_statement_of_the_module() -> None:
    defined = {value for value in vars(q).values() if isinstance(value, q.Cypher)}
    assert defined <= set(q.STATEMENTS)


def test_schema_is_idempotent_and_covers_the_issue() -> None:
    schema = [s.text for s in (*q.CONSTRAINTS, *q.INDEXES)]
    assert all("IF NOT EXISTS" in text for text in schema)
    assert {re.search(r"REQUIRE \w+\.(\w+) IS UNIQUE", t).group(1)
            for t in schema if "CONSTRAINT" in t} == {"id", "key"}
    targets = {m.group(1, 2) for t in schema
               if (m := re.search(r"FOR \(\w+:(\w+)\) (?:ON|REQUIRE) \(?\w+\.(\w+)", t))}
    assert targets == {
        ("Service", "id"), ("CallBucket", "key"), ("Batch", "id"),
        ("CallBucket", "bucket"), ("CallBucket", "width"), ("Service", "name"),
        ("Service", "namespace"), ("Batch", "applied_at"),
    }
