"""The GraphQL output and input types: the contract exported to graphql/schema.graphql.

Output types are plain data (no resolvers, no arguments), so the lean executor
(`executor.py`) can project them without per-field resolution; everything a
query computes happens before the answer object is built.
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum

import strawberry

from topology.api.graphql import health as health_rules

Health = strawberry.enum(
    health_rules.Health,
    description="HEALTHY: errors under 1% and p99 within 80% of the SLO; WARNING: approaching "
    "the SLO; CRITICAL: SLO breached; UNKNOWN: no traffic in the window.",
)


@strawberry.enum(description="Which way a dependency walk goes.")
class Direction(Enum):
    DOWNSTREAM = "downstream"
    UPSTREAM = "upstream"


@strawberry.enum(description="How the server end of calls was named.")
class Naming(Enum):
    WORKLOAD = "workload"
    HOST = "host"
    DNS = "dns"
    UNKNOWN = "unknown"
    TRACE = "trace"


@strawberry.input(description="A time window: `last` (e.g. 15m, 1h, 7d) or `from`/`to` "
                  "(ISO 8601). Default: the last hour.")
class WindowInput:
    last: str | None = None
    from_: str | None = strawberry.field(name="from", default=None)
    to: str | None = None


@strawberry.type(description="The window an answer covers (bucket starts in [from, to)).")
class TimeRange:
    from_: datetime = strawberry.field(name="from")
    to: datetime
    seconds: int


@strawberry.type
class Label:
    key: str
    value: str


@strawberry.type(description="Traffic over the window.")
class TrafficStats:
    requests: int
    request_rate: float = strawberry.field(description="requests per second over the window")
    errors: int
    error_rate: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@strawberry.type(description="A service: a workload, a process, or an external node.")
class Service:
    id: strawberry.ID
    name: str
    namespace: str
    cluster: str
    kind: str
    external: bool
    labels: list[Label]
    first_seen: datetime | None
    last_seen: datetime | None
    stats: TrafficStats = strawberry.field(
        description="calls it served in the answer's scope, else calls it made")
    health: Health


@strawberry.type
class PathCount:
    path: str
    requests: int


@strawberry.type(description="Traffic of one time step.")
class SeriesPoint:
    start: datetime
    requests: int
    errors: int


@strawberry.type(description="Calls from one service to another in the window.")
class Edge:
    client: strawberry.ID
    server: strawberry.ID
    protocols: list[str]
    stats: TrafficStats
    health: Health
    weight: float = strawberry.field(
        description="requests relative to the busiest edge of the answer, in (0, 1]: "
        "line thickness")
    top_paths: list[PathCount]
    time_series: list[SeriesPoint] = strawberry.field(
        description="requests and errors per time step (at most 60 steps over the window)")
    exemplar_trace_ids: list[str] = strawberry.field(
        description="a few trace ids of these calls, to open the underlying traces")


@strawberry.type
class ServiceMap:
    window: TimeRange
    services: list[Service]
    edges: list[Edge]
    truncated: bool = strawberry.field(
        description="true when edges (or services) were cut at the list cap")


@strawberry.type(description="The service catalogue.")
class ServiceList:
    window: TimeRange
    services: list[Service]
    total: int
    truncated: bool


@strawberry.type
class ServiceDetail:
    service: Service
    incoming: list[Edge]
    outgoing: list[Edge]
    callers: list[Service]
    callees: list[Service]


@strawberry.type
class Dependency:
    service: Service
    distance: int
    path: list[strawberry.ID] = strawberry.field(
        description="service ids from the root to this service along a shortest path")


@strawberry.type
class Dependencies:
    root: Service
    direction: Direction
    depth: int
    services: list[Dependency]
    truncated: bool


@strawberry.type
class Dependent:
    service: Service
    distance: int
    path: list[strawberry.ID] = strawberry.field(
        description="service ids from this dependent down to the target")
    degraded: bool
    requests: int
    error_rate: float
    p99_ms: float | None


@strawberry.type
class BlastRadius:
    target: Service
    depth: int
    dependents: list[Dependent]
    total: int
    degraded: int
    summary: str = strawberry.field(description='e.g. "4 dependent services, 3 degraded"')
    truncated: bool


@strawberry.type
class RecoveryStage:
    number: int
    services: list[Service]
    cycles: list[list[strawberry.ID]]


@strawberry.type
class RecoveryOrder:
    stages: list[RecoveryStage]
    truncated: bool


@strawberry.type
class Caller:
    service: Service
    requests: int
    errors: int


@strawberry.type
class ExternalDependency:
    service: Service
    hostname: str
    naming: list[Naming] = strawberry.field(
        description="how it was named: HTTP Host header, DNS answer, unknown, trace")
    stats: TrafficStats
    health: Health
    callers: list[Caller]


@strawberry.type
class ExternalDependencies:
    window: TimeRange
    dependencies: list[ExternalDependency]
    truncated: bool


@strawberry.type
class EdgeRef:
    client: strawberry.ID
    server: strawberry.ID


@strawberry.type
class EdgeChange:
    client: strawberry.ID
    server: strawberry.ID
    error_rate_before: float
    error_rate_after: float
    p99_before_ms: float | None
    p99_after_ms: float | None
    reasons: list[str]


@strawberry.type
class TopologyDiff:
    before: TimeRange
    after: TimeRange
    services_added: list[Service]
    services_removed: list[Service]
    edges_added: list[EdgeRef]
    edges_removed: list[EdgeRef]
    edges_changed: list[EdgeChange]
    truncated: bool


@strawberry.type
class FilterValidation:
    valid: bool
    message: str | None
    line: int | None
    column: int | None
    code: str | None


@strawberry.type(description="A field the filter language knows, for autocomplete.")
class FilterField:
    name: str
    type: str
    description: str
    example: str
