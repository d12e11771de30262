"""The default and relative windows, against an injected clock.

The GraphQL app is mounted on its own, behind a middleware that puts the
principal on the request state the way the API's auth middleware does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.topology.api.graphql import scenario as sc
from tests.topology.api.graphql.support import data
from topology.api.auth import Principal
from topology.api.graphql import build_graphql_app
from topology.settings import Settings
from topology.store.base import GraphStore

READER = Principal("reader", frozenset({"read"}), None)


class Authenticated:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})["principal"] = READER
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def at_now(golden: tuple[Settings, GraphStore]) -> Iterator[TestClient]:
    settings, store = golden
    app = Starlette(routes=[Route("/graphql", build_graphql_app(
        settings, store, clock=lambda: float(sc.NOW)), methods=["GET", "POST"])])
    with TestClient(Authenticated(app)) as test_client:  # type: ignore[arg-type]
        yield test_client


def span(answer: dict) -> tuple[str, str]:
    window = answer["serviceMap"]["window"]
    return window["from"], window["to"]


def test_default_window_is_the_last_hour(at_now: TestClient) -> None:
    answer = data(at_now, None, "ServiceMap")
    assert span(answer) == ("2025-11-21T07:20:00+00:00", "2025-11-21T08:20:00+00:00")
    assert answer["serviceMap"]["window"]["seconds"] == 3600
    servers = {e["server"] for e in answer["serviceMap"]["edges"]}
    assert {sc.sid(sc.RECOMMEND), sc.sid(sc.POSTGRES)} <= servers  # windows A and B


def test_last_ten_minutes_is_window_b(at_now: TestClient) -> None:
    answer = data(at_now, None, "ServiceMap", window={"last": "10m"})
    assert span(answer) == ("2025-11-21T08:10:00+00:00", "2025-11-21T08:20:00+00:00")
    assert sc.sid(sc.POSTGRES) not in {e["server"] for e in answer["serviceMap"]["edges"]}
    assert data(at_now, None, "ServiceMap", window={"from": "2025-11-21T08:10:00",
                                                    "to": "2025-11-21T08:20:00"}) == answer
