"""The row twins carry exactly the fields of the output types they stand for."""

from __future__ import annotations

import dataclasses

import pytest

from topology.api.graphql import rows
from topology.api.graphql import types as t

TWINS = [(rows.StatsRow, t.TrafficStats), (rows.PathRow, t.PathCount),
         (rows.PointRow, t.SeriesPoint), (rows.EdgeRow, t.Edge)]


@pytest.mark.parametrize(("row", "typed"), TWINS, ids=[typed.__name__ for _, typed in TWINS])
def test_row_has_the_fields_of_its_type(row: type, typed: type) -> None:
    assert row._fields == tuple(f.name for f in dataclasses.fields(typed))
