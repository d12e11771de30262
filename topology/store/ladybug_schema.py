"""LadybugDB schema and the fixed statements the embedded store sends.

Statements take their data from `Rows` passed as the `$rows` parameter (`LOAD
FROM $rows`), which the store's writer hands to LadybugDB as a file
(ladybug_rows.py): converting a list of dicts parameter costs about 0.4 ms per
row in LadybugDB 0.22, a file about what building arrow columns did.
"""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

from topology import histogram
from topology.model import MAX_EXEMPLARS, STATUS_CLASSES
from topology.store.ladybug_rows import Schema, names

# CallBucket keeps its counters in scalar columns: h0..h25 the histogram bins,
# s0..s5 the status classes. With list columns every commit after an update
# paid a checkpoint of 1-3 s per 10,000 rows (docs/storage.md).
HIST = tuple(f"h{i}" for i in range(histogram.BIN_COUNT))
STATUS = tuple(f"s{i}" for i in range(STATUS_CLASSES))

# A pair's bounds live in a CallPair node, keyed by a 63-bit hash
# (`pair_ids`); its CALLS relationship carries only that id (`pid`, for hops that
# look the bounds up by key) and is written once, when the pair is new. A
# relationship property SET costs LadybugDB 12-20 us a row (it is stored in
# both directions), a node SET by INT64 key 2-5 us, and
# pairs' `last_seen` is written by nearly every batch (docs/storage.md).
# CallBucket's primary key is `id`, made from the string key and the bucket's start
# (`ladybug_ids.bucket_ids`): an INT64 hash index costs the COPY's commit checkpoint
# and every lookup by key about half of what the STRING one did, and ids placed by
# start keep a write's lookups on a few index pages (docs/storage.md). The key itself is not
# stored: it is made of other columns (`key_of`). A STRING column holding a
# distinct value per row kept about 40 bytes a row of LadybugDB's memory after
# the commit, 0.4 MB for every minute of buckets (docs/delivery.md).
SCHEMA = (
    "CREATE NODE TABLE IF NOT EXISTS Service("
    "id STRING PRIMARY KEY, name STRING, namespace STRING, cluster STRING, kind STRING, "
    "labels STRING[], first_seen INT64, last_seen INT64)",
    "CREATE NODE TABLE IF NOT EXISTS CallBucket("
    "id INT64 PRIMARY KEY, client STRING, server STRING, width INT64, bucket INT64, "
    "protocol STRING, method STRING, path STRING, requests INT64, errors INT64, "
    "latency_sum DOUBLE, " + ", ".join(f"{name} INT64" for name in (*HIST, *STATUS))
    + ", exemplars STRING[], naming STRING, sid INT64)",
    "CREATE NODE TABLE IF NOT EXISTS CallPair("
    "id INT64 PRIMARY KEY, client STRING, server STRING, first_seen INT64, last_seen INT64, "
    "protocols STRING[], naming STRING)",
    "CREATE REL TABLE IF NOT EXISTS CALLS(FROM Service TO Service, pid INT64)",
    "CREATE NODE TABLE IF NOT EXISTS Batch(id STRING PRIMARY KEY, applied_at INT64)",
)


# CallBucket.key's parts, in its order, as expressions of the node's columns
_KEY_PARTS = ("{v}.client", "{v}.server", "CAST({v}.width AS STRING)",
              "CAST({v}.bucket AS STRING)", "{v}.protocol", "{v}.method", "{v}.path")


def key_of(var: str) -> str:
    """The expression of a CallBucket's key (`CallBucket.key`) from its columns, for
    the node bound to `var` (a variable of the statement's own, never user text)."""
    return "(" + " + '|' + ".join(part.format(v=var) for part in _KEY_PARTS) + ")"


def pair_ids(pairs: Iterable[tuple[str, str]]) -> list[int]:
    """CallPair ids of (client, server) pairs: the first 8 bytes of BLAKE2b of client
    NUL server, shifted to 63 bits (pairs are as many as edges, not per minute: their
    index stays small)."""
    from_bytes = int.from_bytes
    return [from_bytes(blake2b(f"{client}\0{server}".encode(), digest_size=8).digest(),
                       "big") >> 1 for client, server in pairs]


SHOW_TABLES = "CALL SHOW_TABLES() RETURN *"  # column 1: the table name
BUCKET_TABLE_INFO = "CALL TABLE_INFO('CallBucket') RETURN *"  # column 1: property name
CALLS_TABLE_INFO = "CALL TABLE_INFO('CALLS') RETURN *"

SERVICE_COLUMNS: Schema = (
    ("id", "STRING"), ("name", "STRING"), ("namespace", "STRING"), ("cluster", "STRING"),
    ("kind", "STRING"), ("labels", "STRING[]"), ("first_seen", "INT64"), ("last_seen", "INT64"),
)
BUCKET_COLUMNS: Schema = (
    ("id", "INT64"), ("client", "STRING"), ("server", "STRING"), ("width", "INT64"),
    ("bucket", "INT64"), ("protocol", "STRING"), ("method", "STRING"), ("path", "STRING"),
    ("requests", "INT64"), ("errors", "INT64"), ("latency_sum", "DOUBLE"),
    *((name, "INT64") for name in (*HIST, *STATUS)),
    ("exemplars", "STRING[]"), ("naming", "STRING"), ("sid", "INT64"),
)
PAIR_COLUMNS: Schema = (
    ("id", "INT64"), ("client", "STRING"), ("server", "STRING"), ("first_seen", "INT64"),
    ("last_seen", "INT64"), ("protocols", "STRING[]"), ("naming", "STRING"),
)

# Batch ids travel as a list parameter, not as rows: a statement over rows
# is prepared anew for every write (about 1 ms each), one over a list
# is prepared once and reused. Lists pay per row, so only these few-row
# statements use them (a 1,000-row UNWIND ran 2-4x slower than LOAD FROM).
BATCHES_SEEN = "UNWIND $ids AS key MATCH (b:Batch {id: key}) RETURN b.id AS id"
BATCHES_MARK = "UNWIND $ids AS key CREATE (:Batch {id: key, applied_at: $now})"

SERVICES_CREATE = (
    "LOAD FROM $rows CREATE (:Service {id: id, name: name, namespace: namespace, "
    "cluster: cluster, kind: kind, labels: labels, first_seen: first_seen, "
    "last_seen: last_seen})"
)
SERVICES_UPDATE = (
    "LOAD FROM $rows MATCH (s:Service {id: id}) SET s.name = name, s.namespace = namespace, "
    "s.cluster = cluster, s.kind = kind, s.labels = labels, s.first_seen = first_seen, "
    "s.last_seen = last_seen"
)

_BUCKET_FIELDS = ", ".join(
    f"e.{name} AS {name}" for name in names(BUCKET_COLUMNS) if name not in ("id", "sid"))
# Counters an update adds to; exemplars and naming are set (union, overwrite).
BUCKET_ADDED = ("requests", "errors", "latency_sum", *HIST, *STATUS)
BUCKET_SET = ("exemplars", "naming")
# Which incoming keys exist, found by id (`i` is the incoming row's index: integers
# cost far less to return than the keys), whether the stored key is the same (two
# keys with one id would otherwise be added up: the write is refused instead),
# whether their naming stays, and the stored exemplars where the incoming row
# brings some and there is room for them.
BUCKETS_EXISTING = (
    f"LOAD FROM $rows MATCH (e:CallBucket {{id: id}}) RETURN i, {key_of('e')} = key AS same_key, "
    "e.naming = naming AS same_naming, "
    f"CASE WHEN nex > 0 AND size(e.exemplars) < {MAX_EXEMPLARS} THEN e.exemplars END "
    "AS exemplars"
)
BUCKETS_CREATE = (
    "LOAD FROM $rows CREATE (:CallBucket {"
    + ", ".join(f"{name}: {name}" for name in names(BUCKET_COLUMNS)) + "})"
)
# New keys only (checked in the same transaction, under the write lock): COPY
# from an arrow parameter writes about 3x faster than BUCKETS_CREATE and, like
# any statement, is undone by ROLLBACK; but its commit costs a checkpoint
# (about 0.1 s), so it pays only for large sets of rows (docs/storage.md).
BUCKETS_COPY = "COPY CallBucket FROM $rows"
COPY_MIN_ROWS = 5_000
PAIR_FIELDS = ("first_seen", "last_seen", "protocols", "naming")


def buckets_add(fields: tuple[str, ...]) -> str:
    """Add the incoming values to the given counters: an update writes only the
    columns its rows change (each column written costs, changed or not)."""
    return "LOAD FROM $rows MATCH (e:CallBucket {id: id}) SET " + ", ".join(
        f"e.{name} = e.{name} + {name}" for name in _known(fields, BUCKET_ADDED))


def buckets_set(fields: tuple[str, ...]) -> str:
    """Overwrite the given fields (exemplars, naming) with the incoming values."""
    return "LOAD FROM $rows MATCH (e:CallBucket {id: id}) SET " + ", ".join(
        f"e.{name} = {name}" for name in _known(fields, BUCKET_SET))


def pairs_update(fields: tuple[str, ...]) -> str:
    """SET only the given pair fields (usually just last_seen), found by id."""
    return "LOAD FROM $rows MATCH (p:CallPair {id: id}) SET " + ", ".join(
        f"p.{name} = {name}" for name in _known(fields, PAIR_FIELDS))


def _known(fields: tuple[str, ...], catalogue: tuple[str, ...]) -> tuple[str, ...]:
    unknown = set(fields) - set(catalogue)
    if not fields or unknown:
        raise ValueError(f"cannot SET {sorted(unknown) or 'nothing'}: known are {catalogue}")
    return fields


# Two MATCH clauses, not one comma-separated pattern: the planner then looks
# both ends up by primary key (1,000 pairs: 20 ms against 350 ms). A pair whose
# ends are not both stored gets neither its relationship nor its CallPair.
# Returns the ids of the pairs it created: a pair whose ends are not stored
# services is skipped (no MATCH), and only the created ones are remembered.
PAIRS_CREATE = (
    "LOAD FROM $rows MATCH (a:Service {id: client}) MATCH (b:Service {id: server}) "
    "CREATE (a)-[:CALLS {pid: id}]->(b) CREATE (:CallPair {"
    + ", ".join(f"{name}: {name}" for name in names(PAIR_COLUMNS)) + "}) RETURN id"
)

MINUTES_ENDED_IN_HOUR = (
    "MATCH (e:CallBucket) WHERE e.width < 3600 AND e.bucket >= $hour "
    f"AND e.bucket < $hour + 3600 AND e.bucket + e.width <= $cutoff RETURN {_BUCKET_FIELDS}"
)
MINUTES_ENDED_IN_HOUR_DELETE = (
    "MATCH (e:CallBucket) WHERE e.width < 3600 AND e.bucket >= $hour "
    "AND e.bucket < $hour + 3600 AND e.bucket + e.width <= $cutoff DELETE e"
)
OLDEST_ENDED_MINUTE = (
    "MATCH (e:CallBucket) WHERE e.width < 3600 AND e.bucket + e.width <= $cutoff "
    "RETURN min(e.bucket) AS first"
)
EXPIRED_HOURS_DELETE = (
    "MATCH (e:CallBucket) WHERE e.width >= 3600 AND e.bucket + e.width <= $cutoff "
    "DELETE e RETURN count(*) AS n"
)
# Relationships first (found through their CallPair's ends), then the CallPairs.
EXPIRED_CALLS_DELETE = (
    "MATCH (p:CallPair) WHERE p.last_seen <= $cutoff "
    "MATCH (a:Service {id: p.client})-[r:CALLS]->(b:Service {id: p.server}) DELETE r"
)
EXPIRED_PAIRS_DELETE = (
    "MATCH (p:CallPair) WHERE p.last_seen <= $cutoff DELETE p RETURN count(*) AS n"
)
EXPIRED_SERVICES_DELETE = (
    "MATCH (s:Service) WHERE s.last_seen <= $cutoff AND NOT EXISTS { MATCH (s)-[:CALLS]-() } "
    "DELETE s RETURN count(*) AS n"
)
EXPIRED_MARKERS_DELETE = (
    "MATCH (b:Batch) WHERE b.applied_at <= $cutoff DELETE b RETURN count(*) AS n"
)

STATS = {
    "services": "MATCH (s:Service) RETURN count(s) AS n",
    "pairs": "MATCH ()-[r:CALLS]->() RETURN count(r) AS n",
    "minute_buckets": "MATCH (e:CallBucket) WHERE e.width < 3600 RETURN count(e) AS n",
    "hour_buckets": "MATCH (e:CallBucket) WHERE e.width >= 3600 RETURN count(e) AS n",
    "batches": "MATCH (b:Batch) RETURN count(b) AS n",
}

