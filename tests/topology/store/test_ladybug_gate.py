"""Reads are kept out of the embedded store's commits, which may checkpoint."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from topology.model import Batch, CallBucket, Service
from topology.settings import Settings
from topology.store.ladybug_gate import CheckpointGate
from topology.store.ladybug_store import LadybugStore
from topology.store.statement import Statement

T0 = 1_700_000_000 - 1_700_000_000 % 60
MARKERS = Statement.same(
    "test.markers", "UNWIND $ids AS id MATCH (b:Batch {id: id}) RETURN b.id AS id")
ROWS = Statement.same(
    "test.request_rows", "MATCH (e:CallBucket) RETURN e.path AS path, e.requests AS n")


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for another thread to reach a state (no fixed sleep decides an outcome)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the other thread never got there")
        time.sleep(0.001)


def test_reads_written_meanwhile_lose_nothing_when_commits_checkpoint(
        settings: Settings) -> None:
    """LadybugDB 0.22 lost or doubled committed rows when it checkpointed while
    another connection read (5 runs of 5 without the gate); every commit here
    checkpoints (a 512 KiB threshold) while a thread reads batch markers."""
    store = LadybugStore(settings)
    store.init_schema()
    store._writer.execute("CALL checkpoint_threshold=524288")
    ends = [Service(f"process:h/s{i}", f"s{i}", "Process", seen=T0) for i in range(50)]
    done = threading.Event()
    reads = 0

    def read() -> None:
        nonlocal reads
        while not done.is_set():
            store.read(MARKERS, {"ids": ["t0"]})
            reads += 1

    reader = threading.Thread(target=read)
    reader.start()
    expected: dict[str, int] = {}
    try:
        for n in range(100):
            calls = []
            for i in range(1000):
                bucket = CallBucket(ends[i % 50].id, ends[i // 50 % 20].id,
                                    T0 + 60 * (n // 10), 60, "http", "GET", f"/p{i}")
                bucket.requests = 1 + n % 3
                calls.append(bucket)
                expected[f"/p{i}"] = expected.get(f"/p{i}", 0) + bucket.requests
            store.apply_many([Batch(f"t{n}", ends, calls)], now=T0)
    finally:
        done.set()
        reader.join()
    try:
        stored: dict[str, int] = {}
        for row in store.read(ROWS):
            stored[row["path"]] = stored.get(row["path"], 0) + row["n"]
        assert reads > 100  # the reads did run alongside
        assert stored == expected
    finally:
        store.close()


def test_a_commit_waits_for_the_reads_and_keeps_new_ones_out() -> None:
    gate = CheckpointGate()
    reading, release = threading.Event(), threading.Event()
    order: list[str] = []

    def first_read() -> None:
        with gate.shared():
            reading.set()
            release.wait(10)
            order.append("first read")

    def commit() -> None:
        with gate.alone():
            order.append("commit")

    def later_read() -> None:
        with gate.shared():
            order.append("later read")

    threads = [threading.Thread(target=first_read)]
    threads[0].start()
    reading.wait(10)
    threads.append(threading.Thread(target=commit))
    threads[1].start()
    until(lambda: gate._waiting == 1)
    threads.append(threading.Thread(target=later_read))
    threads[2].start()
    until(lambda: threads[2].is_alive())  # started, and held back by the waiting commit
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["first read", "commit", "later read"]


def test_a_thread_reading_reads_on_while_a_commit_waits() -> None:
    """A snapshot's reads run inside its own shared hold: they must not queue
    behind a commit that waits for that very hold."""
    gate = CheckpointGate()
    committed = threading.Event()

    def commit() -> None:
        with gate.alone():
            committed.set()

    with gate.shared():
        committer = threading.Thread(target=commit)
        committer.start()
        until(lambda: gate._waiting == 1)
        with gate.shared():  # nested: no wait
            assert not committed.is_set()
    committer.join(10)
    assert committed.is_set()


def test_a_thread_cannot_commit_while_it_reads() -> None:
    gate = CheckpointGate()
    with gate.shared(), pytest.raises(RuntimeError, match="cannot commit"), gate.alone():
        pass
    with gate.alone():  # and the gate is free again
        pass
