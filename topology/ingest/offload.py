"""Builds on the second core: helper processes decode, validate and resolve batches.

An embedded-store worker is one process (it owns the database file), and its
Python shares one GIL: decoding a batch's JSON, validating it, resolving its
calls and folding their paths took about 60% of that one core. `BuildPool`
runs those steps in helper processes (spawned, never forked from the
multithreaded worker) on payloads as stored by the claim check (claims.py):
the task thread hands over the payload's key, the helper reads the payload
from Redis itself (the worker's process never holds the stored bytes, nor
copies them into the pool's pipe) and the task gets back a `Prepared`
batch, its calls placed in their rows (`Aggregator.place`). A payload the
helper does not find raises `claims.PayloadGone`, a Redis error while
reading it `claims.PayloadUnreadable`: the task handles both as when it
read the payload itself. The worker then only
folds them into its group (`Ingestor.ingest_prepared`, `Aggregator.
add_placed`), in turn with the other task threads, exactly as it folds calls
itself: the rows, down to the rounding of latency sums, are the same.

Everything else stays in the worker: the batch-marker check and the fold
(exactly-once, coalesce.py), the template cap and the write. A helper only
reads and writes what any worker may (leases and DNS answers in Redis, both
idempotent), so an error in it is the batch's error: InvalidBatch is
dead-lettered, anything else retried. A helper that dies (killed, out of
memory) breaks the pool: its batches fail with `BuildPoolBroken` and are
retried, and the next batch starts a new pool.

A helper does not run the worker's `__main__` (spawn's default, to find
functions defined there): as `topology worker` that is the `topology`
command, which loads every subcommand and pyarrow with them, about 30 MB
of RSS in a process that needs none of it. Its jobs are all in this module.

One helper by default (`TOPOLOGY_INGEST_BUILD_PROCESSES`; 0 builds in the
worker itself): one process takes batches in the order they come, as the
worker's own build did, so a batch's leases are recorded before the next
batch is resolved.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.context
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import spawn
from typing import Any, TypeVar

import redis

from topology.ingest import claims, gctune
from topology.ingest.dns import RedisDnsStore
from topology.ingest.leases import RedisLeaseStore
from topology.ingest.paths import PathFolder
from topology.ingest.pipeline import Prepared, prepare
from topology.ingest.schema import decode
from topology.settings import Settings, SettingsError

log = logging.getLogger(__name__)

PROCESSES_ENV = "TOPOLOGY_INGEST_BUILD_PROCESSES"
DEFAULT_PROCESSES = 1
ORPHAN_CHECK = 1.0  # seconds between a helper's checks that its worker lives

_Job = TypeVar("_Job", bytes, str)  # what a helper is handed: a payload, or its key


HELPER_NAME = "topology-build-helper"
# What a spawned process runs of its parent's __main__ (multiprocessing.spawn).
_MAIN_KEYS = ("init_main_from_name", "init_main_from_path")
_preparation = spawn.get_preparation_data


def _lean_preparation(name: str) -> dict[str, Any]:
    """spawn's preparation data for a new process: a build helper's without the
    parent's __main__; any other process's as multiprocessing makes it."""
    data: dict[str, Any] = _preparation(name)
    if name.startswith(HELPER_NAME):
        for key in _MAIN_KEYS:
            data.pop(key, None)
    return data


spawn.get_preparation_data = _lean_preparation


class _HelperProcess(multiprocessing.context.SpawnProcess):
    """A spawned process named as a build helper (`_lean_preparation`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = f"{HELPER_NAME}-{self._identity[-1] if self._identity else 0}"


class _HelperContext(multiprocessing.context.SpawnContext):
    Process = _HelperProcess


class BuildPoolBroken(RuntimeError):
    """A build helper process died; the batch is retried on a new one."""


def processes(environ: Mapping[str, str] | None = None) -> int:
    """Helper processes of an embedded-store worker (0: build in the worker)."""
    environ = os.environ if environ is None else environ
    raw = environ.get(PROCESSES_ENV)
    if raw is None:
        return DEFAULT_PROCESSES
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise SettingsError(f"{PROCESSES_ENV}: {raw!r} is not a non-negative integer")
    return value


class _Helper:
    """What one helper process keeps between batches: Redis-backed leases and DNS
    answers (with their snapshot caches) and the path folder's memo."""

    def __init__(self, settings: Settings) -> None:
        assert settings.redis_url is not None
        client = self.client = redis.Redis.from_url(settings.redis_url)
        self.leases = RedisLeaseStore(client, settings.batch_marker_retention, time.time)
        self.dns = RedisDnsStore(client, settings.dns_retention, time.time)
        self.folder = PathFolder()
        self.width = settings.bucket_width

    def prepare(self, raw: bytes) -> Prepared:
        return prepare(decode(raw), self.leases, self.dns, self.folder, self.width)

    def prepare_claimed(self, key: str) -> Prepared:
        try:
            raw = claims.fetch(self.client, key)
        except redis.RedisError as exc:
            raise claims.PayloadUnreadable(f"cannot read {key}: {exc!r}") from None
        if raw is None:
            raise claims.PayloadGone(key)
        return self.prepare(raw)


_helper: _Helper | None = None


def _start_helper(settings: Settings) -> None:
    global _helper
    gctune.tune()  # a decoded batch is large and acyclic, as in the worker
    _helper = _Helper(settings)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True,
                     name="exit-with-worker").start()


def _exit_with_parent(parent: int, interval: float = ORPHAN_CHECK) -> None:
    """End this helper once its worker is gone (killed: nobody shuts the pool down,
    and a helper waiting for work would wait forever)."""
    while True:
        time.sleep(interval)
        if os.getppid() != parent:
            os._exit(0)


def _prepare(raw: bytes) -> Prepared:
    assert _helper is not None, "the build helper was not initialised"
    return _helper.prepare(raw)


def _prepare_claimed(key: str) -> Prepared:
    assert _helper is not None, "the build helper was not initialised"
    return _helper.prepare_claimed(key)


class BuildPool:
    """Helper processes preparing stored payloads; `prepare` blocks the calling thread."""

    def __init__(self, settings: Settings, processes: int = DEFAULT_PROCESSES) -> None:
        if processes < 1:
            raise ValueError(f"a build pool needs at least one process, not {processes}")
        self.settings = settings
        self.processes = processes
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise BuildPoolBroken("the build pool is closed (the worker is stopping)")
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self.processes, mp_context=_HelperContext(),
                    initializer=_start_helper, initargs=(self.settings,))
            return self._executor

    def prepare(self, raw: bytes) -> Prepared:
        """The stored payload `raw`, prepared by a helper; raises what it raised."""
        return self._run(_prepare, raw)

    def prepare_claimed(self, key: str) -> Prepared:
        """The payload stored under `key`, read and prepared by a helper; raises
        claims.PayloadGone when it is not there, or what the helper raised."""
        return self._run(_prepare_claimed, key)

    def _run(self, job: Callable[[_Job], Prepared], arg: _Job) -> Prepared:
        executor = self._pool()
        try:
            return executor.submit(job, arg).result()
        except BrokenProcessPool as exc:
            with self._lock:
                if self._executor is executor:
                    self._executor = None  # the next batch starts a new pool
            executor.shutdown(wait=False, cancel_futures=True)
            log.warning("a build helper process died (%s); its batches are retried", exc)
            raise BuildPoolBroken(f"a build helper process died: {exc}") from None

    def close(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
            self._closed = True
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
