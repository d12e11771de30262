"""The API's store wrappers pass the tier reads through to the store they wrap.

Without that, every map read through them would fall back to scanning every
minute bucket of the window: the same answers, but none of the tiers' speed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry, Histogram

from queries.service_map import service_map
from queries.window import Window
from topology.api.graphql.flights import Flight, FlightStore
from topology.api.timed_store import TimedStore
from topology.model import Batch, CallBucket, Service
from topology.store.base import GraphStore

T0 = 1_763_712_000  # an hour boundary
A, B = (Service(f"process:h/{n}", n, "Process", seen=T0) for n in "ab")


def _timed(store: GraphStore) -> GraphStore:
    return TimedStore(store, Histogram("write_seconds", "", registry=CollectorRegistry()))


def _flight(store: GraphStore) -> GraphStore:
    return FlightStore(store, Flight(now=float(T0), generation=None))


@pytest.mark.parametrize("wrap", [_timed, _flight], ids=["timed", "flight"])
def test_tier_reads_pass_through(embedded_store: GraphStore,
                                 wrap: Callable[[GraphStore], GraphStore]) -> None:
    buckets = []
    for minute in range(40):
        bucket = CallBucket(A.id, B.id, T0 + 60 * minute, 60, "http", "GET", "/x")
        bucket.record(10.0 + minute, error=minute % 7 == 0, status=200)
        buckets.append(bucket)
    embedded_store.apply(Batch("load", [A, B], buckets), now=T0 + 40 * 60)
    embedded_store.retention(T0 + 40 * 60)
    wrapped = wrap(embedded_store)

    found = wrapped.tier_range()
    assert found is not None and found == embedded_store.tier_range()
    window = Window(T0 + 90, T0 + 39 * 60 + 30)  # unaligned: edges from buckets, middle from tiers
    assert service_map(wrapped, window) == service_map(embedded_store, window)
    with wrapped.snapshot() as read:
        assert read is not None
