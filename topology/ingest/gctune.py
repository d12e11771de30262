"""Garbage-collector thresholds for processes that ingest big batches.

A decoded batch of 5,000 calls is about 125,000 JSON containers that all stay
alive until the batch is written, and building it allocates as many again.
With CPython's default thresholds (a young collection every 700 allocations,
and full collections once the surviving objects grow by a quarter) the
collector keeps walking those live, acyclic payloads: measured with
bench/ingest.py-style batches, `Ingestor.build` ran about 2 to 3 times slower
with the collector on than off. Ingestion makes no reference cycles of its
own (payloads, rows and batches are trees freed by reference counting), so
collecting rarely costs only a little memory for the occasional cycle that
other libraries make, and those are still collected.

`tune()` freezes what exists at start (imports, settings: never garbage) out
of the collector's sight and raises the thresholds; the process keeps
collecting cycles, about every YOUNG allocations.
"""

from __future__ import annotations

import gc

# Allocations between young collections (CPython's default: 700).
YOUNG = 50_000
# Young collections per middle one, and middle ones per full one (defaults 10, 10).
MIDDLE = 20
OLD = 100


def tune() -> None:
    """Collect once, freeze the survivors, and collect rarely from now on."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE, OLD)
