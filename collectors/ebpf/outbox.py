"""Batches in the collector format, and the bounded backlog waiting for delivery.

A batch is sealed when it holds `batch_size` items or is `flush_interval` old;
its id is set at sealing and never changes, so a retried delivery is the same
batch to the ingest side. The backlog holds at most `max_backlog` batches: when
the sink is down the oldest are dropped and counted, memory stays bounded.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from collectors.ebpf.stats import Stats

KINDS = ("calls", "dns", "endpoints")


class Outbox:
    def __init__(self, agent: str, stats: Stats, *, batch_size: int = 500,
                 flush_interval: float = 5.0, max_backlog: int = 64,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if batch_size < 1 or max_backlog < 1:
            raise ValueError("batch_size and max_backlog must be at least 1")
        self.agent = agent
        self.stats = stats
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_backlog = max_backlog
        self.clock = clock
        self._run = uuid.uuid4().hex[:12]
        self._seq = 0
        self._items: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}
        self._count = 0
        self._opened = clock()
        self._backlog: deque[dict[str, Any]] = deque()
        self._ready = threading.Condition()

    def add(self, kind: str, item: dict[str, Any]) -> None:
        if self._count == 0:
            self._opened = self.clock()
        self._items[kind].append(item)
        self._count += 1
        if self._count >= self.batch_size:
            self.seal()

    def due(self) -> bool:
        return self._count > 0 and self.clock() - self._opened >= self.flush_interval

    def seal(self) -> dict[str, Any] | None:
        """Close the open batch (if it has anything) and queue it for delivery."""
        if self._count == 0:
            return None
        self._seq += 1
        batch: dict[str, Any] = {"batch_id": f"{self.agent}:{self._run}:{self._seq}",
                                 "agent": self.agent}
        for kind in KINDS:
            if self._items[kind]:
                batch[kind] = self._items[kind]
        self._items = {kind: [] for kind in KINDS}
        self._count = 0
        with self._ready:
            self._backlog.append(batch)
            while len(self._backlog) > self.max_backlog:
                dropped = self._backlog.popleft()
                self.stats.dropped_batches += 1
                self.stats.dropped_items += sum(len(dropped.get(k, ())) for k in KINDS)
            self.stats.backlog_batches = len(self._backlog)
            self._ready.notify()
        return batch

    def next_batch(self, timeout: float) -> dict[str, Any] | None:
        """The oldest undelivered batch (left in place until `done`), or None."""
        with self._ready:
            if not self._backlog:
                self._ready.wait(timeout)
            return self._backlog[0] if self._backlog else None

    def done(self, batch: dict[str, Any]) -> None:
        """Delivered (or rejected for good): remove it, unless already dropped."""
        with self._ready:
            if self._backlog and self._backlog[0] is batch:
                self._backlog.popleft()
            self.stats.backlog_batches = len(self._backlog)

    def pending(self) -> int:
        with self._ready:
            return len(self._backlog)
