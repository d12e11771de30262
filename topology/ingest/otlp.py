"""OTLP/HTTP traces: decoding, and the receiver that turns spans into collector batches.

`decode` reads an ExportTraceServiceRequest from protobuf bytes or from OTLP
JSON (whose trace and span ids are hex strings, not the base64 that the
protobuf JSON mapping expects). `OtlpReceiver` pairs CLIENT and SERVER spans
(`spanpairs.PairStore`) and emits call records in the collector batch format,
side `client` with both workloads filled in, so one path (`Ingestor.ingest`)
writes everything:

* CLIENT + SERVER pair: client workload -> server workload;
* CLIENT alone at expiry: -> the peer named by peer.service, server.address,
  the URL host or db.system/db.name (an IP literal goes to `ip`, where a lease
  can still resolve it to a workload); none of these: Unknown External Service;
* SERVER alone at expiry, or a SERVER span without a parent: External Clients ->
  server (recorded as a server-side observation from an unknown caller);
* PRODUCER / CONSUMER: producer -> queue and queue -> consumer, the queue being
  the node `<messaging.system>/<destination>`; no pairing needed.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from topology.ingest.spanpairs import SERVER, PairStore
from topology.ingest.spanview import SpanView, span_views

KIND_SERVER, KIND_CLIENT = Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CLIENT
KIND_PRODUCER, KIND_CONSUMER = Span.SPAN_KIND_PRODUCER, Span.SPAN_KIND_CONSUMER
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


class InvalidTraces(ValueError):
    """The body is not an OTLP trace export; the message says why."""


def _hex_ids_to_base64(node: Any) -> None:
    """OTLP JSON carries ids as hex; the protobuf JSON mapping wants base64 bytes."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str) and value:
                try:
                    node[key] = base64.b64encode(bytes.fromhex(value)).decode()
                except ValueError:
                    raise InvalidTraces(f"{key} {value!r} is not a hex id") from None
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)


def decode(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    if body[:2] == b"\x1f\x8b":  # gzip, whatever the Content-Encoding said
        try:
            body = gzip.decompress(body)
        except (OSError, EOFError) as exc:
            raise InvalidTraces(f"body is not valid gzip: {exc}") from None
    media = content_type.split(";", 1)[0].strip().lower()
    request = ExportTraceServiceRequest()
    if media == "application/json":
        try:
            data = json.loads(body)
            _hex_ids_to_base64(data)
            json_format.ParseDict(data, request, ignore_unknown_fields=True)
        except (ValueError, json_format.ParseError) as exc:
            raise InvalidTraces(f"body is not OTLP JSON: {exc}") from None
    elif media in ("application/x-protobuf", "application/protobuf"):
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise InvalidTraces(f"body is not an OTLP protobuf export: {exc}") from None
    else:
        raise InvalidTraces(
            f"content type {content_type!r} is not application/x-protobuf or application/json")
    return request


class OtlpReceiver:
    """Spans in (`accept`), collector batches out (`flush`).

    Safe to share between request handlers and a flushing task: one lock
    guards the pairing store and the waiting call records. `flush` is the only
    place time moves; call it every second or so with the current time and
    feed what it returns to `Ingestor.ingest` (or the Celery task).
    """

    def __init__(
        self,
        *,
        agent: str = "otlp",
        pair_ttl: float = 10.0,
        max_pending: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.agent = agent
        self.clock = clock
        self.pairs: PairStore[SpanView] = PairStore(
            self._paired, self._alone, ttl=pair_ttl, max_pending=max_pending)
        self._calls: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def accept(self, body: bytes, content_type: str) -> int:
        """Decode an export and take its spans; returns how many spans were accepted."""
        spans = list(span_views(decode(body, content_type)))
        with self._lock:
            self._take(spans, self.clock())
        return len(spans)

    def _take(self, spans: list[SpanView], now: float) -> None:
        """Spans of other kinds (INTERNAL, UNSPECIFIED) are accepted and add no edge."""
        for span in spans:
            if span.kind == KIND_CLIENT:
                self.pairs.add_client(span.trace_id, span.span_id, span, now)
            elif span.kind == KIND_SERVER:
                if span.parent_span_id:
                    self.pairs.add_server(span.trace_id, span.parent_span_id, span, now)
                else:
                    self._alone(span, SERVER)
            elif span.kind == KIND_PRODUCER and span.queue:
                self._calls.append(span.call(source=span.workload_end(),
                                             destination={"service": span.queue}))
            elif span.kind == KIND_CONSUMER and span.queue:
                self._calls.append(span.call(source={"service": span.queue},
                                             destination=span.workload_end()))

    def flush(self, now: float | None = None, max_calls: int = 10_000) -> list[dict[str, Any]]:
        """Expire lone spans, then hand out every waiting call record as batches."""
        with self._lock:
            self.pairs.expire(self.clock() if now is None else now)
            calls, self._calls = self._calls, []
        return [
            {"batch_id": f"otlp-{uuid.uuid4()}", "agent": self.agent,
             "calls": calls[i:i + max_calls]}
            for i in range(0, len(calls), max_calls)
        ]

    def pending_calls(self) -> int:
        return len(self._calls)

    def _paired(self, client: SpanView, server: SpanView) -> None:
        call = client.call(source=client.workload_end(), destination=server.workload_end())
        if server.route:
            call["path"] = server.route[:4096]
        if server.status is not None and server.status <= 999 and "status" not in call:
            call["status"] = server.status
        if server.error:
            call["error"] = True
        self._calls.append(call)

    def _alone(self, span: SpanView, side: str) -> None:
        if side == SERVER:
            call = span.call(source={}, destination=span.workload_end())
            call["side"] = "server"
        else:
            call = span.call(source=span.workload_end(), destination=span.peer_end())
        self._calls.append(call)
