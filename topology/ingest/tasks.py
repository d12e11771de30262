"""The Celery ingest task: a thin wrapper around `Ingestor.ingest`.

`publish` stores a batch's payload in Redis and sends only its key (claim
check, claims.py); the task reads the payload by that key and deletes it once
the batch has its verdict. Payloads sent inline (collectors publish by task
name, `args=[payload]`) are taken as they are.

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
is acknowledged) only once its batch is committed. A retry is written alone. A
stored payload is built by a helper process (offload.py) and only folded here.
In production workers share the Neo4j store instead.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

import redis
from celery import Celery, Task
from celery.signals import worker_process_shutdown, worker_shutdown

from topology.ingest import claims, offload
from topology.ingest.deadletter import DeadLetter, DeadLetters
from topology.ingest.held import HeldCalls
from topology.ingest.offload import BuildPool
from topology.ingest.pipeline import Ingestor, InvalidBatch
from topology.settings import Settings
from topology.store.base import GraphStore, StoreError, StoreUnavailable

__all__ = ["WorkerLost", "WorkerRuntime", "publish", "register", "store_exhausted"]

publish = claims.publish  # where callers have always imported it from

log = logging.getLogger(__name__)


DELIVERIES_KEY = "topology:ingest:deliveries:"
DELIVERIES_TTL = 7 * 86400


class WorkerLost(RuntimeError):
    """The batch's worker died (SIGKILL, OOM) more often than allowed."""


class WorkerRuntime:
    """The store, Redis client and Ingestor of one worker process, opened on first use.

    Shared by the task threads of a threads pool: opening and closing take a lock.
    """

    def __init__(self, settings: Settings, group_linger: float | None = None) -> None:
        self.settings = settings
        self.group_linger = group_linger  # the coalescer's (None: its default)
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._store: GraphStore | None = None
        self._ingestor: Ingestor | None = None
        self._redis: redis.Redis | None = None
        self._dead: DeadLetters | None = None
        self._builds: BuildPool | None = None
        self._builds_checked = False

    def build_pool(self) -> BuildPool | None:
        """The helper processes that prepare stored payloads (offload.py): only for an
        embedded store, whose one worker process would build on one core."""
        with self._lock:
            self._check_pid()
            if not self._builds_checked:
                self._builds_checked = True
                count = offload.processes()
                if self.settings.store == "embedded" and count > 0:
                    self._builds = BuildPool(self.settings, count)
            return self._builds

    def _check_pid(self) -> None:
        # A prefork child must not reuse what its parent opened.
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._store = self._ingestor = self._redis = self._dead = None
            self._builds, self._builds_checked = None, False

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

                # a worker answers no queries: nothing in it caches reads of the store
                store = open_store(self.settings, track_changes=False)
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
                if self._ingestor.coalescer is not None and self.group_linger is not None:
                    self._ingestor.coalescer.linger = self.group_linger
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
            builds, self._builds = self._builds, None
        if builds is not None:
            builds.close()
        with self._lock:
            if self._redis is not None:
                self._redis.close()
                self._redis = None


def register(app: Celery, settings: Settings, options: Any) -> Task:
    """Register the ingest task on `app` (options: a celery_app.DeliveryOptions)."""
    from topology.ingest.celery_app import TASK_NAME

    runtime = WorkerRuntime(settings, options.group_linger)

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
    def ingest_batch(self: Task, payload: Any = None, claim: str | None = None,
                     batch_id: str | None = None) -> bool:
        """One batch: inline (`payload`, as collectors publish it) or by `claim`, the
        Redis key of its payload (`publish`, claims.py)."""
        attempt = self.request.retries + 1
        if claim is None and isinstance(payload, Mapping):
            batch_id = payload.get("batch_id")
        lost = _lost_deliveries(self, runtime)
        # With a build helper the payload stays in Redis: the helper reads it by its
        # key, and a dead letter reads it here (`kept`).
        pool = runtime.build_pool() if claim is not None else None
        if claim is not None:
            try:
                if pool is None:
                    raw = claims.fetch(runtime.redis, claim)
                    there = raw is not None
                    if raw is not None:
                        payload = claims.decoded(raw)
                else:
                    there = claims.stored(runtime.redis, claim)
            except redis.RedisError as exc:  # the payload is there: wait for Redis
                raise _unreadable(self, batch_id, exc) from exc
            if not there:
                return _gone(self, runtime, batch_id, claim)

        def kept() -> Any:
            """What a dead letter keeps of the batch (claims.PayloadGone when a
            helper had it and it went meanwhile)."""
            if pool is None or claim is None:
                return claims.letter_payload(payload, None)
            raw = claims.fetch(runtime.redis, claim)
            if raw is None:
                raise claims.PayloadGone(claim)
            return claims.letter_payload(None, raw)

        if lost > options.max_worker_lost:
            exc = WorkerLost(f"the worker died {lost} times while ingesting this batch"
                             " (killed, or out of memory)")
            letter = _dead_letter(self, runtime, kept, exc, attempt + lost - 1)
            if letter is not None:
                log.error("ingest batch %s: %s; dead-lettered as %s", batch_id, exc, letter.id)
            _forget(self, runtime, claim)
            return False
        log.info("ingest batch %s: attempt %d", batch_id, attempt)
        ingestor: Ingestor | None = None
        held = HeldCalls(payload)
        try:
            if isinstance(payload, claims.Undecodable):
                raise payload.error
            timings: dict[str, float] = {}
            # A retry or a redelivery is written alone: if its batch is what made
            # its group fail, it fails by itself this time.
            alone = self.request.retries > 0 or lost > 0
            if pool is not None and claim is not None:
                ingestor = runtime.ingestor()
                key = claim
                applied = ingestor.ingest_prepared(lambda: pool.prepare_claimed(key), timings,
                                                   alone=alone)
            else:
                if not isinstance(payload, Mapping):
                    raise InvalidBatch(
                        f"payload is a {type(payload).__name__}, not a JSON object")
                ingestor = runtime.ingestor()
                applied = ingestor.ingest(payload, timings, alone=alone, folded=held.release)
        except claims.PayloadGone:
            assert claim is not None
            return _gone(self, runtime, batch_id, claim)
        except claims.PayloadUnreadable as exc:
            raise _unreadable(self, batch_id, exc) from exc
        except InvalidBatch as exc:
            letter = _dead_letter(self, runtime, kept, exc, attempt)
            if letter is not None:
                log.error("ingest batch %s: invalid, dead-lettered as %s: %s",
                          batch_id, letter.id, exc)
            _forget(self, runtime, claim)
            return False
        except Exception as exc:
            held.restore()  # the retry and the dead letter carry every call
            if ingestor is not None and (isinstance(exc, StoreUnavailable)
                                         or store_exhausted(exc, settings)):
                runtime.reset_store(ingestor)
            if self.request.retries >= options.max_retries:
                letter = _dead_letter(self, runtime, kept, exc, attempt)
                if letter is not None:
                    log.error("ingest batch %s: failed %d times, dead-lettered as %s: %r",
                              batch_id, attempt, letter.id, exc)
                _forget(self, runtime, claim)
                return False
            countdown = options.countdown(self.request.retries)
            log.warning("ingest batch %s: attempt %d failed (%r), retry in %gs%s",
                        batch_id, attempt, exc, countdown, _hint(exc, settings))
            raise self.retry(exc=exc, countdown=countdown) from exc
        log.info("ingest batch %s: timings: queue %.3fs, build %.3fs, commit %.3fs",
                 batch_id, timings["queue"], timings["build"], timings["commit"])
        log.info("ingest batch %s: %s", batch_id, "applied" if applied else "duplicate")
        _forget(self, runtime, claim)
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


def _forget(task: Task, runtime: WorkerRuntime, claim: str | None) -> None:
    """The batch has its verdict: drop its delivery count and its stored payload.

    Only now, before the message is acknowledged: a redelivery after this
    finds no payload and ends there (the verdict stands: applied, or dead
    letters holding the payload).
    """
    keys = [DELIVERIES_KEY + str(task.request.id)]
    if claim is not None:
        keys.append(claim)
    try:
        runtime.redis.delete(*keys)
    except redis.RedisError as exc:  # both keys expire on their own
        log.warning("cannot clear delivery count and payload of task %s: %r",
                    task.request.id, exc)


def _gone(task: Task, runtime: WorkerRuntime, batch_id: str | None, claim: str) -> bool:
    """A claim whose payload is not in Redis: nothing left to do (the task's result)."""
    log.error("ingest batch %s: its payload (%s) is gone: it had its verdict"
              " (applied, or dead-lettered) before this delivery, or it expired",
              batch_id, claim)
    _forget(task, runtime, claim)
    return False


def _unreadable(task: Task, batch_id: str | None, exc: Exception) -> Exception:
    """The retry of a batch whose payload Redis did not give (it is there: wait)."""
    log.warning("ingest batch %s: cannot read its payload (%r), retry in 1s", batch_id, exc)
    return task.retry(exc=exc, countdown=1.0, max_retries=None)


def _dead_letter(
    task: Task, runtime: WorkerRuntime, payload: Callable[[], Any], exc: Exception,
    attempt: int
) -> DeadLetter | None:
    """Record the batch, as `payload()` gives it, as dead; if Redis refuses, retry the
    task rather than lose it. None when its stored payload went meanwhile (another
    delivery of the task had its verdict): nothing to keep."""
    try:
        return runtime.dead_letters.add(payload(), exc, attempt, task.request.id)
    except claims.PayloadGone as gone:
        log.warning("task %s: its payload (%s) went before it was dead-lettered: another"
                    " delivery had its verdict", task.request.id, gone)
        return None
    except redis.RedisError as redis_exc:
        log.warning("dead-lettering failed (%r); the batch will be retried", redis_exc)
        raise task.retry(exc=redis_exc, countdown=1.0, max_retries=None) from redis_exc
