"""The app as a whole: GraphQL mounted behind the middleware, structured logs."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from tests.topology.api.helpers import ADMIN, READ, TOKENS, bearer, serving
from tests.topology.ingest.delivery_helpers import T0, batch, expected_totals, totals
from topology.api.app import create_app
from topology.api.logs import JsonFormatter
from topology.settings import Settings
from topology.store.base import GraphStore
from topology.store.ladybug_store import LadybugStore


def test_graphql_is_mounted_with_graphiql_on_get(
    settings: Settings, embedded_store: GraphStore
) -> None:
    with serving(settings.with_(tokens=TOKENS), embedded_store) as client:
        answer = client.post("/graphql", json={"query": "{ __typename }"}, headers=bearer(READ))
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"data": {"__typename": "Query"}}
        page = client.get("/graphql", headers={**bearer(READ), "Accept": "text/html"})
        assert page.status_code == 200
        assert "graphiql" in page.text.lower()


def test_graphiql_can_be_turned_off(settings: Settings, embedded_store: GraphStore) -> None:
    with serving(settings.with_(graphiql=False), embedded_store) as client:
        page = client.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 404


def test_access_log_is_one_json_object_per_request(
    settings: Settings, embedded_store: GraphStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "topology.api.access"), \
            serving(settings, embedded_store) as client:
        client.get("/healthz")
    [record] = [r for r in caplog.records if r.name == "topology.api.access"]
    entry = json.loads(JsonFormatter().format(record))
    assert {k: entry[k] for k in ("level", "logger", "message", "method", "path", "status",
                                  "principal")} == {
        "level": "info", "logger": "topology.api.access", "message": "GET /healthz 200",
        "method": "GET", "path": "/healthz", "status": 200, "principal": "anonymous"}
    assert entry["duration_ms"] >= 0
    assert entry["time"].endswith("+00:00")


def test_exceptions_are_logged_with_their_traceback() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",),
                                   exc_info=sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed here"
    assert "RuntimeError: boom" in entry["exc"]


def test_app_opens_and_closes_its_own_store(settings: Settings) -> None:
    payload = batch("own", 10)
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/events", json=payload).status_code == 202
    with LadybugStore(settings) as store:  # the app let go of the file
        assert totals(store) == expected_totals(payload)


SERVICES = """query ($from: String!, $to: String!) {
  services(window: {from: $from, to: $to}) { services { name namespace } }
}"""


def test_ingested_then_queried_with_the_token_namespaces(
    settings: Settings, embedded_store: GraphStore
) -> None:
    billing = batch("billing", 4, servers=1)
    for call in billing["calls"]:
        call["source"]["workload"] = {"namespace": "billing", "name": "invoicer",
                                      "kind": "Deployment"}
    window = {"from": datetime.fromtimestamp(T0 - 600, UTC).isoformat(),
              "to": datetime.fromtimestamp(T0 + 600, UTC).isoformat()}
    app = create_app(settings.with_(tokens=TOKENS), embedded_store)
    with TestClient(app) as client:
        for payload in (batch("shop", 10, servers=2), billing):
            answer = client.post("/v1/events", json=payload, headers=bearer(ADMIN))
            assert answer.status_code == 202
        app.state.ingest.queue.close()  # written before querying
        seen = {}
        for token in (ADMIN, READ):
            answer = client.post("/graphql", json={"query": SERVICES, "variables": window},
                                 headers=bearer(token))
            assert answer.status_code == 200, answer.text
            seen[token] = sorted((s["namespace"], s["name"])
                                 for s in answer.json()["data"]["services"]["services"])
    assert ("billing", "invoicer") in seen[ADMIN]
    assert seen[READ] == [("shop", "backend-0"), ("shop", "backend-1"), ("shop", "frontend")]
