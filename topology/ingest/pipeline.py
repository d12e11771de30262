"""The one ingest function: a collector batch in, one store transaction out.

Every input path ends here: `POST /v1/events`, the Celery task, the embedded
queue, the Kubernetes watcher's leases and OTLP traces (converted to the same
batch format by `topology.ingest.otlp`). Steps: validate against the JSON
Schema, remember the batch's leases and DNS answers (idempotent, so a retried
batch does no harm), resolve each call (`resolve.py`), fold its path,
aggregate into bucket rows, cap templates per edge, then apply the batch with
its id in one store transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from topology.ingest import records
from topology.ingest.aggregate import Aggregator
from topology.ingest.coalesce import Coalescer
from topology.ingest.dns import DnsStore, MemoryDnsStore, RedisDnsStore
from topology.ingest.group import GroupCommit
from topology.ingest.leases import Lease, LeaseStore, MemoryLeaseStore, RedisLeaseStore
from topology.ingest.paths import PathFolder
from topology.ingest.placed import Placed
from topology.ingest.resolve import Resolver
from topology.ingest.schema import InvalidBatch, validate
from topology.ingest.templates import (
    DEFAULT_CAP,
    MemoryTemplateCap,
    RedisTemplateCap,
    TemplateCap,
)
from topology.model import Batch, Service
from topology.settings import Settings

if TYPE_CHECKING:
    import redis as redis_lib

    from topology.store.base import GraphStore

__all__ = ["IngestStats", "Ingestor", "InvalidBatch"]


@dataclass
class IngestStats:
    """Counters since the ingestor started (for /metrics and tests)."""

    batches: int = 0
    duplicates: int = 0
    calls: int = 0
    counted: int = 0
    rows: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


class Ingestor:
    def __init__(
        self,
        store: GraphStore,
        settings: Settings,
        redis: redis_lib.Redis | None = None,
        clock: Callable[[], float] = time.time,
        *,
        folder: PathFolder | None = None,
        template_cap: int = DEFAULT_CAP,
        coalesce: bool = False,
    ) -> None:
        """`coalesce`: fold the calls of batches written together into one set of
        rows (`Coalescer`); only when this Ingestor is the one writer of the
        store's batch markers (the embedded store in `topology worker`)."""
        self.store = store
        self.settings = settings
        self.clock = clock
        self.folder = folder or PathFolder()
        self.leases: LeaseStore
        self.dns: DnsStore
        self.templates: TemplateCap
        keep = settings.batch_marker_retention
        if redis is None:
            self.leases = MemoryLeaseStore(keep, clock)
            self.dns = MemoryDnsStore(settings.dns_retention, clock)
            self.templates = MemoryTemplateCap(template_cap)
        else:
            self.leases = RedisLeaseStore(redis, keep, clock)
            self.dns = RedisDnsStore(redis, settings.dns_retention, clock)
            self.templates = RedisTemplateCap(redis, template_cap, settings.hour_retention)
        self.stats = IngestStats()
        # Building touches the in-memory lease/DNS/template state; callers on
        # several threads (embedded mode) take turns. The store write is outside.
        self._building = threading.Lock()
        self.group = GroupCommit(store, clock)
        self.coalescer = (Coalescer(store, self.templates, clock, settings.bucket_width)
                          if coalesce else None)

    def exclusive(self) -> AbstractContextManager[None]:
        """Hold off this Ingestor's writes until the block ends (e.g. to close the store)."""
        return (self.coalescer or self.group).exclusive()

    def ingest(self, payload: Mapping[str, Any] | records.Batch,
               timings: dict[str, float] | None = None, *, alone: bool = False,
               folded: Callable[[], None] | None = None) -> bool:
        """Validate, resolve, aggregate, then write with whatever other threads are
        writing (`GroupCommit`): returns once the batch's transaction committed.

        False when the batch id was applied before. Raises InvalidBatch; store
        errors propagate (retryable). `timings`, when given, receives the
        seconds spent waiting to build (`queue`: another thread was building),
        building (`build`) and from handing the batch in to its commit
        (`commit`: waiting for the running write, then its own). `alone`: with
        a coalescer, in a transaction of its own (a retry after its group failed).
        `folded`: with a coalescer, called once the batch's calls are in its
        group's rows, before waiting for the commit (the caller may then let go
        of the decoded calls until it needs them again).
        """
        if self.coalescer is not None:
            return self._ingest_coalesced(self.coalescer, payload, timings, alone, folded)
        self.group.expect()
        started = time.perf_counter()
        try:
            with self._building:
                built_from = time.perf_counter()
                batch = self.build(payload)
        except BaseException:
            self.group.cancel()
            raise
        built = time.perf_counter()
        applied = self.group.apply(batch, expected=True)
        if timings is not None:
            timings.update(queue=built_from - started, build=built - built_from,
                           commit=time.perf_counter() - built)
        self._count([applied])
        return applied

    def _ingest_coalesced(self, coalescer: Coalescer, payload: Mapping[str, Any] | records.Batch,
                          timings: dict[str, float] | None, alone: bool,
                          folded: Callable[[], None] | None) -> bool:
        coalescer.expect()
        started = time.perf_counter()
        joined = False
        try:
            with self._building:
                built_from = time.perf_counter()
                batch = validate(payload)
                # Redis may fail here: nothing joined yet
                resolver = make_resolver(batch, self.leases, self.dns)
                joined = True
                member = coalescer.join(batch.batch_id, alone=alone)
                if member.group is not None and not member.duplicate:
                    try:
                        self._aggregate(batch, resolver, member.group.aggregator)
                    except BaseException as exc:  # the group's rows are spoilt
                        coalescer.folded(member, (), exc)
                        raise
                    coalescer.folded(member, list(resolver.services.values()))
        except BaseException:
            if not joined:
                coalescer.cancel()
            raise
        built = time.perf_counter()
        if folded is not None and member.group is not None and not member.duplicate:
            folded()
        applied = coalescer.wait(member)
        if timings is not None:
            timings.update(queue=built_from - started, build=built - built_from,
                           commit=time.perf_counter() - built)
        self._count([applied])
        return applied

    def ingest_many(self, payloads: Sequence[Mapping[str, Any]]) -> list[bool | InvalidBatch]:
        """Several batches in one store transaction (the embedded queue's group commit).

        One outcome per payload, in order: True applied, False its id was
        applied before (or by an earlier payload of this call), or the
        InvalidBatch it raised (the valid ones are written all the same).
        Store and Redis errors propagate, and then nothing was written.
        """
        outcomes: list[bool | InvalidBatch] = []
        batches: list[Batch] = []
        with self._building:
            for payload in payloads:
                try:
                    batches.append(self.build(payload))
                    outcomes.append(True)
                except InvalidBatch as exc:
                    outcomes.append(exc)
        if not batches:
            return outcomes
        applied = iter(self.store.apply_many(batches, now=int(self.clock())))
        outcomes = [next(applied) if outcome is True else outcome for outcome in outcomes]
        self._count([o for o in outcomes if isinstance(o, bool)])
        return outcomes

    def _count(self, applied: list[bool]) -> None:
        with self._building:
            self.stats.batches += len(applied)
            self.stats.duplicates += applied.count(False)

    def build(self, payload: Mapping[str, Any] | records.Batch) -> Batch:
        """Everything but the write: the Batch this payload becomes."""
        batch = validate(payload)
        resolver = make_resolver(batch, self.leases, self.dns)
        aggregator = Aggregator(self.settings.bucket_width)
        self._aggregate(batch, resolver, aggregator)
        rows = aggregator.capped(self.templates)
        self.stats.rows += len(rows)
        return Batch(id=batch.batch_id, services=list(resolver.services.values()),
                     calls=rows)

    def _aggregate(self, batch: records.Batch, resolver: Resolver,
                   aggregator: Aggregator) -> None:
        """Resolve the batch's calls and fold them into `aggregator`."""
        calls = batch.calls
        aggregator.add_calls(calls, resolver.resolve, self.folder.fold)
        self._count_calls(len(calls), resolver.dropped)

    def _count_calls(self, calls: int, dropped: Mapping[str, int]) -> None:
        stats = self.stats
        stats.calls += calls
        stats.counted += calls - sum(dropped.values())
        for reason, count in dropped.items():
            stats.dropped[reason] = stats.dropped.get(reason, 0) + count

    def ingest_prepared(self, prepare: Callable[[], Prepared],
                        timings: dict[str, float] | None = None, *,
                        alone: bool = False) -> bool:
        """`ingest` of a batch whose calls `prepare` places in rows elsewhere
        (offload.py: decoded, validated, resolved, path-folded and placed in a
        helper process); only folding them into the group happens here, in turn.

        Needs the coalescer. The batch is announced before `prepare` runs, so
        a write about to start waits for it as for a batch being built.
        """
        coalescer = self.coalescer
        if coalescer is None:
            raise RuntimeError("ingest_prepared needs a coalescing Ingestor")
        coalescer.expect()
        started = time.perf_counter()
        joined = False
        try:
            prepared = prepare()
            prepared_at = time.perf_counter()
            with self._building:
                built_from = time.perf_counter()
                joined = True
                member = coalescer.join(prepared.batch_id, alone=alone)
                if member.group is not None and not member.duplicate:
                    try:
                        aggregator = member.group.aggregator
                        if aggregator.width != prepared.width:
                            raise ValueError(
                                f"batch {prepared.batch_id} was placed in buckets of"
                                f" {prepared.width}s, its group has {aggregator.width}s")
                        aggregator.add_placed(prepared.placed)
                    except BaseException as exc:  # the group's rows are spoilt
                        coalescer.folded(member, (), exc)
                        raise
                    coalescer.folded(member, prepared.services)
                    self._count_calls(prepared.calls, prepared.dropped)
            del prepared  # folded: not kept while the group is written
        except BaseException:
            if not joined:
                coalescer.cancel()
            raise
        built = time.perf_counter()
        applied = coalescer.wait(member)
        if timings is not None:
            # build: in the helper process (with its own queue), then the fold here
            timings.update(queue=built_from - prepared_at,
                           build=prepared_at - started + built - built_from,
                           commit=time.perf_counter() - built)
        self._count([applied])
        return applied


def make_resolver(batch: records.Batch, leases: LeaseStore, dns: DnsStore) -> Resolver:
    """Remember the batch's leases and DNS answers; a Resolver for its calls."""
    if batch.endpoints:
        leases.add(Lease.from_endpoint(e) for e in records.plain(batch.endpoints))
    if batch.dns:
        dns.record(records.plain(batch.dns))
    ips: set[str] = set()
    if leases.snapshots or dns.snapshots:
        calls = batch.calls
        found: set[str | None] = {call.source.ip for call in calls}
        found.update([call.destination.ip for call in calls])
        ips = {ip for ip in found if ip}
    return Resolver(leases.table(ips), dns.table(ips))


@dataclass
class Prepared:
    """A validated batch's calls resolved and placed in rows of `width`-second
    buckets (`Aggregator.place`), with the services they mention and the counts
    of `IngestStats`."""

    batch_id: str
    services: list[Service]
    placed: Placed
    width: int
    calls: int
    dropped: dict[str, int]


def prepare(payload: Mapping[str, Any] | records.Batch, leases: LeaseStore, dns: DnsStore,
            folder: PathFolder, width: float) -> Prepared:
    """Validate a payload and resolve its calls: all of a build but the fold."""
    batch = validate(payload)
    resolver = make_resolver(batch, leases, dns)
    calls = batch.calls
    placer = Aggregator(width)
    placed = placer.place(calls, resolver.resolve, folder.fold)
    return Prepared(batch.batch_id, list(resolver.services.values()), placed,
                    placer.width, len(calls), dict(resolver.dropped))
