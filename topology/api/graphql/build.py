"""Answer objects (the GraphQL types) from query results."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cache, lru_cache
from itertools import accumulate, chain
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from queries import fold
from queries.services import ServiceNode
from queries.window import EMPTY, Traffic, Window
from topology import histogram
from topology.api.graphql import health as rules
from topology.api.graphql import types as t
from topology.api.graphql.data import ServiceSums
from topology.api.graphql.records import ServiceRecord
from topology.api.graphql.rows import Coded, Column, Columns, EdgeRow, PathRow, PointRow, StatsRow

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
    return _slo_of(node.labels) if node.labels else rules.DEFAULT


@lru_cache(maxsize=4096)
def _slo_of(labels: tuple[str, ...]) -> rules.Slo:
    """Services share a few label sets; a map asks for thousands of SLOs."""
    return rules.slo_from_labels(labels)


def service(
    node: ServiceNode, window: Window, traffic: Traffic | None = None,
    record: ServiceRecord | None = None, memo: QuantileMemo | None = None,
) -> t.Service:
    return of_numbers(node, stats(traffic or EMPTY, window, memo), record)


def of_numbers(node: ServiceNode, numbers: StatsRow, record: ServiceRecord | None) -> t.Service:
    """The service with these stats."""
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


def service_stats(sums: ServiceSums, seconds: int) -> dict[str, StatsRow]:
    """TrafficStats per service id from column-wise sums."""
    return {
        sid: StatsRow(requests, requests / seconds, errors,
                      errors / requests if requests else 0.0, p50, p95, p99)
        for sid, requests, errors, p50, p95, p99 in zip(
            sums.ids.to_pylist(), sums.requests.to_pylist(), sums.errors.to_pylist(),
            sums.p50.to_pylist(), sums.p95.to_pylist(), sums.p99.to_pylist(), strict=True)
    }


def services_of(
    records: Mapping[str, ServiceRecord], numbers: Mapping[str, StatsRow], window: Window,
    ids: Iterable[str] | None = None,
) -> list[t.Service]:
    """`services` from precomputed stats (`service_stats`); no traffic: empty stats."""
    wanted = sorted(records) if ids is None else [i for i in ids if i in records]
    empty = stats(EMPTY, window)
    return [of_numbers(records[i].node, numbers.get(i, empty), records[i]) for i in wanted]


def service_columns(
    records: Mapping[str, ServiceRecord], sums: ServiceSums, window: Window,
) -> Columns:
    """`services_of` every record, by id, with the stats `service_stats` makes of `sums`
    (empty where a service has none), column-wise: the map's services (see `edges`)."""
    wanted = sorted(records)
    held = [records[i] for i in wanted]
    nodes = [record.node for record in held]
    ids = pa.array(wanted, pa.string())
    at = pc.index_in(ids, value_set=sums.ids)

    def taken(values: list[Any] | pa.Array, type_: pa.DataType) -> pa.Array:
        return pc.take(values if isinstance(values, pa.Array) else pa.array(values, type_), at)

    requests = pc.fill_null(taken(sums.requests, pa.int64()), 0).cast(pa.int64())
    errors = pc.fill_null(taken(sums.errors, pa.int64()), 0).cast(pa.int64())
    rate = ratio(errors, requests)
    p99 = taken(sums.p99, pa.float64())
    columns: dict[str, Column] = {
        "id": ids, "name": [node.name for node in nodes],
        "namespace": [node.namespace for node in nodes],
        "cluster": [node.cluster for node in nodes], "kind": [node.kind for node in nodes],
        "external": [node.external for node in nodes],
        "stats.requests": requests,
        "stats.request_rate": pc.divide(requests.cast(pa.float64()), float(window.seconds)),
        "stats.errors": errors, "stats.error_rate": rate,
        "stats.p50_ms": taken(sums.p50, pa.float64()),
        "stats.p95_ms": taken(sums.p95, pa.float64()), "stats.p99_ms": p99,
    }

    @cache
    def split() -> tuple[pa.Array, pa.Array]:
        """Keys and values of every service's labels, as Arrow list arrays."""
        labels = [node.labels for node in nodes]
        offsets = pa.array(list(accumulate(map(len, labels), initial=0)), pa.int32())
        parts = pc.extract_regex(pa.array(list(chain.from_iterable(labels)), pa.string()),
                                 _LABEL)
        return (pa.ListArray.from_arrays(offsets, parts.field("key")),
                pa.ListArray.from_arrays(offsets, parts.field("value")))

    def seen(attribute: str) -> Callable[[], Coded]:
        """The moments as codes into the distinct ones (services share a few)."""
        def column() -> Coded:
            coded = pc.dictionary_encode(pa.array(
                [getattr(record, attribute) for record in held], pa.int64()),
                null_encoding="encode")
            return Coded(coded.indices, [moment(s) for s in coded.dictionary.to_pylist()])
        return column

    columns.update({
        "labels[].key": lambda: split()[0], "labels[].value": lambda: split()[1],
        "first_seen": seen("first_seen"), "last_seen": seen("last_seen"),
        "health": lambda: Coded(rules.judge_codes(requests, rate, p99, _slos(nodes)),
                                rules.BY_CODE),
    })
    return Columns(len(wanted), columns, lambda c: [
        of_numbers(node, row, record) for node, row, record in zip(
            nodes, map(StatsRow, *map(c.column, STATS_COLUMNS)), held, strict=True)])


def _slos(nodes: Sequence[ServiceNode]) -> list[rules.Slo] | rules.Slo:
    """Each node's SLO, worked out once per distinct label set; one SLO when all have it."""
    labels = [node.labels for node in nodes]
    by_labels = {held: _slo_of(held) if held else rules.DEFAULT for held in set(labels)}
    if all(limit is rules.DEFAULT for limit in by_labels.values()):
        return rules.DEFAULT
    return list(map(by_labels.__getitem__, labels))


_LABEL = r"(?s)(?P<key>[^=]*)(?:=(?P<value>.*))?"  # "k=v" as str.partition("=") splits it


def edges(
    table: pa.Table | None, window: Window, records: Mapping[str, ServiceRecord],
    series: Mapping[tuple[str, str], Mapping[int, list[int]]] | None = None, step: int = 60,
    exemplars: Mapping[tuple[str, str], list[str]] | None = None,
) -> Columns:
    """The edges of a pair table (`data.fetch_pair_table`), in its order, column-wise:
    a map's edges are only projected into the response, field by selected field."""
    if table is None or not table.num_rows:
        return Columns(0, dict.fromkeys(_FLAT_EDGE_COLUMNS, list), _edge_rows)
    # Arrow columns stay Arrow: the JSON path encodes them as they are, anything
    # else gets them as lists (Columns.column)
    client, server, requests = (table.column(name) for name in ("client", "server", "requests"))
    p50, p95, p99 = fold.quantile_arrays(table)
    seconds = window.seconds
    busiest = pc.max(requests).as_py() or 1
    as_float = requests.cast(pa.float64())
    rate = ratio(table.column("errors"), requests)
    health = Coded(rules.judge_codes(requests, rate, p99, _server_slos(records, server)),
                   rules.BY_CODE)

    @cache
    def keys() -> list[tuple[str, str]]:
        return list(zip(client.to_pylist(), server.to_pylist(), strict=True))

    def trace_ids() -> list[list[str]]:
        if exemplars is None:
            return [[] for _ in range(table.num_rows)]
        return [list(exemplars.get(key, ())) for key in keys()]

    return Columns(table.num_rows, {
        "client": client, "server": server, "protocols": table.column("protocols"),
        "stats.requests": requests,
        "stats.request_rate": lambda: pc.divide(as_float, float(seconds)),
        "stats.errors": table.column("errors"), "stats.error_rate": rate,
        "stats.p50_ms": p50, "stats.p95_ms": p95, "stats.p99_ms": p99,
        "health": health, "weight": lambda: pc.divide(as_float, float(busiest)),
        "top_paths[].path": table.column("paths"),
        "top_paths[].requests": table.column("path_requests"),
        **_series_columns(table.num_rows, keys, series, window, step),
        "exemplar_trace_ids": trace_ids,
    }, _edge_rows)


def _whole(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def ratio(part: pa.ChunkedArray | pa.Array, whole: pa.ChunkedArray | pa.Array) -> pa.Array:
    """part / whole per row, 0.0 where whole is 0: Python's `p / w if w else 0.0` (both
    exact as doubles below 2**53, one correctly rounded division: the same floats)."""
    whole = _whole(whole).cast(pa.float64())
    ratio = pc.divide(_whole(part).cast(pa.float64()), whole)
    return pc.if_else(pc.equal(whole, 0.0), 0.0, ratio)


def _server_slos(records: Mapping[str, ServiceRecord],
                 server: pa.ChunkedArray) -> list[rules.Slo] | rules.Slo:
    """The SLO of each edge's server; one SLO when every service has the same."""
    found = _slos([record.node for record in records.values()])
    if isinstance(found, rules.Slo):
        return found
    limits = dict(zip(records, found, strict=True))
    default = rules.DEFAULT
    return [limits.get(s, default) for s in server.to_pylist()]


def _series_columns(
    n: int, keys: Callable[[], list[tuple[str, str]]],
    series: Mapping[tuple[str, str], Mapping[int, list[int]]] | None, window: Window, step: int,
) -> dict[str, Column]:
    """The time series of the n edges (`keys`: their pairs) as columns: per edge, the step
    starts (one list shared by all edges: the window's), requests and errors."""
    @cache
    def points() -> list[list[Sequence[int]]]:
        if series is None:
            return [[] for _ in range(n)]
        return [[found.get(start, _NONE) for start in range(window.since, window.until, step)]
                for found in (series.get(key, {}) for key in keys())]

    def starts() -> list[list[datetime | None]]:
        if series is None:
            return [[] for _ in range(n)]
        shared = [moment(start) for start in range(window.since, window.until, step)]
        return [shared] * n

    def part(index: int) -> Callable[[], list[list[int]]]:
        return lambda: [[point[index] for point in row] for row in points()]

    return {"time_series[].start": starts, "time_series[].requests": part(0),
            "time_series[].errors": part(1)}


_NONE = (0, 0)


STATS_COLUMNS = tuple(f"stats.{name}" for name in StatsRow._fields)
_FLAT_EDGE_COLUMNS = ("client", "server", "protocols", *STATS_COLUMNS, "health", "weight",
                      "top_paths[].path", "top_paths[].requests", "time_series[].start",
                      "time_series[].requests", "time_series[].errors", "exemplar_trace_ids")


def _edge_rows(columns: Columns) -> list[EdgeRow]:
    """The edges as row twins (for the standard execution path and for filtering)."""
    column = columns.column
    stats_rows = map(StatsRow, *map(column, STATS_COLUMNS))
    paths = (list(map(PathRow, *lists)) for lists in zip(
        column("top_paths[].path"), column("top_paths[].requests"), strict=True))
    points = (list(map(PointRow, *lists)) for lists in zip(
        column("time_series[].start"), column("time_series[].requests"),
        column("time_series[].errors"), strict=True))
    return list(map(EdgeRow, column("client"), column("server"), column("protocols"),
                    stats_rows, column("health"), column("weight"), paths, points,
                    column("exemplar_trace_ids")))
