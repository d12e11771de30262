"""Answer objects (the GraphQL types) from query results."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from queries.services import ServiceNode
from queries.window import EMPTY, Traffic, Window
from topology import histogram
from topology.api.graphql import health as rules
from topology.api.graphql import types as t
from topology.api.graphql.data import PairAgg, ServiceRecord
from topology.api.graphql.rows import EdgeRow, PathRow, PointRow, StatsRow

_EPOCH_CACHE: dict[int, datetime] = {}


def moment(seconds: int | None) -> datetime | None:
    if seconds is None:
        return None
    found = _EPOCH_CACHE.get(seconds)
    if found is None:
        if len(_EPOCH_CACHE) > 100_000:
            _EPOCH_CACHE.clear()
        found = _EPOCH_CACHE[seconds] = datetime.fromtimestamp(seconds, UTC)
    return found


Quantiles = tuple[float | None, float | None, float | None]


class QuantileMemo(dict[tuple[int, ...], Quantiles]):
    """p50/p95/p99 per distinct histogram, for one answer.

    The quantiles are a pure function of the histogram, and a map repeats
    histograms a lot (every edge with one request in the same bin has the same
    one): a lookup costs a tenth of the computation.
    """

    def __missing__(self, hist: tuple[int, ...]) -> Quantiles:
        found = self[hist] = histogram.p50_p95_p99(hist)
        return found


def stats(traffic: Traffic, window: Window, memo: QuantileMemo | None = None) -> StatsRow:
    return summary(traffic.requests, traffic.errors, traffic.hist, window.seconds, memo)


def summary(requests: int, errors: int, hist: Sequence[int], seconds: int,
            memo: QuantileMemo | None = None) -> StatsRow:
    """The TrafficStats of these numbers (as its row twin)."""
    p50, p95, p99 = (histogram.p50_p95_p99(hist) if memo is None
                     else memo[hist if type(hist) is tuple else tuple(hist)])
    return StatsRow(requests, requests / seconds, errors, errors / requests if requests else 0.0,
                    p50, p95, p99)


def labels(node: ServiceNode) -> list[t.Label]:
    result = []
    for label in node.labels:
        key, _, value = label.partition("=")
        result.append(t.Label(key=key, value=value))
    return result


def slo(node: ServiceNode) -> rules.Slo:
    return rules.slo_from_labels(node.labels) if node.labels else rules.DEFAULT


def service(
    node: ServiceNode, window: Window, traffic: Traffic | None = None,
    record: ServiceRecord | None = None, memo: QuantileMemo | None = None,
) -> t.Service:
    traffic = traffic or EMPTY
    numbers = stats(traffic, window, memo)
    return t.Service(
        id=node.id, name=node.name, namespace=node.namespace, cluster=node.cluster,
        kind=node.kind, external=node.external, labels=labels(node),
        first_seen=moment(record.first_seen) if record else None,
        last_seen=moment(record.last_seen) if record else None,
        stats=numbers,
        health=rules.judge(numbers.requests, numbers.error_rate, numbers.p99_ms, slo(node)),
    )


def services(
    records: Mapping[str, ServiceRecord], traffic: Mapping[str, Traffic], window: Window,
    ids: Iterable[str] | None = None,
) -> list[t.Service]:
    wanted = sorted(records) if ids is None else [i for i in ids if i in records]
    memo = QuantileMemo()
    return [service(records[i].node, window, traffic.get(i), records[i], memo) for i in wanted]


def edges(
    pairs: list[PairAgg], window: Window, records: Mapping[str, ServiceRecord],
    series: Mapping[tuple[str, str], Mapping[int, list[int]]] | None = None, step: int = 60,
    exemplars: Mapping[tuple[str, str], list[str]] | None = None,
) -> list[EdgeRow]:
    busiest = max((p.requests for p in pairs), default=0) or 1
    result: list[EdgeRow] = []
    append = result.append
    limits = {sid: slo(record.node) for sid, record in records.items()}
    seconds = window.seconds
    memo = QuantileMemo()
    judge, default = rules.judge, rules.DEFAULT
    for pair in pairs:  # `summary` inlined: this loop runs once per edge of the map
        requests, errors, protocols = pair.requests, pair.errors, pair.protocols
        p50, p95, p99 = memo[pair.hist]
        error_rate = errors / requests if requests else 0.0
        key = (pair.client, pair.server)
        append(EdgeRow(
            pair.client, pair.server,
            sorted(protocols) if len(protocols) > 1 else list(protocols),
            StatsRow(requests, requests / seconds, errors, error_rate, p50, p95, p99),
            judge(requests, error_rate, p99, limits.get(pair.server, default)),
            requests / busiest,
            [PathRow(p, n) for p, n in pair.top_paths()],
            _points(series.get(key, {}), window, step) if series is not None else [],
            list(exemplars.get(key, ())) if exemplars is not None else [],
        ))
    return result


def _points(points: Mapping[int, list[int]], window: Window, step: int) -> list[PointRow]:
    result = []
    for start in range(window.since, window.until, step):
        requests, errors = points.get(start, (0, 0))
        result.append(PointRow(moment(start), requests, errors))
    return result
