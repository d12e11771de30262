"""The embedded worker's memory in one process: RSS after each store transaction.

Builds the batches of bench/ingest_e2e.py (10,000 distinct edges per
simulated minute, batches of 5,000 calls) and writes them the way
`topology worker` does, without Celery: `--group` batches per transaction,
their calls folded into one set of rows (`Ingestor.ingest_many` then
`LadybugStore.apply_many`, one transaction). After each transaction it prints
the process's RSS now and at its peak, then who holds it, in MB: the
mappings of at least 1 GiB (`pool`: LadybugDB's buffer pool), other
anonymous memory (`anon`: malloc's heaps, Python's arenas) and files; glibc
malloc's own account (in use, and freed but kept); Python's allocated
blocks. So growth can be told apart: the pool (bounded by
`--buffer-pool-mb`), the allocator keeping freed memory, or Python objects.

`--only` runs only part of the write (e.g. `buckets`) to find which statement
makes the memory grow; `--trim` calls glibc's malloc_trim after each
transaction; `--checkpoint` runs CHECKPOINT after each; `--db-option` passes
keywords to ladybug.Database; `--tune` sets malloc as `topology worker` does
(`topology.malloctune`), and `--trimmer` also starts its `Trimmer` thread
as the worker does. Other allocator settings (GLIBC_TUNABLES, LD_PRELOAD
of jemalloc) are the environment's: run with them set to compare.

Run: .venv/bin/python bench/worker_memory.py [--events N] [--group G]
     [--buffer-pool-mb N] [--only buckets|pairs|services|markers] [--trim]
     [--checkpoint] [--db-option NAME=VALUE] [--tune [--trimmer]]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ingest_e2e import iter_batches
from proc_memory import rss_mb, rss_parts

from topology import malloctune
from topology.ingest import gctune
from topology.ingest.pipeline import Ingestor
from topology.settings import Settings
from topology.store import ladybug_buckets, ladybug_pairs
from topology.store.ladybug_store import LadybugStore


def groups(events: int, batch_size: int, per_minute: int, group: int
           ) -> Iterator[list[dict[str, Any]]]:
    """The batches of `ingest_e2e.make_batches` (same seed, same calls), a
    transaction's worth at a time: all of them at once would hold ~1.5 KB per call."""
    made: list[dict[str, Any]] = []
    for payload in iter_batches(events, batch_size, per_minute):
        made.append(payload)
        if len(made) == group:
            held = [made]
            made = []
            yield held.pop()  # the caller's reference is the only one
    if made:
        held = [made]
        made = []
        yield held.pop()


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


def malloc_parts() -> str:
    """glibc malloc's own account, in MB: memory in use (small + mmapped blocks) and
    memory free but kept by its arenas (empty under jemalloc, which glibc's
    mallinfo2 then does not see)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    return (f"malloc used {(info.uordblks + info.hblkhd) / 2**20:.0f} "
            f"free {info.fordblks / 2**20:.0f}")


def accounts() -> str:
    """Who holds what, in MB: mappings, malloc, Python's blocks (the store writes no
    arrow tables: ladybug_rows.py)."""
    parts = " ".join(f"{k} {v:.0f}" for k, v in rss_parts().items())
    return (f"[{parts}] {malloc_parts()}"
            f"  python blocks {sys.getallocatedblocks() / 1e6:.2f} M")


def _only(part: str) -> None:
    """Turn every part of the write but `part` into a no-op (for bisecting)."""
    def skip(*_: object, **__: object) -> None:
        return None
    if part != "buckets":
        ladybug_buckets.upsert = skip  # type: ignore[assignment]
    if part != "pairs":
        ladybug_pairs.upsert_pairs = skip  # type: ignore[assignment]
    if part != "services":
        ladybug_pairs.upsert_services = skip  # type: ignore[assignment]


def _database_options(options: dict[str, str]) -> None:
    """Open every ladybug.Database with these keywords too (ints or booleans)."""
    import ladybug

    parsed: dict[str, Any] = {
        name: value == "true" if value in ("true", "false") else int(value)
        for name, value in options.items()}
    opened = ladybug.Database

    def database(*args: Any, **kwargs: Any) -> Any:
        return opened(*args, **kwargs | parsed)

    ladybug.Database = database  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--group", type=int, default=8, help="batches per transaction")
    parser.add_argument("--events-per-minute", type=int, default=3_000_000)
    parser.add_argument("--buffer-pool-mb", type=int, default=256)
    parser.add_argument("--only", choices=("buckets", "pairs", "services", "markers"))
    parser.add_argument("--trim", action="store_true", help="malloc_trim(0) after each write")
    parser.add_argument("--db-option", action="append", default=[], metavar="NAME=VALUE",
                        help="a keyword of ladybug.Database (e.g. checkpoint_threshold=0)")
    parser.add_argument("--checkpoint", action="store_true",
                        help="run CHECKPOINT after each transaction")
    parser.add_argument("--tune", action="store_true",
                        help="set malloc as `topology worker` does (topology.malloctune)")
    parser.add_argument("--trimmer", action="store_true",
                        help="with --tune: trim malloc's heaps every 0.5 s, as the worker does")
    args = parser.parse_args()

    if args.only:
        _only(args.only)
    if args.db_option:
        _database_options(dict(option.split("=", 1) for option in args.db_option))
    gctune.tune()
    tuned = malloctune.tune(os.environ) if args.tune else []
    if tuned and args.trimmer:
        malloctune.Trimmer().start()
    work = Path(tempfile.mkdtemp(prefix="topology-memory-"))
    settings = Settings(data_dir=str(work), embedded_buffer_pool_mb=args.buffer_pool_mb)
    libc = ctypes.CDLL("libc.so.6") if args.trim else None
    print(f"load {os.getloadavg()[0]:.2f}; malloc tuned: {', '.join(tuned) or 'no'}"
          f"{' and trimmed' if tuned and args.trimmer else ''}; "
          f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '-')} "
          f"LD_PRELOAD={os.environ.get('LD_PRELOAD', '-')}; pool {args.buffer_pool_mb} MiB")
    store = LadybugStore(settings)
    store.init_schema()
    ingestor = Ingestor(store, settings, clock=lambda: 1_763_700_000.0)
    print(f"store open: RSS {rss_mb():.0f} MB  {accounts()}")
    started = time.perf_counter()
    for n, group in enumerate(groups(args.events, args.batch_size, args.events_per_minute,
                                      args.group), 1):
        t0 = time.perf_counter()
        ingestor.ingest_many(group)
        del group
        took = time.perf_counter() - t0
        if args.checkpoint:
            store._writer.execute("CHECKPOINT")  # the store's own connection: a bench
        if libc is not None:
            libc.malloc_trim(0)
        rss = rss_mb()
        print(f"tx {n:3d}: {took:5.2f} s  RSS {rss:4.0f} MB  peak {rss_mb('VmHWM'):4.0f} MB  "
              f"{accounts()}", flush=True)
    gc.collect()
    print(f"done in {time.perf_counter() - started:.1f} s: RSS peak {rss_mb('VmHWM'):.0f} MB, "
          f"end {rss_mb():.0f} MB")
    store.close()
    print(f"store closed: RSS {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
