"""Which writes a store has had from this process: the generation shared answers check.

Identical concurrent GraphQL requests may share one execution (see
`topology.api.graphql.flights`). A request that arrives after the shared
execution began reading the store may take its answer only when no write to
the store started or finished in between; this counter says so. The serving
process's writers (the embedded ingest queue's writer thread and the retention
job) mark each write with `writing()`; everything keyed by the store object,
so the two meet without being wired to each other.

The counter knows only this process's writes. It settles the question only
where this process is the store's one writer: the embedded store, written
through the embedded sink (`create_app` decides).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager


class WriteCounter:
    """Writes started and finished; `generation()` is None while one is under way."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started = 0
        self._finished = 0

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._lock:
            self._started += 1
        try:
            yield
        finally:
            with self._lock:
                self._finished += 1

    def generation(self) -> int | None:
        """Writes so far, or None when a write is under way (its effect is unknown)."""
        with self._lock:
            return self._started if self._started == self._finished else None


_COUNTERS: weakref.WeakKeyDictionary[object, WriteCounter] = weakref.WeakKeyDictionary()
_COUNTERS_LOCK = threading.Lock()


def counter_for(store: object) -> WriteCounter:
    """The one counter of this store object."""
    with _COUNTERS_LOCK:
        found = _COUNTERS.get(store)
        if found is None:
            found = _COUNTERS[store] = WriteCounter()
        return found
