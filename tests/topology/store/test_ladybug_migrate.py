"""Files of older layouts: pair bounds on the CALLS relationships (before CallPair),
and bucket keys stored in a column (before `ladybug_schema.key_of`)."""

from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b

import ladybug
import pytest

from topology.model import Batch, CallBucket, Service
from topology.settings import Settings
from topology.store import ladybug_buckets, ladybug_migrate
from topology.store import ladybug_schema as q
from topology.store.base import StoreError
from topology.store.ladybug_ids import bucket_ids
from topology.store.ladybug_rows import Rows, Staging, Writer
from topology.store.ladybug_store import LadybugStore
from topology.store.statement import Statement

T0 = 1_700_000_000 - 1_700_000_000 % 3600
OLD_CALLS = (
    "CREATE REL TABLE CALLS(FROM Service TO Service, "
    "first_seen INT64, last_seen INT64, protocols STRING[], naming STRING)"
)
OLD_PAIRS = [  # client, server, first_seen, last_seen, protocols, naming
    ("process:h/a", "process:h/b", T0, T0 + 120, ["http"], "workload"),
    ("process:h/b", "process:h/c", T0 + 60, T0 + 180, ["grpc", "http"], "dns"),
]
PAIRS = Statement.same(
    "test.pairs", "MATCH (a:Service)-[:CALLS]->(b:Service) MATCH (p:CallPair) WHERE "
    "p.client = a.id AND p.server = b.id RETURN a.id AS client, b.id AS server, "
    "p.first_seen AS first_seen, p.last_seen AS last_seen, p.protocols AS protocols, "
    "p.naming AS naming, p.id AS id ORDER BY client")

def writes(conn: ladybug.Connection, settings: Settings) -> Writer:
    """The connection as the store writes through it (rows handed over as files)."""
    return Writer(conn, Staging(settings.embedded_path.parent / "test-rows"))


PAIR_IDS = Statement.same(
    "test.pair_ids", "MATCH (a:Service)-[r:CALLS]->(b:Service) RETURN r.pid AS pid ORDER BY a.id")


def old_file(settings: Settings) -> None:
    """A store file as the version before CallPair wrote it, with two pairs."""
    settings.embedded_path.parent.mkdir(parents=True, exist_ok=True)
    db = ladybug.Database(str(settings.embedded_path))
    conn = ladybug.Connection(db)
    for text in q.SCHEMA:
        if "CallPair(" not in text and "CALLS(" not in text:
            conn.execute(text)
    conn.execute(OLD_CALLS)
    for name in "abc":
        conn.execute("CREATE (:Service {id: $id, name: $name, kind: 'Process', "
                     "first_seen: $t, last_seen: $t})",
                     {"id": f"process:h/{name}", "name": name, "t": T0})
    for client, server, first, last, protocols, naming in OLD_PAIRS:
        conn.execute(
            "MATCH (a:Service {id: $client}) MATCH (b:Service {id: $server}) "
            "CREATE (a)-[:CALLS {first_seen: $first, last_seen: $last, "
            "protocols: $protocols, naming: $naming}]->(b)",
            {"client": client, "server": server, "first": first, "last": last,
             "protocols": protocols, "naming": naming})
    conn.close()
    db.close()


def test_opening_for_writing_moves_the_bounds_into_call_pairs(settings: Settings) -> None:
    old_file(settings)
    store = LadybugStore(settings)
    try:
        store.init_schema()
        assert store.read(PAIRS) == [
            {"client": c, "server": s, "first_seen": f, "last_seen": last, "protocols": p,
             "naming": n, "id": q.pair_ids([(c, s)])[0]}
            for c, s, f, last, p, n in OLD_PAIRS]
        assert [row[1] for row in store._writer.execute(q.CALLS_TABLE_INFO).get_all()] == [
            "pid"]
        assert store.read(PAIR_IDS) == [{"pid": q.pair_ids([(c, s)])[0]}
                                        for c, s, *_ in OLD_PAIRS]
        # and the moved pairs are written like any other: the first one seen later
        ends = [Service(f"process:h/{name}", name, "Process", seen=T0 + 600) for name in "ab"]
        later = CallBucket(ends[0].id, ends[1].id, T0 + 600, 60, "http", "GET", "/x")
        later.record(1.0, error=False, status=200)
        store.apply(Batch("later", ends, [later]), now=T0)
        first = store.read(PAIRS)[0]
        assert (first["first_seen"], first["last_seen"]) == (T0, T0 + 660)
        assert store.stats()["pairs"] == 2
    finally:
        store.close()
    reopened = LadybugStore(settings, read_only=True)  # nothing left to move
    try:
        assert len(reopened.read(PAIRS)) == 2
    finally:
        reopened.close()


def test_a_read_only_open_of_an_old_file_is_refused_naming_the_file(
    settings: Settings,
) -> None:
    old_file(settings)
    with pytest.raises(StoreError, match="Open it once for writing") as caught:
        LadybugStore(settings, read_only=True)
    assert str(settings.embedded_path) in str(caught.value)


def test_calls_with_only_some_pair_properties_are_refused(settings: Settings) -> None:
    """Not a layout this project wrote: nothing is guessed, the file is left alone."""
    settings.embedded_path.parent.mkdir(parents=True, exist_ok=True)
    db = ladybug.Database(str(settings.embedded_path))
    conn = ladybug.Connection(db)
    conn.execute(next(text for text in q.SCHEMA if "Service(" in text))
    conn.execute("CREATE REL TABLE CALLS(FROM Service TO Service, last_seen INT64)")
    conn.close()
    db.close()
    with pytest.raises(StoreError, match="only last_seen") as caught:
        LadybugStore(settings)
    assert str(settings.embedded_path) in str(caught.value)
    reopened = ladybug.Database(str(settings.embedded_path))
    conn = ladybug.Connection(reopened)
    assert [row[1] for row in conn.execute(q.CALLS_TABLE_INFO).get_all()] == ["last_seen"]
    conn.close()
    reopened.close()


BUCKETS = Statement.same(
    "test.bucket_requests",
    f"MATCH (e:CallBucket) RETURN {q.key_of('e')} AS key, e.requests AS requests ORDER BY key")


def bucket(minute: int) -> CallBucket:
    row = CallBucket("process:h/a", "process:h/b", T0 + 60 * minute, 60, "http", "GET", "/x")
    row.record(1.0, error=False, status=200)
    return row


def hashed_ids(keys: Iterable[str]) -> list[int]:
    """CallBucket ids as versions before `ladybug_ids` made them: BLAKE2b of the key
    alone, shifted to 63 bits."""
    return [int.from_bytes(blake2b(key.encode(), digest_size=8).digest(), "big") >> 1
            for key in keys]


def stored_key_file(settings: Settings) -> list[CallBucket]:
    """A store file as the version before `key_of` wrote it: CallBucket keeps its key."""
    settings.embedded_path.parent.mkdir(parents=True, exist_ok=True)
    db = ladybug.Database(str(settings.embedded_path))
    conn = ladybug.Connection(db)
    for text in q.SCHEMA:
        conn.execute(text)
    conn.execute("ALTER TABLE CallBucket ADD key STRING")
    buckets = [bucket(0), bucket(1)]
    rows = ladybug_buckets.table(buckets, hashed_ids(b.key for b in buckets))
    rows = Rows((*rows.schema, ("key", "STRING")),
                {**rows.columns, "key": [b.key for b in buckets]})
    writes(conn, settings).execute(
        "LOAD FROM $rows CREATE (:CallBucket {"
        + ", ".join(f"{name}: {name}" for name, _ in rows.schema) + "})", {"rows": rows})
    conn.close()
    db.close()
    return buckets


def bucket_columns(store: LadybugStore) -> set[str]:
    return {row[1] for row in store._reader().execute(q.BUCKET_TABLE_INFO).get_all()}


def test_opening_for_writing_drops_the_stored_bucket_key(settings: Settings) -> None:
    old = stored_key_file(settings)
    store = LadybugStore(settings)
    try:
        store.init_schema()
        assert bucket_columns(store) == {name for name, _ in q.BUCKET_COLUMNS}
        assert store.read(BUCKETS) == [{"key": b.key, "requests": 1} for b in old]
        # and the old rows are found by id and added into, not created again
        store.apply(Batch("again", [], [bucket(0)]), now=T0)
        assert store.read(BUCKETS) == [{"key": b.key, "requests": 2 - n}
                                       for n, b in enumerate(old)]
    finally:
        store.close()


def test_a_read_only_open_reads_a_file_with_stored_bucket_keys(settings: Settings) -> None:
    old = stored_key_file(settings)
    store = LadybugStore(settings, read_only=True)
    try:
        assert store.read(BUCKETS) == [{"key": b.key, "requests": 1} for b in old]
        assert "key" in bucket_columns(store)  # left: a read-only open changes nothing
    finally:
        store.close()


PLACED = Statement.same(
    "test.bucket_ids", f"MATCH (e:CallBucket) RETURN {q.key_of('e')} AS key, e.bucket AS bucket, "
    "e.id AS id, e.requests AS requests ORDER BY key")


def minutes_and_an_hour() -> list[CallBucket]:
    """Three keys in each of three minutes, and an hour bucket."""
    found = []
    for minute in range(3):
        for path in ("/a", "/b", "/c"):
            row = CallBucket("process:h/a", "process:h/b", T0 + 60 * minute, 60, "http",
                             "GET", path)
            row.record(1.0 + minute, error=False, status=200)
            found.append(row)
    hour = CallBucket("process:h/a", "process:h/b", T0 - 3600, 3600, "http", "GET", "/a")
    hour.record(2.0, error=True, status=500)
    return [*found, hour]


def hashed_id_file(settings: Settings, buckets: list[CallBucket],
                   placed_before: int | None = None) -> None:
    """A file of this layout whose buckets are keyed by their key's hash alone, as before
    `ladybug_ids`; those starting before `placed_before` already have placed ids (a
    placement that stopped half way)."""
    settings.embedded_path.parent.mkdir(parents=True, exist_ok=True)
    db = ladybug.Database(str(settings.embedded_path))
    conn = ladybug.Connection(db)
    for text in q.SCHEMA:
        conn.execute(text)
    ids = [placed if placed_before is not None and b.bucket < placed_before else hashed
           for b, hashed, placed in zip(buckets, hashed_ids(b.key for b in buckets),
                                        bucket_ids([b.key for b in buckets],
                                                   [b.bucket for b in buckets]), strict=True)]
    writes(conn, settings).execute(q.BUCKETS_CREATE,
                                   {"rows": ladybug_buckets.table(buckets, ids)})
    conn.close()
    db.close()


def stored(store: LadybugStore) -> list[dict]:
    return store.read(PLACED)


def expected(buckets: list[CallBucket], ids: list[int]) -> list[dict]:
    return sorted(({"key": b.key, "bucket": b.bucket, "id": i, "requests": b.requests}
                   for b, i in zip(buckets, ids, strict=True)), key=lambda row: row["key"])


@pytest.mark.parametrize("placed_before", [None, T0 + 60, T0 + 120],
                         ids=["all_hashed", "stopped_after_the_hour_and_a_minute",
                              "only_the_newest_left"])
def test_opening_for_writing_places_hashed_bucket_ids(settings: Settings,
                                                      placed_before: int | None) -> None:
    buckets = minutes_and_an_hour()
    hashed_id_file(settings, buckets, placed_before)
    placed = bucket_ids([b.key for b in buckets], [b.bucket for b in buckets])
    store = LadybugStore(settings)
    try:
        store.init_schema()
        assert stored(store) == expected(buckets, placed)
        # found by their placed ids: added into, not created again
        store.apply(Batch("again", [], [minutes_and_an_hour()[0]]), now=T0)
        want = {row["key"]: row["requests"] for row in expected(buckets, placed)}
        want[buckets[0].key] *= 2
        assert {row["key"]: row["requests"] for row in stored(store)} == want
    finally:
        store.close()


def test_placing_moves_whole_starts_a_few_at_a_time_and_only_once(settings: Settings) -> None:
    buckets = minutes_and_an_hour()
    hashed_id_file(settings, buckets)
    db = ladybug.Database(str(settings.embedded_path))
    conn = ladybug.Connection(db)
    try:
        assert ladybug_migrate.bucket_ids_unplaced(conn)
        assert ladybug_migrate.place_bucket_ids(writes(conn, settings), settings.embedded_path,
                                                move_rows=4) == len(buckets)
        assert not ladybug_migrate.bucket_ids_unplaced(conn)
        assert ladybug_migrate.place_bucket_ids(writes(conn, settings), settings.embedded_path) == 0
    finally:
        conn.close()
        db.close()


def test_a_read_only_open_reads_hashed_bucket_ids_and_leaves_them(settings: Settings) -> None:
    buckets = minutes_and_an_hour()
    hashed_id_file(settings, buckets)
    store = LadybugStore(settings, read_only=True)
    try:
        assert stored(store) == expected(buckets, hashed_ids(b.key for b in buckets))
    finally:
        store.close()


def test_an_empty_store_has_nothing_to_place(settings: Settings) -> None:
    hashed_id_file(settings, [])
    db = ladybug.Database(str(settings.embedded_path))
    conn = ladybug.Connection(db)
    try:
        assert not ladybug_migrate.bucket_ids_unplaced(conn)
    finally:
        conn.close()
        db.close()


@pytest.mark.parametrize("starts, move_rows, runs", [
    ([], 10, []),
    ([[60, 3], [120, 3], [180, 3]], 6, [(60, 120), (180, 180)]),
    ([[60, 3], [120, 3], [180, 3]], 100, [(60, 180)]),
    ([[60, 20], [120, 3], [180, 3]], 6, [(60, 60), (120, 180)]),  # a start alone holds more
    ([[60, 3], [120, 20], [180, 3]], 6, [(60, 60), (120, 120), (180, 180)]),
])
def test_placement_runs_hold_whole_starts(starts, move_rows, runs) -> None:
    assert ladybug_migrate._runs(starts, move_rows) == runs


def test_a_placement_that_fails_is_rolled_back_and_says_which_starts(
    settings: Settings,
) -> None:
    """A newer row, not placed yet, holds the id an older row is to get (moved a start at
    a time): that transaction fails naming its starts, and its rows stay as they were."""
    older, newer = minutes_and_an_hour()[0], minutes_and_an_hour()[-2]
    taken = bucket_ids([older.key], [older.bucket])
    settings.embedded_path.parent.mkdir(parents=True, exist_ok=True)
    db = ladybug.Database(str(settings.embedded_path))
    conn = ladybug.Connection(db)
    try:
        for text in q.SCHEMA:
            conn.execute(text)
        writes(conn, settings).execute(q.BUCKETS_CREATE, {"rows": ladybug_buckets.table(
            [older, newer], [*hashed_ids([older.key]), *taken])})
        with pytest.raises(StoreError, match=f"buckets starting {older.bucket}-{older.bucket} "
                                             "their placed ids .* rolled back; 0 rows"):
            ladybug_migrate.place_bucket_ids(writes(conn, settings), settings.embedded_path,
                                             move_rows=1)
        ids = conn.execute("MATCH (e:CallBucket) RETURN e.id ORDER BY e.bucket").get_all()
        assert [row[0] for row in ids] == [*hashed_ids([older.key]), *taken]
    finally:
        conn.close()
        db.close()
