"""Builds on the second core: helper processes decode, validate and resolve batches.

An embedded-store worker is one process (it owns the database file), and its
Python shares one GIL: decoding a batch's JSON, validating it, resolving its
calls and folding their paths took about 60% of that one core. `BuildPool`
runs those steps in helper processes (build_helper.py) on payloads as
stored by the claim check (claims.py): the task thread hands over the
payload's key, the helper reads the payload from Redis itself (the worker's
process never holds the stored bytes, nor copies them to the helper) and the
task gets back a `Prepared` batch, its calls placed in their rows
(`Aggregator.place`). A payload the helper does not find raises
`claims.PayloadGone`, a Redis error while reading it
`claims.PayloadUnreadable`: the task handles both as when it read the
payload itself. The worker then only folds them into its group
(`Ingestor.ingest_prepared`, `Aggregator.add_placed`), in turn with the other
task threads, exactly as it folds calls itself: the rows, down to the
rounding of latency sums, are the same.

Everything else stays in the worker: the batch-marker check and the fold
(exactly-once, coalesce.py), the template cap and the write. A helper only
reads and writes what any worker may (leases and DNS answers in Redis, both
idempotent), so an error in it is the batch's error: InvalidBatch is
dead-lettered, anything else retried. A helper that dies (killed, out of
memory) fails the batch it was building with `BuildPoolBroken` (retried),
and the next batch starts a new helper.

Why not `concurrent.futures.ProcessPoolExecutor` (used before): its spawned
processes start multiprocessing's resource tracker, one more interpreter
(13 MB RSS) that nothing here needs; spawn re-runs the worker's `__main__`
in each helper (as `topology worker` that is the `topology` command, every
subcommand and pyarrow: about 30 MB), which only a patch of multiprocessing's
internals avoided; and the helper imported what offload.py's worker side
imports (kombu, multiprocessing). A helper is now a plain
`python -m topology.ingest.build_helper` started with `subprocess`, talking
over a socket pair in pickled frames (frames.py); its standard error is the
worker's, so a crash is seen in the worker's log. Bench (bench/ingest_e2e.py,
docs/delivery.md "Memory"): helper and tracker 70 MB RSS at the peak
before, the helper alone 55 MB after.

One helper by default (`TOPOLOGY_INGEST_BUILD_PROCESSES`; 0 builds in the
worker itself). Each helper has a feeder thread in the worker that takes the
next job from one queue, hands it over and waits for its answer, so a helper
builds one batch at a time and an idle helper takes the next job. With one
helper batches are built in the order they come, as the worker's own build
did, so a batch's leases are recorded before the next batch is resolved.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any

from topology.ingest import claims, frames
from topology.ingest.pipeline import Prepared
from topology.settings import Settings, SettingsError

log = logging.getLogger(__name__)

PROCESSES_ENV = "TOPOLOGY_INGEST_BUILD_PROCESSES"
DEFAULT_PROCESSES = 1
HELPER_MODULE = "topology.ingest.build_helper"
STOP_WAIT = 10.0  # seconds a helper gets to exit once its socket is closed

_Job = tuple[str, Any, "Future[Prepared]"]


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


class RemoteTraceback(Exception):
    """The cause of an exception raised in a build helper: its traceback there."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class _Helper:
    """One helper process, seen from its feeder thread."""

    def __init__(self, settings: Settings) -> None:
        mine, theirs = socket.socketpair()
        # The worker's import path, in its order (as multiprocessing's spawn passes
        # it), so the helper runs the worker's code; -P: not the current directory.
        env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:  # stderr: the worker's
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-m", HELPER_MODULE, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env)
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self.sock = mine
        try:
            frames.send(mine, frames.dumps(settings))
        except OSError as exc:
            raise self.broken(exc) from None

    @property
    def pid(self) -> int:
        return self.process.pid

    def run(self, kind: str, arg: Any) -> tuple[Any, ...]:
        """The helper's reply to one job; BuildPoolBroken when it died meanwhile."""
        try:
            frames.send(self.sock, frames.dumps((kind, arg)))
            data = frames.receive(self.sock)
        except (OSError, EOFError) as exc:
            raise self.broken(exc) from None
        try:
            reply: tuple[Any, ...] = frames.loads(data)
        except Exception as exc:  # an exception type that does not unpickle here
            return ("error", RuntimeError(f"a build helper's reply did not unpickle: {exc!r}"),
                    "")
        return reply

    def broken(self, exc: BaseException) -> BuildPoolBroken:
        self.stop(wait=1.0)
        code = self.process.returncode
        log.warning("build helper %d died (exit code %s, %s); its batch is retried",
                    self.pid, code, exc)
        return BuildPoolBroken(f"a build helper process died (pid {self.pid}, exit code "
                               f"{code}): {exc}")

    def stop(self, wait: float = STOP_WAIT) -> None:
        """Close the helper's socket (it exits on EOF) and wait for it to exit."""
        self.sock.close()
        try:
            self.process.wait(wait)
        except subprocess.TimeoutExpired:
            log.warning("build helper %d did not exit; killing it", self.pid)
            self.process.kill()
            self.process.wait()


def _settle(future: Future[Prepared], reply: tuple[Any, ...]) -> None:
    """Give a job's future the helper's reply (build_helper.py's docstring)."""
    match reply:
        case ("ok", prepared):
            future.set_result(prepared)
        case ("gone", key):
            future.set_exception(claims.PayloadGone(key))
        case ("unreadable", message):
            future.set_exception(claims.PayloadUnreadable(message))
        case ("error", exc, remote):
            if remote:
                exc.__cause__ = RemoteTraceback(remote)
            future.set_exception(exc)
        case _:
            future.set_exception(RuntimeError(f"a build helper's reply is not one: {reply!r}"))


class BuildPool:
    """Helper processes preparing stored payloads; `prepare` blocks the calling thread."""

    def __init__(self, settings: Settings, processes: int = DEFAULT_PROCESSES) -> None:
        if processes < 1:
            raise ValueError(f"a build pool needs at least one process, not {processes}")
        self.settings = settings
        self.processes = processes
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._feeders: list[threading.Thread] = []
        self._helpers: dict[int, _Helper] = {}  # feeder number -> its live helper
        self._closed = False

    def prepare(self, raw: bytes) -> Prepared:
        """The stored payload `raw`, prepared by a helper; raises what it raised."""
        return self._run("payload", raw)

    def prepare_claimed(self, key: str) -> Prepared:
        """The payload stored under `key`, read and prepared by a helper; raises
        claims.PayloadGone when it is not there, or what the helper raised."""
        return self._run("claim", key)

    def helper_pids(self) -> list[int]:
        """The process ids of the helpers running now (started with the first batch)."""
        with self._lock:
            return sorted(helper.pid for helper in self._helpers.values())

    def _run(self, kind: str, arg: Any) -> Prepared:
        future: Future[Prepared] = Future()
        with self._lock:
            if self._closed:
                raise BuildPoolBroken("the build pool is closed (the worker is stopping)")
            if not self._feeders:
                for number in range(self.processes):
                    feeder = threading.Thread(target=self._feed, args=(number,), daemon=True,
                                              name=f"build-feeder-{number}")
                    feeder.start()
                    self._feeders.append(feeder)
            self._jobs.put((kind, arg, future))
        del arg
        return future.result()

    def _feed(self, number: int) -> None:
        """One helper's thread: hand it the next job, settle its future, repeat."""
        helper: _Helper | None = None
        try:
            while (job := self._jobs.get()) is not None:
                kind, arg, future = job
                del job
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    if helper is None:
                        helper = self._start(number)
                    reply = helper.run(kind, arg)
                except BuildPoolBroken as exc:
                    self._forget(number)
                    helper = None
                    future.set_exception(exc)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    _settle(future, reply)
                del arg, future
        finally:
            if helper is not None:
                self._forget(number)
                helper.stop()

    def _start(self, number: int) -> _Helper:
        helper = _Helper(self.settings)
        with self._lock:
            self._helpers[number] = helper
        return helper

    def _forget(self, number: int) -> None:
        with self._lock:
            self._helpers.pop(number, None)

    def close(self) -> None:
        """Stop the helpers once their batches are built; batches not yet handed
        to one fail with BuildPoolBroken (and are retried)."""
        with self._lock:
            self._closed = True
            feeders, self._feeders = self._feeders, []
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None and job[2].set_running_or_notify_cancel():
                job[2].set_exception(BuildPoolBroken("the build pool is closed (the worker "
                                                     "is stopping)"))
        for _ in feeders:
            self._jobs.put(None)
        for feeder in feeders:
            feeder.join()
