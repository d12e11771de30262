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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from topology.ingest.aggregate import Aggregator
from topology.ingest.dns import DnsStore, MemoryDnsStore, RedisDnsStore
from topology.ingest.group import GroupCommit
from topology.ingest.leases import Lease, LeaseStore, MemoryLeaseStore, RedisLeaseStore
from topology.ingest.paths import PathFolder
from topology.ingest.resolve import Resolver
from topology.ingest.schema import InvalidBatch, validate
from topology.ingest.templates import (
    DEFAULT_CAP,
    MemoryTemplateCap,
    RedisTemplateCap,
    TemplateCap,
)
from topology.model import Batch
from topology.settings import Settings
from topology.store.base import GraphStore

if TYPE_CHECKING:
    import redis as redis_lib

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
    ) -> None:
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

    def ingest(self, payload: Mapping[str, Any],
               timings: dict[str, float] | None = None) -> bool:
        """Validate, resolve, aggregate, then write with whatever other threads are
        writing (`GroupCommit`): returns once the batch's transaction committed.

        False when the batch id was applied before. Raises InvalidBatch; store
        errors propagate (retryable). `timings`, when given, receives the
        seconds spent waiting to build (`queue`: another thread was building),
        building (`build`) and from handing the batch in to its commit
        (`commit`: waiting for the running write, then its own).
        """
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

    def build(self, payload: Mapping[str, Any]) -> Batch:
        """Everything but the write: the Batch this payload becomes."""
        validate(payload)
        endpoints = payload.get("endpoints") or ()
        if endpoints:
            self.leases.add(Lease.from_endpoint(e) for e in endpoints)
        dns = payload.get("dns") or ()
        if dns:
            self.dns.record(dns)
        calls = payload.get("calls") or ()
        ips: set[str] = set()
        if self.leases.snapshots or self.dns.snapshots:
            for call in calls:
                for end in (call["source"], call["destination"]):
                    ip = end.get("ip")
                    if ip:
                        ips.add(ip)
        resolver = Resolver(self.leases.table(ips), self.dns.table(ips))
        aggregator = Aggregator(self.settings.bucket_width)
        aggregator.add_calls(calls, resolver.resolve, self.folder.fold)
        rows = aggregator.capped(self.templates)
        stats = self.stats
        stats.calls += len(calls)
        dropped = sum(resolver.dropped.values())
        stats.counted += len(calls) - dropped
        stats.rows += len(rows)
        for reason, count in resolver.dropped.items():
            stats.dropped[reason] = stats.dropped.get(reason, 0) + count
        return Batch(id=payload["batch_id"], services=list(resolver.services.values()),
                     calls=rows)
