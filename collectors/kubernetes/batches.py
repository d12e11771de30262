"""Group lease changes into collector batches and hand them to a sink.

A batch is ``{"batch_id", "agent", "endpoints": [...]}`` as in
topology/ingest/events.schema.json. Within the pending set a lease is kept
once per identity (ip, port, from, workload): when it changes twice before a
flush (opened, then its labels change, then closed), only its last state is
sent, since that supersedes the others anyway.

A sink that raises keeps the leases pending: they are offered again after a
growing delay, and newer changes of the same lease replace them meanwhile, so
an outage costs memory bounded by the number of distinct leases, never a lost
``to``. Only an exception with a true ``permanent`` attribute (the agents'
``SinkError`` for a rejected batch) drops the batch, since resending the same
content cannot succeed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

Batch = dict[str, Any]
Sink = Callable[[Batch], None]


def _identity(lease: dict[str, Any]) -> tuple[Any, ...]:
    wl = lease["workload"]
    return (lease["ip"], lease.get("port"), lease["from"],
            wl["cluster"], wl["namespace"], wl["kind"], wl["name"])


class Batcher:
    """Pending leases, flushed when full, when old enough, or on demand.

    ``clock`` is monotonic seconds (it only times batching and retries).
    """

    def __init__(
        self, sink: Sink, agent: str, clock: Callable[[], float], *,
        max_endpoints: int = 500, max_delay: float = 1.0,
        retry_initial: float = 0.5, retry_max: float = 30.0,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        if max_endpoints < 1:
            raise ValueError(f"Batcher: max_endpoints must be >= 1, got {max_endpoints}")
        self._sink = sink
        self._agent = agent
        self._clock = clock
        self._max = max_endpoints
        self._max_delay = max_delay
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._retry: float | None = None  # current backoff while the sink fails
        self._new_id = new_id
        self._pending: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._due_at: float | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, leases: Iterable[dict[str, Any]]) -> None:
        for lease in leases:
            if self._due_at is None:
                self._due_at = self._clock() + self._max_delay
            key = _identity(lease)
            self._pending.pop(key, None)  # re-queue at the end: order of last change
            self._pending[key] = lease
        if len(self._pending) >= self._max and self._retry is None:
            self.flush()

    def due(self) -> bool:
        return self._due_at is not None and self._clock() >= self._due_at

    def seconds_until_due(self) -> float | None:
        """Seconds until :meth:`due` turns true (None when nothing is pending)."""
        if self._due_at is None:
            return None
        return max(0.0, self._due_at - self._clock())

    def flush(self) -> int:
        """Send everything pending, ``max_endpoints`` per batch; returns batches sent.

        Stops at the first sink failure and schedules a retry.
        """
        sent = 0
        while self._pending:
            keys = list(self._pending)[: self._max]
            batch: Batch = {
                "batch_id": f"{self._agent}:{self._new_id()}",
                "agent": self._agent,
                "endpoints": [self._pending[k] for k in keys],
            }
            try:
                self._sink(batch)
            except Exception as exc:  # any sink: the leases stay pending
                if getattr(exc, "permanent", False):  # e.g. a 4xx: resending cannot help
                    log.error("kubernetes watcher: sink rejected batch %s for good, dropping "
                              "%d leases: %s", batch["batch_id"], len(keys), exc)
                    for key in keys:
                        del self._pending[key]
                    continue
                self._retry = (self._retry_initial if self._retry is None
                               else min(self._retry * 2, self._retry_max))
                self._due_at = self._clock() + self._retry
                log.warning("kubernetes watcher: sink failed for %d leases (%s: %s); "
                            "retrying in %.1fs", len(self._pending), type(exc).__name__, exc,
                            self._retry)
                return sent
            for key in keys:
                del self._pending[key]
            sent += 1
        self._retry = None
        self._due_at = None
        return sent
