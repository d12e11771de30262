"""Hostile and oversized requests: each refused with the right code, nothing leaked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from starlette.testclient import TestClient

from graphql import GraphQLError
from tests.topology.api.graphql.support import (
    ADMIN,
    INGEST_ONLY,
    WINDOW_A,
    codes,
    data,
    operations,
    post,
    run,
)
from topology.api.app import create_app
from topology.api.graphql.errors import mask
from topology.settings import Settings
from topology.store.base import GraphStore

LEAKS = ("MATCH", "RETURN", "CallBucket", "Traceback", "ladybug", "File \"")


@contextmanager
def app_with(golden: tuple[Settings, GraphStore], **changes: Any) -> Iterator[TestClient]:
    settings, store = golden
    with TestClient(create_app(settings.with_(**changes), store)) as test_client:
        yield test_client


def clean(answer: dict) -> None:
    text = json.dumps(answer.get("errors", []))
    assert [word for word in LEAKS if word in text] == []


INJECTIONS = [
    "' OR 1=1 //",
    'server.namespace = "x\\" OR true //"',
    "x}) MATCH (n) DETACH DELETE n //",
    "server.namespace = shop; MATCH (n) DETACH DELETE n",
    'server.namespace = "shop" RETURN 1 UNION MATCH (n) RETURN n',
    "client.label.`team` = x",
    "server.label.a}) DETACH DELETE c //= x",
    'path =~ "(?i).*" or server.namespace = "\\u0000"',
    "path in [" + ", ".join(f"p{i}" for i in range(101)) + "]",
    "(" * 41 + "a" + ")" * 41,
    "path = " + "a" * 2001,
    'path =~ "(a+)+$"',
    "$since",
    "server.namespace = $p0",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_filter_injection_changes_nothing_and_leaks_nothing(client: TestClient,
                                                            text: str) -> None:
    before = data(client, ADMIN, "ServiceMap", window=WINDOW_A)
    answer = run(client, ADMIN, "ServiceMap", window=WINDOW_A, filter=text)
    clean(answer)
    if "errors" in answer:
        assert codes(answer) == ["BAD_FILTER"]
        error = answer["errors"][0]["extensions"]
        assert isinstance(error["line"], int) and isinstance(error["column"], int)
    else:
        kept = {(e["client"], e["server"]) for e in answer["data"]["serviceMap"]["edges"]}
        assert kept <= {(e["client"], e["server"]) for e in before["serviceMap"]["edges"]}
    assert data(client, ADMIN, "ServiceMap", window=WINDOW_A) == before


BAD_WINDOWS = [
    {"last": "abc"}, {"last": "-5m"}, {"last": "0s"}, {"last": "1h", "from": WINDOW_A["from"]},
    {"from": WINDOW_A["from"]}, {"to": WINDOW_A["to"]},
    {"from": WINDOW_A["to"], "to": WINDOW_A["from"]}, {"from": "2025-13-01", "to": "2025-12-01"},
    {"from": "yesterday", "to": "today"}, {"last": "400d"},
    {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T00:00:00Z"},
]


@pytest.mark.parametrize("window", BAD_WINDOWS)
def test_bad_windows(client: TestClient, window: dict) -> None:
    answer = run(client, ADMIN, "ServiceMap", window=window)
    assert answer["data"] is None
    assert codes(answer) == ["BAD_WINDOW"]
    assert answer["errors"][0]["message"].startswith("window")


@pytest.mark.parametrize(("depth", "code"), [(0, "BAD_INPUT"), (21, "LIMIT_EXCEEDED")])
def test_walk_depth_is_bounded(client: TestClient, depth: int, code: str) -> None:
    answer = run(client, ADMIN, "BlastRadius", serviceId="external:unknown", depth=depth,
                 window=WINDOW_A)
    assert codes(answer) == [code]


def _aliases(count: int) -> str:
    return "{ " + " ".join(f"a{i}: filterFields {{ name }}" for i in range(count)) + " }"


def _fragment_bomb(levels: int) -> str:
    """F0 spreads F1 twice, F1 spreads F2 twice, ...: 2**levels copies of the leaf."""
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels)]
    fragments.append(f"fragment F{levels} on Query {{ filterFields {{ name description }} }}")
    return "query Bomb { ...F0 }\n" + "\n".join(fragments)


BOMBS = [
    ("aliases", _aliases(31)),
    ("aliases in fragments",
     "query Q { ...A ...A ...A ...A }\nfragment A on Query { "
     + " ".join(f"x{i}: filterFields {{ name }}" for i in range(8)) + " }"),
    ("fragment bomb", _fragment_bomb(16)),
    ("tokens", "{ " + " ".join("filterFields { name }" for _ in range(800)) + " }"),
    ("wide map", "{ " + " ".join(
        f"m{i}: serviceMap {{ edges {{ stats {{ requests }} timeSeries {{ requests }} }} }}"
        for i in range(25)) + " }"),
]


@pytest.mark.parametrize(("name", "query"), BOMBS, ids=[b[0] for b in BOMBS])
def test_document_bombs_are_refused_before_execution(client: TestClient, name: str,
                                                     query: str) -> None:
    answer = post(client, ADMIN, query)
    assert answer.get("data") is None
    assert "LIMIT_EXCEEDED" in codes(answer)


def test_depth_limit_counts_fragments(golden: tuple[Settings, GraphStore]) -> None:
    deep = ("query D { ...M }\nfragment M on Query { serviceMap { ...E } }\n"
            "fragment E on ServiceMap { edges { stats { requests } } }")
    with app_with(golden, graphql_max_depth=3) as limited:
        assert codes(post(limited, ADMIN, deep)) == ["LIMIT_EXCEEDED"]
        shallow = "query S { ...M }\nfragment M on Query { serviceMap { truncated } }"
        assert "errors" not in post(limited, ADMIN, shallow, {})


def test_lists_are_capped_and_flagged(golden: tuple[Settings, GraphStore]) -> None:
    with app_with(golden, graphql_max_items=3) as capped:
        found = data(capped, ADMIN, "ServiceMap", window=WINDOW_A)["serviceMap"]
        assert (len(found["edges"]), found["truncated"]) == (3, True)
        # the busiest three are kept
        assert sorted(e["stats"]["requests"] for e in found["edges"]) == [70, 90, 100]
        catalogue = data(capped, ADMIN, "Services", window=WINDOW_A)["services"]
        assert (len(catalogue["services"]), catalogue["total"], catalogue["truncated"]) == (
            3, 9, True)
        too_many = run(capped, ADMIN, "RecoveryOrder", window=WINDOW_A,
                       serviceIds=["a", "b", "c", "d"])
        assert codes(too_many) == ["LIMIT_EXCEEDED"]


def test_request_timeout(golden: tuple[Settings, GraphStore]) -> None:
    with app_with(golden, graphql_timeout=0.0) as hurried:
        answer = run(hurried, ADMIN, "ServiceMap", window=WINDOW_A)
        assert codes(answer) == ["LIMIT_EXCEEDED"]
        assert answer["data"] is None


def test_introspection_can_be_disabled(golden: tuple[Settings, GraphStore],
                                       client: TestClient) -> None:
    query = "{ __schema { queryType { name } } }"
    assert data_of(post(client, ADMIN, query)) == {"__schema": {"queryType": {"name": "Query"}}}
    with app_with(golden, graphql_introspection=False) as closed:
        answer = post(closed, ADMIN, query)
        assert answer.get("data") is None
        assert set(codes(answer)) == {"GRAPHQL_VALIDATION_FAILED"}


def data_of(answer: dict) -> dict:
    assert "errors" not in answer, answer
    return answer["data"]


@pytest.mark.parametrize(("token", "code"), [
    (None, "UNAUTHENTICATED"), ("wrong-token-0123456789", "UNAUTHENTICATED"),
    (INGEST_ONLY, "FORBIDDEN"),
])
def test_tokens(client: TestClient, token: str | None, code: str) -> None:
    answer = run(client, token, "ServiceMap", window=WINDOW_A)
    assert codes(answer) == [code]
    assert not answer.get("data")


def test_get_serves_queries_only(client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    ok = client.get("/graphql", params={"query": "{ filterFields { name } }"}, headers=headers)
    assert ok.status_code == 200 and "errors" not in ok.json()
    refused = client.get("/graphql", params={"query": "mutation { x }"}, headers=headers)
    assert refused.status_code >= 400 or "errors" in refused.json()


def test_unknown_ids_and_oversized_arguments(client: TestClient) -> None:
    assert codes(run(client, ADMIN, "Service", id="x" * 5000, window=WINDOW_A)) == ["NOT_FOUND"]
    long_search = run(client, ADMIN, "Services", window=WINDOW_A, search="s" * 201)
    assert codes(long_search) == ["BAD_INPUT"]


def test_internal_errors_are_masked() -> None:
    failure = RuntimeError("query service_map failed: MATCH (k:CallBucket) WHERE ...")
    error = GraphQLError("boom", original_error=failure, path=["serviceMap"])
    masked = mask(error).formatted
    assert masked["message"] == "internal error"
    assert masked["extensions"] == {"code": "INTERNAL"}
    assert "MATCH" not in json.dumps(masked)


def test_every_document_fits_the_default_limits(client: TestClient) -> None:
    for name, text in operations().items():
        answer = post(client, ADMIN, text, {"id": "x", "serviceId": "x", "filter": "",
                                            "before": WINDOW_A, "after": WINDOW_A}, name)
        assert "LIMIT_EXCEEDED" not in codes(answer), name


def test_graphiql_on_get_can_be_turned_off(golden: tuple[Settings, GraphStore],
                                           client: TestClient) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}", "Accept": "text/html"}
    page = client.get("/graphql", headers=headers)
    assert page.status_code == 200 and "graphiql" in page.text.lower()
    with app_with(golden, graphiql=False) as plain:
        assert plain.get("/graphql", headers=headers).status_code == 404
