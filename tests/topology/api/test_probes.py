"""/healthz, /readyz and /metrics through the real app."""

from __future__ import annotations

import socket

from prometheus_client.parser import text_string_to_metric_families

from tests.topology.api.helpers import serving
from tests.topology.ingest.delivery_helpers import batch
from topology.api.sinks import CelerySink
from topology.ingest.celery_app import QUEUE
from topology.settings import Settings
from topology.store.base import GraphStore


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ready_then_not_ready_once_the_store_is_closed(
    settings: Settings, embedded_store: GraphStore
) -> None:
    with serving(settings, embedded_store) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ready"}
        embedded_store.close()
        answer = client.get("/readyz")
        assert answer.status_code == 503
        assert answer.json()["status"] == "unavailable"
        assert answer.json()["reason"].startswith("store: embedded store")
        assert "closed" in answer.json()["reason"]
        assert client.get("/healthz").status_code == 200


def test_not_ready_when_the_configured_redis_is_down(
    settings: Settings, embedded_store: GraphStore
) -> None:
    down = settings.with_(redis_url=f"redis://127.0.0.1:{_free_port()}/0")
    with serving(down, embedded_store) as client:
        answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["reason"].startswith("ingest: Redis (leases and DNS) unreachable")


def _families(text: str) -> dict[str, dict[tuple, float]]:
    """name -> {sorted label items + sample name: value}."""
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        samples = out.setdefault(family.name, {})
        for sample in family.samples:
            samples[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return out


def test_metrics_parse_and_count_ingest(settings: Settings, embedded_store: GraphStore) -> None:
    with serving(settings, embedded_store) as client:
        assert client.post("/v1/events", json=batch("m-1", 12)).status_code == 202
        assert client.post("/v1/events", json=batch("m-2", 8)).status_code == 202
        assert client.post("/v1/events", json={"agent": "a", "calls": [{}, {}]}
                           ).status_code == 400
        assert client.post("/v1/events", content=b"{").status_code == 400
        client.app.state.ingest.queue.close()  # write everything, then scrape
        families = _families(client.get("/metrics").text)

    events = families["topology_ingest_events_accepted"]
    assert events[("topology_ingest_events_accepted_total", ("endpoint", "events"))] == 20
    rejected = families["topology_ingest_batches_rejected"]
    key = "topology_ingest_batches_rejected_total"
    assert rejected[(key, ("endpoint", "events"), ("reason", "invalid"))] == 1
    assert rejected[(key, ("endpoint", "events"), ("reason", "bad_json"))] == 1
    assert families["topology_ingest_events_rejected"][
        ("topology_ingest_events_rejected_total", ("endpoint", "events"), ("reason", "invalid"))
    ] == 2
    assert families["topology_ingest_events_counted"][
        ("topology_ingest_events_counted_total",)] == 20
    assert families["topology_ingest_queue_depth"][("topology_ingest_queue_depth",)] == 0
    assert families["topology_ingest_queue_write_seconds"][
        ("topology_ingest_queue_write_seconds_count",)] == 2
    assert families["topology_store_write_seconds"][("topology_store_write_seconds_count",)] == 2
    latency = families["topology_http_request_seconds"]
    posts = latency[("topology_http_request_seconds_count", ("method", "POST"),
                     ("route", "/v1/events"), ("status", "202"))]
    assert posts == 2


def test_distributed_sink_publishes_to_the_broker(
    settings: Settings, embedded_store: GraphStore, redis_url: str
) -> None:
    import redis

    distributed = settings.with_(redis_url=redis_url)
    sink = CelerySink(distributed)
    with serving(distributed, embedded_store, ingest=sink) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        for n in range(3):
            assert client.post("/v1/events", json=batch(f"c-{n}", 4)).status_code == 202
    broker = redis.Redis.from_url(redis_url)
    try:
        assert broker.llen(QUEUE) == 3
    finally:
        broker.close()


def test_distributed_sink_with_the_broker_down_answers_503(
    settings: Settings, embedded_store: GraphStore
) -> None:
    down = settings.with_(redis_url=f"redis://127.0.0.1:{_free_port()}/0")
    with serving(down, embedded_store, ingest=CelerySink(down)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["reason"].startswith("ingest: broker (Redis) unreachable")
        refused = client.post("/v1/events", json=batch("lost", 3))
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "5"
        assert refused.json()["error"]["code"] == "UNAVAILABLE"
