"""The Celery ingest task: a thin wrapper around `Ingestor.ingest`.

Each worker process opens its own store on its first batch (never in the
parent of a prefork pool, so a forked child does not inherit an open
database). A batch that raises `InvalidBatch` goes straight to the dead
letters; any other error is retried with exponential backoff, and the batch
goes to the dead letters after the last retry. Retrying unknown errors too is
deliberate: a batch is never dropped because an error was not anticipated,
and the bound on retries keeps a truly poisonous batch from looping. A batch
whose worker dies under it (killed, out of memory) is delivered again; after
`max_worker_lost` such losses it is dead-lettered too, so a batch that kills
every worker that takes it cannot loop forever either.

Embedded store: LadybugDB has one writer per file, so a worker that owns an
embedded store must be the only worker process on that file (`topology
worker` runs a threads pool in one process when TOPOLOGY_STORE=embedded).
Its task threads fold their batches' calls in turn into the Ingestor's
`Coalescer` group: the batches that arrive while one write runs become one
set of rows in the next transaction, and each task returns (and its message
is acknowledged) only once its batch is committed. A retry is written alone. In production
workers share the Neo4j store instead.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
from collections.abc import Mapping
from typing import Any

import orjson
import redis
from celery import Celery, Task
from celery.signals import worker_process_shutdown, worker_shutdown

from topology.ingest.deadletter import DeadLetter, DeadLetters
from topology.ingest.pipeline import Ingestor, InvalidBatch
from topology.settings import Settings
from topology.store.base import GraphStore, StoreError, StoreUnavailable

log = logging.getLogger(__name__)


class HeldCalls:
    """A payload's decoded calls let go of while its batch waits for its commit.

    Celery keeps a task's arguments until the task returns, and 5,000 calls
    decoded take about 7.5 MB; once they are folded into their group's rows only
    a retry or a dead letter needs them again. `release` keeps them encoded and
    empties the payload's list; `restore` puts the very same values back. The
    encoding is orjson's (about 3 ms and 1.6 MB for 5,000 calls) when it is
    plainly exact, and pickle's otherwise: orjson writes NaN and Infinity (which
    validation lets through) as null, so a `null` in its output sends the calls
    to pickle, as does anything orjson refuses (an integer beyond 64 bits).
    """

    def __init__(self, payload: Any) -> None:
        self.payload = payload
        self.encoded: bytes | None = None
        self.pickled = False

    def release(self) -> None:
        calls = self.payload.get("calls") if isinstance(self.payload, dict) else None
        if not isinstance(calls, list) or not calls:
            return
        try:
            encoded = orjson.dumps(calls)
            pickled = b"null" in encoded
        except (TypeError, orjson.JSONEncodeError):
            pickled = True
        if pickled:
            encoded = pickle.dumps(calls, protocol=pickle.HIGHEST_PROTOCOL)
        self.encoded, self.pickled = encoded, pickled
        self.payload["calls"] = []

    def restore(self) -> None:
        if self.encoded is not None:
            self.payload["calls"] = (pickle.loads(self.encoded) if self.pickled
                                     else orjson.loads(self.encoded))
            self.encoded = None

DELIVERIES_KEY = "topology:ingest:deliveries:"
DELIVERIES_TTL = 7 * 86400


class WorkerLost(RuntimeError):
    """The batch's worker died (SIGKILL, OOM) more often than allowed."""


class WorkerRuntime:
    """The store, Redis client and Ingestor of one worker process, opened on first use.

    Shared by the task threads of a threads pool: opening and closing take a lock.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._store: GraphStore | None = None
        self._ingestor: Ingestor | None = None
        self._redis: redis.Redis | None = None
        self._dead: DeadLetters | None = None

    def _check_pid(self) -> None:
        # A prefork child must not reuse what its parent opened.
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._store = self._ingestor = self._redis = self._dead = None

    @property
    def redis(self) -> redis.Redis:
        with self._lock:
            self._check_pid()
            if self._redis is None:
                assert self.settings.redis_url is not None
                self._redis = redis.Redis.from_url(self.settings.redis_url)
            return self._redis

    @property
    def dead_letters(self) -> DeadLetters:
        with self._lock:
            self._check_pid()
            if self._dead is None:
                self._dead = DeadLetters(self.redis)
            return self._dead

    def ingestor(self) -> Ingestor:
        with self._lock:
            self._check_pid()
            if self._ingestor is None:
                from topology.store import open_store

                store = open_store(self.settings)
                try:
                    store.init_schema()
                except BaseException:
                    store.close()
                    raise
                self._store = store
                # The worker owns an embedded store's file: its batches' calls
                # can be folded together (coalesce.py); a shared Neo4j cannot.
                self._ingestor = Ingestor(store, self.settings, redis=self.redis,
                                          coalesce=self.settings.store == "embedded")
                # Out of buffer pool: every batch would fail alone too; the
                # tasks retry after the store is reopened.
                self._ingestor.group.isolate = lambda exc: not store_exhausted(
                    exc, self.settings)
            return self._ingestor

    def reset_store(self, failed: Ingestor | None = None) -> None:
        """Close the store after it failed, so the next attempt opens it afresh.

        With `failed`, only if that Ingestor is still the current one (another
        thread may have reset it already). The store is closed while no write
        of its group commit runs.
        """
        with self._lock:
            if failed is not None and failed is not self._ingestor:
                return
            store, ingestor = self._store, self._ingestor
            self._store = self._ingestor = None
        if store is None:
            return
        try:
            if ingestor is not None:
                with ingestor.exclusive():
                    store.close()
            else:
                store.close()
        except StoreError:
            log.warning("closing the failed store raised", exc_info=True)

    def close(self) -> None:
        self.reset_store()
        with self._lock:
            if self._redis is not None:
                self._redis.close()
                self._redis = None


def register(app: Celery, settings: Settings, options: Any) -> Task:
    """Register the ingest task on `app` (options: a celery_app.DeliveryOptions)."""
    from topology.ingest.celery_app import TASK_NAME

    runtime = WorkerRuntime(settings)

    @worker_process_shutdown.connect(weak=False)  # a prefork pool process
    def _close_runtime(**_: Any) -> None:
        runtime.close()

    @worker_shutdown.connect(weak=False)  # the worker itself (threads pool)
    def _close_worker_runtime(**_: Any) -> None:
        runtime.close()

    @app.task(
        bind=True,
        name=TASK_NAME,
        shared=False,
        acks_late=True,
        reject_on_worker_lost=True,
        max_retries=options.max_retries,
    )
    def ingest_batch(self: Task, payload: Any) -> bool:
        attempt = self.request.retries + 1
        batch_id = payload.get("batch_id") if isinstance(payload, Mapping) else None
        lost = _lost_deliveries(self, runtime)
        if lost > options.max_worker_lost:
            exc = WorkerLost(f"the worker died {lost} times while ingesting this batch"
                             " (killed, or out of memory)")
            letter = _dead_letter(self, runtime, payload, exc, attempt + lost - 1)
            log.error("ingest batch %s: %s; dead-lettered as %s", batch_id, exc, letter.id)
            _forget(self, runtime)
            return False
        log.info("ingest batch %s: attempt %d", batch_id, attempt)
        ingestor: Ingestor | None = None
        held = HeldCalls(payload)
        try:
            if not isinstance(payload, Mapping):
                raise InvalidBatch(f"payload is a {type(payload).__name__}, not a JSON object")
            ingestor = runtime.ingestor()
            timings: dict[str, float] = {}
            # A retry or a redelivery is written alone: if its batch is what made
            # its group fail, it fails by itself this time.
            applied = ingestor.ingest(payload, timings,
                                      alone=self.request.retries > 0 or lost > 0,
                                      folded=held.release)
        except InvalidBatch as exc:
            letter = _dead_letter(self, runtime, payload, exc, attempt)
            log.error("ingest batch %s: invalid, dead-lettered as %s: %s",
                      batch_id, letter.id, exc)
            _forget(self, runtime)
            return False
        except Exception as exc:
            held.restore()  # the retry and the dead letter carry every call
            if ingestor is not None and (isinstance(exc, StoreUnavailable)
                                         or store_exhausted(exc, settings)):
                runtime.reset_store(ingestor)
            if self.request.retries >= options.max_retries:
                letter = _dead_letter(self, runtime, payload, exc, attempt)
                log.error("ingest batch %s: failed %d times, dead-lettered as %s: %r",
                          batch_id, attempt, letter.id, exc)
                _forget(self, runtime)
                return False
            countdown = options.countdown(self.request.retries)
            log.warning("ingest batch %s: attempt %d failed (%r), retry in %gs%s",
                        batch_id, attempt, exc, countdown, _hint(exc, settings))
            raise self.retry(exc=exc, countdown=countdown) from exc
        log.info("ingest batch %s: timings: queue %.3fs, build %.3fs, commit %.3fs",
                 batch_id, timings["queue"], timings["build"], timings["commit"])
        log.info("ingest batch %s: %s", batch_id, "applied" if applied else "duplicate")
        _forget(self, runtime)
        return applied

    return ingest_batch


# LadybugDB's words when its buffer pool ran out, in a write or in the
# checkpoint after one (whose data is committed: the batch marker turns the
# retry into a duplicate). Memory it holds after many updates is only given
# back when the database is closed, so the worker reopens it before retrying.
_EXHAUSTED = ("buffer pool is full", "checkpoint failed")


def store_exhausted(exc: Exception, settings: Settings) -> bool:
    """The embedded store ran out of buffer pool: reopening it frees the memory."""
    return settings.store == "embedded" and any(words in str(exc).lower()
                                                for words in _EXHAUSTED)


def _hint(exc: Exception, settings: Settings) -> str:
    """What an operator can do about an error that retrying alone may not cure."""
    if store_exhausted(exc, settings):
        size = settings.embedded_buffer_pool_mb
        return (f"; the embedded store's buffer pool ({size or 'default'} MiB) ran out:"
                " the store is reopened for the retry; if this repeats for the same batch,"
                " raise TOPOLOGY_EMBEDDED_BUFFER_POOL_MB")
    return ""


def _lost_deliveries(task: Task, runtime: WorkerRuntime) -> int:
    """Earlier deliveries of this message that died with their worker.

    Every attempt counts itself in Redis under the task id (which a retry and
    a redelivery keep); attempts beyond `retries + 1` were cut short without a
    verdict. Unknown (0) when Redis does not answer: ingestion goes on.
    """
    key = DELIVERIES_KEY + str(task.request.id)
    try:
        pipe = runtime.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, DELIVERIES_TTL)
        count, _ = pipe.execute()
    except redis.RedisError as exc:
        log.warning("cannot count deliveries of task %s: %r", task.request.id, exc)
        return 0
    return max(0, int(count) - (task.request.retries + 1))


def _forget(task: Task, runtime: WorkerRuntime) -> None:
    try:
        runtime.redis.delete(DELIVERIES_KEY + str(task.request.id))
    except redis.RedisError as exc:  # the key expires on its own
        log.warning("cannot clear delivery count of task %s: %r", task.request.id, exc)


def _dead_letter(
    task: Task, runtime: WorkerRuntime, payload: Any, exc: Exception, attempt: int
) -> DeadLetter:
    """Record the batch as dead; if Redis refuses, retry the task rather than lose it."""
    try:
        return runtime.dead_letters.add(payload, exc, attempt, task.request.id)
    except redis.RedisError as redis_exc:
        log.warning("dead-lettering failed (%r); the batch will be retried", redis_exc)
        raise task.retry(exc=redis_exc, countdown=1.0, max_retries=None) from redis_exc


def publish(app: Celery, payload: Mapping[str, Any]) -> str:
    """Send one batch to the ingest queue; returns the Celery task id."""
    from topology.ingest.celery_app import QUEUE, TASK_NAME

    return app.send_task(TASK_NAME, args=[dict(payload)], queue=QUEUE).id
