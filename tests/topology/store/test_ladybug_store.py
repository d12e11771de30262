"""Faults of the embedded store: a second owner, a killed writer, a slow query."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from topology.settings import Settings
from topology.store.base import GraphStore, QueryTimeout, StoreError, StoreLocked
from topology.store.ladybug_store import LadybugStore
from topology.store.statement import Statement

WRITER = textwrap.dedent("""
    import sys
    from topology.model import Batch, CallBucket, Service
    from topology.settings import Settings
    from topology.store.ladybug_store import LadybugStore

    store = LadybugStore(Settings.load({}, data_dir=sys.argv[1]))
    store.init_schema()
    rows = int(sys.argv[2])
    services = [Service(f"process:h/s{i}", f"s{i}", "Process", seen=1) for i in range(200)]
    calls = []
    for i in range(rows):
        row = CallBucket(f"process:h/s{i % 200}", f"process:h/s{(i * 7 + 1) % 200}",
                         60 * (i // 1000), 60, "http", "GET", f"/p{i % 1000}")
        row.record(1.0, error=False, status=200)
        calls.append(row)
    print("applying", flush=True)
    store.apply(Batch(sys.argv[3], services, calls), now=1)
    print("applied", flush=True)
    store.close()
""")


def run_writer(data_dir: Path, rows: int, batch_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(data_dir), str(rows), batch_id],
        stdout=subprocess.PIPE, text=True,
    )


def test_second_owner_gets_an_error_naming_the_file(settings: Settings) -> None:
    holder = run_writer(Path(settings.data_dir or ""), 10, "held")
    # The writer holds the lock from open to close; take it while it is open.
    assert holder.stdout is not None and holder.stdout.readline() == "applying\n"
    holder.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(StoreLocked, match=str(settings.embedded_path)):
            LadybugStore(settings)
    finally:
        holder.send_signal(signal.SIGCONT)
        holder.wait(timeout=60)


def test_second_writer_in_the_same_process_is_refused_until_the_first_closes(
    settings: Settings,
) -> None:
    """The writer's in-memory state (stored services and pairs, reader caches)
    assumes it is the file's only writer; LadybugDB's file lock only keeps other
    processes out."""
    first = LadybugStore(settings)
    try:
        with pytest.raises(StoreLocked, match="already open for writing in this process"):
            LadybugStore(settings)
    finally:
        first.close()
    second = LadybugStore(settings)
    second.close()


def test_writer_killed_mid_batch_leaves_no_partial_batch(settings: Settings) -> None:
    data_dir = Path(settings.data_dir or "")
    wal = Path(str(settings.embedded_path) + ".wal")
    writer = run_writer(data_dir, 30_000, "big")
    assert writer.stdout is not None and writer.stdout.readline() == "applying\n"
    deadline = time.monotonic() + 60
    while not (wal.exists() and wal.stat().st_size > 0):  # the transaction is writing
        assert writer.poll() is None, "the writer finished before it could be killed"
        assert time.monotonic() < deadline, "the write-ahead log never grew"
        time.sleep(0.005)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()

    store = LadybugStore(settings)
    store.init_schema()
    stats = store.stats()
    assert stats["batches"] == 0
    assert (stats["minute_buckets"], stats["pairs"], stats["services"]) == (0, 0, 0)
    store.close()

    # Redelivery after the crash applies the whole batch exactly once.
    rerun = run_writer(data_dir, 30_000, "big")
    assert rerun.wait(timeout=300) == 0
    store = LadybugStore(settings)
    total = store.read(Statement.same("t", "MATCH (e:CallBucket) RETURN sum(e.requests) AS n"))
    assert total == [{"n": 30_000}]
    assert store.stats()["batches"] == 1
    store.close()


def test_slow_query_is_stopped_by_the_query_timeout(tmp_path: Path) -> None:
    store = LadybugStore(Settings.load({}, data_dir=str(tmp_path), query_timeout="0.2s"))
    slow = Statement.same(
        "slow", "UNWIND range(1, 100000) AS a UNWIND range(1, 100000) AS b RETURN sum(a * b) AS n"
    )
    with pytest.raises(QueryTimeout, match="slow"):
        store.read(slow)
    store.close()


def test_closed_store_refuses_work(embedded_store: GraphStore) -> None:
    embedded_store.close()
    with pytest.raises(Exception, match="closed"):
        embedded_store.ping()


def test_write_the_database_aborts_is_a_store_error_and_changes_nothing(
    tmp_path: Path,
) -> None:
    from topology.model import Batch, CallBucket

    store = LadybugStore(Settings.load({}, data_dir=str(tmp_path), embedded_buffer_pool_mb="24"))
    store.init_schema()
    rows = []
    for i in range(20_000):
        row = CallBucket(f"process:h/c{i}", f"process:h/s{i}", 0, 60, "http", "GET", f"/{i}")
        row.record(1.0, error=False, status=200, trace_id=f"{i:032x}")
        rows.append(row)
    with pytest.raises(StoreError, match="rolled back"):
        store.apply(Batch("too-big", [], rows))
    assert store.stats()["batches"] == 0
    assert store.apply(Batch("small", [], rows[:10])) is True
    assert store.stats()["minute_buckets"] == 10
    store.close()


def test_apply_many_that_fails_writes_none_of_its_batches(tmp_path: Path) -> None:
    from topology.model import Batch, CallBucket

    store = LadybugStore(Settings.load({}, data_dir=str(tmp_path), embedded_buffer_pool_mb="24"))
    store.init_schema()
    rows = []
    for i in range(20_000):
        row = CallBucket(f"process:h/c{i}", f"process:h/s{i}", 0, 60, "http", "GET", f"/{i}")
        row.record(1.0, error=False, status=200, trace_id=f"{i:032x}")
        rows.append(row)
    small, big = Batch("small", [], rows[:10]), Batch("big", [], rows[10:])
    with pytest.raises(StoreError, match="rolled back"):
        store.apply_many([small, big])
    assert store.stats() == {
        "services": 0, "pairs": 0, "minute_buckets": 0, "hour_buckets": 0, "batches": 0}
    assert store.apply_many([small]) == [True]
    assert store.stats()["minute_buckets"] == 10
    store.close()


def test_a_commit_that_raises_leaves_no_reader_cache_trusted(tmp_path: Path) -> None:
    """LadybugDB can raise from a COMMIT that applied the write (a failed post-commit
    checkpoint). Here the block commits itself, so the closing COMMIT raises after the
    row was stored: the change log must then call every cache stale, and a map read
    through the per-minute sums must show the row."""
    from queries.service_map import map_table
    from queries.window import Window
    from topology.api.graphql.scope import Scope
    from topology.model import Batch, CallBucket
    from topology.store import ladybug_buckets

    store = LadybugStore(Settings.load({}, data_dir=str(tmp_path)))
    store.init_schema()
    first = CallBucket("process:h/a", "process:h/b", 600, 60, "http", "GET", "/")
    first.record(1.0, error=False, status=200)
    store.apply(Batch("first", [], [first]))
    compiled, window = Scope().compile(""), Window(0, 3600)
    assert map_table(store, compiled, window).column("requests").to_pylist() == [1]
    assert store.changes is not None
    taken = store.changes.generation
    late = CallBucket("process:h/a", "process:h/b", 600, 60, "http", "GET", "/")
    late.record(1.0, error=False, status=200)
    with pytest.raises(RuntimeError), store._write_lock, store._transaction() as conn:
        ladybug_buckets.upsert(conn, [late], [late.key])
        conn.execute("COMMIT")
    assert store.changes.changed_since(600, taken)
    assert store.changes.keys_changed_since(600, taken) is None
    assert store.changes.services_changed_since(taken)
    assert map_table(store, compiled, window).column("requests").to_pylist() == [2]
    store.close()


def test_many_writes_fit_a_small_buffer_pool(tmp_path: Path) -> None:
    """LadybugDB's client kept every statement over an arrow table, and the table, for
    the connection's life: in a 48 MB buffer pool the 35th write of 1,000 new rows
    failed. Each statement over rows is now prepared for its one run
    (topology/store/ladybug_rows.py)."""
    from topology.model import Batch, CallBucket

    store = LadybugStore(Settings.load({}, data_dir=str(tmp_path), embedded_buffer_pool_mb="48"))
    store.init_schema()
    for minute in range(45):
        rows = []
        for i in range(1_000):
            row = CallBucket(f"process:h/c{i % 100}", f"process:h/s{i % 7}", 60 * minute, 60,
                             "http", "GET", f"/{i}")
            row.record(1.0, error=False, status=200)
            rows.append(row)
        assert store.apply(Batch(f"b{minute}", [], rows)) is True
    assert store.stats()["minute_buckets"] == 45_000
    store.close()


def test_copied_and_created_buckets_add_up_exactly(embedded_store: GraphStore) -> None:
    """Large sets of new keys take the COPY path, small ones CREATE; both sum exactly."""
    from topology.model import Batch, CallBucket
    from topology.store import ladybug_schema

    def rows(first: int, count: int) -> list[CallBucket]:
        out = []
        for i in range(first, first + count):
            row = CallBucket(f"process:h/c{i % 50}", f"process:h/s{i % 7}", 60 * (i // 500),
                             60, "http", "GET", f"/{i}")
            row.record(1.0 + i % 3, error=i % 10 == 0, status=500 if i % 10 == 0 else 200,
                       trace_id=f"t{i}")
            out.append(row)
        return out

    big = ladybug_schema.COPY_MIN_ROWS
    embedded_store.apply(Batch("copied", [], rows(0, big)))
    embedded_store.apply(Batch("created", [], rows(big, 10)))
    embedded_store.apply(Batch("mixed", [], rows(big // 2, big + 100)))
    total = embedded_store.read(Statement.same(
        "t", "MATCH (e:CallBucket) RETURN count(e) AS keys, sum(e.requests) AS requests, "
             "sum(e.errors) AS errors, sum(size(e.exemplars)) AS exemplars"))
    keys = big + big // 2 + 100
    requests = big + 10 + big + 100
    errors = sum(1 for i in [*range(big + 10), *range(big // 2, big // 2 + big + 100)]
                 if i % 10 == 0)
    assert total == [{"keys": keys, "requests": requests, "errors": errors,
                      "exemplars": keys}]  # a re-sent row repeats its trace id
    assert embedded_store.stats()["minute_buckets"] == keys


UPDATE_FIELD_CASES = {
    "bucket_counters": ("buckets_add", ("requests", "h3"),
                        "SET e.requests = e.requests + requests, e.h3 = e.h3 + h3"),
    "bucket_naming": ("buckets_set", ("naming",), "SET e.naming = naming"),
    "pair_last_seen": ("pairs", ("last_seen",), "SET p.last_seen = last_seen"),
}
UPDATE_FIELD_ERRORS = {
    "bucket_key": ("buckets_add", ("key",)),
    "bucket_hist_list": ("buckets_add", ("hist",)),
    "bucket_set_counter": ("buckets_set", ("requests",)),
    "pair_unknown": ("pairs", ("requests",)),
    "nothing": ("pairs", ()),
}


@pytest.mark.parametrize("case", sorted(UPDATE_FIELD_CASES))
def test_update_statements_set_only_the_fields_named(case: str) -> None:
    from topology.store import ladybug_schema as q

    table, fields, expected = UPDATE_FIELD_CASES[case]
    build = getattr(q, table) if table.startswith("buckets") else q.pairs_update
    assert build(fields).endswith(expected)


@pytest.mark.parametrize("case", sorted(UPDATE_FIELD_ERRORS))
def test_update_statements_refuse_fields_outside_the_catalogue(case: str) -> None:
    from topology.store import ladybug_schema as q

    table, fields = UPDATE_FIELD_ERRORS[case]
    build = getattr(q, table) if table.startswith("buckets") else q.pairs_update
    with pytest.raises(ValueError, match="cannot SET"):
        build(fields)


THREADS = Statement.same("threads", "CALL current_setting('threads') RETURN *")


@pytest.mark.parametrize("writer_threads", ["1", "3", "0"])
def test_the_writer_runs_on_its_own_thread_count_and_readers_on_every_core(
        tmp_path: Path, writer_threads: str) -> None:
    """TOPOLOGY_EMBEDDED_WRITER_THREADS sets the write connection's threads only (0:
    LadybugDB's default); the reading connections keep LadybugDB's default."""
    from topology.model import Batch, CallBucket

    store = LadybugStore(Settings.load({}, data_dir=str(tmp_path),
                                       embedded_writer_threads=writer_threads))
    try:
        store.init_schema()
        every_core = list(store.read(THREADS)[0].values())
        written = store._writer.execute(THREADS.text(store.dialect)).get_all()[0]
        assert written == ([writer_threads] if writer_threads != "0" else every_core)
        row = CallBucket("process:h/a", "process:h/b", 60, 60, "http", "GET", "/")
        row.record(1.0, error=False, status=200)
        assert store.apply(Batch("b1", [], [row])) is True
        assert store.stats()["minute_buckets"] == 1
    finally:
        store.close()


@pytest.mark.parametrize(("pool_mb", "warned"), [
    ("64", True),  # LadybugDB crashed with it (docs/storage.md, "Buffer pool size")
    ("127", True),
    ("128", False),
    ("0", False),  # LadybugDB's own default
])
def test_a_buffer_pool_below_the_safe_size_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, pool_mb: str, warned: bool
) -> None:
    with caplog.at_level("WARNING", logger="topology.store.ladybug_store"):
        store = LadybugStore(Settings.load({}, data_dir=str(tmp_path),
                                           embedded_buffer_pool_mb=pool_mb))
        store.close()
    warnings = [r.getMessage() for r in caplog.records if "BUFFER_POOL_MB" in r.getMessage()]
    assert warnings == ([f"TOPOLOGY_EMBEDDED_BUFFER_POOL_MB={pool_mb} is below 128: with 64 MiB"
                         " LadybugDB crashed (segfault) once the minute buckets passed 131,072"
                         " rows; use at least 128, or 0 for LadybugDB's default"
                         ' (docs/storage.md, "Buffer pool size")'] if warned else [])
