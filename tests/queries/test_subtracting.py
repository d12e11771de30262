"""Head-subtracting window plans: chosen only when they read fewer rows, and exact.

A series whose calls all precede the window's start inside the block that covers
it sums to zero there: it must not become an edge.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from queries import series_window, subtracting
from queries.service_map import service_map
from queries.tiering import Plan, plan
from queries.window import Window
from topology.model import Batch, CallBucket, Service
from topology.settings import Settings
from topology.store.ladybug_store import LadybugStore
from topology.store.tiers import TierRange

H = 1_763_712_000  # an hour boundary
M = 60
LEVELS = (300, 1800)
COVERED = TierRange(H - 1800, H + 3840, LEVELS)

SPLITS = [
    ("no tiers", Window(H + 395, H + 3995), None, None),
    ("aligned window: nothing to subtract", Window(H, H + 3600), COVERED, None),
    ("unaligned last hour: the 30-minute block minus 6.5 minutes",
     Window(H + 395, H + 3995), COVERED,
     subtracting.Split(Plan(((H + 3840, H + 3995),), ((1800, H, H + 5400),)),
                       Plan(((H + 300, H + 395),), ((300, H, H + 300),)))),
    ("start early in a 5-minute block: that block minus its first minute",
     Window(H + 1550, H + 3750), COVERED,
     subtracting.Split(Plan(((H + 3600, H + 3750),), ((300, H + 1500, H + 1800),
                                                      (1800, H + 1800, H + 3600))),
                       Plan(((H + 1500, H + 1550),), ()))),
    ("start just before a block boundary: nothing cheaper", Window(H + 3550, H + 3990),
     COVERED, None),
    ("block before the covered range", Window(H - 1700, H + 3750),
     TierRange(H - 1500, H + 3840, LEVELS), None),
]


@pytest.mark.parametrize(("case", "window", "tiers", "expected"), SPLITS,
                         ids=[s[0] for s in SPLITS])
def test_split(case, window, tiers, expected) -> None:
    found = subtracting.split(window, tiers)
    assert found == expected
    if found is not None:
        assert subtracting.rows(found.plus) + subtracting.rows(found.minus) < subtracting.rows(
            plan(window, tiers))


SERVICES = [Service(f"process:h/s{i}", f"s{i}", "Process", seen=H) for i in range(4)]


def bucket(client: int, server: int, minute: int, path: str = "/a") -> CallBucket:
    row = CallBucket(SERVICES[client].id, SERVICES[server].id, H + minute * M, M, "http",
                     "GET", path)
    for k in range(minute % 4 + 1):
        row.record(0.5 + 40.0 * k, error=k == 2, status=200)
    return row


# (case, buckets as (client, server, minute, path)): the window starts at minute 36:30
SERIES = [
    ("only before the start", [(0, 1, 31, "/a"), (0, 1, 35, "/a")]),
    ("before and inside", [(0, 1, 33, "/a"), (0, 1, 37, "/a"), (0, 1, 50, "/a")]),
    ("one path only before the start", [(1, 2, 34, "/old"), (1, 2, 40, "/new")]),
    ("inside only", [(2, 3, 45, "/a"), (2, 3, 58, "/b")]),
]


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LadybugStore, ...]]:
    opened = []
    for name in ("buckets", "tiers"):
        store = LadybugStore(Settings.load({}, data_dir=str(tmp_path_factory.mktemp(name))))
        store.init_schema()
        store.apply(Batch(f"{name}-all", SERVICES, [
            bucket(c, s, m, p) for _, rows in SERIES for c, s, m, p in rows]), now=H + 60 * M)
        opened.append(store)
    opened[1].retention(H + 60 * M + 30)
    yield tuple(opened)
    for store in opened:
        store.close()


# the window's end at the covered range's (no buckets read at the end), or after it (the
# buckets before the start and at the end read by one statement)
ENDS = [H + 60 * M, H + 62 * M + 10]


@pytest.mark.parametrize("until", ENDS)
def test_series_before_the_start_are_not_edges_and_the_rest_is_exact(stores, until) -> None:
    plain, tiered = stores
    window = Window(H + 36 * M + 30, until)
    found = subtracting.split(window, tiered.tier_range())
    assert found is not None and found.minus.ranges
    assert bool(found.plus.ranges) == (until > tiered.tier_range().high)
    found = service_map(tiered, window)
    assert found == service_map(plain, window)
    assert {(e.client, e.server) for e in found.edges} == {
        (SERVICES[0].id, SERVICES[1].id), (SERVICES[1].id, SERVICES[2].id),
        (SERVICES[2].id, SERVICES[3].id)}
    paths = {e.client: [p.path for p in e.top_paths] for e in found.edges}
    assert paths[SERVICES[1].id] == ["/new"]


# (case, plus blocks, minus blocks, whether they share a tier row)
OVERLAPS = [
    ("different widths at one start", ((1800, H, H + 5400),), ((300, H, H + 300),), False),
    ("same width, disjoint starts", ((300, H + 300, H + 1800),), ((300, H, H + 300),), False),
    ("same width, one shared block", ((300, H, H + 1800),), ((300, H, H + 600),), True),
]


@pytest.mark.parametrize(("case", "plus", "minus", "expected"), OVERLAPS,
                         ids=[o[0] for o in OVERLAPS])
def test_tier_reads_are_merged_only_without_a_shared_row(case, plus, minus, expected) -> None:
    assert series_window._overlap(plus, minus) is expected
