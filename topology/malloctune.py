"""glibc malloc settings for the embedded worker, so freed memory goes back to the system.

With glibc's defaults the worker's RSS kept 350-450 MB that malloc had
freed but not returned (`mallinfo2`'s free bytes, docs/delivery.md "Memory"):
each message in flight holds multi-megabyte strings (the message text, its
body), and after the first such block is freed glibc raises its mmap
threshold (up to 32 MiB), so later ones come from the arenas' heaps, which
fragment and are rarely trimmed. Fixing the mmap threshold at 1 MiB (blocks
from there up are mapped, and unmapped when freed, for the whole run) and
trimming the heaps' top from 1 MiB free cut the worker's peak from about 700-770
to 560-590 MB at bench/ingest_e2e.py's load, for 10-20% more CPU (giving pages
back and touching new ones: system time about doubles). Thresholds of 64 KiB,
128 KiB or 512 KiB gave the same peak. With those, two arenas instead of one
per thread (the worker runs about 20: task threads, Celery's, the store's)
took the main process's peak from 307-335 to 280-291 MB (freed memory kept
by malloc: 40-70 -> 10-20 MB): each arena keeps its own freed memory, and
the task threads mostly hold the GIL, so they seldom contend for an arena.
One arena gave about the same (283-294 MB).

`tune` applies them with mallopt(3) at run time, before the worker starts its
threads or opens the store. A user who set glibc's own malloc tunables
(GLIBC_TUNABLES with glibc.malloc.*, or the older MALLOC_*_ variables) keeps
them: setting `GLIBC_TUNABLES=glibc.malloc.arena_max=8`, for example, turns
this off. Other C libraries (musl, macOS) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import threading
from collections.abc import Mapping

# mallopt(3) parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENA_MAX = 2
SETTINGS: tuple[tuple[str, int, int], ...] = (
    ("mmap_threshold", M_MMAP_THRESHOLD, 1024 * 1024),
    ("trim_threshold", M_TRIM_THRESHOLD, 1024 * 1024),
    ("arena_max", M_ARENA_MAX, ARENA_MAX),
)
# seconds between two malloc_trim(0) of the worker's Trimmer
TRIM_INTERVAL = 0.5
# the environment's own malloc tuning, which wins
USER_VARIABLES = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                  "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def wanted(environ: Mapping[str, str], libc: str | None = None) -> bool:
    """Whether to tune: glibc, and no malloc tuning of the user's. (With another
    allocator preloaded, glibc's mallopt tunes a malloc nobody calls: harmless.)"""
    libc = platform.libc_ver()[0] if libc is None else libc
    if libc != "glibc":
        return False
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        return False
    return not any(environ.get(name) for name in USER_VARIABLES)


def tune(environ: Mapping[str, str]) -> list[str]:
    """Apply SETTINGS with mallopt when `wanted`; the names of those glibc accepted."""
    if not wanted(environ):
        return []
    libc = _libc()
    return [name for name, param, value in SETTINGS if libc.mallopt(param, value) == 1]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class Trimmer:
    """Gives the free pages inside malloc's heaps back to the system, every `interval` s.

    The trim threshold only returns the free top of a heap: what is freed below
    a block still in use (a batch's rows, LadybugDB's transaction, freed while
    the next group's rows are being allocated) stays resident until reused.
    glibc's malloc_trim(0) walks every arena and gives back each whole free
    page (madvise), wherever it is. At bench/ingest_e2e.py's load, trimming
    every 0.5 s took the worker's main process from 280-291 to 256-280 MB at
    its peak, for no CPU that the bench could tell apart (docs/delivery.md
    "Memory"). It runs in
    its own daemon thread (ctypes lets go of the GIL during the call).
    """

    def __init__(self, interval: float = TRIM_INTERVAL,
                 stop: threading.Event | None = None) -> None:
        self.interval = interval
        self.trims = 0
        self._libc = _libc()
        self._stop = threading.Event() if stop is None else stop
        self._thread: threading.Thread | None = None

    def trim(self) -> bool:
        """One malloc_trim(0): whether glibc gave any memory back."""
        self.trims += 1
        return bool(self._libc.malloc_trim(0))

    def run(self) -> None:
        """Trim every `interval` seconds until stopped."""
        while not self._stop.wait(self.interval):
            self.trim()

    def start(self) -> Trimmer:
        self._thread = threading.Thread(target=self.run, name="malloc-trim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
