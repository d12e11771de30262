"""The linter must really catch errors, and stay quiet on valid queries."""

from __future__ import annotations

import pytest

from tests.neo4j_lint import lint_cypher

# name -> (query, declared parameters, text every reported problem must contain;
# None means the query must lint clean)
CASES: dict[str, tuple[str, dict[str, object], str | None]] = {
    "clean": (
        "MATCH (s:Service {id: $id})-[c:CALLS]->(t:Service) RETURN t.id AS id, c.last_seen AS seen",
        {"id": "k8s:c/ns/Deployment/a"},
        None,
    ),
    "clean_upsert": (
        "UNWIND $rows AS row MERGE (b:CallBucket {key: row.key}) "
        "ON CREATE SET b.requests = row.requests "
        "ON MATCH SET b.requests = b.requests + row.requests",
        {"rows": []},
        None,
    ),
    "syntax_error": ("MATCH (s:Service RETURN s", {}, "Invalid input"),
    "undeclared_parameter": (
        "MATCH (s:Service {id: $id}) RETURN s.name AS name",
        {},
        "Parameter $id is not defined",
    ),
    "undefined_variable": (
        "MATCH (s:Service) RETURN t.name AS name",
        {},
        "Variable `t` not defined",
    ),
    "misspelt_function": (
        "MATCH (s:Service) RETURN coalese(s.name, '') AS name",
        {},
        "Function coalese is not present",
    ),
    "apoc_not_installed": (
        "MATCH (s:Service) RETURN apoc.coll.sum([1, 2]) AS total",
        {},
        "apoc.coll.sum",
    ),
    "unknown_label": ("MATCH (s:Servce) RETURN s.id AS id", {}, "Label Servce"),
    "unknown_relationship_type": (
        "MATCH (:Service)-[c:CALL]->(:Service) RETURN count(c) AS n",
        {},
        "Relationship type CALL",
    ),
}


@pytest.fixture(scope="module")
def problems_by_case() -> dict[str, list[str]]:
    problems = lint_cypher((name, query, params) for name, (query, params, _) in CASES.items())
    grouped: dict[str, list[str]] = {name: [] for name in CASES}
    for problem in problems:
        grouped[problem.split(":", 1)[0]].append(problem)
    return grouped


@pytest.mark.parametrize("case", sorted(CASES))
def test_lint_reports_exactly_the_real_problems(
    case: str, problems_by_case: dict[str, list[str]]
) -> None:
    query, _, expected = CASES[case]
    found = problems_by_case[case]
    if expected is None:
        assert found == []
    else:
        assert found, f"{case}: the linter missed a broken query"
        assert any(expected in problem for problem in found), found
        assert all(problem.startswith(f"{case}: ") and query in problem for problem in found)


def test_empty_input_needs_no_node() -> None:
    assert lint_cypher([]) == []
