"""Group commit: batches from several threads written in one store transaction.

A worker that takes several batches at once (Celery's threads pool) builds
each on its own thread, then hands the result to `GroupCommit.apply` and
waits. Whoever finds no write running becomes the writer: it takes every
batch waiting (up to `max_batches` and `max_rows` bucket rows) and applies
them together with
`GraphStore.apply_many`, then hands each waiting thread its own outcome.
While that write runs, the next batches gather for the next one (and a
writer lingers, up to `linger` seconds, for batches other threads announced
with `expect` and are still building), so the slower the store, the more
batches each transaction carries; with a bounded number of distinct keys
(edges per minute), the rows per transaction stay bounded while the events
per transaction grow.

Exactly-once is the store's: each batch keeps its id, applied at most once.
A caller learns its outcome only after the transaction holding its batch
committed (or failed), so a Celery task acknowledged after `apply` returns
is acknowledged only once its batch is durable.

When a group of several batches fails, each is tried again alone, so one
poisonous batch fails by itself and the others are written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from topology.ingest.turns import WriteTurns
from topology.model import Batch

if TYPE_CHECKING:
    from topology.store.base import GraphStore

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCHES = 64
# Bucket rows per transaction (before merging across batches): a transaction's
# memory in the store (LadybugDB's buffer pool) grows with it.
DEFAULT_MAX_ROWS = 100_000
# Longest a writer waits for batches announced (`expect`) but still being
# built: a transaction costs about the same for one batch as for several
# over the same keys, so waiting a little for the others saves a whole one.
DEFAULT_LINGER = 1.0


class _Waiting:
    __slots__ = ("applied", "batch", "done", "error")

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.done = False
        self.applied = False
        self.error: BaseException | None = None

    def outcome(self) -> bool:
        if self.error is not None:
            raise self.error
        return self.applied


class GroupCommit(WriteTurns):
    def __init__(
        self, store: GraphStore, clock: Callable[[], float],
        max_batches: int = DEFAULT_MAX_BATCHES, max_rows: int = DEFAULT_MAX_ROWS,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        if max_batches < 1:
            raise ValueError(f"max_batches must be at least 1, not {max_batches}")
        self.store = store
        self.clock = clock
        self.max_batches = max_batches
        self.max_rows = max_rows
        self.linger = linger
        # Whether a failed group is worth writing batch by batch: not when the
        # error is the store's, not a batch's (e.g. it ran out of memory).
        self.isolate: Callable[[Exception], bool] = lambda exc: True
        super().__init__()
        self._waiting: list[_Waiting] = []
        self.commits = 0  # transactions attempted (for tests and benchmarks)
        self.largest = 0  # most batches in one transaction

    def apply(self, batch: Batch, *, expected: bool = False) -> bool:
        """Write `batch` (with whatever else is waiting); True when applied, False when
        its id was applied before. Raises what the write raised. `expected`: the
        batch was announced with `expect`."""
        me = _Waiting(batch)
        with self._cond:
            if expected:
                self._expected -= 1
            self._waiting.append(me)
            self._cond.notify_all()
        while True:
            with self._cond:
                while not me.done and self._writing:
                    self._cond.wait()
                if me.done:
                    return me.outcome()
                self._writing = True
                deadline = time.monotonic() + self.linger
                while (self._expected > 0 and len(self._waiting) < self.max_batches
                       and (left := deadline - time.monotonic()) > 0):
                    self._cond.wait(left)
                group = self._take()
            try:
                self._write(group)
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()

    def _take(self) -> list[_Waiting]:
        """The oldest waiting batches within both bounds (always at least one)."""
        rows = taken = 0
        for waiting in self._waiting[:self.max_batches]:
            rows += len(waiting.batch.calls)
            if taken and rows > self.max_rows:
                break
            taken += 1
        group = self._waiting[:taken]
        del self._waiting[:taken]
        return group

    @property
    def waiting(self) -> int:
        """Batches handed in and not yet taken by a write."""
        with self._cond:
            return len(self._waiting)


    def _write(self, group: list[_Waiting]) -> None:
        self.commits += 1
        self.largest = max(self.largest, len(group))
        started = time.perf_counter()
        try:
            try:
                outcomes = self.store.apply_many([w.batch for w in group],
                                                 now=int(self.clock()))
            except Exception as exc:
                if len(group) == 1 or not self.isolate(exc):
                    for waiting in group:
                        waiting.error = exc
                    return
                log.warning("group commit of %d batches failed (%r); writing each alone",
                            len(group), exc)
                for one in group:
                    self._write([one])
                return
            for waiting, applied in zip(group, outcomes, strict=True):
                waiting.applied = applied
            log.info("store commit: %d batch(es), %d new, in %.2fs", len(group),
                     sum(outcomes), time.perf_counter() - started)
        except BaseException as exc:  # interpreter exit, a bug: nobody waits forever
            for waiting in group:
                if not waiting.done and waiting.error is None:
                    waiting.error = exc
            raise
        finally:
            for waiting in group:
                waiting.done = True
