"""Embedded mode's ingest queue: bounded, one writer thread, nothing accepted is lost.

The serving process accepts batches with `submit` (the API answers 429 with
Retry-After when it raises `QueueFull`) and a single writer thread applies
them in order; the embedded store has one writer, so one thread is all there
is to have. Group commit: the writer takes every batch waiting at the head
(up to `max_group`) and writes them in one store transaction
(`Ingestor.ingest_many`), so batches that arrived during a slow write cost
one transaction between them. Each batch keeps its own id within it, so
exactly-once per batch id is the store's and survives a retry.

A batch leaves the queue only once written: a store or Redis error keeps the
group at the head and the writer retries with backoff (meanwhile new batches
fill the queue and callers are told to come back later). An invalid batch is
dropped at once (the rest of its group is written); any other error sends
the group's batches through one at a time, where each is retried
`max_attempts` times, then dropped and logged, so an unforeseen bug cannot
stall ingestion. `close()` stops accepting and returns once everything
accepted is written.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from topology.store.base import StoreError

log = logging.getLogger(__name__)

Ingest = Callable[[Mapping[str, Any]], bool]
# Payloads -> per payload: True written, False duplicate, or the InvalidBatch it raised.
IngestMany = Callable[[Sequence[Mapping[str, Any]]], Sequence["bool | Exception"]]
DEFAULT_MAX_GROUP = 64
RETRY_FOREVER: tuple[type[BaseException], ...] = (StoreError, redis.RedisError, OSError)


class QueueFull(Exception):
    """The queue holds `capacity` batches; try again after `retry_after` seconds."""

    def __init__(self, retry_after: float, depth: int, capacity: int) -> None:
        super().__init__(
            f"ingest queue full ({depth}/{capacity} batches); retry after {retry_after:.1f}s"
        )
        self.retry_after = retry_after
        self.depth = depth
        self.capacity = capacity

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, at least 1, for an HTTP Retry-After header."""
        return str(max(1, math.ceil(self.retry_after)))


class QueueClosed(RuntimeError):
    """The queue is shutting down and accepts nothing more."""


def exponential_backoff(attempt: int) -> float:
    """0.1 s after the first failure, doubling, at most 5 s."""
    return min(0.1 * 2 ** (attempt - 1), 5.0)


class _Metrics:
    def __init__(self, registry: CollectorRegistry | None, depth: Callable[[], int]) -> None:
        self.enabled = registry is not None
        if registry is None:
            return
        prefix = "topology_ingest_queue"
        self.accepted = Counter(f"{prefix}_accepted", "batches accepted", registry=registry)
        self.rejected = Counter(f"{prefix}_rejected", "batches refused: queue full",
                                registry=registry)
        self.dropped = Counter(f"{prefix}_dropped", "accepted batches given up on",
                               registry=registry)
        self.retries = Counter(f"{prefix}_retries", "failed write attempts retried",
                               registry=registry)
        self.depth = Gauge(f"{prefix}_depth", "batches accepted and not yet written",
                           registry=registry)
        self.depth.set_function(depth)
        self.latency = Histogram(f"{prefix}_write_seconds",
                                 "time of one write (one transaction, one or more batches)",
                                 registry=registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                                          10, 30))


class IngestQueue:
    def __init__(
        self,
        ingest: Ingest,
        capacity: int,
        *,
        registry: CollectorRegistry | None = None,
        backoff: Callable[[int], float] = exponential_backoff,
        max_attempts: int = 3,
        retry_forever: tuple[type[BaseException], ...] = RETRY_FOREVER,
        ingest_many: IngestMany | None = None,
        max_group: int = DEFAULT_MAX_GROUP,
    ) -> None:
        """`ingest` writes one batch; `ingest_many` several in one transaction. An
        Ingestor's bound `ingest` brings its `ingest_many` along unless one is given."""
        if capacity < 1:
            raise ValueError(f"ingest queue capacity must be at least 1, not {capacity}")
        if max_group < 1:
            raise ValueError(f"ingest queue max_group must be at least 1, not {max_group}")
        self.capacity = capacity
        self._ingest = ingest
        if ingest_many is None:
            ingest_many = getattr(getattr(ingest, "__self__", None), "ingest_many", None)
        self._ingest_many = ingest_many
        self._max_group = max_group
        self._backoff = backoff
        self._max_attempts = max_attempts
        self._retry_forever = retry_forever
        self._items: deque[Mapping[str, Any]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._abandon = threading.Event()
        self._retry_until = 0.0
        self.accepted = self.rejected = self.dropped = self.retries = 0
        self.written = self.duplicates = 0
        self.commits = 0  # transactions (a group of batches each)
        self.last_write_seconds = 0.0
        self.mean_write_seconds = 0.0  # per batch, moving average, for the Retry-After hint
        self._metrics = _Metrics(registry, lambda: self.depth)
        self._thread = threading.Thread(target=self._run, name="ingest-writer", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Batches accepted and not yet written (the one being written included)."""
        return len(self._items)

    def submit(self, payload: Mapping[str, Any]) -> None:
        """Accept a batch for writing, or raise QueueFull / QueueClosed."""
        with self._cond:
            if self._closing:
                raise QueueClosed("the ingest queue is shutting down")
            if len(self._items) >= self.capacity:
                self.rejected += 1
                if self._metrics.enabled:
                    self._metrics.rejected.inc()
                raise QueueFull(self.retry_after(), len(self._items), self.capacity)
            self._items.append(payload)
            self.accepted += 1
            if self._metrics.enabled:
                self._metrics.accepted.inc()
            self._cond.notify_all()

    def retry_after(self) -> float:
        """Seconds until a slot is likely free: the store's retry wait while it fails,
        else the time to write half the queue at the recent pace (1 to 60 s)."""
        waiting = self._retry_until - time.monotonic()
        if waiting > 0:
            return max(1.0, waiting)
        return min(60.0, max(1.0, self.mean_write_seconds * len(self._items) / 2))

    def close(self, timeout: float | None = None) -> int:
        """Stop accepting, write what was accepted, stop the writer.

        Waits without limit by default. With a timeout, batches still unwritten
        when it expires are dropped (counted and logged); returns their number.
        """
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abandon.set()
            self._thread.join()
        left = len(self._items)
        if left:
            log.error("ingest queue closed with %d accepted batch(es) unwritten", left)
            self._drop(left)
            self._items.clear()
        return left

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing:
                    self._cond.wait()
                if not self._items or self._abandon.is_set():
                    return
                group = [self._items[i]
                         for i in range(min(len(self._items), self._max_group))]
            finished = self._write_group(group)
            with self._cond:
                for _ in range(finished):
                    self._items.popleft()
                self._cond.notify_all()
                if self._abandon.is_set():
                    return

    def _write_group(self, group: list[Mapping[str, Any]]) -> int:
        """Write or drop the batches of `group`; how many are done with."""
        if self._ingest_many is None:
            return int(self._write(group[0]))
        from topology.ingest.pipeline import InvalidBatch

        attempt = 0
        while not self._abandon.is_set():
            attempt += 1
            started = time.perf_counter()
            try:
                outcomes = self._ingest_many(group)
            except self._retry_forever as exc:
                self._retry_later(group[0], attempt, exc)
                continue
            except Exception as exc:
                log.warning("ingest group of %d batches failed (%r); writing each alone",
                            len(group), exc)
                for done, payload in enumerate(group):
                    if not self._write(payload):
                        return done
                return len(group)
            written = []
            for payload, outcome in zip(group, outcomes, strict=True):
                if isinstance(outcome, InvalidBatch):
                    log.error("ingest batch %s dropped: invalid: %s", _batch_id(payload),
                              outcome)
                    self._drop(1)
                else:
                    written.append(bool(outcome))
            self._record(time.perf_counter() - started, written)
            return len(group)
        return 0

    def _retry_later(self, payload: Mapping[str, Any], attempt: int, exc: Exception) -> None:
        delay = self._backoff(attempt)
        log.warning("ingest batch %s: attempt %d failed (%r), retry in %.2fs",
                    _batch_id(payload), attempt, exc, delay)
        self.retries += 1
        if self._metrics.enabled:
            self._metrics.retries.inc()
        self._retry_until = time.monotonic() + delay
        self._abandon.wait(delay)

    def _write(self, payload: Mapping[str, Any]) -> bool:
        """Write or drop one batch (True); False when close() gave up on it."""
        from topology.ingest.pipeline import InvalidBatch

        attempt = 0
        while not self._abandon.is_set():
            attempt += 1
            started = time.perf_counter()
            try:
                applied = self._ingest(payload)
            except InvalidBatch as exc:
                log.error("ingest batch %s dropped: invalid: %s", _batch_id(payload), exc)
                self._drop(1)
                return True
            except Exception as exc:
                forever = isinstance(exc, self._retry_forever)
                if not forever and attempt >= self._max_attempts:
                    log.exception("ingest batch %s dropped after %d attempts",
                                  _batch_id(payload), attempt)
                    self._drop(1)
                    return True
                self._retry_later(payload, attempt, exc)
                continue
            self._record(time.perf_counter() - started, [applied])
            return True
        return False

    def _record(self, seconds: float, applied: list[bool]) -> None:
        """One transaction wrote `applied` (True: new, False: duplicate)."""
        self._retry_until = 0.0
        first = self.written == 0
        self.commits += 1
        self.written += len(applied)
        self.duplicates += applied.count(False)
        self.last_write_seconds = seconds
        if applied:
            each = seconds / len(applied)
            self.mean_write_seconds = (
                each if first else 0.8 * self.mean_write_seconds + 0.2 * each
            )
        if self._metrics.enabled:
            self._metrics.latency.observe(seconds)

    def _drop(self, count: int) -> None:
        self.dropped += count
        if self._metrics.enabled:
            self._metrics.dropped.inc(count)


def _batch_id(payload: Mapping[str, Any]) -> Any:
    return payload.get("batch_id") if isinstance(payload, Mapping) else None
