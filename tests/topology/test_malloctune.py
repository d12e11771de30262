"""`topology worker` sets glibc's malloc to give freed memory back, unless the user tuned it."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from topology import malloctune


@pytest.mark.parametrize(("environ", "libc", "expected"), [
    ({}, "glibc", True),
    ({"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2"}, "glibc", True),  # not malloc's
    ({"MALLOC_ARENA_MAX": ""}, "glibc", True),  # empty: unset
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=8"}, "glibc", False),  # the user's
    ({"MALLOC_ARENA_MAX": "4"}, "glibc", False),
    ({"MALLOC_MMAP_THRESHOLD_": "131072"}, "glibc", False),
    ({}, "", False),  # musl, macOS: not glibc's mallopt
])
def test_tuning_is_wanted_on_glibc_unless_the_user_tuned_malloc(
        environ: dict[str, str], libc: str, expected: bool) -> None:
    assert malloctune.wanted(environ, libc) is expected


# In a process of its own (the test process keeps its allocator): once a large
# mapped block was freed, glibc raises its mmap threshold (here to 8 MiB), so
# blocks of 2 MiB come from the heap; each is followed by an 8 KiB block that
# stays (as a message's text is followed by the objects decoded from it), which
# keeps the heap from shrinking when the large ones are freed: malloc keeps that
# memory. Tuned, the threshold stays at 1 MiB, each large block is mapped on its
# own and unmapping gives it back.
PROBE = """
import ctypes, json, sys
from topology import malloctune

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
applied = malloctune.tune(json.loads(sys.argv[1]))
libc.free(libc.malloc(8 * 1024 * 1024))
large, kept = [], []
for _ in range(40):
    large.append(libc.malloc(2 * 1024 * 1024))
    kept.append(libc.malloc(8 * 1024))
for block in large:
    libc.free(block)
print(json.dumps({"applied": applied, "kept_mb": libc.mallinfo2().fordblks // 2**20}))
"""


@pytest.mark.skipif(not malloctune.wanted({}), reason="glibc only")
@pytest.mark.parametrize(("environ", "applied", "keeps_memory"), [
    ({}, ["mmap_threshold", "trim_threshold", "arena_max"], False),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=8"}, [], True),  # the user's: glibc's way
])
def test_tuned_malloc_gives_freed_large_blocks_back(
        environ: dict[str, str], applied: list[str], keeps_memory: bool) -> None:
    env = {"PATH": "/usr/bin:/bin"}  # no MALLOC_* of this machine's
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(environ)], env=env,
                         capture_output=True, text=True, check=True, timeout=60)
    found = json.loads(out.stdout)
    assert found["applied"] == applied
    # 40 x 2 MiB freed: about 80 MB kept by glibc's defaults, none once tuned
    assert (found["kept_mb"] >= 60) is keeps_memory, found


# Threads that allocate at the same time each get an arena of their own by
# default (up to 8 per core), and each arena keeps its own freed memory; tuned,
# they share ARENA_MAX. glibc's malloc_stats prints one "Arena N:" per arena.
THREADS = """
import ctypes, json, sys, threading
from topology import malloctune

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
malloctune.tune(json.loads(sys.argv[1]))
together = threading.Barrier(8)
blocks = []

def allocate():
    together.wait()
    blocks.append(libc.malloc(4096))
    together.wait()

threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc.malloc_stats()
"""


@pytest.mark.skipif(not malloctune.wanted({}), reason="glibc only")
@pytest.mark.parametrize(("environ", "most", "least"), [
    ({}, malloctune.ARENA_MAX, 1),
    ({"MALLOC_ARENA_MAX": "16"}, 16, malloctune.ARENA_MAX + 1),  # the user's: left alone
])
def test_tuned_malloc_shares_few_arenas_between_threads(
        environ: dict[str, str], most: int, least: int) -> None:
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", THREADS, json.dumps(environ)], env=env,
                         capture_output=True, text=True, check=True, timeout=60)
    arenas = out.stderr.count("Arena ")
    assert least <= arenas <= most, out.stderr


# Blocks below the mmap threshold come from the heap; a block freed between
# two still in use cannot join the heap's free top, so the trim threshold never
# gives its pages back. malloc_trim(0) gives back every whole free page,
# wherever it is. Every other block is freed, so the layout of the heap before
# the probe (which differs between machines) cannot decide the outcome.
PINNED = """
import ctypes, json
from topology import malloctune

def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
malloctune.tune({})
blocks = []
for _ in range(2000):
    block = libc.malloc(32 * 1024)
    ctypes.memset(block, 1, 32 * 1024)
    blocks.append(block)
for block in blocks[::2]:
    libc.free(block)
freed = rss_mb()
trimmer = malloctune.Trimmer()
gave_back = trimmer.trim()
print(json.dumps({"freed": freed, "trimmed": rss_mb(), "gave_back": gave_back,
                  "trims": trimmer.trims}))
"""


@pytest.mark.skipif(not malloctune.wanted({}), reason="glibc only")
def test_a_trim_gives_back_free_pages_between_blocks_in_use() -> None:
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", PINNED], env=env,
                         capture_output=True, text=True, check=True, timeout=60)
    found = json.loads(out.stdout)
    # 1,000 x 32 KiB freed between blocks in use: 32 MB kept, 28 MB of whole pages given back
    assert found["gave_back"] and found["trims"] == 1, found
    assert found["freed"] - found["trimmed"] >= 20, found


class _Stops(threading.Event):
    """A stop event that lets `run` loop `rounds` times, without waiting."""

    def __init__(self, rounds: int) -> None:
        super().__init__()
        self.rounds = rounds
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return len(self.waits) > self.rounds


@pytest.mark.skipif(not malloctune.wanted({}), reason="glibc only")
def test_the_trimmer_trims_every_interval_until_stopped() -> None:
    stops = _Stops(rounds=3)
    trimmer = malloctune.Trimmer(interval=0.25, stop=stops)
    trimmer.run()
    assert trimmer.trims == 3
    assert stops.waits == [0.25] * 4


@pytest.mark.skipif(not malloctune.wanted({}), reason="glibc only")
def test_a_started_trimmer_stops_and_its_thread_ends() -> None:
    trimmer = malloctune.Trimmer(interval=3600).start()
    thread = trimmer._thread
    assert thread is not None and thread.daemon and thread.is_alive()
    trimmer.stop()
    assert not thread.is_alive()
