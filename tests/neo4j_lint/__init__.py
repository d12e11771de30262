"""Check Neo4j-dialect Cypher with Neo4j's own parser and semantic analysis.

No Neo4j server runs where the tests run, so every query the Neo4j backend (or
the filter-language compiler) can send goes through `lintCypherQuery` from the
npm package `@neo4j-cypher/language-support`, pinned in this directory's
package-lock.json. Install it once with:

    npm ci --prefix tests/neo4j_lint

All queries of one call are linted by a single Node process (loading the
parser costs about two seconds; linting a query costs milliseconds).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "lint.cjs"
PACKAGE = HERE / "node_modules" / "@neo4j-cypher" / "language-support"
INSTALL_HINT = "npm ci --prefix tests/neo4j_lint"

# The graph model's labels and relationship types (docs/storage.md); a label
# outside these is reported, which catches misspelt labels in queries.
LABELS: tuple[str, ...] = ("Service", "CallBucket", "Batch")
RELATIONSHIP_TYPES: tuple[str, ...] = ("CALLS",)


class LinterUnavailable(RuntimeError):
    """Node.js or the pinned npm package is missing."""


def lint_cypher(
    queries: Iterable[tuple[str, str, Mapping[str, object]]],
    *,
    labels: Iterable[str] = LABELS,
    relationship_types: Iterable[str] = RELATIONSHIP_TYPES,
) -> list[str]:
    """Lint (name, query text, parameters) triples; return the problems found.

    Parameters are declared by name (their values are not inspected), so a
    query using a parameter it is not given is a problem, as on a real server.
    Every diagnostic counts, warnings included (deprecations, unknown labels):
    the statements we ship should raise none. Each problem names its query.
    """
    items = [
        {"name": name, "query": query, "parameters": {key: True for key in parameters}}
        for name, query, parameters in queries
    ]
    if not items:
        return []
    payload = {
        "labels": list(labels),
        "relationshipTypes": list(relationship_types),
        "queries": items,
    }
    results = _run(json.dumps(payload))
    problems: list[str] = []
    for item, result in zip(items, results, strict=True):
        for diag in result["diagnostics"]:
            problems.append(
                f"{item['name']}: {diag['severity']} at line {diag['line']} "
                f"column {diag['column']}: {diag['message']}\n    in: {item['query']}"
            )
    return problems


def _run(payload: str) -> list[dict]:
    node = shutil.which("node")
    if node is None:
        raise LinterUnavailable("node (Node.js) is not on PATH; the Cypher linter needs it")
    if not PACKAGE.is_dir():
        raise LinterUnavailable(
            f"@neo4j-cypher/language-support is not installed in {HERE.name}/: "
            f"run `{INSTALL_HINT}`"
        )
    proc = subprocess.run(
        [node, str(SCRIPT)], input=payload, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{SCRIPT.name} failed (exit {proc.returncode}): {proc.stderr}")
    return json.loads(proc.stdout)
