"""A GraphStore that times its writes, for /metrics' store write latency.

Wraps the serving process's store for its Ingestor only: writes (`apply` goes
through `apply_many`) are timed into a histogram, everything else is passed
through unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from prometheus_client import Histogram

from topology.model import Batch
from topology.store.base import GraphStore
from topology.store.proxy import StoreProxy


class TimedStore(StoreProxy):
    def __init__(self, inner: GraphStore, latency: Histogram) -> None:
        super().__init__(inner)
        self.latency = latency

    def apply_many(self, batches: Sequence[Batch], *, now: int | None = None) -> list[bool]:
        started = time.perf_counter()
        try:
            return self.inner.apply_many(batches, now=now)
        finally:
            self.latency.observe(time.perf_counter() - started)
