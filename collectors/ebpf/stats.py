"""Loss and activity counters of the agent, exposed on its own /metrics.

Plain integers bumped on the hot path (no locks, no label lookups); a custom
Prometheus collector reads them at scrape time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

PREFIX = "topology_agent_"


@dataclass
class Stats:
    events: Counter[str] = field(default_factory=Counter)
    kernel_lost: dict[str, int] = field(default_factory=dict)
    unparsable: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    dns_answers: int = 0
    connections_opened: int = 0
    evicted_connections: int = 0
    evicted_requests: int = 0
    expired_requests: int = 0
    unmatched_responses: int = 0
    dropped_batches: int = 0
    dropped_items: int = 0
    sent_batches: int = 0
    send_failures: int = 0
    connections: int = 0
    pending_requests: int = 0
    backlog_batches: int = 0

    def losses(self) -> dict[str, int]:
        """Everything lost so far, for the periodic log line."""
        return {
            **{f"kernel_{kind}": count for kind, count in self.kernel_lost.items()},
            **{f"unparsable_{proto}": count for proto, count in self.unparsable.items()},
            "evicted_connections": self.evicted_connections,
            "evicted_requests": self.evicted_requests,
            "expired_requests": self.expired_requests,
            "unmatched_responses": self.unmatched_responses,
            "dropped_batches": self.dropped_batches,
        }


class StatsCollector(Collector):
    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        s = self.stats
        yield _labelled("events", "Kernel events handled, by kind", "kind", s.events)
        yield _labelled("lost_events", "Events the kernel could not queue (ring buffer full)",
                        "kind", s.kernel_lost)
        yield _labelled("unparsable_payloads", "Payloads that could not be parsed",
                        "protocol", s.unparsable)
        yield _labelled("calls", "Calls reported, by protocol", "protocol", s.calls)
        for name, help_text, value in (
            ("dns_answers", "DNS answers reported", s.dns_answers),
            ("connections_opened", "Connections seen opening", s.connections_opened),
            ("evicted_connections", "Connections dropped from a full table",
             s.evicted_connections),
            ("evicted_requests", "Pending requests dropped from a full table",
             s.evicted_requests),
            ("expired_requests", "Requests never answered within the timeout",
             s.expired_requests),
            ("unmatched_responses", "Responses without a pending request",
             s.unmatched_responses),
            ("dropped_batches", "Batches dropped because the backlog was full",
             s.dropped_batches),
            ("sent_batches", "Batches delivered", s.sent_batches),
            ("send_failures", "Failed delivery attempts", s.send_failures),
        ):
            family = CounterMetricFamily(PREFIX + name, help_text)
            family.add_metric([], value)
            yield family
        for name, help_text, value in (
            ("connections", "Connections tracked now", s.connections),
            ("pending_requests", "Requests waiting for a response now", s.pending_requests),
            ("backlog_batches", "Batches waiting for delivery now", s.backlog_batches),
        ):
            gauge = GaugeMetricFamily(PREFIX + name, help_text)
            gauge.add_metric([], value)
            yield gauge


def _labelled(name: str, help_text: str, label: str,
              values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(PREFIX + name, help_text, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def registry_for(stats: Stats) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(stats))
    return registry
