"""Bearer tokens, scopes and what the API never serves, through the real app."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import WebSocketDisconnect

from tests.topology.api.helpers import ADMIN, INGEST, READ, TOKENS, bearer, serving
from tests.topology.ingest.delivery_helpers import batch
from topology.api.app import create_app
from topology.api.auth import ANONYMOUS, AuthError, authenticate
from topology.settings import Settings, SettingsError
from topology.store.base import GraphStore

NO_TOKEN: dict[str, str] = {}
CASES = [
    # (method, path, headers, status, code)
    ("POST", "/v1/events", NO_TOKEN, 401, "UNAUTHENTICATED"),
    ("POST", "/v1/events", bearer("not-a-token-at-all-xx"), 401, "UNAUTHENTICATED"),
    ("POST", "/v1/events", {"Authorization": f"Basic {INGEST}"}, 401, "UNAUTHENTICATED"),
    ("POST", "/v1/events", bearer(READ), 403, "FORBIDDEN"),
    ("POST", "/v1/events", bearer(INGEST), 202, None),
    ("POST", "/v1/traces", bearer(READ), 403, "FORBIDDEN"),
    ("GET", "/metrics", NO_TOKEN, 401, "UNAUTHENTICATED"),
    ("GET", "/metrics", bearer(INGEST), 403, "FORBIDDEN"),
    ("GET", "/metrics", bearer(ADMIN), 200, None),
    ("GET", "/healthz", NO_TOKEN, 200, None),
    ("GET", "/healthz", bearer("wrong-token-but-probes-are-open"), 200, None),
    ("GET", "/readyz", NO_TOKEN, 200, None),
]


@pytest.mark.parametrize(("method", "path", "headers", "status", "code"), CASES)
def test_tokens_and_scopes(
    settings: Settings, embedded_store: GraphStore, method: str, path: str,
    headers: dict[str, str], status: int, code: str | None,
) -> None:
    body = json.dumps(batch("auth", 3)) if method == "POST" else None
    with serving(settings.with_(tokens=TOKENS), embedded_store) as client:
        answer = client.request(method, path, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    if code is not None:
        assert answer.json()["error"]["code"] == code
    if status == 401:
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("headers", "status", "code"), [
    (NO_TOKEN, 401, "UNAUTHENTICATED"),
    (bearer("not-a-token-at-all-xx"), 401, "UNAUTHENTICATED"),
    (bearer(INGEST), 403, "FORBIDDEN"),
])
def test_graphql_refusals_are_graphql_errors(
    settings: Settings, embedded_store: GraphStore, headers: dict[str, str], status: int,
    code: str,
) -> None:
    with serving(settings.with_(tokens=TOKENS), embedded_store) as client:
        answer = client.post("/graphql", json={"query": "{ __typename }"}, headers=headers)
    assert answer.status_code == status
    [error] = answer.json()["errors"]
    assert error["extensions"] == {"code": code}
    assert answer.json()["data"] is None


def test_multipart_uploads_are_refused(settings: Settings, embedded_store: GraphStore) -> None:
    with serving(settings.with_(tokens=TOKENS), embedded_store) as client:
        answer = client.post("/graphql", headers=bearer(READ),
                             files={"0": ("a.txt", b"x")}, data={"operations": "{}"})
    assert answer.status_code == 415
    assert answer.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize("path", ["/graphql", "/ws", "/"])
def test_no_websocket_endpoint(settings: Settings, embedded_store: GraphStore,
                               path: str) -> None:
    with (serving(settings, embedded_store) as client, pytest.raises(WebSocketDisconnect),
          client.websocket_connect(path) as socket):
        socket.receive_text()


def test_authenticate_returns_the_grant(settings: Settings) -> None:
    with_tokens = settings.with_(tokens=TOKENS)
    principal = authenticate({"authorization": f"Bearer {READ}"}, with_tokens)
    assert (principal.name, principal.scopes, principal.namespaces) == (
        "map-ui", frozenset({"read"}), frozenset({"shop"}))
    assert authenticate({"authorization": f"bearer {ADMIN}"}, with_tokens).namespaces is None
    assert authenticate({}, settings) == ANONYMOUS
    with pytest.raises(AuthError) as caught:
        authenticate({}, with_tokens)
    assert (caught.value.code, caught.value.status) == ("UNAUTHENTICATED", 401)


def test_tokens_file(settings: Settings, embedded_store: GraphStore, tmp_path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(TOKENS)
    with serving(settings.with_(tokens_file=str(path)), embedded_store) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=bearer(ADMIN)).status_code == 200


@pytest.mark.parametrize(("tokens", "says"), [
    ("{not json", "TOPOLOGY_TOKENS: not JSON"),
    ("[]", "expected a JSON object"),
    ('{"short": {"name": "x", "scopes": ["read"]}}', "at least 16 characters"),
    ('{"0123456789abcdef": {"scopes": ["read"]}}', 'needs a non-empty "name"'),
    ('{"0123456789abcdef": {"name": "x", "scopes": ["write"]}}', "'x': \"scopes\" must be"),
    ('{"0123456789abcdef": {"name": "x", "scopes": []}}', '"scopes" must be'),
    ('{"0123456789abcdef": {"name": "x", "scopes": ["read"], "namespaces": "shop"}}',
     '"namespaces" must be a list'),
    ('{"0123456789abcdef": {"name": "x", "scopes": ["read"], "admin": true}}',
     "unknown key(s) ['admin']"),
])
def test_malformed_tokens_fail_at_start_naming_the_setting(
    settings: Settings, embedded_store: GraphStore, tokens: str, says: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        create_app(settings.with_(tokens=tokens), embedded_store)
    assert says in str(caught.value)
    assert "TOPOLOGY_TOKENS" in str(caught.value)
