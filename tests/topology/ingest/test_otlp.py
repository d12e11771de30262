"""OTLP in: the real OpenTelemetry SDK and its OTLP/HTTP exporter send to a small
HTTP server that hands bodies to OtlpReceiver; the batches it flushes go
through Ingestor.ingest into the real embedded store."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from tests.topology.ingest.conftest import T, edges, errors, services
from topology.ingest.otlp import InvalidTraces, OtlpReceiver
from topology.ingest.pipeline import Ingestor
from topology.model import EXTERNAL_CLIENTS_ID
from topology.store.base import GraphStore


class _Handler(BaseHTTPRequestHandler):
    receiver: OtlpReceiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            self.server.receiver.accept(body, self.headers["Content-Type"])  # type: ignore[attr-defined]
        except InvalidTraces as exc:
            self.send_response(400)
            self.end_headers()
            self.wfile.write(str(exc).encode())
            return
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> OtlpReceiver:
    return OtlpReceiver(clock=lambda: T, pair_ttl=10)


@pytest.fixture
def endpoint(receiver: OtlpReceiver) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.receiver = receiver  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    server.shutdown()
    server.server_close()


def k8s(name: str, kind: str = "deployment") -> dict[str, str]:
    return {"service.name": name, "k8s.namespace.name": "shop", f"k8s.{kind}.name": name,
            "k8s.cluster.name": "prod"}


@pytest.fixture
def tracer(endpoint: str) -> Iterator[Callable[[dict[str, str]], trace.Tracer]]:
    providers: list[TracerProvider] = []

    def make(resource: dict[str, str]) -> trace.Tracer:
        provider = TracerProvider(resource=Resource.create(resource))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        providers.append(provider)
        return provider.get_tracer("test")

    yield make
    for provider in providers:
        provider.shutdown()


def sid(name: str, kind: str = "Deployment") -> str:
    return f"k8s:prod/shop/{kind}/{name}"


def test_sdk_spans_become_the_graph(
    tracer: Callable[[dict[str, str]], trace.Tracer], receiver: OtlpReceiver,
    make_ingestor: Callable[..., Ingestor], embedded_store: GraphStore,
) -> None:
    web, api = tracer(k8s("web")), tracer(k8s("api"))
    worker = tracer(k8s("worker", "statefulset"))
    cron = tracer({"service.name": "billing-cron", "host.name": "vm-7"})
    ingestor = make_ingestor()
    ingestor.ingest({"batch_id": "w1", "agent": "watcher", "endpoints": [
        {"ip": "10.0.0.2", "workload": {"cluster": "prod", "namespace": "shop",
                                        "name": "api", "kind": "Deployment"}, "from": 0}]})

    for order in (12, 13):  # paired CLIENT/SERVER, the server's route wins
        with web.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes={
                "http.request.method": "GET", "url.full": f"http://api/orders/{order}"}), \
             api.start_as_current_span("GET /orders/{id}", kind=SpanKind.SERVER, attributes={
                "http.request.method": "GET", "http.route": "/orders/{id}",
                "http.response.status_code": 500 if order == 13 else 200}):
            pass
    with api.start_as_current_span("charge", kind=SpanKind.CLIENT, attributes={
            "peer.service": "payments", "rpc.system": "grpc", "rpc.service": "Pay",
            "rpc.method": "Charge"}) as span:
        span.set_status(Status(StatusCode.ERROR))
    with api.start_as_current_span("SELECT", kind=SpanKind.CLIENT, attributes={
            "db.system": "postgresql", "db.name": "orders", "db.operation": "SELECT"}):
        pass
    with cron.start_as_current_span("POST", kind=SpanKind.CLIENT, attributes={
            "http.request.method": "POST", "server.address": "10.0.0.2", "server.port": 8080,
            "url.full": "http://10.0.0.2:8080/invoices/9"}):
        pass
    with api.start_as_current_span("GET /health", kind=SpanKind.SERVER, attributes={
            "http.request.method": "GET", "http.route": "/health"}):
        pass  # a root SERVER span: the caller is outside
    remote = trace.set_span_in_context(NonRecordingSpan(SpanContext(
        trace_id=0xABC, span_id=0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))))
    with api.start_as_current_span("GET /orders", kind=SpanKind.SERVER, context=remote,
                                   attributes={"http.request.method": "GET",
                                               "http.route": "/orders"}):
        pass  # its CLIENT never arrives: External Clients at expiry
    with web.start_as_current_span("publish", kind=SpanKind.PRODUCER, attributes={
            "messaging.system": "kafka", "messaging.destination.name": "orders",
            "messaging.operation.type": "publish"}), \
         worker.start_as_current_span("process", kind=SpanKind.CONSUMER, attributes={
            "messaging.system": "kafka", "messaging.destination.name": "orders",
            "messaging.operation.type": "process"}):
        pass

    ready = receiver.flush(now=T + 9)  # pairs, the root SERVER span, producer and consumer
    assert sum(len(b["calls"]) for b in ready) == 5
    lone = receiver.flush(now=T + 10)  # the deadline: the four spans nobody answered
    assert sum(len(b["calls"]) for b in lone) == 4
    for batch in ready + lone:
        assert ingestor.ingest(batch)

    assert dict(edges(embedded_store)) == {
        (sid("web"), sid("api"), "GET", "/orders/{id}", "workload"): 2,
        (sid("api"), "external:payments", "Charge", "/Pay/Charge", "trace"): 1,
        (sid("api"), "external:postgresql/orders", "SELECT", "", "trace"): 1,
        ("process:vm-7/billing-cron", sid("api"), "POST", "/invoices/{id}", "workload"): 1,
        (EXTERNAL_CLIENTS_ID, sid("api"), "GET", "/health", "workload"): 1,
        (EXTERNAL_CLIENTS_ID, sid("api"), "GET", "/orders", "workload"): 1,
        (sid("web"), "external:kafka/orders", "publish", "", "trace"): 1,
        ("external:kafka/orders", sid("worker", "StatefulSet"), "process", "", "workload"): 1,
    }
    assert errors(embedded_store) == {(sid("web"), sid("api")): 1,
                                      (sid("api"), "external:payments"): 1}
    assert services(embedded_store)["process:vm-7/billing-cron"] == "Process"


def _otlp_json(client_kind: int = 3) -> dict[str, Any]:
    """An OTLP/JSON export as the spec writes it: hex ids, lowerCamelCase, string ints."""
    def resource(name: str) -> dict[str, Any]:
        return {"attributes": [
            {"key": "service.name", "value": {"stringValue": name}},
            {"key": "k8s.namespace.name", "value": {"stringValue": "shop"}},
            {"key": "k8s.deployment.name", "value": {"stringValue": name}},
            {"key": "k8s.cluster.name", "value": {"stringValue": "prod"}}]}

    start = int(T * 1e9)
    trace_id = "5b8efff798038103d269b633813fc60c"
    http = [{"key": "http.request.method", "value": {"stringValue": "GET"}},
            {"key": "http.response.status_code", "value": {"intValue": "200"}}]
    return {"resourceSpans": [
        {"resource": resource("web"), "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": "eee19b7ec3c1b174", "name": "GET",
            "kind": client_kind, "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + 4_000_000), "attributes": [
                *http, {"key": "url.full", "value": {"stringValue": "http://api/items/7"}}]}]}]},
        {"resource": resource("api"), "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": "eee19b7ec3c1b175",
            "parentSpanId": "eee19b7ec3c1b174", "name": "GET /items/{id}", "kind": 2,
            "startTimeUnixNano": str(start + 1_000_000),
            "endTimeUnixNano": str(start + 3_000_000), "attributes": [
                *http, {"key": "http.route", "value": {"stringValue": "/items/{id}"}}]}]}]},
    ]}


def test_otlp_json_with_hex_ids_pairs_like_protobuf(receiver: OtlpReceiver) -> None:
    body = json.dumps(_otlp_json()).encode()
    assert receiver.accept(body, "application/json; charset=utf-8") == 2
    [batch] = receiver.flush(now=T)
    [record] = batch["calls"]
    assert (record["source"]["workload"]["name"], record["destination"]["workload"]["name"],
            record["path"], record["trace_id"], record["duration_ms"]) == (
        "web", "api", "/items/{id}", "5b8efff798038103d269b633813fc60c", 4.0)


def test_gzip_bodies_are_accepted(receiver: OtlpReceiver) -> None:
    assert receiver.accept(gzip.compress(json.dumps(_otlp_json()).encode()),
                           "application/json") == 2


@pytest.mark.parametrize(("body", "content_type", "reason"), [
    (b"{}", "text/plain", "content type"),
    (b"\xff\xff\xff", "application/x-protobuf", "not an OTLP protobuf"),
    (b"{not json", "application/json", "not OTLP JSON"),
    (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]})
     .encode(), "application/json", "not a hex id"),
    (b"\x1f\x8bnot gzip", "application/json", "not valid gzip"),
])
def test_bad_bodies_say_why(
    receiver: OtlpReceiver, body: bytes, content_type: str, reason: str
) -> None:
    with pytest.raises(InvalidTraces, match=reason):
        receiver.accept(body, content_type)


def _span(kind: int, attrs: dict[str, Any], *, span_id: str, parent: str = "") -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    def value(v: Any) -> AnyValue:
        return AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=str(v))

    return Span(trace_id=bytes.fromhex("ab" * 16), span_id=bytes.fromhex(span_id),
                parent_span_id=bytes.fromhex(parent) if parent else b"", kind=kind,
                start_time_unix_nano=int(T * 1e9), end_time_unix_nano=int(T * 1e9) + 1000,
                attributes=[KeyValue(key=k, value=value(v)) for k, v in attrs.items()])


@pytest.mark.parametrize("attrs", [
    {"peer.service": "p" * 400},
    {"server.address": "10.1.1.1", "server.port": 70_000},
    {"http.request.method": "GET", "http.response.status_code": 1234},
    {"http.request.method": "G" * 100, "url.full": "http://x/" + "a" * 5000},
    {"db.system": "d" * 200, "db.name": "n" * 200},
    {"rpc.system": "r" * 50, "rpc.service": "S", "rpc.method": "M"},
])
def test_odd_attributes_still_make_valid_batches(receiver: OtlpReceiver, attrs: dict) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource as ResourcePb
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    from topology.ingest.schema import validate

    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=ResourcePb(), scope_spans=[ScopeSpans(spans=[
            _span(Span.SPAN_KIND_CLIENT, attrs, span_id="01" * 8),
            _span(Span.SPAN_KIND_CLIENT, attrs, span_id="02" * 8),
            _span(Span.SPAN_KIND_SERVER, attrs, span_id="03" * 8, parent="02" * 8),
        ])])])
    assert receiver.accept(request.SerializeToString(), "application/x-protobuf") == 3
    batches = receiver.flush(now=T + 60)
    assert sum(len(b["calls"]) for b in batches) == 2
    for batch in batches:
        validate(batch)
