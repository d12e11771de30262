"""Bucket reads by series id: the histogram summed packed, re-read bin by bin when it
could carry, equal to the same read grouped by the names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from queries.compiler import compile_filter
from queries.service_map import map_table
from queries.window import Window
from topology import histogram
from topology.model import Batch, CallBucket, Service
from topology.settings import Settings
from topology.store import tiers
from topology.store.ladybug_store import LadybugStore

H = 1_763_712_000
LIMIT = tiers.PACK_LIMIT
CLIENT, SERVER = "process:h/a", "process:h/b"

# (case, the histogram of each of two one-minute buckets of one series)
HISTOGRAMS = [
    ("small counts", [{0: 3, 1: 4, 25: 1}, {0: 2, 24: 7}]),
    ("total just under the packing limit", [{0: LIMIT // 2, 1: 10}, {0: LIMIT // 2 - 11}]),
    ("low bins summing past 31 bits", [{0: LIMIT - 5, 2: 9}, {0: 7, 1: 3}]),
    ("high bins summing past 31 bits", [{1: LIMIT - 1}, {1: 2, 25: LIMIT}]),
]


@pytest.fixture
def store(tmp_path) -> Iterator[LadybugStore]:
    opened = LadybugStore(Settings.load({}, data_dir=str(tmp_path)))
    opened.init_schema()
    yield opened
    opened.close()


def bucket(minute: int, bins: dict[int, int]) -> CallBucket:
    hist = histogram.empty()
    for index, count in bins.items():
        hist[index] = count
    return CallBucket(CLIENT, SERVER, H + 60 * minute, 60, "http", "GET", "/x",
                      sum(hist), 1, 2.5, hist)


@pytest.mark.parametrize(("case", "histograms"), HISTOGRAMS, ids=[h[0] for h in HISTOGRAMS])
def test_bucket_sums_by_series_equal_the_sums_by_names(store, registry, case, histograms):
    services = [Service(CLIENT, "a", "Process", seen=H), Service(SERVER, "b", "Process", seen=H)]
    store.apply(Batch("b", services, [bucket(m, bins) for m, bins in enumerate(histograms)]),
                now=H + 120)
    window, compiled = Window(H, H + 600), compile_filter("")
    by_series = map_table(store, compiled, window)
    registry.collided = True
    by_names = map_table(store, compiled, window)
    expected = [sum(h.get(i, 0) for h in histograms) for i in range(histogram.BIN_COUNT)]
    assert by_series is not None and by_series.num_rows == 1
    assert by_names is not None and by_names.num_rows == 1
    row = by_series.to_pylist()[0]
    assert [row[f"h{i}"] for i in range(histogram.BIN_COUNT)] == expected
    assert row == by_names.to_pylist()[0]
