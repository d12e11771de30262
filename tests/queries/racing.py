"""A write made while a cache fills: committed from another thread, as the
ingest thread commits while the API reads. The embedded store holds a commit
until the reads in progress end (ladybug_gate), so it lands once the fill's
snapshot is over, before or after the cache keeps what it read."""

from __future__ import annotations

import threading

from topology.model import Batch
from topology.store.base import GraphStore


class RacingWrite:
    def __init__(self, store: GraphStore, batch: Batch, now: int) -> None:
        self.store, self.batch, self.now = store, batch, now
        self.applied: list[bool] = []
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=lambda: self.applied.append(self.store.apply(self.batch, now=self.now)))
        self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread is not None

    def finish(self) -> bool:
        """Whether the batch was applied, once the commit is done."""
        assert self._thread is not None, "the write never started"
        self._thread.join(30)
        return self.applied == [True]
