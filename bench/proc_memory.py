"""This process's memory as /proc tells it, for the benchmarks that print it."""

from __future__ import annotations

from pathlib import Path


def rss_mb(field: str = "VmRSS") -> float:
    """The process's resident memory now (VmRSS) or at its peak so far (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_parts() -> dict[str, float]:
    """RSS by kind of mapping, in MB: `pool`, the mappings of at least 1 GiB of
    address space (LadybugDB's buffer pool reserves such regions, and so does
    Arrow's mimalloc: ARROW_DEFAULT_MEMORY_POOL=system leaves the pool alone),
    other anonymous memory (malloc's heaps, Python's arenas: Python objects and
    LadybugDB's own allocations) and files (libraries)."""
    parts = {"pool": 0.0, "anon": 0.0, "file": 0.0}
    size = 0
    kind = "anon"
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and len(head) >= 5 and ":" in head[3]:
            low, high = (int(x, 16) for x in head[0].split("-"))
            size = high - low
            named = len(head) >= 6 and not head[5].startswith("[")
            kind = "file" if named else ("pool" if size >= 1 << 30 else "anon")
        elif head[0] == "Rss:":
            parts[kind] += int(head[1]) / 1024
    return parts
