"""The embedded store's pre-aggregated tiers hold exactly the buckets they cover.

The invariant checked after every step: each CallTier row equals the sum of
the finest buckets of its series and naming that start in its block and in
the covered range [low, high), and every such bucket is in one row per width.
Late data (a bucket in a range already rolled up), a naming change of a rolled
bucket, replays and expiry must all keep it: no loss, no double count.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from topology import histogram
from topology.model import Batch, CallBucket, Service
from topology.settings import Settings
from topology.store import tiers
from topology.store.ladybug_store import LadybugStore
from topology.store.statement import Statement

T0 = 1_763_712_000  # an hour boundary
A, B, C = (Service(f"process:h/{n}", n, "Process", seen=T0) for n in "abc")
SERVICES = [A, B, C]
DAY = 86_400


@pytest.fixture
def store(tmp_path) -> Iterator[LadybugStore]:
    graph = LadybugStore(Settings.load({}, data_dir=str(tmp_path)))
    graph.init_schema()
    yield graph
    graph.close()


def calls(minute: int, *, client: Service = A, server: Service = B, requests: int = 3,
          ms: float = 12.0, naming: str = "workload", path: str = "/x") -> CallBucket:
    bucket = CallBucket(client.id, server.id, T0 + 60 * minute, 60, "http", "GET", path,
                        naming=naming)
    for i in range(requests):
        bucket.record(ms * (i + 1), error=i == 0, status=500 if i == 0 else 200)
    return bucket


_ALL_TIERS = Statement.same(
    "all_tiers", "MATCH (t:CallTier) RETURN " + ", ".join(
        f"t.{name} AS {name}" for name, _ in tiers.COLUMNS))
_ALL_BUCKETS = Statement.same(
    "all_buckets", "MATCH (e:CallBucket) WHERE e.width < 3600 RETURN e.client AS client, "
    "e.server AS server, e.bucket AS bucket, e.protocol AS protocol, e.method AS method, "
    "e.path AS path, e.naming AS naming, e.requests AS requests, e.errors AS errors, "
    "e.latency_sum AS latency_sum, ["
    + ", ".join(f"e.h{i}" for i in range(histogram.BIN_COUNT)) + "] AS hist")


def expected_tiers(store: LadybugStore) -> dict[str, tuple]:
    found = store.tier_range()
    assert found is not None
    expected: dict[str, list] = {}
    for row in store.read(_ALL_BUCKETS):
        if not found.low <= row["bucket"] < found.high:
            continue
        for width in found.levels:
            key = tiers.key(row, width, row["bucket"] - row["bucket"] % width)
            known = expected.setdefault(key, [0, 0, 0, 0.0, [0] * len(row["hist"])])
            known[0] += 1
            known[1] += row["requests"]
            known[2] += row["errors"]
            known[3] += row["latency_sum"]
            known[4] = [a + b for a, b in zip(known[4], row["hist"], strict=True)]
    return {k: (n, r, e, pytest.approx(lat), h) for k, (n, r, e, lat, h) in expected.items()}


def stored_tiers(store: LadybugStore) -> dict[str, tuple]:
    return {
        row["key"]: (row["nbuckets"], row["requests"], row["errors"], row["latency_sum"],
                     tiers.unpack(row[f"b{i}"] for i in range(tiers.PACKED)))
        for row in store.read(_ALL_TIERS)
    }


def assert_exact(store: LadybugStore) -> None:
    assert stored_tiers(store) == expected_tiers(store)


def test_the_job_rolls_every_started_bucket_and_a_second_run_adds_nothing(store) -> None:
    store.apply(Batch("b1", SERVICES, [calls(m) for m in range(7)]), now=T0 + 420)
    report = store.retention(T0 + 425)
    assert report.tiered == 7
    found = store.tier_range()
    assert found is not None and found.high == T0 + 420 and found.low <= T0
    assert_exact(store)
    assert store.retention(T0 + 430).tiered == 0
    assert_exact(store)


LATE = [
    ("more calls into a rolled minute", lambda: [calls(2, requests=5)]),
    ("a new series in a rolled minute", lambda: [calls(3, client=C, path="/late")]),
    ("the bucket renamed by a later naming", lambda: [calls(4, naming="dns")]),
    ("rolled and unrolled minutes at once", lambda: [calls(1), calls(9), calls(10, server=C)]),
    ("a minute of the newest, partial block", lambda: [calls(6, requests=2)]),
]


@pytest.mark.parametrize(("case", "late"), LATE, ids=[case for case, _ in LATE])
def test_late_data_is_added_to_its_tier_rows(store, case, late) -> None:
    store.apply(Batch("b1", SERVICES, [calls(m) for m in range(8)]), now=T0 + 480)
    store.retention(T0 + 485)
    assert store.apply(Batch("late", [], late()), now=T0 + 600)
    assert_exact(store)
    assert not store.apply(Batch("late", [], late()), now=T0 + 610)  # a replay adds nothing
    assert_exact(store)
    store.retention(T0 + 700)
    assert_exact(store)


def test_a_tier_row_emptied_by_a_rename_is_deleted(store) -> None:
    store.apply(Batch("b1", SERVICES, [calls(2, naming="dns")]), now=T0 + 180)
    store.retention(T0 + 200)
    before = {key.rsplit("|", 1)[1] for key in stored_tiers(store)}
    store.apply(Batch("b2", [], [calls(2, requests=1, naming="host")]), now=T0 + 240)
    after = {key.rsplit("|", 1)[1] for key in stored_tiers(store)}
    assert (before, after) == ({"dns"}, {"host"})
    assert_exact(store)


def test_expiry_raises_low_past_the_buckets_folded_into_hours(store) -> None:
    store.apply(Batch("b1", SERVICES, [calls(m) for m in range(0, 120, 7)]), now=T0 + 7200)
    store.retention(T0 + 7200)
    assert_exact(store)
    later = T0 + DAY + 3600 + 60  # the first hour's minutes are folded into an hour bucket
    report = store.retention(later)
    assert report.rolled_up > 0
    found = store.tier_range()
    assert found is not None and found.low >= later - DAY
    assert all(int(key.split("|")[3]) >= found.low for key in stored_tiers(store))
    assert_exact(store)


def test_pack_and_unpack_round_trip_the_largest_counts() -> None:
    hist = [tiers.PACK_MASK - i for i in range(26)]
    assert tiers.unpack(tiers.pack(hist)) == hist
    assert len(tiers.pack(hist)) == tiers.PACKED
