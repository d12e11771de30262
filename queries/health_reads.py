"""What the health cache holds per bucket start, and the reads that fill it.

Per start and side (served, made), per service its counters packed into one
integer (`COUNTS` as little-endian 64-bit fields: summing packed integers sums
every counter at once, and no field carries into the next while each value is
below 2**56 and at most a few hundred are summed) and its latency sum.

Two reads: per side, grouped by the service's string (`BY_START`: the database
groups, the cheaper way to fill many starts at once); or the buckets themselves
with their key and series id (`BUCKETS`, one statement for both sides, embedded
store only; the ends of a series come from `tiers.SERIES`), whose rows per
bucket are kept for the newest starts so that a start a write touched re-reads
only the buckets written since, by key (`BUCKETS_BY_KEY`: index lookups).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from queries.window import AGGREGATES, IN_WINDOW
from topology import histogram
from topology.store import tiers
from topology.store.base import GraphStore
from topology.store.ladybug_ids import bucket_ids
from topology.store.ladybug_schema import key_of
from topology.store.statement import Dialect, Statement

SIDES = ("server", "client")  # served, else made
COUNTS = ("n", "requests", "errors", *(f"h{i}" for i in range(histogram.BIN_COUNT)))
FIELDS = struct.Struct(f"<{len(COUNTS)}Q")
_VALUE_LIMIT = 2**56


def _by_start(side: str, dialect: str) -> str:
    return (f"MATCH (k:CallBucket) WHERE {IN_WINDOW} RETURN k.bucket AS bucket, "
            f"k.{side} AS id, count(*) AS n, {AGGREGATES[dialect]}")


BY_START = {side: Statement(f"health_by_start_as_{side}", _by_start(side, "neo4j"),
                            _by_start(side, "ladybug")) for side in SIDES}


def _buckets(dialect: str, match: str) -> str:
    hist = ", ".join(f"k.hist[{i}] AS h{i}" if dialect == "neo4j" else f"k.h{i} AS h{i}"
                     for i in range(histogram.BIN_COUNT))
    key = "k.key" if dialect == "neo4j" else key_of("k")  # the embedded store's is made
    return (f"{match} RETURN k.bucket AS bucket, {key} AS key, k.sid AS id, 1 AS n, "
            f"k.requests AS requests, k.errors AS errors, k.latency_sum AS latency, {hist}")


BUCKETS = Statement("health_buckets", *(_buckets(d, f"MATCH (k:CallBucket) WHERE {IN_WINDOW}")
                                        for d in ("neo4j", "ladybug")))
# By key: the embedded store's CallBucket is keyed by an INT64 id made from the key and
# its start (`ladybug_ids.bucket_ids`); Neo4j's by the key itself.
BUCKETS_BY_KEY = Statement(
    "health_buckets_by_key",
    _buckets("neo4j", "UNWIND $keys AS wanted MATCH (k:CallBucket {key: wanted})"),
    _buckets("ladybug", "UNWIND $ids AS wanted MATCH (k:CallBucket {id: wanted})"))


def by_key_params(dialect: Dialect, keys: Iterable[str], start: int) -> dict[str, list]:
    """The parameters of BUCKETS_BY_KEY for these keys of buckets starting at `start`."""
    wanted = sorted(keys)
    if dialect is Dialect.LADYBUG:
        return {"ids": bucket_ids(wanted, [start] * len(wanted))}
    return {"keys": wanted}
SERIES_NAMES = Statement.same(
    "health_series_names", f"MATCH (k:CallBucket) WHERE {IN_WINDOW} "
    "RETURN DISTINCT k.client AS client, k.server AS server, k.protocol AS protocol, "
    "k.path AS path")


class Unanswerable(Exception):
    """A bucket starts off the grid of starts, or a counter is too large to pack."""


@dataclass(frozen=True)
class Part:
    counts: dict[str, int]
    latency: dict[str, float]


EMPTY_PART = Part({}, {})


@dataclass(frozen=True)
class Rows:
    """One start's buckets: key -> packed counters, latency sum, series id."""

    counts: dict[str, int]
    latency: dict[str, float]
    series: dict[str, int]


def _packed(table: pa.Table) -> Iterable[tuple[int, object, int, float]]:
    """(bucket, id, packed counters, latency) per row of a read."""
    if not table.num_rows:
        return
    counts = [table.column(name).fill_null(0) for name in COUNTS]
    for column in counts:
        low, high = pc.min_max(column).values()
        if low.as_py() < 0 or high.as_py() >= _VALUE_LIMIT:
            raise Unanswerable
    pack = FIELDS.pack
    columns = [table.column("bucket").to_pylist(), table.column("id").to_pylist(),
               table.column("latency").fill_null(0.0).to_pylist(),
               *(column.to_pylist() for column in counts)]
    for bucket, key, latency, *values in zip(*columns, strict=True):
        yield bucket, key, int.from_bytes(pack(*values), "little"), latency


def by_names(
    store: GraphStore, runs: list[tuple[int, int]], wanted: set[int]
) -> dict[int, tuple[Part, ...]]:
    """Per start, both sides' parts: one statement per side and run, grouped by the
    service (in the caller's snapshot)."""
    found: dict[int, tuple[Part, ...]] = {}
    for position, side in enumerate(SIDES):
        for since, until in runs:
            for bucket, sid, packed, latency in _packed(store.read_arrow(
                    BY_START[side], {"since": since, "until": until})):
                if bucket not in wanted:
                    raise Unanswerable
                parts = found.get(bucket)
                if parts is None:
                    parts = found[bucket] = tuple(Part({}, {}) for _ in SIDES)
                parts[position].counts[sid] = packed
                parts[position].latency[sid] = latency
    return found


def bucket_rows(
    store: GraphStore, runs: list[tuple[int, int]], wanted: set[int],
    keys: set[str] | None = None,
) -> dict[int, Rows] | None:
    """Per start, its rows per bucket (only those of `keys` when given: keys of buckets
    starting where the one run starts), every series id named in `tiers.SERIES` (read
    from the buckets when unknown); None after a collision of ids or for a bucket
    without one: read by the names then."""
    registry = tiers.SERIES
    if registry.collided:
        return None
    found: dict[int, Rows] = {}
    for since, until in runs:
        args = {"since": since, "until": until}
        table = (store.read_arrow(BUCKETS, args) if keys is None
                 else store.read_arrow(BUCKETS_BY_KEY,
                                       by_key_params(store.dialect, keys, since)))
        if table.num_rows and table.column("id").null_count:
            return None
        bucket_keys = table.column("key").to_pylist() if table.num_rows else []
        for key, (bucket, sid, packed, latency) in zip(bucket_keys, _packed(table),
                                                       strict=True):
            if bucket not in wanted:
                raise Unanswerable
            rows = found.get(bucket)
            if rows is None:
                rows = found[bucket] = Rows({}, {}, {})
            rows.counts[key], rows.latency[key], rows.series[key] = packed, latency, sid
        if any(sid not in registry.names for rows in found.values()
               for sid in rows.series.values()):
            for row in store.read(SERIES_NAMES, args):
                registry.add(row["client"], row["server"], row["protocol"], row["path"])
    if registry.collided or any(sid not in registry.names for rows in found.values()
                                for sid in rows.series.values()):
        return None
    return found


def sides_of(rows: Rows) -> tuple[Part, ...]:
    """Both sides' parts of one start from its rows per bucket."""
    names = tiers.SERIES.names
    sides = tuple(Part({}, {}) for _ in SIDES)
    served, made = sides
    for key, packed in rows.counts.items():
        client, server = names[rows.series[key]][:2]
        latency = rows.latency[key]
        for part, end in ((served, server), (made, client)):
            part.counts[end] = part.counts.get(end, 0) + packed
            part.latency[end] = part.latency.get(end, 0.0) + latency
    return sides


def patched(
    sides: tuple[Part, ...], rows: Rows, fresh: Rows, changed: set[str]
) -> tuple[tuple[Part, ...], Rows]:
    """A start's parts and rows with the changed buckets replaced by their fresh rows
    (new objects: the old ones may be in use). Packed counters subtract exactly;
    a latency sum may differ from a sum in another order in its last bits."""
    names = tiers.SERIES.names
    counts, latencies, series = dict(rows.counts), dict(rows.latency), dict(rows.series)
    served, made = (Part(dict(part.counts), dict(part.latency)) for part in sides)
    for key in changed:
        for source, sign in ((rows, -1), (fresh, 1)):
            packed = source.counts.get(key)
            if packed is None:
                continue
            client, server = names[source.series[key]][:2]
            latency = source.latency[key]
            for part, end in ((served, server), (made, client)):
                total = part.counts.get(end, 0) + sign * packed
                if total:
                    part.counts[end] = total
                    part.latency[end] = part.latency.get(end, 0.0) + sign * latency
                else:
                    part.counts.pop(end, None)
                    part.latency.pop(end, None)
        if key in fresh.counts:
            counts[key], latencies[key] = fresh.counts[key], fresh.latency[key]
            series[key] = fresh.series[key]
        else:
            counts.pop(key, None)
            latencies.pop(key, None)
            series.pop(key, None)
    return (served, made), Rows(counts, latencies, series)
