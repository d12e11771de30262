"""Cyclic garbage collection paused while an answer is built from rows already read.

Building a large map allocates a few hundred thousand objects that all stay
alive until the response is sent; every young-generation collection meanwhile
walks all of them only to promote them (measured: a third of building 20,000
edges). Reference counting still frees everything as usual; only the cycle
detector waits, and only for pure Python work after the store answered, never
around a store read, so a slow or stuck query cannot keep it paused. Nested and
concurrent pauses (answers run in several threads) keep it paused until the
last one ends; it is never turned on when it was off before.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pauses = 0
_was_enabled = False


@contextmanager
def collection_paused() -> Iterator[None]:
    global _pauses, _was_enabled
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()
