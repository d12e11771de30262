"""One OTLP span seen through the attributes ingestion needs.

Service identity comes from the resource: a Kubernetes workload when the
resource names one (k8s.deployment.name, .statefulset., .daemonset., a bare
.replicaset., with k8s.namespace.name and k8s.cluster.name), else a process
named by service.name on host.name (service.namespace as its namespace).
Protocol, method, path, status and the peer come from the semantic
conventions, current names first and the older ones as fallbacks.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from topology.model import (
    KIND_DAEMONSET,
    KIND_DEPLOYMENT,
    KIND_PROCESS,
    KIND_REPLICASET,
    KIND_STATEFULSET,
)

_WORKLOAD_ATTRIBUTES = (
    ("k8s.deployment.name", KIND_DEPLOYMENT),
    ("k8s.statefulset.name", KIND_STATEFULSET),
    ("k8s.daemonset.name", KIND_DAEMONSET),
    ("k8s.replicaset.name", KIND_REPLICASET),
)


def _value(kv: KeyValue) -> Any:
    which = kv.value.WhichOneof("value")
    if which is None or which in ("array_value", "kvlist_value", "bytes_value"):
        return None
    return getattr(kv.value, which)


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv) for kv in kvs}


def workload(resource: Mapping[str, Any]) -> dict[str, Any]:
    """The batch-format workload a resource describes."""
    for key, kind in _WORKLOAD_ATTRIBUTES:
        name = resource.get(key)
        if name:
            out = {"name": _name(name), "kind": kind,
                   "namespace": str(resource.get("k8s.namespace.name", "")),
                   "cluster": str(resource.get("k8s.cluster.name", ""))}
            return out
    return {"name": _name(resource.get("service.name") or "unknown_service"),
            "kind": KIND_PROCESS,
            "namespace": str(resource.get("service.namespace", "")),
            "host": str(resource.get("host.name", ""))}


def _first(attrs: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value not in (None, ""):
            return value
    return None


def _name(value: object) -> str:
    """A node name within the batch format's limit (253, a DNS name's)."""
    return str(value)[:253]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class SpanView:
    __slots__ = ("attrs", "duration_ms", "error", "kind", "parent_span_id", "resource",
                 "span_id", "start", "trace_id")

    def __init__(self, span: Span, resource: Mapping[str, Any]) -> None:
        self.resource = resource
        self.attrs = attributes(span.attributes)
        self.trace_id = span.trace_id.hex()
        self.span_id = span.span_id.hex()
        self.parent_span_id = span.parent_span_id.hex()
        self.kind = span.kind
        self.start = span.start_time_unix_nano / 1e9
        self.duration_ms = max(0, span.end_time_unix_nano - span.start_time_unix_nano) / 1e6
        self.error = span.status.code == Status.STATUS_CODE_ERROR or (
            self.status is not None and self.status >= 500)

    @property
    def status(self) -> int | None:
        code = _first(self.attrs, "http.response.status_code", "http.status_code")
        return int(code) if isinstance(code, int | str) and str(code).isdigit() else None

    @property
    def protocol(self) -> str:
        a = self.attrs
        if a.get("rpc.system"):
            return str(a["rpc.system"])
        if _first(a, "http.request.method", "http.method"):
            scheme = _first(a, "url.scheme", "http.scheme") or urlsplit(
                str(_first(a, "url.full", "http.url") or "")).scheme
            return "https" if scheme == "https" else "http"
        return str(_first(a, "db.system.name", "db.system", "messaging.system") or "span")

    @property
    def method(self) -> str:
        a = self.attrs
        return str(_first(a, "http.request.method", "http.method", "rpc.method",
                          "db.operation.name", "db.operation", "messaging.operation.type",
                          "messaging.operation") or "")

    @property
    def route(self) -> str:
        return str(self.attrs.get("http.route") or "")

    @property
    def path(self) -> str:
        a = self.attrs
        if self.route:
            return self.route
        if a.get("url.path"):
            return str(a["url.path"])
        target = _first(a, "http.target")
        if target:
            return str(target)
        url = _first(a, "url.full", "http.url")
        if url:
            return urlsplit(str(url)).path
        if a.get("rpc.service"):
            return f"/{a['rpc.service']}/{a.get('rpc.method', '')}"
        return ""

    @property
    def queue(self) -> str:
        a = self.attrs
        system = a.get("messaging.system")
        destination = _first(a, "messaging.destination.name", "messaging.destination")
        if not system and not destination:
            return ""
        return _name(f"{system or 'queue'}/{destination or 'unknown'}")

    def workload_end(self) -> dict[str, Any]:
        return {"workload": workload(self.resource)}

    def peer_end(self) -> dict[str, Any]:
        """The server end of a CLIENT span nobody answered: named from its attributes."""
        a = self.attrs
        if a.get("peer.service"):
            return {"service": _name(a["peer.service"])}
        address = _first(a, "server.address", "net.peer.name", "net.peer.ip")
        if not address:
            url = _first(a, "url.full", "http.url")
            address = urlsplit(str(url)).hostname if url else None
        if address:
            address = str(address)
            if _is_ip(address):
                port = _first(a, "server.port", "net.peer.port")
                end: dict[str, Any] = {"ip": address}
                if isinstance(port, int) and 0 <= port <= 65535:
                    end["port"] = port
                return end
            return {"service": _name(address)}
        db = _first(a, "db.system.name", "db.system")
        if db:
            name = _first(a, "db.namespace", "db.name")
            return {"service": _name(f"{db}/{name}" if name else db)}
        return {}

    def call(self, *, source: dict[str, Any], destination: dict[str, Any]) -> dict[str, Any]:
        """A client-side call record of this span in the collector batch format."""
        call: dict[str, Any] = {
            "timestamp": self.start, "side": "client", "source": source,
            "destination": destination, "protocol": self.protocol[:32],
            "duration_ms": self.duration_ms, "trace_id": self.trace_id,
        }
        if self.method:
            call["method"] = self.method[:64]
        if self.path:
            call["path"] = self.path[:4096]
        if self.status is not None and self.status <= 999:
            call["status"] = self.status
        if self.error:
            call["error"] = True
        return call


def span_views(request: ExportTraceServiceRequest) -> Iterator[SpanView]:
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield SpanView(span, resource)
