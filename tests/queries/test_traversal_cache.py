"""Walks and health from the in-process caches equal what the store holds, after
every kind of write: a pair's seen range moving, a new pair, a new service, data
in a cached minute, late data, the retention job folding minutes into hours and
deleting pairs, and writes that land while a cache is being filled.

Each case warms the caches (a blast radius over every service), applies its
writes, and compares the cached answers with the answers read from the store
(`read_walk`, `read_health`), for every service, both directions, several windows.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from queries.services import UnknownService, services_by_id
from queries.traversal import Direction, blast_radius, health, read_health, read_walk, walk
from queries.window import EMPTY, Thresholds, Window
from tests.queries.racing import RacingWrite
from topology.model import Batch, CallBucket, Service
from topology.settings import Settings
from topology.store import tiers
from topology.store.base import Reader
from topology.store.changes import changes_of
from topology.store.ladybug_store import LadybugStore
from topology.store.proxy import StoreProxy
from topology.store.statement import Statement

H = 1_763_712_000  # an hour boundary
M = 60
HOUR = 3600
SERVICES = [Service(f"process:h/s{i}", f"s{i}", "Process", seen=H) for i in range(6)]
NEW = Service("process:h/new", "new", "Process", seen=H)
WINDOWS = [Window(H, H + HOUR), Window(H + 25, H + 625), Window(H + 300, H + 360),
           Window(H + 3 * HOUR, H + 4 * HOUR + 7), Window(H - 30, H + 30),
           Window(H + 20 * M, H + 40 * M)]


def call(client: int | Service, server: int | Service, start: int, requests: int = 10,
         errors: int = 0, ms: float = 20.0) -> CallBucket:
    ends = [SERVICES[e] if isinstance(e, int) else e for e in (client, server)]
    bucket = CallBucket(ends[0].id, ends[1].id, start, M, "http", "GET", "/x")
    for i in range(requests):
        bucket.record(ms, error=i < errors, status=500 if i < errors else 200)
    return bucket


def base() -> list[Batch]:
    """s0 -> s1 -> s2 -> s3, s4 -> s2, s5 idle; a minute of calls every 5 minutes."""
    calls = [call(c, s, H + m * M, requests=10 + m, errors=m % 3)
             for m in range(0, 60, 5) for c, s in ((0, 1), (1, 2), (2, 3))]
    calls += [call(4, 2, H + 10 * M, requests=7, errors=7)]
    return [Batch("base", SERVICES, calls)]


def agree(store: LadybugStore) -> None:
    ids = [s.id for s in SERVICES] + [NEW.id, "process:h/ghost"]
    for window in WINDOWS:
        for direction in Direction:
            for root in ids[:-1]:
                assert walk(store, root, direction, 5, window) == read_walk(
                    store, root, direction, 5, window), (root, direction, window)
        cached, read = health(store, ids, window), read_health(store, ids, window)
        assert cached.keys() == read.keys(), window
        for sid, state in read.items():
            got = cached[sid]
            assert (got.requests, got.errors, got.hist) == (state.requests, state.errors,
                                                             state.hist), (sid, window)
            assert got.latency_sum_ms == pytest.approx(state.latency_sum_ms)
        for root in ids[:-2]:  # each dependent as its health read from the store says
            try:
                found = blast_radius(store, root, window)
            except UnknownService:  # deleted by the retention job: both ways
                assert root not in services_by_id(store, [root])
                continue
            for dependent in found.dependents:
                state = read.get(dependent.service.id, EMPTY)
                assert (dependent.requests, dependent.error_rate, dependent.p99_ms,
                        dependent.degraded) == (state.requests, state.error_rate,
                                                state.quantile(0.99),
                                                state.degraded(Thresholds())), (root, window)


def warm(store: LadybugStore) -> None:
    for window in WINDOWS:
        for service in SERVICES:
            blast_radius(store, service.id, window)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[LadybugStore]:
    settings = Settings.load({}, data_dir=str(tmp_path), minute_retention=2 * HOUR,
                             hour_retention=4 * HOUR)
    found = LadybugStore(settings)
    found.init_schema()
    for batch in base():
        found.apply(batch, now=H + HOUR)
    yield found
    found.close()


# (case, batches applied after the caches were warmed)
WRITES = [
    ("more calls in a cached minute", [[call(0, 1, H + 5 * M, requests=3, errors=3)]]),
    ("a pair seen later", [[call(4, 2, H + 50 * M)]]),
    ("a pair seen earlier (late data)", [[call(0, 1, H - 2 * M)]]),
    ("a new pair between known services", [[call(5, 0, H + 20 * M)]]),
    ("a new pair with a new service", [[call(NEW, 3, H + 30 * M)]]),
    ("a minute with no calls before", [[call(1, 2, H + 7 * M, ms=3000)]]),
    ("several batches", [[call(0, 1, H + 5 * M)], [call(5, 4, H + 4 * HOUR)],
                         [call(2, 3, H + 3 * HOUR + 5 * M, errors=4)]]),
    ("a bucket off the minute grid (the caches step aside)", [[call(0, 1, H + 5 * M + 30)]]),
]


@pytest.mark.parametrize(("case", "batches"), WRITES, ids=[w[0] for w in WRITES])
def test_writes_after_the_caches_were_filled(store: LadybugStore, case, batches) -> None:
    warm(store)
    agree(store)
    for i, calls in enumerate(batches):
        services = [NEW] if any(NEW.id in (c.client, c.server) for c in calls) else []
        assert store.apply(Batch(f"{case}-{i}", services, calls), now=H + 5 * HOUR)
        agree(store)


def test_the_retention_job_folds_minutes_and_deletes_pairs(store: LadybugStore) -> None:
    store.apply(Batch("later", [], [call(0, 1, H + 5 * HOUR), call(5, 4, H + 5 * HOUR)]),
                now=H + 5 * HOUR)
    warm(store)
    agree(store)
    report = store.retention(H + 3 * HOUR + 30)  # minutes of the first hour become an hour
    assert report.rolled_up > 0
    agree(store)
    report = store.retention(H + 6 * HOUR)  # the first hour and its pairs expire
    assert report.deleted_hours > 0 and report.deleted_pairs > 0
    agree(store)


class WriteWhileReading(StoreProxy):
    """Starts a racing write right after the first read of a given statement."""

    def __init__(self, inner: LadybugStore, statement: str, write: RacingWrite) -> None:
        super().__init__(inner)
        self.statement, self.write = statement, write

    def read_arrow(self, statement: Statement,
                   params: Mapping[str, Any] | None = None) -> pa.Table:
        table = self.inner.read_arrow(statement, params)
        if statement.name.startswith(self.statement) and not self.write.started:
            self.write.start()
        return table


RACES = [
    ("pairs load, known pair moves", "all_pairs", [call(4, 2, H + 55 * M)]),
    ("pairs load, new pair", "all_pairs", [call(5, 1, H + 55 * M)]),
    ("health fill, same minute", "health_by_start", [call(0, 1, H + 5 * M, errors=9)]),
    ("health fill, other minute", "health_by_start", [call(2, 3, H + 33 * M, ms=5000)]),
]


@pytest.mark.parametrize(("case", "statement", "calls"), RACES, ids=[r[0] for r in RACES])
def test_a_write_during_a_cache_fill_is_not_lost(
    store: LadybugStore, case, statement, calls
) -> None:
    write = RacingWrite(store, Batch(case, [], calls), H + 5 * HOUR)
    racing = WriteWhileReading(store, statement, write)
    for window in (WINDOWS[0], WINDOWS[-1]):
        blast_radius(racing, SERVICES[3].id, window)
    assert write.finish()  # started while the cache read
    agree(store)


class Counting(StoreProxy):
    def __init__(self, inner: LadybugStore) -> None:
        super().__init__(inner)
        self.reads: list[str] = []

    def read_arrow(self, statement: Statement,
                   params: Mapping[str, Any] | None = None) -> pa.Table:
        self.reads.append(statement.name)
        return self.inner.read_arrow(statement, params)

    @contextmanager
    def snapshot(self) -> Iterator[Reader]:
        self.reads.append("snapshot")  # where the API's FlightStore notes that reading began
        with self.inner.snapshot() as read:
            yield read


BY_NAMES = ["health_by_start_as_server", "health_by_start_as_client"]
# (case, write after a warm blast radius, reads of the next blast radius beyond the
# snapshots). The base data's newest start is H + 55 min: from 3 minutes before it,
# a start's buckets are kept and a write re-reads only the buckets it wrote.
WARM_READS = [
    ("nothing written", None, []),
    ("late calls into an older minute: that minute", [call(1, 2, H + 20 * M)], BY_NAMES),
    ("calls into the newest minute: the buckets written",
     [call(1, 2, H + 55 * M)], ["health_buckets_by_key"]),
    ("calls a minute before the newest: the buckets written",
     [call(0, 1, H + 53 * M, errors=5)], ["health_buckets_by_key"]),
    ("a new series in the newest minute",
     [call(5, 2, H + 55 * M)], ["all_pairs", "health_buckets_by_key"]),
    ("calls into a held minute with none yet",
     [call(2, 3, H + 54 * M)], ["health_buckets_by_key"]),
    ("a batch with services: the services", SERVICES[1], ["all_services"]),
]


@pytest.mark.parametrize(("case", "written", "reads"), WARM_READS, ids=[w[0] for w in WARM_READS])
def test_a_warm_blast_radius_reads_only_what_changed(
    store: LadybugStore, case, written, reads
) -> None:
    counting = Counting(store)
    window = Window(H + 25, H + HOUR + 25)
    blast_radius(counting, SERVICES[3].id, window)
    assert sorted(set(counting.reads)) == sorted([
        "all_pairs", "all_services", "health_buckets", *BY_NAMES, "snapshot"])
    counting.reads.clear()
    if isinstance(written, Service):
        assert store.apply(Batch(case, [written], []), now=H + 2 * HOUR)
    elif written is not None:
        assert store.apply(Batch(case, [], written), now=H + 2 * HOUR)
    blast_radius(counting, SERVICES[3].id, window)
    # reading begins before any answer (walk), then the health's own snapshot
    assert [r for r in counting.reads if r != "snapshot"] == reads
    agree(store)


# (case, calls written into the newest minute while the next blast radius re-reads
# the buckets written before it)
PATCH_RACES = [
    ("the same series again", [call(1, 2, H + 55 * M, errors=3)]),
    ("another series", [call(0, 1, H + 55 * M, ms=900)]),
    ("a minute not held yet", [call(0, 1, H + 56 * M)]),
]


@pytest.mark.parametrize(("case", "calls"), PATCH_RACES, ids=[r[0] for r in PATCH_RACES])
def test_a_write_while_a_start_is_patched_is_not_lost(store: LadybugStore, case, calls) -> None:
    window = Window(H + 25, H + HOUR + 25)
    warm(store)
    assert store.apply(Batch("before", [], [call(1, 2, H + 55 * M)]), now=H + 2 * HOUR)
    write = RacingWrite(store, Batch(case, [], calls), H + 5 * HOUR)
    blast_radius(WriteWhileReading(store, "health_buckets_by_key", write), SERVICES[3].id,
                 window)
    assert write.finish()  # started while the start was re-read
    agree(store)
    blast_radius(store, SERVICES[3].id, window)
    agree(store)


def test_after_a_collision_of_series_ids_health_groups_by_names(
    store: LadybugStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiers.SERIES, "collided", True)
    counting = Counting(store)
    blast_radius(counting, SERVICES[3].id, WINDOWS[0])
    assert "health_buckets" not in counting.reads
    assert {"health_by_start_as_server", "health_by_start_as_client"} <= set(counting.reads)
    agree(store)


def test_series_ids_unknown_to_the_process_are_named_from_the_buckets(
    store: LadybugStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiers, "SERIES", tiers.SeriesNames())  # as a process that did not write
    counting = Counting(store)
    blast_radius(counting, SERVICES[3].id, WINDOWS[0])
    assert "health_buckets" in counting.reads
    assert tiers.SERIES.names and not tiers.SERIES.collided
    agree(store)


def test_stores_without_a_change_log_read_the_store(tmp_path: Path) -> None:
    settings = Settings.load({}, data_dir=str(tmp_path))
    with LadybugStore(settings) as writer:
        writer.init_schema()
        for batch in base():
            writer.apply(batch, now=H + HOUR)
    with LadybugStore(settings, read_only=True) as reader:
        assert changes_of(reader) is None
        window = WINDOWS[0]
        assert walk(reader, SERVICES[3].id, Direction.UPSTREAM, 5, window) == read_walk(
            reader, SERVICES[3].id, Direction.UPSTREAM, 5, window)
        assert blast_radius(reader, SERVICES[3].id, window).total == 4


def test_a_service_written_while_the_services_load_is_seen_next(store: LadybugStore) -> None:
    relabelled = Service(SERVICES[2].id, "s2", "Process", labels={"team": "pay"}, seen=H)
    write = RacingWrite(store, Batch("relabel", [relabelled], []), H + 5 * HOUR)
    blast_radius(WriteWhileReading(store, "all_services", write), SERVICES[3].id, WINDOWS[0])
    assert write.finish()  # started while the services were read
    found = {d.service.id: d.service for d in blast_radius(store, SERVICES[3].id,
                                                           WINDOWS[0]).dependents}
    assert found[SERVICES[2].id] == services_by_id(store, [SERVICES[2].id])[SERVICES[2].id]
    assert found[SERVICES[2].id].labels == ("team=pay",)
