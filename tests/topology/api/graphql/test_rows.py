"""The row twins carry exactly the fields of the output types they stand for; column-held
lists give Python lists to whoever iterates them, whatever holds their columns."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from topology.api.graphql import rows
from topology.api.graphql import types as t

TWINS = [(rows.StatsRow, t.TrafficStats), (rows.PathRow, t.PathCount),
         (rows.PointRow, t.SeriesPoint), (rows.EdgeRow, t.Edge)]


@pytest.mark.parametrize(("row", "typed"), TWINS, ids=[typed.__name__ for _, typed in TWINS])
def test_row_has_the_fields_of_its_type(row: type, typed: type) -> None:
    assert row._fields == tuple(f.name for f in dataclasses.fields(typed))


HELD = [
    ("list", [1, None, 3], [1, None, 3]),
    ("Arrow array", pa.array([1, None, 3]), [1, None, 3]),
    ("chunked Arrow lists", pa.chunked_array([[["a"]], [[], ["b", "c"]]]), [["a"], [], ["b", "c"]]),
    ("coded members", rows.Coded(pa.chunked_array([[1, 0], [1]]), ("x", "y")), ["y", "x", "y"]),
    ("computed when asked", lambda: pa.array(["s", "t", "u"]), ["s", "t", "u"]),
]


@pytest.mark.parametrize(("held", "listed"), [c[1:] for c in HELD], ids=[c[0] for c in HELD])
def test_columns_give_lists_and_keep_what_they_hold(held: object, listed: list) -> None:
    columns = rows.Columns(3, {"a": held}, lambda c: list(c.column("a")))
    assert columns.column("a") == listed
    assert list(columns) == listed
    kept = columns.raw("a")
    assert kept is held or (callable(held) and isinstance(kept, pa.Array))
