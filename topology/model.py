"""The graph data model shared by ingestion, the stores and the queries.

Services are nodes. Traffic is kept twice, on purpose:

* ``CallBucket``: one aggregate per (client, server, bucket width, bucket start,
  protocol, method, path template), holding counters, a fixed-bin latency
  histogram, counts per status class and a few exemplar trace ids;
* ``CALLS``: one relationship per (client, server) pair with first/last seen and
  protocols. Traversals (dependencies, blast radius, recovery order) walk only
  these, never the buckets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from topology import histogram

MINUTE = 60
HOUR = 3600

KIND_DEPLOYMENT = "Deployment"
KIND_STATEFULSET = "StatefulSet"
KIND_DAEMONSET = "DaemonSet"
KIND_REPLICASET = "ReplicaSet"
KIND_PROCESS = "Process"
KIND_EXTERNAL_SERVICE = "External service"
KIND_EXTERNAL_CLIENT = "External client"
KIND_UNKNOWN_EXTERNAL = "Unknown external"
SERVICE_KINDS = (
    KIND_DEPLOYMENT, KIND_STATEFULSET, KIND_DAEMONSET, KIND_REPLICASET, KIND_PROCESS,
    KIND_EXTERNAL_SERVICE, KIND_EXTERNAL_CLIENT, KIND_UNKNOWN_EXTERNAL,
)
EXTERNAL_KINDS = (KIND_EXTERNAL_SERVICE, KIND_EXTERNAL_CLIENT, KIND_UNKNOWN_EXTERNAL)

UNKNOWN_EXTERNAL_ID = "external:unknown"
UNKNOWN_EXTERNAL_NAME = "Unknown External Service"
EXTERNAL_CLIENTS_ID = "external:clients"
EXTERNAL_CLIENTS_NAME = "External Clients"

# How the server end of a call was named (provenance, kept on buckets and pairs).
NAMING_WORKLOAD = "workload"
NAMING_HOST = "host"
NAMING_DNS = "dns"
NAMING_UNKNOWN = "unknown"
NAMING_TRACE = "trace"
NAMINGS = (NAMING_WORKLOAD, NAMING_HOST, NAMING_DNS, NAMING_UNKNOWN, NAMING_TRACE)

# Status classes counted per bucket: index 0 is "no status" (plain TCP, failed
# before a response), 1..5 are 1xx..5xx.
STATUS_CLASSES = 6
MAX_EXEMPLARS = 5


def workload_id(cluster: str, namespace: str, kind: str, name: str) -> str:
    return f"k8s:{cluster}/{namespace}/{kind}/{name}"


def process_id(host: str, name: str) -> str:
    return f"process:{host}/{name}"


def external_id(hostname: str) -> str:
    return f"external:{hostname.lower()}"


def status_class(status: int | None) -> int:
    if status is None or not 100 <= status <= 599:
        return 0
    return status // 100


@dataclass(slots=True)
class Service:
    id: str
    name: str
    kind: str
    namespace: str = ""
    cluster: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    seen: int = 0  # epoch seconds of the observation that mentions it

    def __post_init__(self) -> None:
        if self.kind not in SERVICE_KINDS:
            raise ValueError(f"service {self.id!r}: unknown kind {self.kind!r}")


@dataclass(slots=True)
class CallBucket:
    client: str
    server: str
    bucket: int  # start, epoch seconds, a multiple of width
    width: int
    protocol: str
    method: str = ""
    path: str = ""
    requests: int = 0
    errors: int = 0
    latency_sum_ms: float = 0.0
    histogram: list[int] = field(default_factory=histogram.empty)
    status_classes: list[int] = field(default_factory=lambda: [0] * STATUS_CLASSES)
    exemplars: list[str] = field(default_factory=list)
    naming: str = NAMING_WORKLOAD

    @property
    def key(self) -> str:
        """Stable identity of the aggregate; the unique key in every store."""
        return "|".join(
            (self.client, self.server, str(self.width), str(self.bucket),
             self.protocol, self.method, self.path)
        )

    def record(
        self, duration_ms: float, *, error: bool, status: int | None, trace_id: str = ""
    ) -> None:
        self.requests += 1
        self.errors += int(error)
        self.latency_sum_ms += duration_ms
        self.histogram[histogram.bin_index(duration_ms)] += 1
        self.status_classes[status_class(status)] += 1
        if trace_id and len(self.exemplars) < MAX_EXEMPLARS and trace_id not in self.exemplars:
            self.exemplars.append(trace_id)

    def merge(self, other: CallBucket) -> None:
        if other.key != self.key:
            raise ValueError(f"cannot merge bucket {other.key!r} into {self.key!r}")
        self.requests += other.requests
        self.errors += other.errors
        self.latency_sum_ms += other.latency_sum_ms
        histogram.add_into(self.histogram, other.histogram)
        for i, count in enumerate(other.status_classes):
            self.status_classes[i] += count
        for trace_id in other.exemplars:
            if len(self.exemplars) >= MAX_EXEMPLARS:
                break
            if trace_id not in self.exemplars:
                self.exemplars.append(trace_id)
        self.naming = other.naming or self.naming


@dataclass(slots=True)
class Batch:
    """What one ingest delivery writes, applied atomically and at most once by id."""

    id: str
    services: list[Service] = field(default_factory=list)
    calls: list[CallBucket] = field(default_factory=list)
