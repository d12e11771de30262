"""Coalescing group commit: batches from several threads folded into one set of rows.

`GroupCommit` (group.py) hands the store every batch's own rows, and the
store merges them key by key: with many batches over the same keys (10,000
edges a minute, batches of thousands of calls), that merge costs more than
the write. Here the calls of every batch of a group are aggregated straight
into one `Aggregator`, so a group of any number of batches becomes one row
per key, made once; the store gets those rows in the first batch of the
group and the other batch ids as empty batches, all in one transaction
(`GraphStore.apply_many` marks every id).

Exactly-once then rests on knowing, before a batch's calls are folded, that
its id was not applied before: a folded batch cannot be taken out again. So
a batch joins a group only after two checks, in this order, made by callers
that take turns (the Ingestor's build lock): the ids of groups not yet
committed (`_pending`: a second delivery of such an id waits for that
group's outcome and reports a duplicate), then the store's batch markers.
An id leaves `_pending` only after its transaction committed (or failed),
so one of the two checks always sees it. That needs this coalescer to be
the only writer of batch markers on the store: true for the embedded store
in `topology worker` (one process owns the file and every batch goes
through here); the Neo4j store, shared by several workers, keeps
GroupCommit, where the store alone decides.

A group that fails raises its error in every member; each is retried by its
caller `alone` (a group of its own), so one poisonous batch fails by itself
and the others are written on their retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from topology.ingest.aggregate import Aggregator
from topology.ingest.mentions import Mentions
from topology.ingest.templates import TemplateCap
from topology.ingest.turns import WriteTurns
from topology.model import Batch, Service
from topology.store.statement import Statement

if TYPE_CHECKING:
    from topology.store.base import GraphStore

log = logging.getLogger(__name__)

MARKERS = Statement.same(
    "ingest.batches_applied", "UNWIND $ids AS id MATCH (b:Batch {id: id}) RETURN b.id AS id")

# Distinct rows of one group: the store's memory for a transaction grows with them.
DEFAULT_MAX_ROWS = 100_000
# Batch ids of one group (each is one marker written in its transaction).
DEFAULT_MAX_BATCHES = 256
# Longest a writer waits for batches announced (`expect`) and still being
# built before it takes the group: a transaction costs about the same for
# one batch as for many over the same keys. With the build helper making a
# batch of 5,000 calls in about 0.1 s, 2 s lets a group take about 20
# (bench/ingest_e2e.py: 2-3 transactions instead of 4, docs/delivery.md).
DEFAULT_LINGER = 2.0
# Batches still being built that a writer leaves to the next group: it writes
# once no more than these are on their way, so the build helper has work
# while the transaction runs (the task threads of the group's batches wait
# for it, and only the others can bring new batches).
DEFAULT_RESERVE = 4
# Right after a write, its batches' task threads are still taking their next
# messages: for this long, few batches announced does not yet mean few come.
DEFAULT_SETTLE = 0.25


class GroupFailed(RuntimeError):
    """Another batch of the same group failed while being folded in: the group's
    rows are spoilt and it is not written. Retrying (alone) writes this batch."""


class Member:
    """One batch's place in a group; `outcome` once the group is done."""

    __slots__ = ("applied", "batch_id", "done", "duplicate", "error", "group")

    def __init__(self, batch_id: str, group: Group | None, duplicate: bool) -> None:
        self.batch_id = batch_id
        self.group = group
        self.duplicate = duplicate
        self.done = group is None  # known applied before: nothing to wait for
        self.applied = False
        self.error: BaseException | None = None

    def outcome(self) -> bool:
        if self.error is not None:
            raise self.error
        return self.applied


class Group:
    """Batches whose calls share one aggregator, written in one transaction."""

    def __init__(self, width: float, alone: bool) -> None:
        self.aggregator = Aggregator(width)
        self.services = Mentions()  # two per service id (mentions.py)
        self.ids: list[str] = []
        self.members: list[Member] = []
        self.alone = alone
        self.closed = alone  # takes no more batches
        self.folding = 0  # members still folding their calls in
        self.failure: BaseException | None = None  # a fold failed: never written


class Coalescer(WriteTurns):
    def __init__(
        self, store: GraphStore, templates: TemplateCap, clock: Callable[[], float],
        width: float, *, max_rows: int = DEFAULT_MAX_ROWS,
        max_batches: int = DEFAULT_MAX_BATCHES, linger: float = DEFAULT_LINGER,
        reserve: int = DEFAULT_RESERVE, settle: float = DEFAULT_SETTLE,
    ) -> None:
        if max_batches < 1:
            raise ValueError(f"max_batches must be at least 1, not {max_batches}")
        self.store = store
        self.templates = templates
        self.clock = clock
        self.width = width
        self.max_rows = max_rows
        self.max_batches = max_batches
        self.linger = linger
        self.reserve = reserve
        self.settle = settle
        self._ended = float("-inf")  # monotonic time the last write ended
        self._peak = 0  # most batches in flight at once so far
        super().__init__()
        self._queue: list[Group] = []  # not yet taken by a write; the last may be open
        self._pending: dict[str, Group] = {}  # id -> its group, until that one is done
        self.commits = 0  # transactions attempted
        self.largest = 0  # most batch ids in one transaction
        self.rows = 0  # rows handed to the store

    # -- joining (callers take turns) -----------------------------------

    def join(self, batch_id: str, *, alone: bool = False) -> Member:
        """Place batch `batch_id` in a group (its announcement ends).

        The member is a `duplicate` (fold nothing) when its id waits in a group
        not yet committed, or is `done` when the store applied it before.
        Otherwise the caller folds its calls into `member.group` and calls
        `folded`. Callers must take turns (one join-and-fold at a time).
        """
        with self._cond:
            group = self._pending.get(batch_id)
            if group is not None:
                self._arrived()
                member = Member(batch_id, group, duplicate=True)
                group.members.append(member)
                return member
        # Checked after `_pending`: an id leaves it only once committed.
        try:
            applied = self.store.read(MARKERS, {"ids": [batch_id]})
        except BaseException:
            with self._cond:
                self._arrived()
            raise
        with self._cond:
            # The announcement ends as the batch joins, in one step: a lingering
            # writer never sees it neither announced nor in the group.
            self._arrived()
            if applied:
                return Member(batch_id, None, duplicate=True)
            group = self._queue[-1] if self._queue else None
            if alone or group is None or group.closed or self._full(group):
                group = Group(self.width, alone)
                self._queue.append(group)
            member = Member(batch_id, group, duplicate=False)
            group.members.append(member)
            group.ids.append(batch_id)
            group.folding += 1
            self._pending[batch_id] = group
            return member

    def expect(self) -> None:
        """`WriteTurns.expect`, noting the most batches in flight at once."""
        with self._cond:
            self._expected += 1
            self._peak = max(self._peak, self._in_flight())

    def _in_flight(self) -> int:
        """Batches announced or in groups not yet committed (under the lock)."""
        return self._expected + len(self._pending)

    def _arrived(self) -> None:
        """An announced batch joined (under the lock)."""
        self._expected -= 1
        self._cond.notify_all()

    def folded(self, member: Member, services: Sequence[Service],
               failure: BaseException | None = None) -> None:
        """The member's calls are in its group's aggregator (or folding failed:
        then the group is never written and every member gets the error)."""
        group = member.group
        assert group is not None
        with self._cond:
            group.services.extend(services)
            group.folding -= 1
            if failure is not None and group.failure is None:
                group.failure = failure
            self._cond.notify_all()

    # -- waiting and writing ---------------------------------------------

    def wait(self, member: Member) -> bool:
        """Block until the member's group is done: True applied, False applied
        before; raises what its transaction (or a fold) raised."""
        while True:
            with self._cond:
                while not member.done and self._writing:
                    self._cond.wait()
                if member.done:
                    return member.outcome()
                self._writing = True
                group = self._take()
            try:
                self._write(group)
            finally:
                with self._cond:
                    for batch_id in group.ids:
                        self._pending.pop(batch_id, None)
                    for waiting in group.members:
                        waiting.done = True
                        waiting.group = None  # no cycle: the rows go with the last reference
                    group.members.clear()
                    self._writing = False
                    self._ended = time.monotonic()
                    self._cond.notify_all()

    def _take(self) -> Group:
        """The oldest group, closed and with every fold finished (under the lock).

        With one open group, the writer lingers for batches still being built,
        up to `linger` seconds, until no more than `reserve` of them are left
        (within `settle` of the last write, until then whatever is announced),
        or none when fewer are in flight than have been at once.
        """
        deadline = time.monotonic() + self.linger
        while len(self._queue) == 1 and not self._queue[0].closed:
            now = time.monotonic()
            left = deadline - now
            if left <= 0 or self._full(self._queue[0]):
                break
            if self._expected <= self.reserve:
                settled = self._ended + self.settle - now
                if settled > 0:
                    left = min(left, settled)
                elif self._expected == 0 or self._in_flight() >= self._peak:
                    break
                # else fewer batches are on their way than the worker has taken at
                # once: nothing follows those still being built (the end of a
                # burst), so they join this group rather than make one more.
            self._cond.wait(left)
        group = self._queue[0]
        group.closed = True
        while group.folding:
            self._cond.wait()
        self._queue.pop(0)
        return group

    def _write(self, group: Group) -> None:
        try:
            if group.failure is not None:
                raise GroupFailed(f"another batch of this transaction failed while being"
                                  f" built ({group.failure!r}); nothing was written")
            rows = group.aggregator.take_capped(self.templates)
            first, *rest = group.ids
            batches = [Batch(id=first, services=group.services.services(), calls=rows),
                       *(Batch(id=batch_id) for batch_id in rest)]
            started = time.perf_counter()
            self.commits += 1
            self.largest = max(self.largest, len(batches))
            self.rows += len(rows)
            outcomes = self.store.apply_many(batches, now=int(self.clock()))
        except BaseException as exc:
            for member in group.members:
                member.error = exc
            if not isinstance(exc, Exception):
                raise
            return
        if not all(outcomes):  # someone else wrote markers: this module's premise broke
            log.error("coalesced commit: batch ids %s were applied before; their calls were"
                      " counted again", [b.id for b, ok in zip(batches, outcomes,
                                                               strict=True) if not ok])
        for member in group.members:
            member.applied = not member.duplicate
        log.info("store commit: %d batch(es), %d new, %d rows, in %.2fs", len(batches),
                 sum(outcomes), len(rows), time.perf_counter() - started)

    def _full(self, group: Group) -> bool:
        return len(group.ids) >= self.max_batches or len(group.aggregator) >= self.max_rows

    @property
    def waiting(self) -> int:
        """Batches in groups not yet taken by a write."""
        with self._cond:
            return sum(len(group.ids) for group in self._queue)
