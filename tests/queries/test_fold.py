"""The column-wise quantiles give exactly the figures of `histogram.p50_p95_p99`."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from queries import fold
from topology import histogram
from topology.store import tiers

counts = st.one_of(st.integers(0, 3), st.integers(0, 10**6), st.integers(0, 2**31 - 1))
hists = st.lists(st.lists(counts, min_size=histogram.BIN_COUNT, max_size=histogram.BIN_COUNT),
                 min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(hists)
def test_quantiles_equal_the_scalar_estimate(rows: list[list[int]]) -> None:
    table = pa.table({name: [row[i] for row in rows] for i, name in enumerate(fold.HIST)})
    got = list(zip(*fold.quantiles(table), strict=True))
    assert got == [histogram.p50_p95_p99(row) for row in rows]


@given(hists)
def test_unpack_restores_packed_histograms(rows: list[list[int]]) -> None:
    packed = [tiers.pack(row) for row in rows]
    table = pa.table({"total": [sum(r) for r in rows],
                      **{f"b{i}": [p[i] for p in packed] for i in range(tiers.PACKED)}})
    unpacked = fold.unpack(table)
    assert unpacked.column_names == list(fold.HIST)
    assert [[unpacked.column(n)[j].as_py() for n in fold.HIST] for j in range(len(rows))] == rows
