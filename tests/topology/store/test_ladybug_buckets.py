"""Row sets of the additive bucket update: flags (a byte per row) and bits (an int)."""

from __future__ import annotations

import pytest

from topology.store.ladybug_buckets import _bits, _flags


@pytest.mark.parametrize(("column", "bits"), [
    ([], 0),
    ([0, 0, 0], 0),
    ([5, 0, 0], 0b001),
    ([0, 0, 2.5], 0b100),
    ([1, 0, 3, 0, 0, 0, 0, 0, 9], 0b100000101),  # more than a byte of rows
    ([0.0, -1, 0], 0b010),
])
def test_non_zero_rows_become_bits_and_back(column: list[float], bits: int) -> None:
    flags = bytes(map(bool, column))
    assert _bits(flags) == bits
    assert _flags(bits, len(column)) == flags
