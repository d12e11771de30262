"""The column-wise quantiles give exactly the figures of `histogram.p50_p95_p99`."""

from __future__ import annotations

import gc

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from queries import fold
from queries.service_map import fold_edges, fold_table
from queries.window import Window
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


# rows per (client, server, protocol, path), drawn from few names so that pairs repeat
# rows of one series, carry several protocols and paths, and tie on requests
names = st.sampled_from(["a", "b", "c"])
series_rows = st.lists(
    st.tuples(names, names, st.sampled_from(["http", "grpc"]),
              st.sampled_from(["/x", "/y", "/z", "/é"]), st.integers(0, 5), st.integers(0, 3),
              st.lists(st.integers(0, 4), min_size=histogram.BIN_COUNT,
                       max_size=histogram.BIN_COUNT)),
    min_size=1, max_size=25)


def _rows(drawn: list[tuple]) -> list[dict]:
    return [{"client": c, "server": s, "protocol": p, "path": path, "requests": r,
             "errors": min(e, r), "latency": float(r), **dict(zip(fold.HIST, h, strict=True))}
            for c, s, p, path, r, e, h in drawn]


@settings(max_examples=300, deadline=None)
@given(series_rows, st.integers(1, 3), st.sampled_from(["one row", "one series", "any"]))
def test_fold_table_equals_the_row_fold(drawn: list[tuple], top: int, shape: str) -> None:
    """Every branch of `fold.pairs` (one row per pair, one series per pair in several
    rows, several series) gives the edges of the row-by-row `fold_edges`, exactly."""
    if shape != "any":  # one row per pair: the first one drawn
        drawn = list({(row[0], row[1]): row for row in reversed(drawn)}.values())
    if shape == "one series":  # each in two rows (e.g. edge buckets and tiers)
        drawn = drawn + [(*row[:4], 1, 0, row[6]) for row in drawn]
    rows = _rows(drawn)
    window = Window(0, 60)
    table = pa.Table.from_pylist(rows)
    assert fold_table(table, window, top) == fold_edges(rows, window, top)


def test_fold_table_of_nothing_is_empty() -> None:
    assert fold_table(None, Window(0, 60)) == ()


def test_overlapping_pauses_restore_the_collector_once_the_last_one_leaves() -> None:
    assert gc.isenabled()
    first, second = fold.no_collection(), fold.no_collection()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the second block still builds its objects
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_pause_leaves_a_collector_that_was_off_off() -> None:
    gc.disable()
    try:
        with fold.no_collection():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
