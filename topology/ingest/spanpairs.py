"""Pairing CLIENT and SERVER spans of one request, as the servicegraph connector does.

Pure logic, no I/O and no clock of its own: the caller passes `now` and calls
`expire(now)`. A CLIENT span waits under (trace id, its span id); a SERVER span
waits under (trace id, its parent span id). When the other side arrives, the
pair is handed to `on_pair(client, server)` and the key is remembered until the
pair's deadline so a re-sent span (exporter retries) is not counted again. A
span still alone at its deadline (`now >= arrival + ttl`) goes to
`on_expired(span, side)`. The store holds at most `max_pending` waiting spans:
when full, the oldest one is expired early (still reported, never dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
CLIENT = "client"
SERVER = "server"


@dataclass(slots=True)
class _Entry(Generic[T]):
    side: str
    span: T | None  # None once paired: kept only to drop duplicates
    deadline: float


@dataclass
class PairStats:
    paired: int = 0
    expired: int = 0
    evicted: int = 0  # expired early because the store was full
    duplicates: int = 0


class PairStore(Generic[T]):
    def __init__(
        self,
        on_pair: Callable[[T, T], None],
        on_expired: Callable[[T, str], None],
        *,
        ttl: float = 10.0,
        max_pending: int = 100_000,
    ) -> None:
        if ttl <= 0 or max_pending < 1:
            raise ValueError(f"pair store needs ttl > 0 and max_pending >= 1, got {ttl}, "
                             f"{max_pending}")
        self._on_pair = on_pair
        self._on_expired = on_expired
        self._ttl = ttl
        self._max = max_pending
        self._entries: dict[tuple[str, str], _Entry[T]] = {}
        self.stats = PairStats()

    def __len__(self) -> int:
        """Spans waiting for their other side."""
        return sum(1 for e in self._entries.values() if e.span is not None)

    def add_client(self, trace_id: str, span_id: str, span: T, now: float) -> None:
        self._add((trace_id, span_id), CLIENT, span, now)

    def add_server(self, trace_id: str, parent_span_id: str, span: T, now: float) -> None:
        self._add((trace_id, parent_span_id), SERVER, span, now)

    def _add(self, key: tuple[str, str], side: str, span: T, now: float) -> None:
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self._max:
                self._evict_oldest()
            self._entries[key] = _Entry(side, span, now + self._ttl)
            return
        if entry.span is None or entry.side == side:
            self.stats.duplicates += 1
            return
        waiting, entry.span = entry.span, None
        self.stats.paired += 1
        if side == SERVER:
            self._on_pair(waiting, span)
        else:
            self._on_pair(span, waiting)

    def expire(self, now: float) -> int:
        """Hand every span whose deadline has passed to on_expired; returns how many."""
        expired = [key for key, entry in self._entries.items() if entry.deadline <= now]
        count = 0
        for key in expired:
            entry = self._entries.pop(key)
            if entry.span is not None:
                count += 1
                self.stats.expired += 1
                self._on_expired(entry.span, entry.side)
        return count

    def _evict_oldest(self) -> None:
        key = next(iter(self._entries))
        entry = self._entries.pop(key)
        if entry.span is not None:
            self.stats.evicted += 1
            self._on_expired(entry.span, entry.side)
