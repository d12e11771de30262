"""Embedded mode's ingest queue: bounded, one writer thread, nothing accepted is lost.

The serving process accepts batches with `submit` (the API answers 429 with
Retry-After when it raises `QueueFull`) and a single writer thread applies
them one at a time, in order, through `Ingestor.ingest`; the embedded store
has one writer, so one thread is all there is to have. Batches are never
merged: each keeps its own id and transaction, so exactly-once per batch id
is the store's and survives a retry.

A batch leaves the queue only once written: a store or Redis error keeps it
at the head and the writer retries with backoff (meanwhile new batches fill
the queue and callers are told to come back later). An invalid batch is
dropped at once; any other error is retried `max_attempts` times, then the
batch is dropped and logged, so an unforeseen bug cannot stall ingestion.
`close()` stops accepting and returns once everything accepted is written.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from topology.store.base import StoreError

log = logging.getLogger(__name__)

Ingest = Callable[[Mapping[str, Any]], bool]
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
        self.latency = Histogram(f"{prefix}_write_seconds", "time to write one batch",
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
    ) -> None:
        if capacity < 1:
            raise ValueError(f"ingest queue capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._ingest = ingest
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
        self.last_write_seconds = 0.0
        self.mean_write_seconds = 0.0  # moving average, for the Retry-After hint
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
                payload = self._items[0]
            finished = self._write(payload)
            with self._cond:
                if finished:
                    self._items.popleft()
                    self._cond.notify_all()
                if self._abandon.is_set():
                    return

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
                delay = self._backoff(attempt)
                log.warning("ingest batch %s: attempt %d failed (%r), retry in %.2fs",
                            _batch_id(payload), attempt, exc, delay)
                self.retries += 1
                if self._metrics.enabled:
                    self._metrics.retries.inc()
                self._retry_until = time.monotonic() + delay
                self._abandon.wait(delay)
                continue
            self._record(time.perf_counter() - started, applied)
            return True
        return False

    def _record(self, seconds: float, applied: bool) -> None:
        self._retry_until = 0.0
        self.written += 1
        self.duplicates += not applied
        self.last_write_seconds = seconds
        self.mean_write_seconds = (
            seconds if self.written == 1 else 0.8 * self.mean_write_seconds + 0.2 * seconds
        )
        if self._metrics.enabled:
            self._metrics.latency.observe(seconds)

    def _drop(self, count: int) -> None:
        self.dropped += count
        if self._metrics.enabled:
            self._metrics.dropped.inc(count)


def _batch_id(payload: Mapping[str, Any]) -> Any:
    return payload.get("batch_id") if isinstance(payload, Mapping) else None
