"""Where accepted ingest batches go: the in-process queue, or the Celery broker.

Embedded mode (the default) writes through `IngestQueue` around the one
`Ingestor` of the serving process, which owns the store file. Distributed mode
(a Redis URL and the Neo4j store) publishes each batch to the Celery ingest
task and lets workers write. Both answer `submit` (raising `Backpressure` when
the caller should come back later), `check` for /readyz, and `close`, which
in embedded mode returns once every accepted batch is written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import redis

from topology.api.metrics import ApiMetrics
from topology.api.timed_store import TimedStore
from topology.api.writes import WriteCounter, counter_for
from topology.ingest.pipeline import Ingestor
from topology.ingest.queue import IngestQueue, QueueClosed, QueueFull
from topology.settings import Settings
from topology.store.base import GraphStore

log = logging.getLogger(__name__)


class Backpressure(Exception):
    """Not accepted now; `retry_after` is the Retry-After header value (seconds)."""

    def __init__(self, message: str, retry_after: str, status: int = 429) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class NotReady(Exception):
    """The sink cannot accept batches; the message says why."""


class IngestSink(Protocol):
    def submit(self, payload: Mapping[str, Any]) -> None: ...
    def check(self) -> None: ...
    def close(self, timeout: float | None = None) -> int: ...


def _ping(client: redis.Redis, what: str) -> None:
    try:
        client.ping()
    except redis.RedisError as exc:
        raise NotReady(f"{what} unreachable: {exc}") from None


class EmbeddedSink:
    """The in-process queue and its writer thread."""

    def __init__(self, store: GraphStore, settings: Settings,
                 metrics: ApiMetrics | None = None, *, queue: IngestQueue | None = None,
                 ingestor: Ingestor | None = None) -> None:
        self.redis = (redis.Redis.from_url(settings.redis_url, socket_timeout=5)
                      if settings.redis_url and ingestor is None else None)
        # every write of this sink counted on the store's counter, when the sink made
        # its own writer (the GraphQL app then knows each write of the process)
        self.writes: WriteCounter | None = (
            counter_for(store) if ingestor is None and queue is None else None)
        if ingestor is None:
            timed = TimedStore(store, metrics.store_write) if metrics is not None else store
            ingestor = Ingestor(timed, settings, redis=self.redis)
        self.ingestor = ingestor
        registry = metrics.registry if metrics else None
        self.queue = queue or IngestQueue(self._ingest, settings.ingest_queue_size,
                                          registry=registry)
        if metrics is not None:
            stats = self.ingestor.stats
            metrics.watch_ingestor(lambda: dict(stats.dropped), lambda: stats.counted)

    def _ingest(self, payload: Mapping[str, Any]) -> bool:
        if self.writes is None:
            return self.ingestor.ingest(payload)
        with self.writes.writing():
            return self.ingestor.ingest(payload)

    def submit(self, payload: Mapping[str, Any]) -> None:
        try:
            self.queue.submit(payload)
        except QueueFull as exc:
            raise Backpressure(str(exc), exc.retry_after_header) from None
        except QueueClosed as exc:
            raise Backpressure(str(exc), "5", status=503) from None

    def check(self) -> None:
        if self.redis is not None:
            _ping(self.redis, "Redis (leases and DNS)")

    def close(self, timeout: float | None = None) -> int:
        left = self.queue.close(timeout)
        if self.redis is not None:
            self.redis.close()
        return left


class CelerySink:
    """Publish to the Celery ingest queue on the Redis broker."""

    def __init__(self, settings: Settings, metrics: ApiMetrics | None = None) -> None:
        from topology.ingest.celery_app import QUEUE, create_app

        assert settings.redis_url is not None
        self.url = settings.redis_url
        self.app = create_app(settings)
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        self._queue = QUEUE
        if metrics is not None:
            metrics.watch_broker_depth(self._depth)

    def _depth(self) -> int | None:
        try:
            return int(self.redis.llen(self._queue))
        except redis.RedisError:
            return None

    def submit(self, payload: Mapping[str, Any]) -> None:
        from kombu.exceptions import OperationalError

        from topology.ingest.tasks import publish

        try:
            publish(self.app, payload)
        except (OperationalError, redis.RedisError) as exc:
            log.warning("publishing an ingest batch failed: %r", exc)
            raise Backpressure(f"the broker is unreachable: {exc}", "5", status=503) from None

    def check(self) -> None:
        _ping(self.redis, "broker (Redis)")

    def close(self, timeout: float | None = None) -> int:
        self.redis.close()
        self.app.close()
        return 0


def open_sink(store: GraphStore, settings: Settings, metrics: ApiMetrics) -> IngestSink:
    """Celery when a Redis URL and the Neo4j store are configured, else in-process."""
    if settings.redis_url and settings.store == "neo4j":
        return CelerySink(settings, metrics)
    return EmbeddedSink(store, settings, metrics)
