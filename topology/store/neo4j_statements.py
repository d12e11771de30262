"""Every Cypher text the Neo4j store sends, in one catalogue.

`STATEMENTS` lists them all with the parameters each takes, so the tests can
run every one through Neo4j's own parser and semantic analysis (no server is
needed for that; see tests/neo4j_lint). The store only sends texts from here,
plus the read statements handed to `Neo4jStore.read`, which their owners lint.

Semantics follow docs/storage.md and topology/store/rows.py (the embedded
store merges rows in Python with the same rules): services take the incoming
descriptive fields and widen first/last seen; buckets add counters, histogram
and status counts element-wise and union exemplars up to `$max_exemplars`;
pairs widen first/last seen and union protocols (kept sorted); a non-empty
incoming naming replaces the stored one. Expiry cutoffs are inclusive: a row
whose end is <= the cutoff goes. Buckets narrower than an hour are "minute"
buckets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cypher:
    name: str
    text: str
    params: tuple[str, ...] = ()


def _schema(name: str, text: str) -> Cypher:
    return Cypher(name, text)


CONSTRAINTS: tuple[Cypher, ...] = (
    _schema("constraint_service_id",
            "CREATE CONSTRAINT service_id IF NOT EXISTS "
            "FOR (s:Service) REQUIRE s.id IS UNIQUE"),
    _schema("constraint_call_bucket_key",
            "CREATE CONSTRAINT call_bucket_key IF NOT EXISTS "
            "FOR (b:CallBucket) REQUIRE b.key IS UNIQUE"),
    _schema("constraint_batch_id",
            "CREATE CONSTRAINT batch_id IF NOT EXISTS FOR (b:Batch) REQUIRE b.id IS UNIQUE"),
)
INDEXES: tuple[Cypher, ...] = (
    _schema("index_call_bucket_bucket",
            "CREATE INDEX call_bucket_bucket IF NOT EXISTS FOR (b:CallBucket) ON (b.bucket)"),
    _schema("index_call_bucket_width",
            "CREATE INDEX call_bucket_width IF NOT EXISTS FOR (b:CallBucket) ON (b.width)"),
    _schema("index_service_name",
            "CREATE INDEX service_name IF NOT EXISTS FOR (s:Service) ON (s.name)"),
    _schema("index_service_namespace",
            "CREATE INDEX service_namespace IF NOT EXISTS FOR (s:Service) ON (s.namespace)"),
    _schema("index_batch_applied_at",
            "CREATE INDEX batch_applied_at IF NOT EXISTS FOR (b:Batch) ON (b.applied_at)"),
)
AWAIT_INDEXES = Cypher("await_indexes", "CALL db.awaitIndexes($timeout)", ("timeout",))

PING = Cypher("ping", "RETURN 1 AS ok")

# MERGE first: it takes the unique-key lock, so a concurrent apply of the same
# batch id waits for this transaction and then finds the marker. `fresh` only
# tells this statement whether it created the node; it never persists. Ids come
# distinct and sorted (lock order); one row per id, in the order given.
MARK_BATCHES = Cypher(
    "mark_batches",
    "UNWIND $ids AS id "
    "MERGE (b:Batch {id: id}) "
    "ON CREATE SET b.applied_at = $now, b.fresh = true "
    "WITH b, coalesce(b.fresh, false) AS created "
    "REMOVE b.fresh "
    "RETURN b.id AS id, created",
    ("ids", "now"),
)

UPSERT_SERVICES = Cypher(
    "upsert_services",
    "UNWIND $rows AS row "
    "MERGE (s:Service {id: row.id}) "
    "ON CREATE SET s.first_seen = row.first_seen, s.last_seen = row.last_seen "
    "ON MATCH SET "
    "s.first_seen = CASE WHEN row.first_seen < s.first_seen "
    "THEN row.first_seen ELSE s.first_seen END, "
    "s.last_seen = CASE WHEN row.last_seen > s.last_seen "
    "THEN row.last_seen ELSE s.last_seen END "
    "SET s.name = row.name, s.namespace = row.namespace, s.cluster = row.cluster, "
    "s.kind = row.kind, s.labels = row.labels",
    ("rows",),
)

UPSERT_BUCKETS = Cypher(
    "upsert_buckets",
    "UNWIND $rows AS row "
    "MERGE (b:CallBucket {key: row.key}) "
    "ON CREATE SET b.client = row.client, b.server = row.server, b.width = row.width, "
    "b.bucket = row.bucket, b.protocol = row.protocol, b.method = row.method, "
    "b.path = row.path, b.requests = row.requests, b.errors = row.errors, "
    "b.latency_sum = row.latency_sum, b.hist = row.hist, b.status = row.status, "
    "b.exemplars = row.exemplars[0..$max_exemplars], b.naming = row.naming "
    "ON MATCH SET b.requests = b.requests + row.requests, "
    "b.errors = b.errors + row.errors, "
    "b.latency_sum = b.latency_sum + row.latency_sum, "
    "b.hist = [i IN range(0, size(row.hist) - 1) | coalesce(b.hist[i], 0) + row.hist[i]], "
    "b.status = [i IN range(0, size(row.status) - 1) "
    "| coalesce(b.status[i], 0) + row.status[i]], "
    "b.exemplars = (b.exemplars + [x IN row.exemplars WHERE NOT x IN b.exemplars])"
    "[0..$max_exemplars], "
    "b.naming = CASE WHEN row.naming <> '' THEN row.naming ELSE b.naming END",
    ("rows", "max_exemplars"),
)

# Pairs join services written earlier in the same transaction (or before);
# like the embedded store, a pair whose services are unknown is not written.
UPSERT_PAIRS = Cypher(
    "upsert_pairs",
    "UNWIND $rows AS row "
    "MATCH (c:Service {id: row.client}) "
    "MATCH (s:Service {id: row.server}) "
    "MERGE (c)-[p:CALLS]->(s) "
    "ON CREATE SET p.first_seen = row.first_seen, p.last_seen = row.last_seen, "
    "p.protocols = row.protocols, p.naming = row.naming "
    "ON MATCH SET "
    "p.first_seen = CASE WHEN row.first_seen < p.first_seen "
    "THEN row.first_seen ELSE p.first_seen END, "
    "p.last_seen = CASE WHEN row.last_seen > p.last_seen "
    "THEN row.last_seen ELSE p.last_seen END, "
    "p.protocols = reduce(acc = [], x IN p.protocols + row.protocols | "
    "CASE WHEN x IN acc THEN acc "
    "ELSE [y IN acc WHERE y < x] + [x] + [y IN acc WHERE y > x] END), "
    "p.naming = CASE WHEN row.naming <> '' THEN row.naming ELSE p.naming END",
    ("rows",),
)

_BUCKET_FIELDS = (
    "b.key AS key, b.client AS client, b.server AS server, b.width AS width, "
    "b.bucket AS bucket, b.protocol AS protocol, b.method AS method, b.path AS path, "
    "b.requests AS requests, b.errors AS errors, b.latency_sum AS latency_sum, "
    "b.hist AS hist, b.status AS status, b.exemplars AS exemplars, b.naming AS naming"
)
_MINUTES_ENDED_IN_HOUR = (
    "MATCH (b:CallBucket) WHERE b.width < $hour_width "
    "AND b.bucket >= $hour AND b.bucket < $hour + $hour_width "
    "AND b.bucket + b.width <= $cutoff "
)
OLDEST_ENDED_MINUTE = Cypher(
    "oldest_ended_minute",
    "MATCH (b:CallBucket) WHERE b.width < $hour_width AND b.bucket + b.width <= $cutoff "
    "RETURN min(b.bucket) AS first",
    ("hour_width", "cutoff"),
)
MINUTES_ENDED_IN_HOUR = Cypher(
    "minutes_ended_in_hour",
    _MINUTES_ENDED_IN_HOUR + f"RETURN {_BUCKET_FIELDS} ORDER BY key",
    ("hour_width", "hour", "cutoff"),
)
MINUTES_ENDED_IN_HOUR_DELETE = Cypher(
    "minutes_ended_in_hour_delete",
    _MINUTES_ENDED_IN_HOUR + "DELETE b RETURN count(*) AS n",
    ("hour_width", "hour", "cutoff"),
)

EXPIRED_HOURS_DELETE = Cypher(
    "expired_hours_delete",
    "MATCH (b:CallBucket) WHERE b.width >= $hour_width AND b.bucket + b.width <= $cutoff "
    "DELETE b RETURN count(*) AS n",
    ("hour_width", "cutoff"),
)
EXPIRED_PAIRS_DELETE = Cypher(
    "expired_pairs_delete",
    "MATCH (:Service)-[p:CALLS]->(:Service) WHERE p.last_seen <= $cutoff "
    "DELETE p RETURN count(*) AS n",
    ("cutoff",),
)
EXPIRED_SERVICES_DELETE = Cypher(
    "expired_services_delete",
    "MATCH (s:Service) WHERE s.last_seen <= $cutoff AND NOT EXISTS { (s)-[:CALLS]-() } "
    "DELETE s RETURN count(*) AS n",
    ("cutoff",),
)
EXPIRED_MARKERS_DELETE = Cypher(
    "expired_markers_delete",
    "MATCH (b:Batch) WHERE b.applied_at <= $cutoff DELETE b RETURN count(*) AS n",
    ("cutoff",),
)

STATS = Cypher(
    "stats",
    "RETURN COUNT { MATCH (s:Service) } AS services, "
    "COUNT { MATCH (:Service)-[p:CALLS]->(:Service) } AS pairs, "
    "COUNT { MATCH (b:CallBucket) WHERE b.width < $hour_width } AS minute_buckets, "
    "COUNT { MATCH (b:CallBucket) WHERE b.width >= $hour_width } AS hour_buckets, "
    "COUNT { MATCH (b:Batch) } AS batches",
    ("hour_width",),
)

STATEMENTS: tuple[Cypher, ...] = (
    *CONSTRAINTS, *INDEXES, AWAIT_INDEXES, PING, MARK_BATCHES,
    UPSERT_SERVICES, UPSERT_BUCKETS, UPSERT_PAIRS,
    OLDEST_ENDED_MINUTE, MINUTES_ENDED_IN_HOUR, MINUTES_ENDED_IN_HOUR_DELETE,
    EXPIRED_HOURS_DELETE, EXPIRED_PAIRS_DELETE, EXPIRED_SERVICES_DELETE,
    EXPIRED_MARKERS_DELETE, STATS,
)

assert len({s.name for s in STATEMENTS}) == len(STATEMENTS), "statement names must be unique"
