"""The API's Prometheus metrics, in a registry of its own per app.

Request latency by route, ingest events accepted and rejected (with the
reason), the store's write latency (embedded mode), and the events the
ingestor dropped while resolving (read from its counters at scrape time).
The embedded ingest queue registers its own depth, batch counters and
per-batch latency (`topology_ingest_queue_*`) in the same registry; in
distributed mode the depth is the broker queue's length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# Routes are labelled by their template; anything else is "other" (bounded labels).
ROUTES = frozenset({"/graphql", "/v1/events", "/v1/traces", "/healthz", "/readyz", "/metrics"})
REJECT_REASONS = ("bad_json", "invalid", "too_large", "unsupported", "backpressure",
                  "unavailable")


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "topology_http_request_seconds", "HTTP request latency by route",
            ["route", "method", "status"], registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.events_accepted = Counter(
            "topology_ingest_events_accepted", "call events in accepted ingest batches",
            ["endpoint"], registry=self.registry,
        )
        self.batches_rejected = Counter(
            "topology_ingest_batches_rejected", "ingest requests refused, by reason",
            ["endpoint", "reason"], registry=self.registry,
        )
        self.events_rejected = Counter(
            "topology_ingest_events_rejected",
            "call events in refused ingest batches (when the body could be read)",
            ["endpoint", "reason"], registry=self.registry,
        )
        self.store_write = Histogram(
            "topology_store_write_seconds", "time of one batch's store transaction",
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        for endpoint in ("events", "traces"):
            self.events_accepted.labels(endpoint)
            for reason in REJECT_REASONS:
                self.batches_rejected.labels(endpoint, reason)
                self.events_rejected.labels(endpoint, reason)

    def observe(self, path: str, method: str, status: int, seconds: float) -> None:
        route = path if path in ROUTES else "other"
        self.latency.labels(route, method, str(status)).observe(seconds)

    def rejected(self, endpoint: str, reason: str, events: int = 0) -> None:
        self.batches_rejected.labels(endpoint, reason).inc()
        if events:
            self.events_rejected.labels(endpoint, reason).inc(events)

    def watch_ingestor(self, dropped: Callable[[], dict[str, int]],
                       written: Callable[[], int]) -> None:
        """Export the ingestor's own counters (events dropped by reason, events counted)."""
        self.registry.register(_IngestorCollector(dropped, written))

    def watch_broker_depth(self, depth: Callable[[], int | None]) -> None:
        self.registry.register(_DepthCollector(depth))


class _IngestorCollector(Collector):
    def __init__(self, dropped: Callable[[], dict[str, int]], written: Callable[[], int]) -> None:
        self._dropped = dropped
        self._written = written

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "topology_ingest_events_dropped",
            "call events the ingestor dropped while resolving, by reason", labels=["reason"],
        )
        for reason, count in sorted(self._dropped().items()):
            family.add_metric([reason], count)
        yield family
        yield CounterMetricFamily("topology_ingest_events_counted",
                                  "call events counted into the graph", value=self._written())


class _DepthCollector(Collector):
    def __init__(self, depth: Callable[[], int | None]) -> None:
        self._depth = depth

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = self._depth()
        if depth is not None:
            yield GaugeMetricFamily("topology_ingest_queue_depth",
                                    "batches waiting in the broker's ingest queue", value=depth)
