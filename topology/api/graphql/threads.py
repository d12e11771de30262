"""Worker threads for the CPU-bound parts of an answer: computing it, and encoding a
large one (see executor.py), so the event loop stays free meanwhile."""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")
ANSWER_THREADS = max(2, os.cpu_count() or 2)
_LIMITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary())


def limiter() -> anyio.CapacityLimiter:
    """At most ANSWER_THREADS answers computed or encoded at once per event loop.

    Answers are CPU-bound Python under one GIL: more threads than cores only
    trade places on it (measured: 8 concurrent maps took 10x one map, not 8x).
    """
    loop = asyncio.get_running_loop()
    found = _LIMITERS.get(loop)
    if found is None:
        found = _LIMITERS[loop] = anyio.CapacityLimiter(ANSWER_THREADS)
    return found


async def in_thread(work: Callable[[], T]) -> T:
    return await anyio.to_thread.run_sync(work, limiter=limiter())
