"""The embedded store's writes leave nothing behind in ladybug's connections.

ladybug's Python `Connection` caches a prepared statement per query text and
parameter shape, and an Arrow table parameter's identity is part of that key
(`LOAD FROM $rows` binds the very table), so a long-lived connection running
the store's writes kept a statement, its plan and its table for every write,
for ever (about 10 MB per transaction of 10,000 updated rows). This reads
ladybug's own cache (`_pybind_implicit_prepared_cache`, ladybug 0.22): what
the database's open connections hold must not grow with the number of writes.
"""

from __future__ import annotations

from pathlib import Path

from topology.model import Batch, CallBucket, Service
from topology.settings import Settings
from topology.store.ladybug_store import LadybugStore


def _batch(n: int) -> Batch:
    services = [Service(f"process:h/s{i}", f"s{i}", "Process", seen=n) for i in range(20)]
    calls = []
    for i in range(200):
        row = CallBucket(f"process:h/s{i % 20}", f"process:h/s{(i * 7 + 1) % 20}",
                         60 * (i // 100), 60, "http", "GET", f"/p{i % 50}")
        row.record(1.0 + n, error=i % 3 == 0, status=200 + n)
        calls.append(row)
    return Batch(f"b-{n}", services, calls)


def _cached(store: LadybugStore) -> int:
    return sum(len(conn._pybind_implicit_prepared_cache) for conn in store._db._connections)


def test_writes_leave_no_statement_cached_per_table(tmp_path: Path) -> None:
    store = LadybugStore(Settings(data_dir=str(tmp_path)))
    try:
        store.init_schema()
        store.apply_many([_batch(0)], now=1)
        after_first = _cached(store)
        for n in range(1, 8):  # updates: every write statement gets new tables
            store.apply_many([_batch(n)], now=1 + n)
        assert _cached(store) == after_first
        assert store.stats()["batches"] == 8
    finally:
        store.close()
