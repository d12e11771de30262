"""Delivery faults with real Celery workers, a real Redis and a real LadybugDB file.

Each test runs `topology worker` in a subprocess that owns a per-test embedded
store (one process, task threads sharing transactions), publishes batches
through the broker, waits for the worker's log to report them, stops the
worker and then reads the store.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from click.testing import CliRunner

from tests.topology.ingest.celery_worker import WorkerProcess
from tests.topology.ingest.delivery_helpers import batch, expected_totals, totals, wait_for
from topology.cli_worker import deadletter
from topology.ingest.celery_app import QUEUE, TASK_NAME, DeliveryOptions, create_app
from topology.ingest.claims import PAYLOAD_KEY
from topology.ingest.deadletter import DeadLetters
from topology.ingest.tasks import publish
from topology.settings import Settings
from topology.store.ladybug_store import LadybugStore


def big_batch() -> dict[str, Any]:
    """Takes seconds to ingest (20,000 calls, 4,000 bucket rows to write), far
    longer than from the worker's "attempt" log line to the SIGKILL, so the kill
    lands mid-batch (the tests check that it did)."""
    return batch("big", 20_000, minutes=4_000)

MAX_RETRIES = 3


@pytest.fixture
def env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("TOPOLOGY_")}
    return keep | {
        "TOPOLOGY_REDIS_URL": redis_url,
        "TOPOLOGY_STORE": "embedded",
        "TOPOLOGY_DATA_DIR": str(tmp_path / "data"),
        # Short, so a dead worker's batch comes back quickly; longer than any
        # batch here takes, so a live worker's batch is not delivered twice.
        "TOPOLOGY_CELERY_VISIBILITY_TIMEOUT": "10",
        "TOPOLOGY_INGEST_MAX_RETRIES": str(MAX_RETRIES),
        "TOPOLOGY_INGEST_RETRY_BACKOFF": "0.2",
        "TOPOLOGY_INGEST_RETRY_BACKOFF_MAX": "1",
    }


@pytest.fixture
def settings_for(env: dict[str, str]) -> Settings:
    return Settings.load(env)


@pytest.fixture
def app(env: dict[str, str], settings_for: Settings) -> Iterator[Celery]:
    app = create_app(settings_for, DeliveryOptions.load(env))
    yield app
    app.close()


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.stop()


def _start(workers: list[WorkerProcess], env: dict[str, str], tmp_path: Path) -> WorkerProcess:
    worker = WorkerProcess(env, tmp_path / f"worker-{len(workers)}.log")
    workers.append(worker)
    return worker.start()


# "after" runs on another task thread: it may commit just before a kill, before
# its log line, and then its redelivery says "duplicate".
AFTER_DONE = r"ingest batch after: (?:applied|duplicate)"


def _wait_any(workers: list[WorkerProcess], pattern: str, timeout: float = 60) -> None:
    """Wait for `pattern` in the log of any worker (a batch may finish before a kill)."""
    wait_for(lambda: any(w.count(pattern) for w in workers), timeout, repr(pattern))


def _payload_keys(redis_url: str) -> list[bytes]:
    """Payloads waiting in Redis for their messages (claims.py)."""
    return redis.Redis.from_url(redis_url).keys(PAYLOAD_KEY + "*")


def _no_payloads_left(redis_url: str) -> None:
    """Every payload is deleted once its batch has a verdict (just after its log line)."""
    wait_for(lambda: not _payload_keys(redis_url), 30, "the payloads to be deleted")


def _store_totals(settings: Settings) -> tuple[int, int]:
    """Totals in the store, read once no worker holds the file."""
    with LadybugStore(settings) as store:
        return totals(store)


def test_sigkill_mid_batch_is_redelivered_and_counted_exactly(
    app: Celery, env: dict[str, str], settings_for: Settings,
    workers: list[WorkerProcess], tmp_path: Path,
) -> None:
    first = _start(workers, env, tmp_path)
    # Build helpers (offload.py) start with the first stored batch, not before.
    assert first.pool_pids() == [], "the embedded worker runs its tasks in threads"
    warm, big, after = batch("warm", 20), big_batch(), batch("after", 20)
    publish(app, warm)
    first.wait_log(r"ingest batch warm: applied")
    publish(app, big)
    publish(app, after)
    first.wait_log(r"ingest batch big: attempt 1")
    # Both messages are the worker's before the kill (received: recorded as unacknowledged
    # in the broker). Kombu's Redis transport pops a message and records it in two steps;
    # a SIGKILL between them loses that message (docs/delivery.md).
    first.wait_log(r"Task topology\.ingest\.batch\[[^\]]+\] received", times=3)

    first.kill_all()  # nobody acknowledges: the visibility timeout brings it back
    # "after" runs on another task thread and may have been committed already.
    assert _store_totals(settings_for) in (expected_totals(warm), expected_totals(warm, after)), \
        "the kill came too late"
    survivor = _start(workers, env, tmp_path)
    survivor.wait_log(r"ingest batch big: applied", timeout=120)
    _wait_any(workers, AFTER_DONE)
    verdicts = re.findall(r"ingest batch big: (applied|duplicate)\n",
                          "".join(w.text() for w in workers))
    assert verdicts[0] == "applied", "the killed attempt had committed"
    survivor.stop()

    assert _store_totals(settings_for) == expected_totals(warm, big, after)


def test_batch_whose_worker_keeps_dying_is_dead_lettered(
    app: Celery, env: dict[str, str], redis_url: str, settings_for: Settings,
    workers: list[WorkerProcess], tmp_path: Path,
) -> None:
    env = env | {"TOPOLOGY_INGEST_MAX_WORKER_LOST": "1"}
    big, after = big_batch(), batch("after", 20)
    publish(app, big)
    for _ in (1, 2):
        worker = _start(workers, env, tmp_path)
        worker.wait_log(r"ingest batch big: attempt 1\n")
        worker.kill_all()
    worker = _start(workers, env, tmp_path)
    letters = DeadLetters.from_url(redis_url)
    wait_for(lambda: letters.get("big"), 60, "the batch in the dead letters")
    letter = letters.get("big")
    assert letter is not None
    assert (letter.error_type, letter.attempts) == ("WorkerLost", 2)
    assert letter.payload == big, "the dead letter keeps the payload itself"
    assert worker.count(r"ingest batch big: attempt 1\n") == 0
    # Published only now: a batch in flight on another task thread when the
    # worker dies is lost with it too, and would be dead-lettered as well.
    publish(app, after)
    worker.wait_log(r"ingest batch after: applied")
    worker.stop()
    assert _store_totals(settings_for) == expected_totals(after)


def test_same_batch_published_twice_counts_once(
    app: Celery, env: dict[str, str], redis_url: str, settings_for: Settings,
    workers: list[WorkerProcess], tmp_path: Path,
) -> None:
    worker = _start(workers, env, tmp_path)
    one, two = batch("one", 200), batch("two", 100)
    for payload in (one, one, two, one):
        publish(app, payload)
    worker.wait_log(r"ingest batch two: applied")
    worker.wait_log(r"ingest batch one: duplicate", times=2)
    assert worker.count(r"ingest batch one: applied") == 1
    _no_payloads_left(redis_url)
    worker.stop()
    assert _store_totals(settings_for) == expected_totals(one, two)


@pytest.mark.parametrize("helpers", ["0", "1"])
def test_inline_payloads_and_claims_whose_payload_is_gone_or_broken(
    app: Celery, env: dict[str, str], redis_url: str, settings_for: Settings,
    workers: list[WorkerProcess], tmp_path: Path, helpers: str,
) -> None:
    """Collectors publish payloads inline; a claim whose payload was deleted after its
    verdict (a redelivery after the worker died before acknowledging) counts nothing;
    stored bytes that are not JSON are dead-lettered as text. With build helpers
    (offload.py) and without."""
    client = redis.Redis.from_url(redis_url)
    client.set(PAYLOAD_KEY + "broken", b'{"batch_id": "broken", ')
    worker = _start(workers, env | {"TOPOLOGY_INGEST_BUILD_PROCESSES": helpers}, tmp_path)
    inline, claimed = batch("inline", 30), batch("claimed", 25)
    publish(app, claimed)
    app.send_task(TASK_NAME, args=[inline], queue=QUEUE)
    app.send_task(TASK_NAME, kwargs={"claim": PAYLOAD_KEY + "gone", "batch_id": "gone"},
                  queue=QUEUE)
    app.send_task(TASK_NAME, kwargs={"claim": PAYLOAD_KEY + "broken", "batch_id": "broken"},
                  queue=QUEUE)
    worker.wait_log(r"ingest batch inline: applied")
    worker.wait_log(r"ingest batch claimed: applied")
    worker.wait_log(r"ingest batch gone: its payload \(topology:ingest:payload:gone\) is gone")
    letters = DeadLetters.from_url(redis_url)
    wait_for(lambda: len(letters), 60, "the broken payload in the dead letters")
    [letter] = letters.list()
    assert (letter.error_type, letter.payload) == ("InvalidBatch", '{"batch_id": "broken", ')
    assert "stored payload is not JSON" in letter.error
    _no_payloads_left(redis_url)
    worker.stop()
    assert worker.count(r"ingest batch gone: attempt") == 0
    assert _store_totals(settings_for) == expected_totals(inline, claimed)


def _invalid() -> dict[str, Any]:
    return {"batch_id": "poison", "agent": "a", "calls": [{"timestamp": "soon"}]}


def test_invalid_batch_is_dead_lettered_without_retries(
    app: Celery, env: dict[str, str], redis_url: str,
    workers: list[WorkerProcess], tmp_path: Path,
) -> None:
    worker = _start(workers, env, tmp_path)
    publish(app, _invalid())
    letters = DeadLetters.from_url(redis_url)
    wait_for(lambda: letters.get("poison"), 60, "the poison batch in the dead letters")
    letter = letters.get("poison")
    assert letter is not None
    assert (letter.attempts, letter.error_type, letter.payload) == (1, "InvalidBatch", _invalid())
    assert "$.calls[0]" in letter.error
    assert worker.count(r"ingest batch poison: attempt \d+\n") == 1
    _no_payloads_left(redis_url)


def test_batch_failing_every_retry_is_dead_lettered_then_replayed(
    app: Celery, env: dict[str, str], redis_url: str, settings_for: Settings,
    workers: list[WorkerProcess], tmp_path: Path,
) -> None:
    letters = DeadLetters.from_url(redis_url)
    stuck = batch("stuck", 50)
    holder = LadybugStore(settings_for)  # owns the file: the worker cannot open it
    try:
        holder.init_schema()
        worker = _start(workers, env, tmp_path)
        publish(app, stuck)
        wait_for(lambda: letters.get("stuck"), 60, "the batch in the dead letters")
    finally:
        holder.close()
    letter = letters.get("stuck")
    assert letter is not None
    assert (letter.attempts, letter.error_type) == (MAX_RETRIES + 1, "StoreLocked")
    assert letter.payload == stuck, "the dead letter keeps the payload itself"
    assert worker.count(r"ingest batch stuck: attempt \d+\n") == MAX_RETRIES + 1
    _no_payloads_left(redis_url)

    result = CliRunner().invoke(deadletter, ["--redis-url", redis_url, "replay", "stuck"],
                                env=env)
    assert result.exit_code == 0, result.output
    worker.wait_log(r"ingest batch stuck: applied")
    worker.stop()
    assert len(letters) == 0
    assert _store_totals(settings_for) == expected_totals(stuck)


def test_store_unavailable_for_a_while_loses_nothing(
    app: Celery, env: dict[str, str], redis_url: str, settings_for: Settings,
    workers: list[WorkerProcess], tmp_path: Path,
) -> None:
    env = env | {"TOPOLOGY_INGEST_MAX_RETRIES": "100"}
    batches = [batch(f"b-{n}", 100) for n in range(3)]
    holder = LadybugStore(settings_for)
    try:
        holder.init_schema()
        worker = _start(workers, env, tmp_path)
        for payload in batches:
            publish(app, payload)
        worker.wait_log(r"StoreLocked.*retry in", times=3)
        assert len(_payload_keys(redis_url)) == 3, "payloads kept while their batches retry"
    finally:
        holder.close()  # the store is back
    for payload in batches:
        worker.wait_log(rf"ingest batch {payload['batch_id']}: applied")
    _no_payloads_left(redis_url)
    worker.stop()
    assert len(DeadLetters.from_url(redis_url)) == 0
    assert _store_totals(settings_for) == expected_totals(*batches)


def test_write_too_big_for_the_buffer_pool_is_retried_then_replayed_exactly(
    app: Celery, env: dict[str, str], redis_url: str, settings_for: Settings,
    workers: list[WorkerProcess], tmp_path: Path,
) -> None:
    letters = DeadLetters.from_url(redis_url)
    small, big = batch("small", 20), big_batch()
    cramped = _start(workers, env | {"TOPOLOGY_EMBEDDED_BUFFER_POOL_MB": "16"}, tmp_path)
    publish(app, small)
    publish(app, big)
    wait_for(lambda: letters.get("big"), 60, "the batch in the dead letters")
    assert cramped.count(r"ingest batch big: attempt \d+ failed .*buffer pool is full.*"
                         r"raise TOPOLOGY_EMBEDDED_BUFFER_POOL_MB") == MAX_RETRIES
    cramped.wait_log(r"ingest batch small: applied")
    cramped.stop()

    roomy = _start(workers, env, tmp_path)  # the worker's own buffer pool
    result = CliRunner().invoke(deadletter, ["--redis-url", redis_url, "replay", "big"], env=env)
    assert result.exit_code == 0, result.output
    roomy.wait_log(r"ingest batch big: applied", timeout=120)
    roomy.stop()
    assert _store_totals(settings_for) == expected_totals(small, big)


def test_build_helpers_end_with_a_killed_worker(
    app: Celery, env: dict[str, str], workers: list[WorkerProcess], tmp_path: Path,
) -> None:
    """Only the worker's main process is killed: nobody shuts its build helper down,
    so the helper notices by itself and exits instead of waiting forever."""
    worker = _start(workers, env, tmp_path)
    publish(app, batch("one", 10))
    worker.wait_log(r"ingest batch one: applied")
    children = worker.pool_pids()
    # Its one child is the build helper: no multiprocessing resource tracker either.
    assert [_cmdline(pid) for pid in children] == [
        ["-P", "-m", "topology.ingest.build_helper"]]
    assert worker.proc is not None
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(30)
    wait_for(lambda: not any(_alive(pid) for pid in children), 30,
             "the orphaned build helper to exit")


def _cmdline(pid: int) -> list[str]:
    """A process's arguments after its interpreter, but the last (the helper's fd)."""
    return Path(f"/proc/{pid}/cmdline").read_text().split("\0")[1:-2]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
