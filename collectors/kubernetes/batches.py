"""Group lease changes into collector batches and hand them to a sink.

A batch is ``{"batch_id", "agent", "endpoints": [...]}`` as in
topology/ingest/events.schema.json. Within a pending batch a lease is kept
once per identity (ip, port, from, workload): when it changes twice before a
flush (opened, then its labels change, then closed), only its last state is
sent, since that supersedes the others anyway.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

Batch = dict[str, Any]
Sink = Callable[[Batch], None]


def _identity(lease: dict[str, Any]) -> tuple[Any, ...]:
    wl = lease["workload"]
    return (lease["ip"], lease.get("port"), lease["from"],
            wl["cluster"], wl["namespace"], wl["kind"], wl["name"])


class Batcher:
    """Pending leases, flushed when full, when old enough, or on demand."""

    def __init__(
        self, sink: Sink, agent: str, clock: Callable[[], float], *,
        max_endpoints: int = 500, max_delay: float = 1.0,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        if max_endpoints < 1:
            raise ValueError(f"Batcher: max_endpoints must be >= 1, got {max_endpoints}")
        self._sink = sink
        self._agent = agent
        self._clock = clock
        self._max = max_endpoints
        self._max_delay = max_delay
        self._new_id = new_id
        self._pending: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._since: float | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, leases: Iterable[dict[str, Any]]) -> None:
        for lease in leases:
            if self._since is None:
                self._since = self._clock()
            self._pending[_identity(lease)] = lease
            if len(self._pending) >= self._max:
                self.flush()

    def due(self) -> bool:
        return self._since is not None and self._clock() - self._since >= self._max_delay

    def seconds_until_due(self) -> float | None:
        """Seconds until :meth:`due` turns true (None when nothing is pending)."""
        if self._since is None:
            return None
        return max(0.0, self._max_delay - (self._clock() - self._since))

    def flush(self) -> Batch | None:
        """Send what is pending as one batch (nothing when empty); returns the batch sent."""
        if not self._pending:
            return None
        batch: Batch = {
            "batch_id": f"{self._agent}:{self._new_id()}",
            "agent": self._agent,
            "endpoints": list(self._pending.values()),
        }
        self._sink(batch)
        self._pending.clear()
        self._since = None
        return batch
