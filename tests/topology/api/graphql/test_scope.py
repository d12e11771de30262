"""Namespace-limited tokens: only their services (and the externals those call), everywhere.

The `shop` token must never learn of `ops` (auditor) or `data` (postgres): not
in answers, not in totals, not through paths, and probing their ids answers
exactly like an id that does not exist.
"""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from tests.topology.api.graphql import scenario as sc
from tests.topology.api.graphql.support import (
    OPS,
    SHOP,
    WINDOW_A,
    WINDOW_B,
    codes,
    data,
    run,
)

FRONTEND, CHECKOUT, PAYMENTS = sc.sid(sc.FRONTEND), sc.sid(sc.CHECKOUT), sc.sid(sc.PAYMENTS)
POSTGRES, AUDITOR = sc.sid(sc.POSTGRES), sc.sid(sc.AUDITOR)
STRIPE, MAIL, UNKNOWN, CLIENTS = sc.STRIPE_ID, sc.MAIL_ID, sc.UNKNOWN_ID, sc.CLIENTS_ID
HIDDEN = ("auditor", "postgres", "/ops/", "/data/", "External Clients", "external:clients")
SHOP_EDGES_A = {(FRONTEND, CHECKOUT), (CHECKOUT, PAYMENTS), (CHECKOUT, MAIL),
                (PAYMENTS, STRIPE), (PAYMENTS, UNKNOWN)}


def unseen(answer: dict) -> None:
    text = json.dumps(answer)
    leaked = [word for word in HIDDEN if word in text]
    assert leaked == [], f"leaked {leaked}"


def test_map_shows_own_namespace_and_called_externals(client: TestClient) -> None:
    answer = data(client, SHOP, "ServiceMapDetail", window=WINDOW_A)
    unseen(answer)
    found = answer["serviceMap"]
    assert {(e["client"], e["server"]) for e in found["edges"]} == SHOP_EDGES_A
    checkout = {s["id"]: s for s in found["services"]}[CHECKOUT]
    assert checkout["stats"]["requests"] == 70  # auditor's 10 calls are not in this scope


def test_filter_cannot_widen_the_scope(client: TestClient) -> None:
    for text in ("client.namespace = ops", "server.namespace = data", "service.name = auditor"):
        answer = data(client, SHOP, "ServiceMap", window=WINDOW_A, filter=text)
        assert answer["serviceMap"]["edges"] == []
    escape = run(client, SHOP, "ServiceMap", window=WINDOW_A,
                 filter="server.namespace = shop) or (client.namespace = ops")
    assert codes(escape) == ["BAD_FILTER"]


PROBES = [
    ("Service", {"id": POSTGRES}), ("Service", {"id": AUDITOR}), ("Service", {"id": CLIENTS}),
    ("Dependencies", {"serviceId": POSTGRES}), ("BlastRadius", {"serviceId": AUDITOR}),
    ("RecoveryOrder", {"serviceIds": [CHECKOUT, POSTGRES]}),
]


@pytest.mark.parametrize(("operation", "variables"), PROBES)
def test_probing_other_namespaces_looks_like_a_missing_id(
        client: TestClient, operation: str, variables: dict) -> None:
    answer = run(client, SHOP, operation, window=WINDOW_A, **variables)
    assert answer["data"] is None
    assert codes(answer) == ["NOT_FOUND"]
    missing = run(client, SHOP, operation, window=WINDOW_A,
                  **{k: (["k8s:prod/none/Deployment/x"] if isinstance(v, list)
                         else "k8s:prod/none/Deployment/x") for k, v in variables.items()})
    assert codes(missing) == ["NOT_FOUND"]
    assert answer["errors"][0]["message"].split(" '")[0] == (
        missing["errors"][0]["message"].split(" '")[0])


def test_service_detail_hides_callers_from_other_namespaces(client: TestClient) -> None:
    answer = data(client, SHOP, "Service", id=CHECKOUT, window=WINDOW_A)
    unseen(answer)
    assert [e["client"] for e in answer["service"]["incoming"]] == [FRONTEND]
    assert {e["server"] for e in answer["service"]["outgoing"]} == {PAYMENTS, MAIL}
    stripe = data(client, SHOP, "Service", id=STRIPE, window=WINDOW_A)["service"]
    assert [e["client"] for e in stripe["incoming"]] == [PAYMENTS]


def test_walks_do_not_pass_through_hidden_services(client: TestClient) -> None:
    down = data(client, SHOP, "Dependencies", serviceId=CHECKOUT, window=WINDOW_A)
    unseen(down)
    assert [d["service"]["id"] for d in down["dependencies"]["services"]] == [
        MAIL, PAYMENTS, STRIPE, UNKNOWN]
    up = data(client, SHOP, "Dependencies", serviceId=CHECKOUT, direction="UPSTREAM",
              window=WINDOW_A)
    assert [d["service"]["id"] for d in up["dependencies"]["services"]] == [FRONTEND]
    blast = data(client, SHOP, "BlastRadius", serviceId=PAYMENTS, window=WINDOW_A)
    unseen(blast)
    assert blast["blastRadius"]["summary"] == "2 dependent services, 1 degraded"
    assert [d["service"]["id"] for d in blast["blastRadius"]["dependents"]] == [
        CHECKOUT, FRONTEND]


def test_recovery_order_in_scope(client: TestClient) -> None:
    answer = data(client, SHOP, "RecoveryOrder", window=WINDOW_A)
    unseen(answer)
    assert [sorted(s["id"] for s in stage["services"])
            for stage in answer["recoveryOrder"]["stages"]] == [
        sorted([STRIPE, MAIL, UNKNOWN]), [PAYMENTS], [CHECKOUT], [FRONTEND]]


def test_catalogue_externals_and_diff_in_scope(client: TestClient) -> None:
    catalogue = data(client, SHOP, "Services", window=WINDOW_A)
    unseen(catalogue)
    assert catalogue["services"]["total"] == 6
    externals = data(client, SHOP, "ExternalDependencies", window=WINDOW_A)
    unseen(externals)
    assert [d["hostname"] for d in externals["externalDependencies"]["dependencies"]] == [
        "api.stripe.com", "Unknown External Service", "mail.example.com"]
    diff = data(client, SHOP, "TopologyDiff", before=WINDOW_A, after=WINDOW_B)
    unseen(diff)
    assert [s["name"] for s in diff["topologyDiff"]["servicesRemoved"]] == [
        "mail.example.com", "Unknown External Service"]


def test_a_namespace_without_externals_sees_only_itself(client: TestClient) -> None:
    assert data(client, OPS, "ServiceMap", window=WINDOW_A)["serviceMap"]["edges"] == []
    assert data(client, OPS, "ExternalDependencies", window=WINDOW_A)[
        "externalDependencies"]["dependencies"] == []
    assert codes(run(client, OPS, "Service", id=STRIPE, window=WINDOW_A)) == ["NOT_FOUND"]
    own = data(client, OPS, "Dependencies", serviceId=AUDITOR, window=WINDOW_A)
    assert own["dependencies"]["services"] == []
