"""Golden scenarios: collector batches in, the graph in the real embedded store out.

Each scenario is data: the batches sent (the Kubernetes watcher's leases first,
then the agents' calls and DNS answers), the expected requests per (client,
server, method, path template, naming) and the expected services. Runs with
leases/DNS in real Redis and in memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.topology.ingest.conftest import Clock, T, edges, errors, services
from topology.ingest.pipeline import Ingestor, prepare
from topology.model import EXTERNAL_CLIENTS_ID, UNKNOWN_EXTERNAL_ID
from topology.settings import Settings
from topology.store.base import GraphStore
from topology.store.statement import Statement


def wl(name: str, ns: str = "shop") -> dict[str, Any]:
    return {"cluster": "prod", "namespace": ns, "name": name, "kind": "Deployment"}


def sid(name: str, ns: str = "shop") -> str:
    return f"k8s:prod/{ns}/Deployment/{name}"


def lease(ip: str, name: str, start: float = T - 3600, end: float | None = None,
          **extra: Any) -> dict[str, Any]:
    out = {"ip": ip, "workload": wl(name), "from": start, **extra}
    if end is not None:
        out["to"] = end
    return out


def call(src: str, dst: str, *, side: str = "client", ts: float = T + 1, port: int = 80,
         protocol: str = "http", method: str = "GET", path: str = "/", status: int = 200,
         src_workload: str | None = None, **extra: Any) -> dict[str, Any]:
    source: dict[str, Any] = {"ip": src, "port": 40000}
    if src_workload:
        source["workload"] = wl(src_workload)
    return {"timestamp": ts, "side": side, "source": source,
            "destination": {"ip": dst, "port": port}, "protocol": protocol,
            "method": method, "path": path, "status": status, "duration_ms": 3.5, **extra}


WATCHER = {"batch_id": "watcher-1", "agent": "k8s-watcher", "endpoints": [
    lease("10.0.0.1", "web"), lease("10.0.0.2", "api"), lease("10.0.0.3", "db", port=5432),
    lease("10.0.0.9", "cart", T - 3600, T - 300), lease("10.0.0.9", "checkout", T - 300),
    lease("10.0.0.20", "legacy", watched=False),
]}

SCENARIOS: list[tuple[str, list[dict[str, Any]], dict[tuple, int], dict[str, str]]] = [
    ("shop internal calls, ids folded", [
        {"batch_id": "a1", "agent": "node-1", "calls": [
            call("10.0.0.1", "10.0.0.2", path="/orders/123", src_workload="web"),
            call("10.0.0.1", "10.0.0.2", path="/orders/456?x=1", status=503),
            call("10.0.0.1", "10.0.0.2", path="/orders/9f1c2b3a4d5e6f70/items"),
            call("10.0.0.2", "10.0.0.3", port=5432, protocol="postgres", method="",
                 path=""),
        ]}],
     {(sid("web"), sid("api"), "GET", "/orders/{id}", "workload"): 2,
      (sid("web"), sid("api"), "GET", "/orders/{hex}/items", "workload"): 1,
      (sid("api"), sid("db"), "", "", "workload"): 1},
     {sid("web"): "Deployment", sid("api"): "Deployment", sid("db"): "Deployment"}),
    ("external HTTPS API named by Host", [
        {"batch_id": "a1", "agent": "node-1", "calls": [
            call("10.0.0.2", "52.1.1.1", port=443, protocol="https", method="POST",
                 path="/v1/charges", host="API.Stripe.com:443"),
        ]}],
     {(sid("api"), "external:api.stripe.com", "POST", "/v1/charges", "host"): 1},
     {sid("api"): "Deployment", "external:api.stripe.com": "External service"}),
    ("Redis-protocol external named by DNS, from an earlier batch", [
        {"batch_id": "d1", "agent": "node-1", "dns": [
            {"name": "cache.redislabs.com.", "ips": ["34.2.2.2"], "ttl": 30,
             "timestamp": T - 30}]},
        {"batch_id": "a1", "agent": "node-2", "calls": [
            call("10.0.0.2", "34.2.2.2", port=6379, protocol="redis", method="GET",
                 path=""),
        ]}],
     {(sid("api"), "external:cache.redislabs.com", "GET", "", "dns"): 1},
     {sid("api"): "Deployment", "external:cache.redislabs.com": "External service"}),
    ("direct-IP call stays unknown; Host that is an IP names nothing", [
        {"batch_id": "a1", "agent": "node-1", "calls": [
            call("10.0.0.2", "8.8.4.4", port=9000, protocol="tcp", method="", path=""),
            call("10.0.0.2", "8.8.4.4", port=9000, protocol="http", host="8.8.4.4:9000"),
        ]}],
     {(sid("api"), UNKNOWN_EXTERNAL_ID, "", "", "unknown"): 1,
      (sid("api"), UNKNOWN_EXTERNAL_ID, "GET", "/", "unknown"): 1},
     {sid("api"): "Deployment", UNKNOWN_EXTERNAL_ID: "Unknown external"}),
    ("DNS answer older than the retention names nothing", [
        {"batch_id": "a1", "agent": "node-1",
         "dns": [{"name": "old.example.com", "ips": ["35.3.3.3"], "timestamp": T - 7200}],
         "calls": [call("10.0.0.2", "35.3.3.3", port=443, protocol="tcp", method="",
                        path="")]}],
     {(sid("api"), UNKNOWN_EXTERNAL_ID, "", "", "unknown"): 1},
     {sid("api"): "Deployment", UNKNOWN_EXTERNAL_ID: "Unknown external"}),
    ("external client seen server side", [
        {"batch_id": "a1", "agent": "node-1", "calls": [
            call("203.0.113.9", "10.0.0.1", side="server", path="/checkout/77"),
        ]}],
     {(EXTERNAL_CLIENTS_ID, sid("web"), "GET", "/checkout/{id}", "workload"): 1},
     {EXTERNAL_CLIENTS_ID: "External client", sid("web"): "Deployment"}),
    ("pod IP reused by another workload", [
        {"batch_id": "a1", "agent": "node-1", "calls": [
            call("10.0.0.1", "10.0.0.9", ts=T - 400, path="/cart"),
            call("10.0.0.1", "10.0.0.9", ts=T - 100, path="/pay"),
        ]}],
     {(sid("web"), sid("cart"), "GET", "/cart", "workload"): 1,
      (sid("web"), sid("checkout"), "GET", "/pay", "workload"): 1},
     {sid("web"): "Deployment", sid("cart"): "Deployment", sid("checkout"): "Deployment"}),
    ("both sides of one call observed: counted once", [
        {"batch_id": "a1", "agent": "node-1", "calls": [
            call("10.0.0.1", "10.0.0.2", path="/orders", trace_id="t1")]},
        {"batch_id": "a2", "agent": "node-2", "calls": [
            call("10.0.0.1", "10.0.0.2", side="server", path="/orders", trace_id="t1")]},
    ],
     {(sid("web"), sid("api"), "GET", "/orders", "workload"): 1},
     {sid("web"): "Deployment", sid("api"): "Deployment"}),
    ("a process outside Kubernetes calls an API named by SNI", [
        {"batch_id": "a1", "agent": "vm-7", "calls": [{
            "timestamp": T + 1, "side": "client",
            "source": {"ip": "192.168.1.7", "workload": {
                "name": "billing", "kind": "Process", "host": "vm-7"}},
            "destination": {"ip": "52.9.9.9", "port": 443}, "host": "hooks.slack.com",
            "protocol": "https", "duration_ms": 40}]}],
     {("process:vm-7/billing", "external:hooks.slack.com", "", "", "host"): 1},
     {"process:vm-7/billing": "Process", "external:hooks.slack.com": "External service"}),
    ("caller without an agent counted from the server side", [
        {"batch_id": "a1", "agent": "node-1", "calls": [
            call("10.0.0.20", "10.0.0.2", side="server", path="/orders")]}],
     {(sid("legacy"), sid("api"), "GET", "/orders", "workload"): 1},
     {sid("legacy"): "Deployment", sid("api"): "Deployment"}),
]


def _via_events(ingestor: Ingestor) -> Callable[[dict[str, Any]], bool]:
    """Ingest as a worker with a build helper does: the batch's calls placed in rows
    (offload.py runs `prepare` in the helper), then folded by the coalescer."""
    def ingest(batch: dict[str, Any]) -> bool:
        return ingestor.ingest_prepared(
            lambda: prepare(batch, ingestor.leases, ingestor.dns, ingestor.folder,
                            ingestor.settings.bucket_width))
    return ingest


# How a batch reaches the store: the Ingestor alone (API, embedded queue), the
# coalescer (a worker), the coalescer fed by a build helper (a worker by claim).
PATHS = {"direct": lambda ingestor: ingestor.ingest,
         "coalesced": lambda ingestor: ingestor.ingest,
         "prepared": _via_events}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("batches", "expected_edges", "expected_services"),
                         [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS])
def test_scenario(
    make_ingestor: Callable[..., Ingestor], embedded_store: GraphStore,
    batches: list[dict[str, Any]], expected_edges: dict[tuple, int],
    expected_services: dict[str, str], path: str,
) -> None:
    ingestor = make_ingestor(coalesce=path != "direct")
    ingest = PATHS[path](ingestor)
    assert ingest(WATCHER)
    for batch in batches:
        assert ingest(batch)
    assert dict(edges(embedded_store)) == expected_edges
    assert services(embedded_store) == expected_services


def test_errors_are_5xx_or_flagged(
    make_ingestor: Callable[..., Ingestor], embedded_store: GraphStore
) -> None:
    make_ingestor().ingest({"batch_id": "a1", "agent": "n", "endpoints": WATCHER["endpoints"],
                            "calls": [
        call("10.0.0.1", "10.0.0.2", status=503), call("10.0.0.1", "10.0.0.2", status=404),
        call("10.0.0.1", "10.0.0.2", status=200, error=True),
        call("10.0.0.2", "10.0.0.3", port=5432, protocol="postgres", method="", path="",
             status=0, error=False),
    ]})
    assert errors(embedded_store) == {(sid("web"), sid("api")): 2}


def test_redelivered_batch_changes_nothing(
    make_ingestor: Callable[..., Ingestor], embedded_store: GraphStore
) -> None:
    ingestor = make_ingestor()
    batch = {"batch_id": "a1", "agent": "n", "endpoints": WATCHER["endpoints"],
             "calls": [call("10.0.0.1", "10.0.0.2")] * 3}
    assert ingestor.ingest(batch)
    assert not ingestor.ingest(batch)
    assert dict(edges(embedded_store)) == {(sid("web"), sid("api"), "GET", "/", "workload"): 3}


def test_leases_reach_another_ingestor_through_redis(
    embedded_store: GraphStore, settings: Settings, redis_url: str, clock: Clock
) -> None:
    """Two workers: one sees the watcher's leases, the other the agent's calls."""
    with redis.Redis.from_url(redis_url) as one, redis.Redis.from_url(redis_url) as two:
        Ingestor(embedded_store, settings, one, clock).ingest(WATCHER)
        Ingestor(embedded_store, settings, two, clock).ingest(
            {"batch_id": "a1", "agent": "n", "calls": [call("10.0.0.1", "10.0.0.2")]})
    assert dict(edges(embedded_store)) == {(sid("web"), sid("api"), "GET", "/", "workload"): 1}


def test_lease_labels_complete_an_agents_workload(
    make_ingestor: Callable[..., Ingestor], embedded_store: GraphStore
) -> None:
    """Owner team and tier from the watcher survive a batch whose agent knows only names."""
    ingestor = make_ingestor()
    labelled = {**wl("api"), "labels": {"topology.io/team": "payments", "topology.io/tier": "1"}}
    ingestor.ingest({"batch_id": "w", "agent": "watcher",
                     "endpoints": [{"ip": "10.0.0.2", "workload": labelled, "from": 0}]})
    agent_call = call("10.0.0.1", "10.0.0.2", src_workload="web")
    agent_call["destination"]["workload"] = wl("api")
    ingestor.ingest({"batch_id": "a", "agent": "node-1", "calls": [agent_call]})
    [row] = embedded_store.read(Statement.same(
        "test_labels", "MATCH (s:Service {id: $id}) RETURN s.labels AS labels"), {"id": sid("api")})
    assert sorted(row["labels"]) == ["topology.io/team=payments", "topology.io/tier=1"]


def test_store_errors_propagate_and_a_retry_writes_once(
    settings: Settings, backend: redis.Redis | None, clock: Clock
) -> None:
    """A store that cannot write raises (the caller retries); the retry counts once."""
    from topology.store.base import StoreUnavailable
    from topology.store.ladybug_store import LadybugStore

    closed = LadybugStore(settings)
    closed.init_schema()
    closed.close()
    batch = {"batch_id": "a1", "agent": "n", "endpoints": WATCHER["endpoints"],
             "calls": [call("10.0.0.1", "10.0.0.2")]}
    with pytest.raises(StoreUnavailable):
        Ingestor(closed, settings, backend, clock).ingest(batch)
    with LadybugStore(settings) as store:
        store.init_schema()
        ingestor = Ingestor(store, settings, backend, clock)
        assert ingestor.ingest(batch)
        assert not ingestor.ingest(batch)
        assert dict(edges(store)) == {(sid("web"), sid("api"), "GET", "/", "workload"): 1}


def test_dropped_observations_are_counted_by_reason(
    make_ingestor: Callable[..., Ingestor], embedded_store: GraphStore
) -> None:
    ingestor = make_ingestor()
    ingestor.ingest({"batch_id": "a1", "agent": "n", "endpoints": WATCHER["endpoints"], "calls": [
        call("10.0.0.1", "10.0.0.2"),
        call("10.0.0.1", "10.0.0.2", side="server"),       # the client side counts it
        call("198.51.100.4", "10.0.0.2"),                   # client side of nobody we know
    ]})
    assert (ingestor.stats.calls, ingestor.stats.counted, ingestor.stats.dropped) == (
        3, 1, {"client_side_unresolved_client": 1, "server_side_watched_caller": 1})
    assert dict(edges(embedded_store)) == {(sid("web"), sid("api"), "GET", "/", "workload"): 1}
