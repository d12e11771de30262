"""The map read from units held in memory equals the map read from the store, after
every kind of write: calls in a held minute, a new minute, a new series, late data
inside a tier block, the tiers rolled on, services relabelled (for a filter that
reads labels), the retention job folding minutes into hours, and writes that land
while units are being read. And a warm map reads only the units a write touched.

The reference is the row-wise read (`map_rows`, `fold_edges`): one grouped read of
the buckets and tier rows, folded in Python, with no cache on the way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from queries import window_cache
from queries.compiler import compile_filter
from queries.service_map import fold_edges, map_rows, map_table, service_map
from queries.tiering import plan
from queries.window import Window
from queries.window_cache import Unit
from tests.queries.racing import RacingWrite
from topology.model import Batch, CallBucket, Service
from topology.settings import Settings
from topology.store.changes import changes_of
from topology.store.ladybug_store import LadybugStore
from topology.store.proxy import StoreProxy
from topology.store.statement import Statement
from topology.store.tiers import TierRange

H = 1_763_712_000  # an hour boundary
M = 60
HOUR = 3600
NOW = H + 2 * HOUR + 7 * M + 35  # unaligned: the last hour starts inside a tier block
SERVICES = [Service(f"process:h/s{i}", f"s{i}", "Process", labels={"team": f"t{i % 2}"},
                    seen=H) for i in range(5)]
WINDOWS = [Window.last(HOUR, NOW), Window.last(HOUR, NOW - 95),
           Window(H + HOUR, H + 2 * HOUR), Window.last(15 * M, NOW)]
FILTERS = ["", "client.label.team = t0", "server.service.name = s2 or path = /b",
           "status >= 500"]


def call(client: int, server: int, start: int, requests: int = 4, errors: int = 0,
         ms: float = 20.0, path: str = "/a") -> CallBucket:
    bucket = CallBucket(SERVICES[client].id, SERVICES[server].id, start, M, "http", "GET",
                        path)
    for i in range(requests):
        bucket.record(ms * (1 + i), error=i < errors, status=500 if i < errors else 200)
    return bucket


def base() -> list[CallBucket]:
    """s0 -> s1 -> s2 -> s3 every minute of two hours, s4 -> s2 on /b every 7 minutes."""
    calls = [call(c, s, H + m * M, requests=1 + m % 5, errors=m % 3, ms=5.0 + m)
             for m in range(0, 128) for c, s in ((0, 1), (1, 2), (2, 3))]
    return calls + [call(4, 2, H + m * M, path="/b") for m in range(0, 128, 7)]


def answers(store: LadybugStore, window: Window, text: str) -> tuple[Any, Any]:
    """The map read through the units, and the row-wise reference read."""
    cached = service_map(store, window, text)
    reference = fold_edges(map_rows(store, compile_filter(text), window), window)
    return cached, reference


def agree(store: LadybugStore) -> None:
    for window in WINDOWS:
        for text in FILTERS:
            cached, reference = answers(store, window, text)
            figures = [(e.client, e.server, e.requests, e.errors, e.p50_ms, e.p95_ms,
                        e.p99_ms, e.protocols, e.top_paths) for e in cached.edges]
            assert figures == [(e.client, e.server, e.requests, e.errors, e.p50_ms,
                                e.p95_ms, e.p99_ms, e.protocols, e.top_paths)
                               for e in reference], (window, text)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[LadybugStore]:
    settings = Settings.load({}, data_dir=str(tmp_path), minute_retention=3 * HOUR,
                             hour_retention=6 * HOUR)
    found = LadybugStore(settings)
    found.init_schema()
    assert found.apply(Batch("base", SERVICES, base()), now=NOW)
    assert found.retention(NOW).tiered > 0
    yield found
    found.close()


def test_a_map_of_a_tiered_window_is_read_from_units(store: LadybugStore) -> None:
    agree(store)
    cache = changes_of(store).cache("map_units", lambda: None)
    assert isinstance(cache, window_cache.UnitCache) and cache.rows > 0


RELABELLED = Service(SERVICES[2].id, "s2", "Process", labels={"team": "t1"}, seen=H)
# (case, batches written after the units were filled, as (services, calls))
WRITES = [
    ("more calls in a held minute", [([], [call(0, 1, H + 2 * HOUR + 5 * M, errors=4)])]),
    ("calls in a new minute", [([], [call(1, 2, H + 2 * HOUR + 7 * M, ms=900.0)])]),
    ("a new series", [([], [call(3, 4, H + 2 * HOUR + 6 * M, path="/c")])]),
    ("late data inside a tier block", [([], [call(2, 3, H + HOUR + 31 * M, requests=9)])]),
    ("late data inside a block, a new series", [([], [call(4, 0, H + HOUR + 40 * M)])]),
    ("a service relabelled", [([RELABELLED], [])]),
    ("several batches", [([], [call(0, 1, H + 2 * HOUR)]), ([], [call(4, 2, H + 90 * M)]),
                         ([], [call(1, 2, H + 2 * HOUR + 6 * M, errors=2)])]),
    ("a bucket off the minute grid (the units step aside)",
     [([], [call(0, 1, H + 2 * HOUR + 5 * M + 30)])]),
]


@pytest.mark.parametrize(("case", "batches"), WRITES, ids=[w[0] for w in WRITES])
def test_writes_after_the_units_were_filled(store: LadybugStore, case, batches) -> None:
    agree(store)
    for i, (services, calls) in enumerate(batches):
        assert store.apply(Batch(f"{case}-{i}", services, calls), now=NOW)
        agree(store)


def test_the_tiers_rolled_on_and_minutes_folded_into_hours(store: LadybugStore) -> None:
    agree(store)
    later = [call(0, 1, H + 2 * HOUR + m * M) for m in range(8, 20)]
    assert store.apply(Batch("later", [], later), now=NOW + 15 * M)
    assert store.retention(NOW + 15 * M).tiered > 0  # the newest blocks grew
    agree(store)
    report = store.retention(NOW + 2 * HOUR)  # the first hour's minutes become an hour
    assert report.rolled_up > 0
    agree(store)


class Counting(StoreProxy):
    """Names the statements read, and can start a racing write right after the first
    read of a statement returned."""

    def __init__(self, inner: LadybugStore,
                 racing: tuple[str, RacingWrite] | None = None) -> None:
        super().__init__(inner)
        self.reads: list[str] = []
        self.racing = racing

    def read_arrow(self, statement: Statement,
                   params: Mapping[str, Any] | None = None) -> pa.Table:
        self.reads.append(statement.name)
        table = self.inner.read_arrow(statement, params)
        if self.racing is not None and statement.name.startswith(self.racing[0]):
            write, self.racing = self.racing[1], None
            write.start()
        return table


PER_START = "service_map_by_series_packed_per_start"
PER_START_EDGES = "service_map_edges_by_series_packed_per_start"
PER_BLOCK = "service_map_tiers_by_series_per_block"
# (case, calls written after a warm map, statements the next map reads)
WARM_READS = [
    ("nothing written", [], []),
    ("calls in the newest minute: that minute", [call(0, 1, H + 2 * HOUR + 7 * M)],
     [PER_START]),
    ("calls in the newest block: that block", [call(0, 1, H + 2 * HOUR + 6 * M)],
     [PER_BLOCK]),
    ("calls in the first minute of the window and the newest: both, one statement",
     [call(0, 1, H + HOUR + 8 * M), call(1, 2, H + 2 * HOUR + 7 * M)], [PER_START_EDGES]),
    ("late calls inside a tier block: that block", [call(2, 3, H + HOUR + 40 * M)],
     [PER_BLOCK]),
    ("calls before the window: nothing", [call(2, 3, H + 20 * M)], []),
]


@pytest.mark.parametrize(("case", "calls", "reads"), WARM_READS, ids=[w[0] for w in WARM_READS])
def test_a_warm_map_reads_only_what_changed(store: LadybugStore, case, calls, reads) -> None:
    counting = Counting(store)
    window = Window.last(HOUR, NOW)
    service_map(counting, window)
    assert set(counting.reads) == {PER_START_EDGES, PER_BLOCK, "all_services"}
    counting.reads.clear()
    if calls:
        assert store.apply(Batch(case, [], calls), now=NOW)
    service_map(counting, window)
    assert counting.reads == reads
    agree(store)


RACES = [
    ("minutes read, a held minute written", PER_START_EDGES,
     [call(0, 1, H + 2 * HOUR + 7 * M, errors=3)]),
    ("blocks read, a block written", PER_BLOCK, [call(1, 2, H + HOUR + 45 * M, ms=3000.0)]),
]


@pytest.mark.parametrize(("case", "statement", "calls"), RACES, ids=[r[0] for r in RACES])
def test_a_write_while_units_are_read_is_not_lost(
    store: LadybugStore, case, statement, calls
) -> None:
    write = RacingWrite(store, Batch(case, [], calls), NOW)
    service_map(Counting(store, (statement, write)), Window.last(HOUR, NOW))
    assert write.finish()  # started while the units were read
    agree(store)


def test_least_recently_used_units_are_dropped_past_the_budget(store: LadybugStore) -> None:
    service_map(store, WINDOWS[0])
    cache = changes_of(store).cache("map_units", lambda: None)
    held = cache.rows
    cache.budget = held
    service_map(store, WINDOWS[0], "server.service.name = s2")  # other units, same count
    assert 0 < cache.rows <= held
    agree(store)


LOW, HIGH = H - 1800, H + 2 * HOUR + 7 * M
# (case, window, tiers' low, expected units)
UNITS = [
    ("unaligned last hour: the edges' minutes and the blocks between",
     Window.last(HOUR, NOW), LOW,
     [Unit(0, H + HOUR + 8 * M, H + HOUR + 9 * M), Unit(0, H + HOUR + 9 * M, H + HOUR + 10 * M),
      Unit(0, HIGH, HIGH + M),
      *(Unit(300, H + HOUR + m * M, H + HOUR + (m + 5) * M) for m in (10, 15, 20, 25)),
      Unit(1800, H + HOUR + 30 * M, H + 2 * HOUR), Unit(1800, H + 2 * HOUR, HIGH)]),
    ("a window before the tiers holding more starts than allowed",
     Window(H, H + (window_cache.MAX_STARTS + 1) * M), H + 2 * HOUR, None),
    ("a window before the tiers, as many starts as allowed",
     Window(H + 1, H + window_cache.MAX_STARTS * M + 1), H + 2 * HOUR,
     [Unit(0, H + m * M, H + (m + 1) * M) for m in range(1, window_cache.MAX_STARTS + 1)]),
]


@pytest.mark.parametrize(("case", "window", "low", "expected"), UNITS, ids=[u[0] for u in UNITS])
def test_units_of_a_window(case, window, low, expected) -> None:
    tier_range = TierRange(low, HIGH, (300, 1800))
    assert window_cache.units(plan(window, tier_range), tier_range, M) == expected


def test_windows_of_a_filter_on_bucket_counters_are_read_by_minute(store: LadybugStore) -> None:
    """`status` and `error` are per bucket: no tiers, minute units when few enough."""
    counting = Counting(store)
    for window in (Window.last(15 * M, NOW), Window.last(HOUR, NOW)):
        counting.reads.clear()
        service_map(counting, window, "error = true")
        per_start = [r for r in counting.reads if r.endswith("per_start")]
        assert len(per_start) == (1 if window.seconds <= window_cache.MAX_STARTS * M else 0)
    agree(store)


def test_a_repeated_map_over_the_same_held_units_is_their_kept_sum(store: LadybugStore) -> None:
    window, compiled = Window.last(HOUR, NOW), compile_filter("")
    first = map_table(store, compiled, window)
    assert map_table(store, compiled, window) is first
    assert store.apply(Batch("newest", [], [call(0, 1, H + 2 * HOUR + 7 * M)]), now=NOW)
    assert map_table(store, compiled, window) is not first
    agree(store)
