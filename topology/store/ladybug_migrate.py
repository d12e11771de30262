"""Brings an older embedded store file to this version's layout when it is opened
for writing.

Bucket keys: files written before `ladybug_schema.key_of` stored each CallBucket's
key in a STRING column. Every part of the key is a column of its own, so the
column is dropped (`drop_bucket_key`); nothing is lost. A read-only open leaves
it: no statement reads it.

Pair bounds: files written before CallPair kept each pair's first_seen, last_seen, protocols
and naming on its CALLS relationship. Opening such a file for writing moves
them, in one transaction: the CallPair table is created, one node per
relationship written (id from `ladybug_schema.pair_ids`), the relationship
properties dropped and the pair id set on each relationship (`pid`). Nothing
is lost, and a failure leaves the file as it was.
A read-only open cannot change the file and refuses it instead.

Bucket ids: files written before `ladybug_ids` keyed each CallBucket by a hash
of its key alone. Opening such a file for writing gives every row its placed id
(`place_bucket_ids`), start by start in ascending order, a transaction for a
few starts at a time: nothing is lost, and an interrupted run is finished by the
next open (the newest start's rows are moved last, and they tell). A read-only
open leaves the ids: only writes and the writer's own cache reads look rows up
by id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from topology.store import ladybug_schema as q
from topology.store.base import StoreError
from topology.store.ladybug_ids import bucket_ids
from topology.store.ladybug_rows import Conn, Rows, Schema, columns, names, pick

OLD_PAIRS = (
    "MATCH (a:Service)-[r:CALLS]->(b:Service) RETURN a.id AS client, b.id AS server, "
    "r.first_seen AS first_seen, r.last_seen AS last_seen, r.protocols AS protocols, "
    "r.naming AS naming"
)
PAIR_IDS_SET = (
    "LOAD FROM $rows MATCH (a:Service {id: client})-[r:CALLS]->(b:Service {id: server}) "
    "SET r.pid = id"
)
_IDS: Schema = (("id", "INT64"),)
# CallBucket's column of the layout before `key_of`
STORED_KEY = "key"
log = logging.getLogger(__name__)

NEWEST_BUCKET = (
    "MATCH (e:CallBucket) WITH max(e.bucket) AS newest MATCH (e:CallBucket) "
    f"WHERE e.bucket = newest RETURN e.id AS id, {q.key_of('e')} AS key, e.bucket AS bucket "
    "LIMIT 1"
)
BUCKET_STARTS = "MATCH (e:CallBucket) RETURN e.bucket AS bucket, count(*) AS n ORDER BY bucket"
BUCKETS_BETWEEN = (
    "MATCH (e:CallBucket) WHERE e.bucket >= $low AND e.bucket <= $high RETURN "
    + ", ".join(f"e.{name} AS {name}" for name in names(q.BUCKET_COLUMNS))
    + f", {q.key_of('e')} AS key"
)
BUCKETS_DELETE = "LOAD FROM $rows MATCH (e:CallBucket {id: id}) DELETE e"
# rows moved in one transaction (whole starts: a start with more is moved alone)
MOVE_ROWS = 50_000
PAIRS_COPY = (
    "LOAD FROM $rows CREATE (:CallPair {"
    + ", ".join(f"{name}: {name}" for name in names(q.PAIR_COLUMNS)) + "})"
)


def drop_bucket_key(conn: Conn, path: Path) -> None:
    """Drop CallBucket's stored key (its parts are columns); the file is unchanged on
    failure."""
    try:
        conn.execute(f"ALTER TABLE CallBucket DROP {STORED_KEY}")
    except RuntimeError as exc:
        raise StoreError(
            f"embedded store {path}: dropping the CallBucket key column (its parts are "
            f"columns of their own) failed; the file is unchanged: {exc}") from exc


def pairs_on_relationships(conn: Conn, tables: set[str]) -> list[str]:
    """The pair fields the file keeps on CALLS (the layout before CallPair), if any."""
    if "CALLS" not in tables:
        return []
    columns = {row[1] for row in conn.execute(q.CALLS_TABLE_INFO).get_all()}
    return [name for name in q.PAIR_FIELDS if name in columns]


def refuse_read_only(path: Path) -> StoreError:
    return StoreError(
        f"embedded store {path} was written by an older version that kept pair bounds on "
        "the CALLS relationships (this version keeps them in CallPair nodes). Open it once "
        "for writing (`topology store init`, or start `topology serve`) to move them; a "
        "read-only open cannot")


def move_pair_bounds(conn: Conn, path: Path, fields: list[str]) -> int:
    """Move the bounds off the relationships, in one transaction; the number of pairs.
    `fields`: what `pairs_on_relationships` found (all four, unless the file was
    written by something else than this project)."""
    if fields != list(q.PAIR_FIELDS):
        raise StoreError(
            f"embedded store {path} has CALLS relationships with only {', '.join(fields)} of "
            f"{', '.join(q.PAIR_FIELDS)}: not a layout this project wrote; move the file "
            "away (or point TOPOLOGY_DATA_DIR elsewhere) to start an empty store")
    with _transaction(conn, f"embedded store {path}: moving pair bounds off the CALLS "
                      "relationships into CallPair nodes failed and was rolled back (the "
                      "file is unchanged)"):
        found = columns(conn.execute(OLD_PAIRS))
        conn.execute(next(s for s in q.SCHEMA if "CallPair(" in s))
        pairs = list(zip(found["client"], found["server"], strict=True))
        if pairs:
            found["id"] = q.pair_ids(pairs)
            conn.execute(PAIRS_COPY, {"rows": Rows(q.PAIR_COLUMNS, found)})
        for name in q.PAIR_FIELDS:
            conn.execute(f"ALTER TABLE CALLS DROP {name}")
        conn.execute("ALTER TABLE CALLS ADD pid INT64")
        if pairs:
            conn.execute(PAIR_IDS_SET, {"rows": Rows(
                pick(q.PAIR_COLUMNS, ("id", "client", "server")), found)})
    return len(pairs)


@contextmanager
def _transaction(conn: Conn, failure: str) -> Iterator[None]:
    """BEGIN/COMMIT; on an error ROLLBACK and a StoreError of `failure` and the error."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield
    except RuntimeError as exc:
        with suppress(RuntimeError):  # a failed statement may have ended the transaction
            conn.execute("ROLLBACK")
        raise StoreError(f"{failure}: {exc}") from exc
    conn.execute("COMMIT")


def bucket_ids_unplaced(conn: Conn) -> bool:
    """Whether CallBucket's newest rows still have ids from before `ladybug_ids`."""
    found = conn.execute(NEWEST_BUCKET).get_all()
    return bool(found) and found[0][0] != bucket_ids([found[0][1]], [found[0][2]])[0]


def place_bucket_ids(conn: Conn, path: Path, move_rows: int = MOVE_ROWS) -> int:
    """Give every CallBucket row its placed id, oldest starts first, in transactions of
    whole starts; the number of rows moved. Rows already placed are left."""
    starts = conn.execute(BUCKET_STARTS).get_all()
    moved = 0
    for low, high in _runs(starts, move_rows):
        with _transaction(conn, f"embedded store {path}: giving the buckets starting "
                          f"{low}-{high} their placed ids (ladybug_ids) failed and was rolled "
                          f"back; {moved} rows were moved before, and the next open for "
                          "writing goes on"):
            moved += _move(conn, low, high)
        log.info("embedded store %s: bucket ids placed up to start %d (%d rows moved)",
                 path, high, moved)
    return moved


def _runs(starts: list[list[int]], move_rows: int) -> list[tuple[int, int]]:
    """(first, last) starts of consecutive runs of whole starts, each of at most
    `move_rows` rows unless one start alone holds more."""
    runs: list[tuple[int, int, int]] = []  # first, last, rows
    for start, count in starts:
        if runs and runs[-1][2] + count <= move_rows:
            runs[-1] = (runs[-1][0], start, runs[-1][2] + count)
        else:
            runs.append((start, start, count))
    return [(first, last) for first, last, _ in runs]


def _move(conn: Conn, low: int, high: int) -> int:
    found = columns(conn.execute(BUCKETS_BETWEEN, {"low": low, "high": high}))
    placed = bucket_ids(found["key"], found["bucket"])
    moving = [i for i, (old, new) in enumerate(zip(found["id"], placed, strict=True))
              if old != new]
    if not moving:
        return 0
    rows = {name: [found[name][i] for i in moving] for name in names(q.BUCKET_COLUMNS)}
    conn.execute(BUCKETS_DELETE, {"rows": Rows(_IDS, {"id": rows["id"]})})
    rows["id"] = [placed[i] for i in moving]
    conn.execute(q.BUCKETS_CREATE, {"rows": Rows(q.BUCKET_COLUMNS, rows)})
    return len(moving)
