"""The embedded store reopens its database every TOPOLOGY_EMBEDDED_REOPEN_ROWS new
rows (buckets, pairs, services; giving back LadybugDB's cached pages): writes and
reads go on, exactly."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from topology.model import Batch, CallBucket, Service
from topology.settings import Settings
from topology.store.ladybug_store import LadybugStore
from topology.store.statement import Statement

T0 = 1_700_000_000 - 1_700_000_000 % 3600
TOTAL = Statement.same(
    "test.total", "MATCH (e:CallBucket) RETURN count(e) AS rows, sum(e.requests) AS requests")
THREADS = "CALL current_setting('threads') RETURN *"
REOPENED = "reopened embedded store"


def minute(n: int, rows: int = 10) -> list[CallBucket]:
    """`rows` buckets of minute n: new keys the first time a minute is sent."""
    found = []
    for i in range(rows):
        row = CallBucket(f"process:h/c{i}", "process:h/s", T0 + 60 * n, 60, "http", "GET", "/")
        row.record(1.0, error=False, status=200)
        found.append(row)
    return found


def services() -> list[Service]:
    """The ends of `minute`'s buckets: 11 services, and with them 10 pairs."""
    return [Service(f"process:h/{name}", name, "Process", seen=T0)
            for name in (*(f"c{i}" for i in range(10)), "s")]


def store_at(tmp_path: Path, reopen_rows: int) -> LadybugStore:
    store = LadybugStore(Settings.load({}, data_dir=str(tmp_path), embedded_writer_threads=1,
                                       embedded_reopen_rows=reopen_rows))
    store.init_schema()
    return store


@pytest.mark.parametrize(("reopen_rows", "minutes", "ends", "reopens"), [
    (0, [0, 1, 2, 3, 4], False, 0),  # never
    (25, [0, 1, 2, 3, 4], False, 1),  # 30 created before the fourth write; 20 after
    (10, [0, 1, 2, 3, 4], False, 4),  # before every write after the first
    (10, [0, 0, 0, 0, 0], False, 1),  # updates create nothing: only the first write's 10
    # the first write creates 11 services and 10 pairs too: 31 rows, then 10 a write
    (25, [0, 1, 2, 3, 4], True, 2),
    (25, [0, 0, 0, 0, 0], True, 1),
])
def test_the_database_is_reopened_after_that_many_new_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, reopen_rows: int, minutes: list[int],
    reopens: int, ends: bool,
) -> None:
    store = store_at(tmp_path, reopen_rows)
    try:
        with caplog.at_level("INFO", logger="topology.store.ladybug_store"):
            for n, m in enumerate(minutes):
                sent = services() if ends else []
                assert store.apply(Batch(f"b{n}", sent, minute(m)), now=T0) is True
        assert sum(REOPENED in r.getMessage() for r in caplog.records) == reopens
        assert store.read(TOTAL) == [{"rows": 10 * len(set(minutes)),
                                      "requests": 10 * len(minutes)}]
        # the reopened writer keeps its thread count; a re-sent batch is still known
        assert store._writer.execute(THREADS).get_all() == [["1"]]
        assert store.apply(Batch("b0", [], minute(0)), now=T0) is False
    finally:
        store.close()


def test_a_thread_that_read_before_a_reopen_reads_on_after_it(tmp_path: Path) -> None:
    store = store_at(tmp_path, 10)
    reader_saw: list[object] = []
    go_on = threading.Event()

    def reader() -> None:
        reader_saw.append(store.read(TOTAL))  # its connection: closed by the reopen
        go_on.wait(timeout=30)
        with store.snapshot() as read:
            reader_saw.append(read(TOTAL))
        reader_saw.append(store.stats()["minute_buckets"])

    try:
        store.apply(Batch("b0", [], minute(0)), now=T0)
        thread = threading.Thread(target=reader)
        thread.start()
        store.apply(Batch("b1", [], minute(1)), now=T0)  # reopens first
        go_on.set()
        thread.join(timeout=30)
        assert reader_saw[1:] == [[{"rows": 20, "requests": 20}], 20]
    finally:
        store.close()


def test_reads_running_alongside_reopening_writes_see_no_errors_and_counts_stay_exact(
    tmp_path: Path,
) -> None:
    store = store_at(tmp_path, 15)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                with store.snapshot() as read:
                    read(TOTAL)
                store.stats()
            except BaseException as exc:  # reported by the test below
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for n in range(30):
            store.apply(Batch(f"b{n}", [], minute(n % 12)), now=T0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    try:
        assert errors == []
        assert store.read(TOTAL) == [{"rows": 120, "requests": 300}]
    finally:
        store.close()
