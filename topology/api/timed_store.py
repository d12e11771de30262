"""A GraphStore that times its writes, for /metrics' store write latency.

Wraps the serving process's store for its Ingestor only: `apply` and
`apply_many` are timed into a histogram, everything else is passed through
unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
from prometheus_client import Histogram

from topology.model import Batch
from topology.store.base import GraphStore, Reader, RetentionReport
from topology.store.statement import Statement
from topology.store.tiers import TierRange


class TimedStore(GraphStore):
    def __init__(self, inner: GraphStore, latency: Histogram) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self.latency = latency

    def apply(self, batch: Batch, *, now: int | None = None) -> bool:
        started = time.perf_counter()
        try:
            return self.inner.apply(batch, now=now)
        finally:
            self.latency.observe(time.perf_counter() - started)

    def apply_many(self, batches: Sequence[Batch], *, now: int | None = None) -> list[bool]:
        started = time.perf_counter()
        try:
            return self.inner.apply_many(batches, now=now)
        finally:
            self.latency.observe(time.perf_counter() - started)

    def init_schema(self) -> None:
        self.inner.init_schema()

    def read(self, statement: Statement,
             params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.inner.read(statement, params)

    def read_arrow(self, statement: Statement,
                   params: Mapping[str, Any] | None = None) -> pa.Table:
        return self.inner.read_arrow(statement, params)

    def tier_range(self, read: Reader | None = None) -> TierRange | None:
        return self.inner.tier_range(read)

    @contextmanager
    def snapshot(self) -> Iterator[Reader]:
        with self.inner.snapshot() as read:
            yield read

    def stats(self) -> dict[str, int]:
        return self.inner.stats()

    def retention(self, now: int) -> RetentionReport:
        return self.inner.retention(now)

    def ping(self) -> None:
        self.inner.ping()

    def close(self) -> None:
        self.inner.close()
