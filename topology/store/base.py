"""The graph store interface both backends implement, and its errors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from topology.model import Batch
from topology.store.statement import Dialect, Statement
from topology.store.tiers import TierRange

if TYPE_CHECKING:  # a worker writes without pyarrow (ladybug_rows.py); readers load it
    import pyarrow as pa

Reader = Callable[[Statement, Mapping[str, Any] | None], list[dict[str, Any]]]


class StoreError(RuntimeError):
    """Base of the errors a store raises."""


class StoreUnavailable(StoreError):
    """The store cannot be reached or opened (message says which and why)."""


class StoreLocked(StoreUnavailable):
    """Another process owns the embedded database file for writing."""


class QueryTimeout(StoreError):
    """A read query ran longer than the query timeout."""


@dataclass(frozen=True)
class RetentionReport:
    rolled_up: int  # minute buckets folded into hour buckets
    deleted_hours: int  # hour buckets past hour retention
    deleted_pairs: int  # pairs not seen within hour retention
    deleted_services: int  # services with no pair and not seen within hour retention
    deleted_markers: int  # batch ids past the marker retention
    tiered: int = 0  # finest buckets added to the pre-aggregated tiers (embedded store)


class GraphStore(ABC):
    """Services, CallBucket aggregates, CALLS pairs and batch markers."""

    dialect: Dialect

    @abstractmethod
    def init_schema(self) -> None:
        """Create tables/constraints/indexes; idempotent."""

    def apply(self, batch: Batch, *, now: int | None = None) -> bool:
        """Write one batch atomically with its id; False when that id was applied before."""
        return self.apply_many([batch], now=now)[0]

    @abstractmethod
    def apply_many(self, batches: Sequence[Batch], *, now: int | None = None) -> list[bool]:
        """Write several batches in one transaction, each id at most once.

        A batch whose id was applied before, or that repeats an earlier id of
        the same call, is skipped and reported False. The rows of the others
        are merged across batches (same key: added, as within one batch) and
        written once, together with a marker per applied id (`applied_at` =
        `now`). All or nothing: when the call raises, nothing was written.
        """

    @abstractmethod
    def read(
        self, statement: Statement, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Run a read-only statement; rows as plain dicts keyed by column name."""

    def read_arrow(
        self, statement: Statement, params: Mapping[str, Any] | None = None
    ) -> pa.Table:
        """`read` as an Arrow table (the embedded store hands it over without making
        Python objects of every value). An empty result may have no columns."""
        import pyarrow as pa

        return pa.Table.from_pylist(self.read(statement, params))

    def tier_range(self, read: Reader | None = None) -> TierRange | None:
        """Where pre-aggregated tiers cover the finest buckets (None: no tiers, read
        buckets only). `read` is a snapshot reader, so the range and the rows read
        with it agree."""
        return None

    @contextmanager
    def snapshot(self) -> Iterator[Reader]:
        """A reader whose reads see one consistent state of the store (several
        statements that must agree, e.g. tier rows and the buckets around them)."""
        yield self.read

    @abstractmethod
    def stats(self) -> dict[str, int]:
        """Counts: services, pairs, minute_buckets, hour_buckets, batches."""

    @abstractmethod
    def retention(self, now: int) -> RetentionReport:
        """Roll minute buckets older than minute retention into hours; expire the rest."""

    @abstractmethod
    def ping(self) -> None:
        """Raise StoreUnavailable when the store cannot serve; used by /readyz."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
