"""Every query of the schema on the golden scenario, through the real app (admin token)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from queries.catalogue import CATALOGUE
from queries.diff import window_diff
from queries.window import Window
from tests.topology.api.graphql import scenario as sc
from tests.topology.api.graphql.expected import quantiles
from tests.topology.api.graphql.support import ADMIN, WINDOW_A, WINDOW_B, data
from topology.settings import Settings
from topology.store.base import GraphStore

FRONTEND, CHECKOUT, PAYMENTS = sc.sid(sc.FRONTEND), sc.sid(sc.CHECKOUT), sc.sid(sc.PAYMENTS)
POSTGRES, AUDITOR, RECOMMEND = sc.sid(sc.POSTGRES), sc.sid(sc.AUDITOR), sc.sid(sc.RECOMMEND)
STRIPE, MAIL, UNKNOWN, CLIENTS = sc.STRIPE_ID, sc.MAIL_ID, sc.UNKNOWN_ID, sc.CLIENTS_ID
EDGES_A = {
    (CLIENTS, FRONTEND), (FRONTEND, CHECKOUT), (CHECKOUT, PAYMENTS), (PAYMENTS, STRIPE),
    (CHECKOUT, POSTGRES), (PAYMENTS, UNKNOWN), (CHECKOUT, MAIL), (AUDITOR, CHECKOUT),
    (AUDITOR, POSTGRES),
}


def edges(answer: dict) -> dict[tuple[str, str], dict]:
    return {(e["client"], e["server"]): e for e in answer["edges"]}


def services(answer: dict) -> dict[str, dict]:
    return {s["id"]: s for s in answer["services"]}


def test_service_map_window_a(client: TestClient) -> None:
    answer = data(client, ADMIN, "ServiceMap", window=WINDOW_A)["serviceMap"]
    assert answer["window"] == {**{k: v for k, v in WINDOW_A.items()}, "seconds": 600}
    assert set(edges(answer)) == EDGES_A
    assert answer["truncated"] is False
    checkout = edges(answer)[(FRONTEND, CHECKOUT)]
    p50, p95, p99 = quantiles((50, 80), (20, 15))
    assert checkout["stats"] == {"requests": 70, "requestRate": 70 / 600, "errors": 5,
                                 "errorRate": 5 / 70, "p50Ms": p50, "p95Ms": p95, "p99Ms": p99}
    assert checkout["protocols"] == ["http"]
    assert checkout["topPaths"] == [{"path": "/api/v1/checkout", "requests": 50},
                                    {"path": "/api/v1/traces/search", "requests": 20}]
    assert checkout["health"] == "CRITICAL"  # 7.1% errors > the 5% SLO
    assert checkout["weight"] == 70 / 100  # busiest edge: External Clients -> frontend
    assert edges(answer)[(CLIENTS, FRONTEND)]["weight"] == 1.0
    assert edges(answer)[(CHECKOUT, POSTGRES)]["health"] == "HEALTHY"
    # payments' own SLO label (p99 150 ms) judges the edge into it: p99 ~249 ms breaches it
    assert edges(answer)[(CHECKOUT, PAYMENTS)]["stats"]["p99Ms"] == quantiles((40, 200))[2]
    assert edges(answer)[(CHECKOUT, PAYMENTS)]["health"] == "CRITICAL"
    assert edges(answer)[(PAYMENTS, UNKNOWN)]["stats"]["errorRate"] == 1.0


def test_service_map_services_carry_identity_traffic_and_health(client: TestClient) -> None:
    answer = services(data(client, ADMIN, "ServiceMap", window=WINDOW_A)["serviceMap"])
    assert set(answer) == {a for pair in EDGES_A for a in pair}
    checkout = answer[CHECKOUT]
    assert {k: checkout[k] for k in ("name", "namespace", "cluster", "kind", "external")} == {
        "name": "checkout", "namespace": "shop", "cluster": "prod", "kind": "Deployment",
        "external": False}
    assert checkout["labels"] == [{"key": "team", "value": "shop"}]
    assert checkout["firstSeen"] <= checkout["lastSeen"]
    # served: 70 from frontend (5 errors) + 10 from auditor
    assert (checkout["stats"]["requests"], checkout["stats"]["errors"]) == (80, 5)
    assert checkout["stats"]["p99Ms"] == quantiles((50, 80), (20, 15), (10, 5))[2]
    assert checkout["health"] == "CRITICAL"  # 6.25% errors
    assert answer[POSTGRES]["health"] == "HEALTHY"
    assert answer[PAYMENTS]["health"] == "CRITICAL"
    assert answer[STRIPE]["health"] == "HEALTHY"  # p99 ~349 ms under 80% of 1000 ms
    assert answer[UNKNOWN]["health"] == "CRITICAL"
    assert (answer[CLIENTS]["name"], answer[CLIENTS]["external"]) == ("External Clients", True)
    # made, not served: External Clients' 100 calls
    assert answer[CLIENTS]["stats"]["requests"] == 100


# The Metoro examples, and what each keeps of window A.
METORO = [
    ("server.namespace = shop",
     {(CLIENTS, FRONTEND), (FRONTEND, CHECKOUT), (CHECKOUT, PAYMENTS), (AUDITOR, CHECKOUT)}),
    ("client.namespace = shop",
     {(FRONTEND, CHECKOUT), (CHECKOUT, PAYMENTS), (PAYMENTS, STRIPE), (CHECKOUT, POSTGRES),
      (PAYMENTS, UNKNOWN), (CHECKOUT, MAIL)}),
    ("server.service.name = api.stripe.com", {(PAYMENTS, STRIPE)}),
    ("client.service.name = checkout", {(CHECKOUT, PAYMENTS), (CHECKOUT, POSTGRES),
                                        (CHECKOUT, MAIL)}),
    ("v1.traces", {(FRONTEND, CHECKOUT)}),
]


@pytest.mark.parametrize(("text", "kept"), METORO, ids=[m[0] for m in METORO])
def test_metoro_filters_through_service_map(client: TestClient, text: str, kept: set) -> None:
    answer = data(client, ADMIN, "ServiceMap", window=WINDOW_A, filter=text)["serviceMap"]
    assert set(edges(answer)) == kept
    assert set(services(answer)) == {a for pair in kept for a in pair}


def test_path_filter_counts_only_matching_calls(client: TestClient) -> None:
    answer = data(client, ADMIN, "ServiceMap", window=WINDOW_A, filter="v1.traces")
    [edge] = answer["serviceMap"]["edges"]
    assert edge["stats"]["requests"] == 20
    assert edge["topPaths"] == [{"path": "/api/v1/traces/search", "requests": 20}]


def test_service_map_detail_time_series_and_exemplars(client: TestClient) -> None:
    answer = data(client, ADMIN, "ServiceMapDetail", window=WINDOW_A)["serviceMap"]
    edge = edges(answer)[(FRONTEND, CHECKOUT)]
    series = [(p["requests"], p["errors"]) for p in edge["timeSeries"]]
    assert series == [(50, 5), (20, 0)] + [(0, 0)] * 8  # ten one-minute steps
    assert edge["timeSeries"][1]["start"] == "2025-11-21T08:01:00+00:00"
    assert len(edge["exemplarTraceIds"]) == 5
    assert all(trace.startswith("fc-") for trace in edge["exemplarTraceIds"])
    assert edges(answer)[(CHECKOUT, PAYMENTS)]["exemplarTraceIds"] == []


def test_service_detail(client: TestClient) -> None:
    answer = data(client, ADMIN, "Service", id=CHECKOUT, window=WINDOW_A)["service"]
    assert answer["service"]["id"] == CHECKOUT
    assert answer["service"]["stats"]["requests"] == 80
    assert {e["client"] for e in answer["incoming"]} == {FRONTEND, AUDITOR}
    assert {e["server"] for e in answer["outgoing"]} == {PAYMENTS, POSTGRES, MAIL}
    assert [c["name"] for c in answer["callers"]] == ["frontend", "auditor"][::-1]
    assert [c["name"] for c in answer["callees"]] == ["mail.example.com", "postgres", "payments"]
    incoming = {e["client"]: e for e in answer["incoming"]}
    assert [p["requests"] for p in incoming[FRONTEND]["timeSeries"][:2]] == [50, 20]


def test_service_catalogue_with_search(client: TestClient) -> None:
    everything = data(client, ADMIN, "Services", window=WINDOW_A)["services"]
    assert [s["name"] for s in everything["services"]] == [
        "api.stripe.com", "auditor", "checkout", "External Clients", "frontend",
        "mail.example.com", "payments", "postgres", "Unknown External Service"]
    assert (everything["total"], everything["truncated"]) == (9, False)
    found = data(client, ADMIN, "Services", window=WINDOW_A, search="PAY")["services"]
    assert [s["id"] for s in found["services"]] == [PAYMENTS]
    assert found["services"][0]["labels"] == [
        {"key": "team", "value": "payments"}, {"key": "topology.io/slo-p99-ms", "value": "150"}]
    shop = data(client, ADMIN, "Services", window=WINDOW_B, filter="server.namespace = shop")
    assert [s["name"] for s in shop["services"]["services"]] == [
        "checkout", "External Clients", "frontend", "payments", "recommendations"]


DEPENDENCIES = [
    (FRONTEND, "DOWNSTREAM", 5, [(CHECKOUT, 1), (MAIL, 2), (POSTGRES, 2), (PAYMENTS, 2),
                                 (STRIPE, 3), (UNKNOWN, 3)]),
    (FRONTEND, "DOWNSTREAM", 1, [(CHECKOUT, 1)]),
    (POSTGRES, "UPSTREAM", 5, [(AUDITOR, 1), (CHECKOUT, 1), (FRONTEND, 2), (CLIENTS, 3)]),
]


@pytest.mark.parametrize(("root", "direction", "depth", "expected"), DEPENDENCIES)
def test_dependencies(client: TestClient, root: str, direction: str, depth: int,
                      expected: list) -> None:
    answer = data(client, ADMIN, "Dependencies", serviceId=root, direction=direction,
                  depth=depth, window=WINDOW_A)["dependencies"]
    assert (answer["root"]["id"], answer["direction"], answer["depth"]) == (root, direction, depth)
    assert [(d["service"]["id"], d["distance"]) for d in answer["services"]] == expected
    for item in answer["services"]:
        assert item["path"][0] == root and item["path"][-1] == item["service"]["id"]
        assert len(item["path"]) == item["distance"] + 1


def test_blast_radius(client: TestClient) -> None:
    answer = data(client, ADMIN, "BlastRadius", serviceId=PAYMENTS, window=WINDOW_A)
    blast = answer["blastRadius"]
    assert blast["target"]["id"] == PAYMENTS
    rows = [(d["service"]["id"], d["distance"], d["degraded"]) for d in blast["dependents"]]
    assert rows == [(CHECKOUT, 1, True), (AUDITOR, 2, False), (FRONTEND, 2, False),
                    (CLIENTS, 3, False)]
    assert blast["dependents"][2]["path"] == [FRONTEND, CHECKOUT, PAYMENTS]
    assert (blast["total"], blast["degraded"]) == (4, 1)
    assert blast["summary"] == "4 dependent services, 1 degraded"
    assert blast["dependents"][0]["requests"] == 80


def test_recovery_order(client: TestClient) -> None:
    answer = data(client, ADMIN, "RecoveryOrder", window=WINDOW_A)["recoveryOrder"]
    stages = [sorted(s["id"] for s in stage["services"]) for stage in answer["stages"]]
    assert stages == [sorted([STRIPE, MAIL, UNKNOWN, POSTGRES]), [PAYMENTS], [CHECKOUT],
                      sorted([AUDITOR, FRONTEND]), [CLIENTS]]
    assert all(stage["cycles"] == [] for stage in answer["stages"])
    some = data(client, ADMIN, "RecoveryOrder", serviceIds=[PAYMENTS], window=WINDOW_A)
    assert [sorted(s["id"] for s in stage["services"])
            for stage in some["recoveryOrder"]["stages"]] == [sorted([STRIPE, UNKNOWN]),
                                                               [PAYMENTS]]


def test_external_dependencies(client: TestClient) -> None:
    answer = data(client, ADMIN, "ExternalDependencies", window=WINDOW_A)
    found = answer["externalDependencies"]["dependencies"]
    assert [(d["hostname"], d["naming"], d["stats"]["requests"], d["health"]) for d in found] == [
        ("api.stripe.com", ["HOST"], 40, "HEALTHY"),
        ("Unknown External Service", ["UNKNOWN"], 10, "CRITICAL"),
        ("mail.example.com", ["DNS"], 5, "HEALTHY"),
    ]
    assert [(c["service"]["id"], c["requests"]) for c in found[0]["callers"]] == [(PAYMENTS, 40)]
    only = data(client, ADMIN, "ExternalDependencies", window=WINDOW_A,
                filter="client.service.name = checkout")
    assert [d["hostname"] for d in only["externalDependencies"]["dependencies"]] == [
        "mail.example.com"]


def test_topology_diff(client: TestClient, golden: tuple[Settings, GraphStore]) -> None:
    answer = data(client, ADMIN, "TopologyDiff", before=WINDOW_A, after=WINDOW_B)["topologyDiff"]
    assert [s["id"] for s in answer["servicesAdded"]] == [RECOMMEND]
    assert [s["id"] for s in answer["servicesRemoved"]] == sorted(
        [MAIL, UNKNOWN, POSTGRES, AUDITOR])
    assert [(e["client"], e["server"]) for e in answer["edgesAdded"]] == [(FRONTEND, RECOMMEND)]
    changed = {(c["client"], c["server"]): c for c in answer["edgesChanged"]}
    assert set(changed) == {(FRONTEND, CHECKOUT), (PAYMENTS, STRIPE)}
    assert changed[(FRONTEND, CHECKOUT)]["reasons"] == ["error_rate"]
    assert changed[(FRONTEND, CHECKOUT)]["errorRateAfter"] == 30 / 50
    assert changed[(PAYMENTS, STRIPE)]["reasons"] == ["p99"]
    # the same answer as the named query's
    named = window_diff(golden[1], Window(*sc.A), Window(*sc.B))
    assert [(e["client"], e["server"]) for e in answer["edgesRemoved"]] == list(
        named.edges_removed)
    assert list(changed) == [(c.client, c.server) for c in named.edges_changed]
    assert [s["id"] for s in answer["servicesRemoved"]] == list(named.services_removed)


VALIDATIONS = [
    ("server.namespace = shop", {"valid": True, "message": None, "line": None, "column": None,
                                 "code": None}),
    ("server.namespce = shop", {"valid": False, "line": 1, "column": 1, "code": "unknown_field"}),
    ('server.namespace = shop and\n  path =~ "("',
     {"valid": False, "line": 2, "code": "bad_regex"}),
]


@pytest.mark.parametrize(("text", "expected"), VALIDATIONS)
def test_validate_filter(client: TestClient, text: str, expected: dict) -> None:
    answer = data(client, ADMIN, "ValidateFilter", filter=text)["validateFilter"]
    assert {k: answer[k] for k in expected} == expected
    if not answer["valid"]:
        assert answer["message"]


def test_filter_fields(client: TestClient) -> None:
    fields = data(client, ADMIN, "FilterFields")["filterFields"]
    assert len(fields) == len(CATALOGUE) + 1
    by_name = {f["name"]: f for f in fields}
    assert by_name["server.namespace"]["type"] == "string"
    assert by_name["status"]["type"] == "number"
    assert "<bare term>" in by_name
