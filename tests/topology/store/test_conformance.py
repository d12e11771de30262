"""Behaviour every GraphStore backend must show: run against each one available."""

from __future__ import annotations

import threading

import pytest

from topology import histogram
from topology.model import HOUR, Batch, CallBucket, Service, workload_id
from topology.store.base import GraphStore
from topology.store.ladybug_schema import key_of
from topology.store.statement import Statement

T0 = 1_700_000_000 - 1_700_000_000 % HOUR  # an hour boundary


def service(name: str, seen: int = T0, **labels: str) -> Service:
    return Service(workload_id("prod", "shop", "Deployment", name), name, "Deployment",
                   "shop", "prod", labels, seen)


FRONTEND, CHECKOUT, PAYMENTS = service("frontend"), service("checkout"), service("payments")


def bucket(client: Service, server: Service, start: int, *durations: float,
           path: str = "/cart", status: int = 200, trace: str = "",
           protocol: str = "http") -> CallBucket:
    row = CallBucket(client.id, server.id, start, 60, protocol, "GET", path)
    for duration in durations:
        row.record(duration, error=status >= 500, status=status, trace_id=trace)
    return row


_BUCKET_FIELDS = (
    " AS key, e.width AS width, e.bucket AS bucket, "
    "e.requests AS requests, e.errors AS errors, e.latency_sum AS latency_sum, "
)
# Neo4j keeps list properties and the key; LadybugDB scalar columns, and the key's
# parts (docs/storage.md).
BUCKETS = Statement(
    "test.buckets",
    "MATCH (e:CallBucket) RETURN e.key" + _BUCKET_FIELDS
    + "e.hist AS hist, e.status AS status, e.exemplars AS exemplars",
    f"MATCH (e:CallBucket) RETURN {key_of('e')}" + _BUCKET_FIELDS
    + "[" + ", ".join(f"e.h{i}" for i in range(histogram.BIN_COUNT))
    + "] AS hist, [" + ", ".join(f"e.s{i}" for i in range(6))
    + "] AS status, e.exemplars AS exemplars",
)
PAIRS = Statement(
    "test.pairs",
    "MATCH (a:Service)-[r:CALLS]->(b:Service) RETURN a.name AS client, b.name AS server, "
    "r.first_seen AS first_seen, r.last_seen AS last_seen, r.protocols AS protocols",
    # the embedded store keeps the bounds in the pair's CallPair node: both must exist
    "MATCH (a:Service)-[:CALLS]->(b:Service) MATCH (r:CallPair) WHERE r.client = a.id AND "
    "r.server = b.id RETURN a.name AS client, b.name AS server, "
    "r.first_seen AS first_seen, r.last_seen AS last_seen, r.protocols AS protocols",
)
SERVICES = Statement.same(
    "test.services",
    "MATCH (s:Service) RETURN s.id AS id, s.name AS name, s.labels AS labels, "
    "s.first_seen AS first_seen, s.last_seen AS last_seen",
)
WINDOW_TOTALS = Statement.same(
    "test.window",
    "MATCH (e:CallBucket) WHERE e.bucket >= $from AND e.bucket < $to "
    "RETURN sum(e.requests) AS requests, sum(e.errors) AS errors",
)


def totals(store: GraphStore) -> tuple[int, int]:
    rows = store.read(BUCKETS)
    return sum(r["requests"] for r in rows), sum(r["errors"] for r in rows)


def test_apply_creates_services_buckets_and_pairs(any_store: GraphStore) -> None:
    batch = Batch("b1", [FRONTEND, CHECKOUT], [
        bucket(FRONTEND, CHECKOUT, T0, 5.0, 20.0, trace="t1"),
        bucket(FRONTEND, CHECKOUT, T0 + 60, 700.0, status=503, trace="t2"),
    ])
    assert any_store.apply(batch, now=T0 + 120) is True

    rows = sorted(any_store.read(BUCKETS), key=lambda r: r["bucket"])
    assert [(r["requests"], r["errors"], r["exemplars"]) for r in rows] == [
        (2, 0, ["t1"]), (1, 1, ["t2"])]
    assert rows[0]["hist"][histogram.bin_index(5.0)] == 1
    assert rows[1]["status"] == [0, 0, 0, 0, 0, 1]
    assert any_store.read(PAIRS) == [{
        "client": "frontend", "server": "checkout", "first_seen": T0,
        "last_seen": T0 + 120, "protocols": ["http"]}]
    assert any_store.stats() == {
        "services": 2, "pairs": 1, "minute_buckets": 2, "hour_buckets": 0, "batches": 1}


def test_same_batch_twice_changes_nothing(any_store: GraphStore) -> None:
    batch = Batch("once", [FRONTEND, CHECKOUT], [bucket(FRONTEND, CHECKOUT, T0, 1.0, 2.0)])
    assert any_store.apply(batch) is True
    assert any_store.apply(batch) is False
    assert totals(any_store) == (2, 0)
    assert any_store.stats()["batches"] == 1


def test_keys_repeated_in_one_batch_are_merged(any_store: GraphStore) -> None:
    rows = [bucket(FRONTEND, CHECKOUT, T0, 1.0, trace=f"t{i}") for i in range(7)]
    later = service("frontend", seen=T0 + 50, team="web")
    any_store.apply(Batch("dup", [FRONTEND, CHECKOUT, later], rows))
    (stored,) = any_store.read(BUCKETS)
    assert stored["requests"] == 7
    assert stored["exemplars"] == ["t0", "t1", "t2", "t3", "t4"]  # capped at 5
    frontend = next(s for s in any_store.read(SERVICES) if s["name"] == "frontend")
    assert (frontend["first_seen"], frontend["last_seen"]) == (T0, T0 + 50)
    assert frontend["labels"] == ["team=web"]


def test_later_batches_add_to_existing_rows(any_store: GraphStore) -> None:
    any_store.apply(Batch("a", [FRONTEND, CHECKOUT], [bucket(FRONTEND, CHECKOUT, T0, 3.0)]))
    any_store.apply(Batch("b", [FRONTEND, CHECKOUT], [
        bucket(FRONTEND, CHECKOUT, T0, 3.0, 4.0, status=500),
        bucket(FRONTEND, CHECKOUT, T0 + 300, 9.0, protocol="grpc"),
    ]))
    rows = sorted(any_store.read(BUCKETS), key=lambda r: r["bucket"])
    assert [(r["requests"], r["errors"]) for r in rows] == [(3, 2), (1, 0)]
    assert sum(rows[0]["hist"]) == 3 and rows[0]["latency_sum"] == pytest.approx(10.0)
    (pair,) = any_store.read(PAIRS)
    assert (pair["first_seen"], pair["last_seen"], pair["protocols"]) == (
        T0, T0 + 360, ["grpc", "http"])


def test_concurrent_writers_on_overlapping_keys_sum_exactly(any_store: GraphStore) -> None:
    writers, batches_each = 4, 10
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            for i in range(batches_each):
                any_store.apply(Batch(f"w{writer}-{i}", [FRONTEND, CHECKOUT, PAYMENTS], [
                    bucket(FRONTEND, CHECKOUT, T0, 1.0),
                    bucket(CHECKOUT, PAYMENTS, T0 + 60 * (i % 3), 2.0, 3.0),
                ]))
        except BaseException as exc:  # surfaced below; a thread cannot fail the test
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert totals(any_store) == (writers * batches_each * 3, 0)
    assert any_store.stats() == {
        "services": 3, "pairs": 2, "minute_buckets": 4, "hour_buckets": 0,
        "batches": writers * batches_each}


def test_retention_rolls_minutes_into_hours_across_the_boundary(any_store: GraphStore) -> None:
    minutes = [T0 + 60 * m for m in range(50, 70)]  # 20 minutes spanning T0 + 1h
    any_store.apply(Batch("r", [FRONTEND, CHECKOUT], [
        bucket(FRONTEND, CHECKOUT, start, 10.0 * (i + 1), status=500 if i % 4 == 0 else 200)
        for i, start in enumerate(minutes)
    ]), now=T0)
    before = any_store.read(WINDOW_TOTALS, {"from": T0, "to": T0 + 2 * HOUR})
    # Minute retention 24 h: "now" puts the cutoff at T0 + 62 min, inside the second hour.
    now = T0 + 62 * 60 + 86_400
    report = any_store.retention(now)

    assert report.rolled_up == 12  # minutes 50..61 ended before the cutoff
    stats = any_store.stats()
    assert (stats["minute_buckets"], stats["hour_buckets"]) == (8, 2)
    assert any_store.read(WINDOW_TOTALS, {"from": T0, "to": T0 + 2 * HOUR}) == before
    hours = [r for r in any_store.read(BUCKETS) if r["width"] == HOUR]
    assert sorted((r["bucket"], r["requests"]) for r in hours) == [(T0, 10), (T0 + HOUR, 2)]
    assert sum(sum(r["hist"]) for r in any_store.read(BUCKETS)) == 20

    # Rolling again is a no-op; a late minute in a rolled hour adds to that hour.
    assert any_store.retention(now).rolled_up == 0
    any_store.apply(Batch("late", [FRONTEND, CHECKOUT],
                          [bucket(FRONTEND, CHECKOUT, T0 + 55 * 60, 1.0)]), now=now)
    assert any_store.retention(now).rolled_up == 1
    assert sorted((r["bucket"], r["requests"]) for r in any_store.read(BUCKETS)
                  if r["width"] == HOUR) == [(T0, 11), (T0 + HOUR, 2)]


def test_retention_expires_hours_pairs_services_and_markers(any_store: GraphStore) -> None:
    any_store.apply(Batch("old", [FRONTEND, CHECKOUT],
                          [bucket(FRONTEND, CHECKOUT, T0, 1.0)]), now=T0)
    late = T0 + 31 * 86_400 + HOUR
    any_store.apply(Batch("new", [service("payments", seen=late), service("checkout", late)],
                          [bucket(CHECKOUT, PAYMENTS, late - late % 60, 1.0)]), now=late)
    report = any_store.retention(late + 60)
    assert report.rolled_up == 1
    assert (report.deleted_hours, report.deleted_pairs, report.deleted_services,
            report.deleted_markers) == (1, 1, 1, 1)
    assert {s["name"] for s in any_store.read(SERVICES)} == {"checkout", "payments"}
    assert any_store.stats()["batches"] == 1
    # The expired batch id may now be applied again: its redelivery window is long gone.
    assert any_store.apply(Batch("old", [], []), now=late + 60) is True


def test_ping_and_empty_batch(any_store: GraphStore) -> None:
    any_store.ping()
    assert any_store.apply(Batch("empty")) is True
    assert any_store.stats()["batches"] == 1


def test_apply_many_merges_batches_into_one_write(any_store: GraphStore) -> None:
    results = any_store.apply_many([
        Batch("m1", [FRONTEND, CHECKOUT], [bucket(FRONTEND, CHECKOUT, T0, 1.0, trace="t1")]),
        Batch("m2", [service("frontend", seen=T0 + 90, team="web"), PAYMENTS], [
            bucket(FRONTEND, CHECKOUT, T0, 2.0, 3.0, status=500, trace="t2"),
            bucket(CHECKOUT, PAYMENTS, T0 + 60, 4.0, protocol="grpc"),
        ]),
    ], now=T0 + 120)
    assert results == [True, True]
    rows = sorted(any_store.read(BUCKETS), key=lambda r: r["bucket"])
    assert [(r["requests"], r["errors"], r["exemplars"]) for r in rows] == [
        (3, 2, ["t1", "t2"]), (1, 0, [])]
    assert sum(rows[0]["hist"]) == 3 and rows[0]["latency_sum"] == pytest.approx(6.0)
    assert sorted((p["client"], p["server"], p["first_seen"], p["last_seen"], p["protocols"])
                  for p in any_store.read(PAIRS)) == [
        ("checkout", "payments", T0 + 60, T0 + 120, ["grpc"]),
        ("frontend", "checkout", T0, T0 + 60, ["http"])]
    frontend = next(s for s in any_store.read(SERVICES) if s["name"] == "frontend")
    assert (frontend["first_seen"], frontend["last_seen"], frontend["labels"]) == (
        T0, T0 + 90, ["team=web"])
    assert any_store.stats() == {
        "services": 3, "pairs": 2, "minute_buckets": 2, "hour_buckets": 0, "batches": 2}


def test_apply_many_skips_applied_and_repeated_ids(any_store: GraphStore) -> None:
    def one(batch_id: str, requests: int) -> Batch:
        durations = [1.0] * requests
        return Batch(batch_id, [FRONTEND, CHECKOUT],
                     [bucket(FRONTEND, CHECKOUT, T0, *durations)])

    assert any_store.apply(one("old", 1)) is True
    results = any_store.apply_many(
        [one("new1", 10), one("old", 100), one("new2", 1000), one("new1", 10_000)])
    assert results == [True, False, True, False]
    assert totals(any_store) == (1 + 10 + 1000, 0)
    assert any_store.stats()["batches"] == 3
    # Every id of that call is now applied: the whole call again changes nothing.
    assert any_store.apply_many([one("new2", 5), one("new1", 5)]) == [False, False]
    assert totals(any_store) == (1011, 0)


def test_apply_many_of_nothing_and_of_only_applied_ids(any_store: GraphStore) -> None:
    assert any_store.apply_many([]) == []
    assert any_store.apply_many([Batch("e1"), Batch("e1"), Batch("e2")]) == [True, False, True]
    assert any_store.apply_many([Batch("e2"), Batch("e1")]) == [False, False]
    assert any_store.stats()["batches"] == 2
