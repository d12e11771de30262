"""Turns at the store shared by the group commits (group.py, coalesce.py).

One write runs at a time (`_writing`, under `_cond`); batches announced with
`expect` and still being built make a writer linger for them; `exclusive`
holds every write off, e.g. while the worker closes the store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class WriteTurns:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._writing = False
        self._expected = 0  # batches announced and still being built

    def expect(self) -> None:
        """A batch is being built and will be handed in (or `cancel`led): a writer
        lingers for it, up to its `linger` seconds."""
        with self._cond:
            self._expected += 1

    def cancel(self) -> None:
        """The batch announced by `expect` will not come (its build failed)."""
        with self._cond:
            self._expected -= 1
            self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold off every write (e.g. to close the store) until the block ends."""
        with self._cond:
            while self._writing:
                self._cond.wait()
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()
