"""POST /v1/traces (OTLP/HTTP, JSON and protobuf) through the real app and store."""

from __future__ import annotations

import gzip
import json
import threading
from typing import Any

import pytest

from tests.topology.api.helpers import serving
from tests.topology.ingest.delivery_helpers import T0, wait_for
from topology.api.sinks import EmbeddedSink
from topology.ingest.otlp import decode
from topology.ingest.pipeline import Ingestor
from topology.ingest.queue import IngestQueue
from topology.settings import Settings
from topology.store.base import GraphStore
from topology.store.statement import Statement

WEB = "k8s:/shop/Deployment/web"
API = "k8s:/shop/Deployment/api"
STRIPE = "external:stripe"
EDGES = Statement.same(
    "test.api.edges",
    "MATCH (k:CallBucket) RETURN k.client AS client, k.server AS server, "
    "sum(k.requests) AS requests ORDER BY client, server",
)


def _resource(deployment: str) -> dict[str, Any]:
    return {"attributes": [
        {"key": "k8s.namespace.name", "value": {"stringValue": "shop"}},
        {"key": "k8s.deployment.name", "value": {"stringValue": deployment}},
    ]}


def _span(span_id: str, kind: int, parent: str = "", **attrs: str | int) -> dict[str, Any]:
    start = int(T0 * 1e9)
    return {
        "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": span_id,
        "parentSpanId": parent, "name": "GET /orders", "kind": kind,
        "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 5_000_000),
        "attributes": [
            {"key": k.replace("_", "."),
             "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
            for k, v in attrs.items()
        ],
    }


def export(n: int) -> dict[str, Any]:
    """web calls api (client + server span, paired at once) and stripe (a lone client span)."""
    client, server, lone = f"{n:016x}", f"{n + 1000:016x}", f"{n + 2000:016x}"
    return {"resourceSpans": [
        {"resource": _resource("web"), "scopeSpans": [{"spans": [
            _span(client, 3, http_request_method="GET"),
            _span(lone, 3, peer_service="stripe"),
        ]}]},
        {"resource": _resource("api"), "scopeSpans": [{"spans": [
            _span(server, 2, parent=client, http_route="/orders/{id}",
                  http_response_status_code=200),
        ]}]},
    ]}


def _edges(store: GraphStore) -> list[tuple[str, str, int]]:
    return [(r["client"], r["server"], int(r["requests"])) for r in store.read(EDGES)]


@pytest.mark.parametrize("encoding", ["json", "protobuf", "gzipped protobuf"])
def test_spans_become_edges_and_lone_spans_are_flushed_at_shutdown(
    settings: Settings, embedded_store: GraphStore, encoding: str
) -> None:
    with serving(settings, embedded_store) as client:
        for n in range(3):
            document = json.dumps(export(n)).encode()
            if encoding == "json":
                body, headers = document, {"Content-Type": "application/json"}
            else:
                body = decode(document, "application/json").SerializeToString()
                headers = {"Content-Type": "application/x-protobuf"}
                if encoding.startswith("gzipped"):
                    body, headers["Content-Encoding"] = gzip.compress(body), "gzip"
            answer = client.post("/v1/traces", content=body, headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].startswith(headers["Content-Type"])
    # The lone stripe spans wait for a server span that never comes: written at shutdown.
    assert _edges(embedded_store) == [(WEB, STRIPE, 3), (WEB, API, 3)]


@pytest.mark.parametrize(("body", "content_type", "status", "says"), [
    (b"{not json", "application/json", 400, "not OTLP JSON"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
     "application/json", 400, "traceId 'zz' is not a hex id"),
    (b"\x0a\xff\xff", "application/x-protobuf", 400, "not an OTLP protobuf export"),
    (b"{}", "text/plain", 415, "is not one of application/x-protobuf"),
])
def test_bad_exports_are_refused(
    settings: Settings, embedded_store: GraphStore, body: bytes, content_type: str,
    status: int, says: str,
) -> None:
    with serving(settings, embedded_store) as client:
        answer = client.post("/v1/traces", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]["message"]
    assert _edges(embedded_store) == []


def test_full_queue_refuses_new_exports_and_keeps_what_it_took(
    settings: Settings, embedded_store: GraphStore
) -> None:
    ingestor = Ingestor(embedded_store, settings)
    gate, started = threading.Event(), threading.Event()

    def gated(payload: Any) -> bool:
        started.set()
        gate.wait()
        return ingestor.ingest(payload)

    sink = EmbeddedSink(embedded_store, settings, ingestor=ingestor,
                        queue=IngestQueue(gated, capacity=1))
    headers = {"Content-Type": "application/json"}
    with serving(settings, embedded_store, ingest=sink) as client:
        first = client.post("/v1/traces", content=json.dumps(export(0)), headers=headers)
        assert first.status_code == 200
        wait_for(started.is_set, 10, "the writer to take the first batch")
        # Taken, but its batch waits in the backlog: the queue's one slot is busy.
        assert client.post("/v1/traces", content=json.dumps(export(1)),
                           headers=headers).status_code == 200
        refused = client.post("/v1/traces", content=json.dumps(export(2)), headers=headers)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        gate.set()
    assert _edges(embedded_store) == [(WEB, STRIPE, 2), (WEB, API, 2)]
