"""Cycle collection stays paused until the last pause ends, and is never turned on
by a pause when it was off before."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from topology.api.graphql.gc_pause import collection_paused


@pytest.fixture
def restore_gc() -> Iterator[None]:
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


@pytest.mark.parametrize("enabled", [True, False], ids=["on before", "off before"])
def test_overlapping_pauses(restore_gc: None, enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    first, second = collection_paused(), collection_paused()
    first.__enter__()
    second.__enter__()
    assert not gc.isenabled()
    first.__exit__(None, None, None)  # not the last one: still paused
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled() is enabled


def test_an_error_inside_ends_the_pause(restore_gc: None) -> None:
    gc.enable()
    with pytest.raises(ValueError), collection_paused():
        raise ValueError("while building")
    assert gc.isenabled()
