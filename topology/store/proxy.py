"""A store that passes everything to another one: the base of wrappers that
change one behaviour (time the writes, note the first read) and must not lose
the rest, such as the tier reads a plain wrapper would silently fall back from."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from topology.model import Batch
from topology.store.base import GraphStore, Reader, RetentionReport
from topology.store.statement import Statement
from topology.store.tiers import TierRange

if TYPE_CHECKING:
    import pyarrow as pa


class StoreProxy(GraphStore):
    def __init__(self, inner: GraphStore) -> None:
        self.inner = inner
        self.dialect = inner.dialect

    def init_schema(self) -> None:
        self.inner.init_schema()

    def apply_many(self, batches: Sequence[Batch], *, now: int | None = None) -> list[bool]:
        return self.inner.apply_many(batches, now=now)

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
