"""The embedded store's CallBucket layout: scalar counters, a series id, old files refused."""

from __future__ import annotations

import ladybug
import pyarrow as pa
import pytest

from queries.compiler import compile_filter
from queries.service_map import map_table
from queries.window import Window
from topology import histogram
from topology.model import Batch, CallBucket
from topology.settings import Settings
from topology.store import ladybug_schema, rows, tiers
from topology.store.base import GraphStore, StoreError
from topology.store.ladybug_ids import bucket_ids
from topology.store.ladybug_store import LadybugStore
from topology.store.statement import Statement

T0 = 1_700_000_000 - 1_700_000_000 % 3600
LIST_CALLBUCKET = (
    "CREATE NODE TABLE CallBucket(key STRING PRIMARY KEY, client STRING, server STRING, "
    "width INT64, bucket INT64, protocol STRING, method STRING, path STRING, requests INT64, "
    "errors INT64, latency_sum DOUBLE, hist INT64[], status INT64[], exemplars STRING[], "
    "naming STRING)"
)
STRING_KEY_CALLBUCKET = (  # scalar counters, keyed by the STRING key (no INT64 id)
    "CREATE NODE TABLE CallBucket(key STRING PRIMARY KEY, client STRING, server STRING, "
    "width INT64, bucket INT64, protocol STRING, method STRING, path STRING, requests INT64, "
    "errors INT64, latency_sum DOUBLE, "
    + ", ".join(f"h{i} INT64" for i in range(histogram.BIN_COUNT)) + ", "
    + ", ".join(f"s{i} INT64" for i in range(6))
    + ", exemplars STRING[], naming STRING, sid INT64)"
)
ROWS_OF_KEY = Statement.same(
    "test.bucket_of_key",
    f"MATCH (e:CallBucket) WHERE {ladybug_schema.key_of('e')} = $key RETURN e.id AS id")
ROWS = Statement.same(
    "test.bucket_rows", f"MATCH (e:CallBucket) RETURN {ladybug_schema.key_of('e')} AS key, "
    "e.id AS id, e.sid AS sid, "
    "e.client AS client, e.server AS server, e.protocol AS protocol, e.path AS path, "
    "e.requests AS requests, e.naming AS naming, e.exemplars AS exemplars, "
    + ", ".join(f"e.h{i} AS h{i}" for i in range(histogram.BIN_COUNT)) + ", "
    + ", ".join(f"e.s{i} AS s{i}" for i in range(6)))


def call(i: int, minute: int, *, naming: str = "workload", trace: str = "") -> CallBucket:
    row = CallBucket(f"process:h/c{i % 3}", f"process:h/s{i % 5}", T0 + 60 * minute, 60,
                     "http" if i % 2 else "grpc", "GET", f"/p{i % 4}", naming=naming)
    for k in range(i % 3 + 1):
        row.record(0.3 * (k + 1) * (i + 1), error=k == 1, status=500 if k == 1 else 200,
                   trace_id=trace)
    return row


@pytest.mark.parametrize("old", [LIST_CALLBUCKET, STRING_KEY_CALLBUCKET],
                         ids=["list_counters", "string_key"])
@pytest.mark.parametrize("read_only", [False, True], ids=["writer", "read_only"])
def test_a_file_of_an_old_layout_is_refused_naming_the_file(
    settings: Settings, read_only: bool, old: str
) -> None:
    settings.embedded_path.parent.mkdir(parents=True, exist_ok=True)
    db = ladybug.Database(str(settings.embedded_path))
    ladybug.Connection(db).execute(old)
    db.close()
    with pytest.raises(StoreError, match="older version") as caught:
        LadybugStore(settings, read_only=read_only)
    assert str(settings.embedded_path) in str(caught.value)
    assert "Move the file away" in str(caught.value)


def test_an_empty_file_and_a_current_one_open(settings: Settings) -> None:
    for _ in range(2):
        store = LadybugStore(settings)
        store.init_schema()
        store.close()


@pytest.mark.parametrize(("keys", "minutes", "step"), [(40, 1, 3), (60, 40, 2)],
                         ids=["few_rows", "2400_rows"])
def test_counters_add_up_column_by_column_over_create_and_update(
    embedded_store: GraphStore, keys: int, minutes: int, step: int,
) -> None:
    """Created rows, then the same keys again (added per changed column, statements
    merged or not by the cost model), a rename and exemplars: every stored counter
    equals the sum of what was sent."""
    first = [call(i, m, trace=f"t{i}") for i in range(keys) for m in range(minutes)]
    again = [call(i, m, naming="dns" if i % 7 == 0 else "", trace=f"u{i}")
             for i in range(0, keys, step) for m in range(minutes)]
    embedded_store.apply(Batch("one", [], first), now=T0)
    embedded_store.apply(Batch("two", [], again), now=T0)
    expected = rows.merge_buckets([*first, *again])  # the one definition of adding up
    stored = {row["key"]: row for row in embedded_store.read(ROWS)}
    assert sorted(stored) == sorted(expected)
    for key, bucket in expected.items():
        row = stored[key]
        assert row["requests"] == bucket.requests
        assert [row[f"h{i}"] for i in range(histogram.BIN_COUNT)] == bucket.histogram
        assert [row[f"s{i}"] for i in range(6)] == bucket.status_classes
        assert row["naming"] == bucket.naming and row["exemplars"] == bucket.exemplars
        assert row["sid"] == tiers.SeriesNames.id(
            row["client"], row["server"], row["protocol"], row["path"])
        assert row["id"] == bucket_ids([key], [bucket.bucket])[0]


def test_a_key_whose_id_a_stored_bucket_of_another_key_has_is_refused(
    embedded_store: LadybugStore,
) -> None:
    """Buckets are found by an id made from their key (`ladybug_ids`): a stored bucket
    with the same id but another key must not be added into; the batch is refused and
    rolled back."""
    row = call(1, 0)
    other = ladybug.Connection(embedded_store._db)
    other.execute("CREATE (:CallBucket {id: $id, client: 'another', server: 'x', "
                  "width: 60, bucket: $bucket, protocol: 'http', method: 'GET', path: '/', "
                  "requests: 5})",
                  {"id": bucket_ids([row.key], [row.bucket])[0], "bucket": row.bucket})
    other.close()
    with pytest.raises(StoreError, match="same id as another bucket key"):
        embedded_store.apply(Batch("clash", [], [row]), now=T0)
    assert embedded_store.read(ROWS_OF_KEY, {"key": row.key}) == []
    assert embedded_store.stats()["batches"] == 0
    assert [r["requests"] for r in embedded_store.read(ROWS)] == [5]


def test_map_rows_by_series_id_equal_the_rows_by_names(embedded_store: GraphStore) -> None:
    """Bucket reads grouped by `sid` (names from the registry, or read back when the
    registry does not know them) return exactly what grouping by the names returns."""
    embedded_store.apply(Batch("b", [], [call(i, m) for i in range(30) for m in range(3)]),
                         now=T0)
    window, compiled = Window(T0, T0 + 3600), compile_filter("")
    registry = tiers.SERIES
    saved = dict(registry.names), registry.collided
    try:
        by_series = map_table(embedded_store, compiled, window)
        registry.names.clear()
        read_back = map_table(embedded_store, compiled, window)
        registry.collided = True
        by_names = map_table(embedded_store, compiled, window)
    finally:
        registry.names.clear()
        registry.names.update(saved[0])
        registry.collided = saved[1]
    assert by_names is not None and by_names.num_rows == 30

    def ordered(table: pa.Table) -> list[dict]:
        return sorted(table.to_pylist(), key=lambda r: (r["client"], r["server"],
                                                        r["protocol"], r["path"]))

    assert by_series is not None and read_back is not None
    assert by_series.column_names == by_names.column_names == read_back.column_names
    assert ordered(by_series) == ordered(by_names) == ordered(read_back)


PAIRS = Statement.same(
    "test.pairs", "MATCH (a:Service)-[:CALLS]->(b:Service) MATCH (r:CallPair) WHERE "
    "r.client = a.id AND r.server = b.id RETURN a.id AS client, b.id AS server, "
    "r.first_seen AS first_seen, r.last_seen AS last_seen")


def test_a_pair_deleted_by_retention_is_created_again(embedded_store: GraphStore) -> None:
    """The store remembers stored pairs and services to skip reading them; retention
    deletes some, and a later batch must create them again, not update nothing."""
    from topology.model import Service

    ends = [Service(f"process:h/{name}", name, "Process", seen=T0) for name in ("a", "b")]
    row = CallBucket(ends[0].id, ends[1].id, T0, 60, "http", "GET", "/x")
    row.record(1.0, error=False, status=200)
    embedded_store.apply(Batch("one", ends, [row]), now=T0)
    embedded_store.apply(Batch("two", ends, [row]), now=T0)  # read back: remembered
    later = T0 + 400 * 86_400
    report = embedded_store.retention(later)
    assert report.deleted_pairs == 1 and embedded_store.read(PAIRS) == []
    fresh = [Service(s.id, s.name, s.kind, seen=later) for s in ends]
    again = CallBucket(ends[0].id, ends[1].id, later - later % 60, 60, "http", "GET", "/x")
    again.record(1.0, error=False, status=200)
    embedded_store.apply(Batch("three", fresh, [again]), now=later)
    assert embedded_store.read(PAIRS) == [{
        "client": ends[0].id, "server": ends[1].id, "first_seen": again.bucket,
        "last_seen": again.bucket + 60}]
