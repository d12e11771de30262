"""Column-wise arithmetic of the answers gives Python's own floats."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from topology.api.graphql.build import ratio

COUNTS = st.integers(0, 2**53)


@given(st.lists(st.tuples(COUNTS, COUNTS), max_size=50))
def test_ratio_is_python_division(pairs: list[tuple[int, int]]) -> None:
    parts = pa.chunked_array([[p for p, _ in pairs]], pa.int64())
    wholes = pa.chunked_array([[w for _, w in pairs]], pa.int64())
    assert ratio(parts, wholes).to_pylist() == [p / w if w else 0.0 for p, w in pairs]
