"""Which store errors make the ingest task reopen the embedded store; a batch's calls
let go of while it waits for its commit come back exactly for a retry."""

from __future__ import annotations

from typing import Any

import pytest

from topology.ingest.coalesce import DEFAULT_LINGER
from topology.ingest.held import HeldCalls
from topology.ingest.tasks import WorkerRuntime, store_exhausted
from topology.settings import Settings
from topology.store import open_store
from topology.store.base import StoreError
from topology.store.changes import changes_of

FULL = ("write failed and was rolled back: Buffer manager exception: Unable to allocate"
        " memory! The buffer pool is full and no memory could be freed!")
CHECKPOINT = ("write failed and was rolled back: Checkpoint failed. The committed data is"
              " durable and will be recovered on restart")


@pytest.mark.parametrize(("store", "message", "reopen"), [
    ("embedded", FULL, True),
    ("embedded", CHECKPOINT, True),
    ("embedded", "write failed and was rolled back: Binder exception: x", False),
    ("neo4j", FULL, False),
])
def test_exhausted_buffer_pool_reopens_the_embedded_store(store: str, message: str,
                                                          reopen: bool) -> None:
    settings = Settings(store=store, neo4j_uri="bolt://localhost:7687")
    assert store_exhausted(StoreError(message), settings) is reopen


CALL = {"timestamp": 1763700000.25, "side": "client", "duration_ms": 12.5, "status": 200,
        "source": {"ip": "10.0.0.1", "port": 40000}, "destination": {"ip": "10.0.0.2"},
        "path": "/caf\u00e9", "error": False}


@pytest.mark.parametrize(("calls", "pickled"), [
    ([CALL, {**CALL, "duration_ms": 0.1 + 0.2}], False),  # orjson: exact for these
    ([{**CALL, "trace_id": "t"}], False),
    ([{**CALL, "trace_id": None}], True),  # a null: pickle, to be sure
    ([{**CALL, "duration_ms": float("nan")}], True),  # orjson would write null
    ([{**CALL, "duration_ms": float("inf")}], True),
    ([{**CALL, "status": 2**70}], True),  # beyond orjson's integers
])
def test_calls_let_go_of_come_back_the_same(calls: list[dict[str, Any]],
                                             pickled: bool) -> None:
    payload = {"batch_id": "b", "agent": "a", "calls": calls}
    expected = repr(calls)  # repr: NaN is not equal to itself
    held = HeldCalls(payload)
    held.release()
    assert payload["calls"] == [] and held.pickled is pickled
    held.restore()
    assert repr(payload["calls"]) == expected
    held.restore()  # once only: a second restore changes nothing
    assert repr(payload["calls"]) == expected


@pytest.mark.parametrize("payload", [
    {"batch_id": "b", "calls": []},
    {"batch_id": "b"},
    {"batch_id": "b", "calls": "not a list"},
    ["not", "a", "mapping"],
])
def test_payloads_without_calls_to_let_go_of_are_left_alone(payload: Any) -> None:
    before = repr(payload)
    held = HeldCalls(payload)
    held.release()
    held.restore()
    assert repr(payload) == before and held.encoded is None


@pytest.mark.parametrize(("linger", "expected"), [(None, DEFAULT_LINGER), (0.5, 0.5)])
def test_the_worker_runtime_gives_its_coalescer_the_group_linger(
    settings: Settings, redis_url: str, linger: float | None, expected: float,
) -> None:
    runtime = WorkerRuntime(settings.with_(redis_url=redis_url), linger)
    try:
        coalescer = runtime.ingestor().coalescer
        assert coalescer is not None and coalescer.linger == expected
    finally:
        runtime.close()


def test_the_worker_s_embedded_store_tracks_no_changes_for_readers_it_does_not_have(
    settings: Settings, redis_url: str,
) -> None:
    """Reader caches live in the serving process; a worker answers no queries, so its
    store keeps no change log (the keys of every bucket it wrote in the newest minutes)."""
    runtime = WorkerRuntime(settings.with_(redis_url=redis_url))
    serving = open_store(settings.with_(data_dir=f"{settings.data_dir}-serving"))
    try:
        assert changes_of(runtime.ingestor().store) is None
        assert changes_of(serving) is not None  # a store opened to serve reads keeps one
    finally:
        runtime.close()
        serving.close()
