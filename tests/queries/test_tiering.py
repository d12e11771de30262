"""Window decomposition: the plan, and answers through tiers equal answers from buckets.

Two real embedded stores get the same batches; one also runs the retention job
(which rolls buckets into the tiers) between them, the way the serving process
does, including late data into ranges it already rolled. Every named traffic
query must answer exactly the same on both, for aligned and unaligned windows.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from queries.compiler import compile_filter
from queries.diff import window_diff
from queries.external import external_dependencies
from queries.service_map import fold_edges, map_rows, service_detail, service_map
from queries.tiering import Plan, plan
from queries.traversal import blast_radius
from queries.window import Window
from topology.model import KIND_EXTERNAL_SERVICE, Batch, CallBucket, Service, external_id
from topology.settings import Settings
from topology.store.ladybug_store import LadybugStore
from topology.store.tiers import TierRange

H = 1_763_712_000  # an hour boundary
M = 60
LEVELS = (300, 1800)

PLANS = [
    ("no tiers", Window(H, H + 3600), None, Plan(((H, H + 3600),), ())),
    ("window before the tiers", Window(H, H + 600), TierRange(H + 1800, H + 3600, LEVELS),
     Plan(((H, H + 600),), ())),
    ("aligned hour inside the tiers", Window(H, H + 3600), TierRange(H, H + 7200, LEVELS),
     Plan((), ((1800, H, H + 3600),))),
    ("unaligned last hour, partial newest block", Window(H + 395, H + 3995),
     TierRange(H - 1800, H + 3840, LEVELS),
     Plan(((H + 395, H + 600), (H + 3840, H + 3995)),
          ((300, H + 600, H + 1800), (1800, H + 1800, H + 5400)))),
    ("window ending before the watermark", Window(H + 30, H + 1190),
     TierRange(H, H + 3600, LEVELS),
     Plan(((H + 30, H + 300), (H + 900, H + 1190)), ((300, H + 300, H + 900),))),
    ("too short for a block", Window(H + 60, H + 240), TierRange(H, H + 3600, LEVELS),
     Plan(((H + 60, H + 240),), ())),
    ("only the partial newest block", Window(H + 3600, H + 3700),
     TierRange(H, H + 3660, LEVELS), Plan(((H + 3660, H + 3700),), ((1800, H + 3600, H + 5400),))),
]


@pytest.mark.parametrize(("case", "window", "tiers", "expected"), PLANS,
                         ids=[p[0] for p in PLANS])
def test_plan(case, window, tiers, expected) -> None:
    assert plan(window, tiers) == expected


SERVICES = [Service(f"process:h/s{i}", f"s{i}", "Process", namespace=f"ns{i % 2}", seen=H)
            for i in range(6)]
STRIPE = Service(external_id("api.stripe.com"), "api.stripe.com", KIND_EXTERNAL_SERVICE, seen=H)
ALL = [*SERVICES, STRIPE]


def minute_batch(minute: int, rng: random.Random, tag: str) -> Batch:
    buckets = []
    for client in range(5):
        for server in (client + 1, client + 2):
            if server >= len(SERVICES) or rng.random() < 0.2:
                continue
            path = rng.choice(["/a", "/b", "/c/{id}"])
            bucket = CallBucket(SERVICES[client].id, SERVICES[server].id, H + minute * M, M,
                                rng.choice(["http", "grpc"]), "GET", path)
            for _ in range(rng.randrange(1, 20)):
                bucket.record(rng.choice([0.3, 4.0, 30.0, 200.0, 1700.0]),
                              error=rng.random() < 0.1, status=200)
            buckets.append(bucket)
    stripe = CallBucket(SERVICES[1].id, STRIPE.id, H + minute * M, M, "http", "POST", "/v1",
                        naming=rng.choice(["host", "dns"]))
    stripe.record(rng.choice([50.0, 400.0]), error=rng.random() < 0.3, status=200)
    buckets.append(stripe)
    return Batch(f"{tag}-{minute}", ALL if minute == 0 else [], buckets)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LadybugStore, ...]]:
    opened = []
    for name in ("buckets", "tiers"):
        store = LadybugStore(Settings.load({}, data_dir=str(tmp_path_factory.mktemp(name))))
        store.init_schema()
        opened.append(store)
    plain, tiered = opened
    rng = random.Random(5)
    batches = [(minute_batch(m, rng, "on-time"), H + (m + 1) * M) for m in range(130)]
    late = [(minute_batch(m, rng, "late"), H + 131 * M) for m in (3, 47, 70, 128)]
    for store in opened:
        for number, (batch, now) in enumerate(batches):
            store.apply(batch, now=now)
            if store is tiered and number % 5 == 2:
                store.retention(now + 17)
        for batch, now in late:
            store.apply(batch, now=now)
    tiered.retention(H + 131 * M - 100)
    assert plain.tier_range() is None and tiered.tier_range() is not None
    yield plain, tiered
    for store in opened:
        store.close()


WINDOWS = [Window(H, H + 3600), Window.last(3600, H + 130 * M + 25),
           Window.last(300, H + 129 * M + 5), Window(H + 61, H + 7777), Window(H + 1805, H + 1930),
           Window(H - 500, H + 8000), Window(H + 3599, H + 3601)]
FILTERS = ["", "server.namespace = ns1", "path = /a or protocol = grpc", "error = true"]


@pytest.mark.parametrize("window", WINDOWS, ids=str)
@pytest.mark.parametrize("filter_text", FILTERS)
def test_the_map_through_tiers_equals_the_map_from_buckets(stores, window, filter_text) -> None:
    plain, tiered = stores
    assert service_map(tiered, window, filter_text) == service_map(plain, window, filter_text)


@pytest.mark.parametrize("window", WINDOWS, ids=str)
def test_other_traffic_queries_through_tiers_equal_buckets(stores, window) -> None:
    plain, tiered = stores
    assert external_dependencies(tiered, window) == external_dependencies(plain, window)
    root = SERVICES[4].id
    assert blast_radius(tiered, root, window) == blast_radius(plain, root, window)
    assert (service_detail(tiered, SERVICES[2].id, window)
            == service_detail(plain, SERVICES[2].id, window))
    before = Window(window.since - 1800, window.until - 1800)
    assert window_diff(tiered, before, window) == window_diff(plain, before, window)


def test_the_tiered_store_reads_tier_rows_for_a_long_window(stores) -> None:
    _, tiered = stores
    found = plan(Window.last(3600, H + 130 * M + 25), tiered.tier_range())
    assert found.blocks and sum(b - a for a, b in found.ranges) < 1200


def test_names_of_series_unknown_to_the_process_are_read_from_the_tiers(stores, registry):
    plain, tiered = stores
    window = Window.last(3600, H + 130 * M + 25)
    registry.names.clear()
    assert service_map(tiered, window) == service_map(plain, window)
    assert registry.names and not registry.collided


def test_a_collision_of_series_ids_falls_back_to_grouping_by_names(stores, registry):
    plain, tiered = stores
    window = Window.last(3600, H + 130 * M + 25)
    row = map_rows(plain, compile_filter(""), window)[0]
    sid = registry.id(row["client"], row["server"], row["protocol"], row["path"])
    registry.names = {sid: ("x", "y", "z", "/w")}
    assert service_map(tiered, window) == service_map(plain, window)
    assert registry.collided


@pytest.mark.parametrize("window", WINDOWS[:3], ids=str)
def test_map_rows_for_other_folds_give_the_same_edges(stores, window) -> None:
    """`map_rows` (dict rows, several per group) is what other folds (the API) can read."""
    plain, tiered = stores
    rows = map_rows(tiered, compile_filter("server.namespace = ns0"), window)
    assert fold_edges(rows, window) == service_map(plain, window, "server.namespace = ns0").edges
