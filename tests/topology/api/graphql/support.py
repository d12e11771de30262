"""Shared by the GraphQL API tests: tokens, the operation documents, one call helper."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from graphql import OperationDefinitionNode, parse
from tests.topology.api.graphql import scenario

OPERATIONS_DIR = Path(__file__).resolve().parents[4] / "graphql" / "operations"
ADMIN = "graphql-admin-token-0123"
SHOP = "graphql-shop-token-01234"  # read, namespace shop only
OPS = "graphql-ops-token-012345"  # read, namespace ops only
INGEST_ONLY = "graphql-ingest-token-012"
TOKENS = json.dumps({
    ADMIN: {"name": "admin", "scopes": ["read", "admin"]},
    SHOP: {"name": "shop-ui", "scopes": ["read"], "namespaces": ["shop"]},
    OPS: {"name": "ops-ui", "scopes": ["read"], "namespaces": ["ops"]},
    INGEST_ONLY: {"name": "agent", "scopes": ["ingest"]},
})


def window(span: tuple[int, int]) -> dict[str, str]:
    from datetime import UTC, datetime

    return {"from": datetime.fromtimestamp(span[0], UTC).isoformat(),
            "to": datetime.fromtimestamp(span[1], UTC).isoformat()}


WINDOW_A = window(scenario.A)
WINDOW_B = window(scenario.B)


@cache
def operations() -> dict[str, str]:
    """Operation name -> the text of the document (file) that defines it."""
    found: dict[str, str] = {}
    for path in sorted(OPERATIONS_DIR.glob("*.graphql")):
        text = path.read_text()
        for definition in parse(text).definitions:
            if isinstance(definition, OperationDefinitionNode):
                assert definition.name is not None, f"{path.name}: unnamed operation"
                found[definition.name.value] = text
    return found


def post(client: TestClient, token: str | None, query: str, variables: dict | None = None,
         operation: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body: dict[str, Any] = {"query": query, "variables": variables or {}}
    if operation:
        body["operationName"] = operation
    response = client.post("/graphql", json=body, headers=headers)
    return response.json()


def run(client: TestClient, token: str | None, operation: str, **variables: Any) -> dict:
    """Run a named operation document; returns the whole response (data and errors)."""
    return post(client, token, operations()[operation], variables, operation)


def data(client: TestClient, token: str | None, operation: str, **variables: Any) -> dict:
    answer = run(client, token, operation, **variables)
    assert "errors" not in answer, answer.get("errors")
    return answer["data"]


def codes(answer: dict) -> list[str]:
    return [error.get("extensions", {}).get("code") for error in answer.get("errors", [])]
