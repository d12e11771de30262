"""Map data: bucket aggregates folded per (client, server), keeping histograms.

Built on the named map rows (`queries.service_map.map_rows`: whole blocks
from the tiers, the window's edge minutes from buckets); it keeps each
pair's summed histogram (the named `fold_edges` keeps quantiles only) so
service stats and health can be derived from the same rows. Time
series and exemplars have their own statements, run only when a query asks
for those fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from queries import fold
from queries.compiler import CompiledFilter
from queries.external import EXTERNAL_SERVER_KINDS
from queries.service_map import TOP_PATHS, map_table
from queries.window import AGGREGATES, IN_WINDOW, Traffic, Window
from topology import histogram
from topology.store.base import GraphStore
from topology.store.statement import Dialect, Statement

BINS = histogram.BIN_COUNT
_HIST_KEYS = tuple(f"h{i}" for i in range(BINS))
MAX_POINTS = 60
_MAP_COLUMNS = "k.client AS client, k.server AS server, k.protocol AS protocol, k.path AS path, "


@dataclass(slots=True)
class PairAgg:
    client: str
    server: str
    requests: int = 0
    errors: int = 0
    latency: float = 0.0
    hist: tuple[int, ...] = (0,) * BINS
    protocols: set[str] = field(default_factory=set)
    paths: dict[str, int] = field(default_factory=dict)

    def traffic(self) -> Traffic:
        return Traffic(self.requests, self.errors, self.latency, self.hist)

    def top_paths(self, count: int = TOP_PATHS) -> Iterable[tuple[str, int]]:
        if len(self.paths) == 1:
            return self.paths.items()
        return sorted(self.paths.items(), key=lambda item: (-item[1], item[0]))[:count]


def focused(compiled: CompiledFilter, service_id: str) -> CompiledFilter:
    """The filter narrowed to calls from or to one service."""
    clause = "(k.client = $service OR k.server = $service)"
    return replace(compiled, neo4j=f"({compiled.neo4j}) AND {clause}",
                   ladybug=f"({compiled.ladybug}) AND {clause}",
                   param_items=(*compiled.param_items, ("service", service_id)))


def fetch_pair_table(
    store: GraphStore, compiled: CompiledFilter, window: Window, top_paths: int = TOP_PATHS
) -> pa.Table | None:
    """Per (client, server), sorted by the pair (`fold.pairs`): summed traffic (requests,
    errors, latency, h0..), protocols, and the busiest paths with their requests; None
    when no call matched. Read as Arrow (`map_table`) and folded column-wise."""
    table = map_table(store, compiled, window)
    return None if table is None else fold.pairs(table, top_paths)


def keep(table: pa.Table | None, limit: int) -> tuple[pa.Table | None, bool]:
    """All pairs, or the busiest `limit` of them (ties by client, server); sorted by pair."""
    if table is None or table.num_rows <= limit:
        return table, False
    busiest = table.sort_by([("requests", "descending"), ("client", "ascending"),
                             ("server", "ascending")]).slice(0, limit)
    return busiest.sort_by([("client", "ascending"), ("server", "ascending")]), True


def fetch_pairs(
    store: GraphStore, compiled: CompiledFilter, window: Window
) -> dict[tuple[str, str], PairAgg]:
    """Per (client, server): summed traffic, protocols and the busiest paths' requests."""
    return pair_aggs(fetch_pair_table(store, compiled, window))


def pair_aggs(table: pa.Table | None) -> dict[tuple[str, str], PairAgg]:
    """The pairs of a `fetch_pair_table` table as PairAgg, by pair."""
    if table is None:
        return {}
    hist = zip(*(table.column(name).to_pylist() for name in _HIST_KEYS), strict=True)
    columns = [table.column(name).to_pylist() for name in (
        "client", "server", "requests", "errors", "latency", "protocols", "paths",
        "path_requests")]
    return {
        (client, server): PairAgg(client, server, requests, errors, latency, counts,
                                  set(protocols), dict(zip(paths, path_requests, strict=True)))
        for client, server, requests, errors, latency, protocols, paths, path_requests, counts
        in zip(*columns, hist, strict=True)
    }


def end_ids(table: pa.Table | None) -> set[str]:
    """Every service at either end of the table's pairs."""
    if table is None:
        return set()
    ends = pa.chunked_array(table.column("client").chunks + table.column("server").chunks,
                            table.schema.field("client").type)
    return set(pc.unique(ends).to_pylist())


@dataclass(frozen=True)
class ServiceSums:
    """Per service, as `service_traffic` defines it, column-wise and in no particular
    order: the service ids, their requests and errors, and p50/p95/p99 (null where no
    latency was recorded), as Arrow arrays."""

    ids: pa.Array
    requests: pa.Array
    errors: pa.Array
    p50: pa.Array
    p95: pa.Array
    p99: pa.Array


def service_sums(table: pa.Table | None) -> ServiceSums:
    """`service_traffic` over a pair table: what each service served, else what it made."""
    if table is None:
        none = pa.array([], pa.float64())
        return ServiceSums(pa.array([], pa.string()), pa.array([], pa.int64()),
                           pa.array([], pa.int64()), none, none, none)
    served = _as_id(fold.sums(table, ["server"], ordered=False), "server")
    makers = table.filter(pc.invert(pc.is_in(table.column("client"),
                                             value_set=served.column("id"))))
    made = _as_id(fold.sums(makers, ["client"], ordered=False), "client").select(
        served.column_names)
    both = pa.concat_tables([served, made.cast(served.schema)]) if made.num_rows else served
    p50, p95, p99 = fold.quantile_arrays(both)
    ids, requests, errors = (both.column(name).combine_chunks()
                             for name in ("id", "requests", "errors"))
    return ServiceSums(ids, requests, errors, p50, p95, p99)


def _as_id(table: pa.Table, key: str) -> pa.Table:
    return table.rename_columns(["id" if name == key else name for name in table.column_names])


def service_traffic(pairs: Iterable[PairAgg]) -> dict[str, Traffic]:
    """Per service: what it served among the pairs, else what it made (the diff's
    per-pair form; the map computes the same column-wise, `service_sums`)."""
    served: dict[str, list[Any]] = {}
    made: dict[str, list[Any]] = {}
    for pair in pairs:
        _add_pair(served, pair.server, pair)
        if pair.client not in served:  # its own calls made are not what it shows
            _add_pair(made, pair.client, pair)
    made.update(served)
    # histograms summed once per service, bin by bin
    return {sid: Traffic(r, e, lat,
                         tuple(h[0]) if len(h) == 1 else tuple(map(sum, zip(*h, strict=True))))
            for sid, (r, e, lat, h) in made.items()}


def _add_pair(totals: dict[str, list[Any]], service: str, pair: PairAgg) -> None:
    total = totals.get(service)
    if total is None:
        totals[service] = [pair.requests, pair.errors, pair.latency, [pair.hist]]
        return
    total[0] += pair.requests
    total[1] += pair.errors
    total[2] += pair.latency
    total[3].append(pair.hist)


def _filtered(compiled: CompiledFilter, dialect: Dialect, returns: str) -> str:
    """Buckets in the window matching the filter (the map statement's shape), `returns`."""
    text = compiled.prelude(dialect) + f"MATCH (k:CallBucket) WHERE {IN_WINDOW}"
    joined = False
    for var, end in (("c", "client"), ("s", "server")):
        if var in compiled.variables:
            text += f" MATCH ({var}:Service {{id: k.{end}}})"
            joined = True
    predicate = compiled.predicate(dialect)
    if predicate != "true":
        text += f" WHERE {predicate}" if joined else f" AND {predicate}"
    return f"{text} RETURN {returns}"


def filtered_statement(
    name: str, compiled: CompiledFilter, returns: str, ladybug_returns: str | None = None
) -> Statement:
    return Statement(name, _filtered(compiled, Dialect.NEO4J, returns),
                     _filtered(compiled, Dialect.LADYBUG, ladybug_returns or returns))


_SERIES_RETURNS = ("k.client AS client, k.server AS server, k.bucket AS bucket, "
                   "sum(k.requests) AS requests, sum(k.errors) AS errors")
_EXEMPLAR_RETURNS = "k.client AS client, k.server AS server, k.exemplars AS exemplars"


def step_seconds(window: Window, bucket_width: int) -> int:
    """Series step: a multiple of the bucket width giving at most MAX_POINTS steps."""
    steps = -(-window.seconds // bucket_width)
    return bucket_width * max(1, -(-steps // MAX_POINTS))


def fetch_series(
    store: GraphStore, compiled: CompiledFilter, window: Window, step: int
) -> dict[tuple[str, str], dict[int, list[int]]]:
    """Per pair: step start -> [requests, errors]."""
    rows = store.read(filtered_statement("api_series", compiled, _SERIES_RETURNS),
                      {**compiled.params, **window.params()})
    series: dict[tuple[str, str], dict[int, list[int]]] = {}
    for row in rows:
        start = window.since + (int(row["bucket"]) - window.since) // step * step
        point = series.setdefault((row["client"], row["server"]), {}).setdefault(start, [0, 0])
        point[0] += int(row["requests"] or 0)
        point[1] += int(row["errors"] or 0)
    return series


def fetch_exemplars(
    store: GraphStore, compiled: CompiledFilter, window: Window, per_pair: int = 5
) -> dict[tuple[str, str], list[str]]:
    rows = store.read(filtered_statement("api_exemplars", compiled, _EXEMPLAR_RETURNS),
                      {**compiled.params, **window.params()})
    found: dict[tuple[str, str], list[str]] = {}
    for row in sorted(rows, key=_by_pair):
        known = found.setdefault((row["client"], row["server"]), [])
        for trace_id in row["exemplars"] or ():
            if len(known) < per_pair and trace_id not in known:
                known.append(trace_id)
    return found


def _by_pair(row: Mapping[str, Any]) -> tuple[str, str]:
    return (row["client"], row["server"])


def external_only(compiled: CompiledFilter) -> CompiledFilter:
    """The filter narrowed to calls whose server is an external service."""
    clause = "s.kind IN $api_external"
    return replace(compiled, neo4j=f"({compiled.neo4j}) AND {clause}",
                   ladybug=f"({compiled.ladybug}) AND {clause}",
                   param_items=(*compiled.param_items, ("api_external", EXTERNAL_SERVER_KINDS)),
                   variables=compiled.variables | {"s"})


_EXTERNAL_COLUMNS = "k.client AS client, k.server AS server, k.naming AS naming, "


def external_statement(compiled: CompiledFilter) -> Statement:
    return filtered_statement("api_external_calls", compiled,
                              _EXTERNAL_COLUMNS + AGGREGATES["neo4j"],
                              _EXTERNAL_COLUMNS + AGGREGATES["ladybug"])
