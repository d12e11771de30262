"""Batching of lease changes: identity de-duplication, size limit, sink failures."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest

from collectors.kubernetes.batches import Batcher

SCHEMA = json.loads(resources.files("topology.ingest").joinpath("events.schema.json").read_text())


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lease(ip: str, start: float = 1.0, end: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"ip": ip, "workload": {
        "cluster": "prod", "namespace": "shop", "name": "checkout", "kind": "Deployment",
        "labels": {"app": "checkout"}}, "from": start}
    if end is not None:
        out["to"] = end
    return out


class FlakySink:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.batches: list[dict[str, Any]] = []

    def __call__(self, batch: dict[str, Any]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("ingest API down")
        jsonschema.validate(batch, SCHEMA)
        self.batches.append(batch)


def test_later_state_of_a_lease_replaces_the_pending_one() -> None:
    sink, clock = FlakySink(), Monotonic()
    batcher = Batcher(sink, "kubernetes/prod", clock, max_delay=1.0)
    batcher.add([lease("10.1.0.5"), lease("10.1.0.6")])
    batcher.add([lease("10.1.0.5", end=9.0)])
    assert not batcher.due()
    clock.now += 1.0
    assert batcher.due() and batcher.flush() == 1
    (batch,) = sink.batches
    assert [(e["ip"], e.get("to")) for e in batch["endpoints"]] == [
        ("10.1.0.6", None), ("10.1.0.5", 9.0)]
    assert batch["agent"] == "kubernetes/prod" and batch["batch_id"].startswith("kubernetes/prod:")
    assert len(batcher) == 0 and batcher.seconds_until_due() is None


@pytest.mark.parametrize(("count", "max_endpoints", "sizes"), [
    (5, 2, [2, 2, 1]),
    (4, 4, [4]),
    (3, 10, []),  # under the limit: waits for max_delay
])
def test_full_batches_go_at_once_in_chunks(count: int, max_endpoints: int,
                                           sizes: list[int]) -> None:
    sink = FlakySink()
    batcher = Batcher(sink, "k", Monotonic(), max_endpoints=max_endpoints)
    batcher.add([lease(f"10.1.0.{i}") for i in range(count)])
    assert [len(b["endpoints"]) for b in sink.batches] == sizes


def test_failing_sink_keeps_leases_and_retries_with_growing_delay() -> None:
    sink, clock = FlakySink(failures=2), Monotonic()
    batcher = Batcher(sink, "k", clock, max_delay=0.1, retry_initial=0.5, retry_max=0.8)
    batcher.add([lease("10.1.0.5")])
    clock.now += 0.1
    assert batcher.flush() == 0
    assert batcher.seconds_until_due() == pytest.approx(0.5)
    batcher.add([lease("10.1.0.5", end=7.0), lease("10.1.0.6")])
    clock.now += 0.5
    assert batcher.due() and batcher.flush() == 0
    assert batcher.seconds_until_due() == pytest.approx(0.8)  # doubled, capped
    clock.now += 0.8
    assert batcher.flush() == 1
    assert [(e["ip"], e.get("to")) for e in sink.batches[0]["endpoints"]] == [
        ("10.1.0.5", 7.0), ("10.1.0.6", None)]
    assert len(batcher) == 0 and not batcher.due()


class Rejected(Exception):
    permanent = True


def test_permanently_rejected_batch_is_dropped_and_the_rest_goes_on() -> None:
    sent: list[dict[str, Any]] = []

    def sink(batch: dict[str, Any]) -> None:
        if any(e["ip"] == "10.1.0.1" for e in batch["endpoints"]):
            raise Rejected("HTTP 400")
        sent.append(batch)

    batcher = Batcher(sink, "k", Monotonic(), max_endpoints=2)
    batcher.add([lease(f"10.1.0.{i}") for i in range(5)])
    assert [[e["ip"] for e in b["endpoints"]] for b in sent] == [["10.1.0.2", "10.1.0.3"],
                                                                 ["10.1.0.4"]]
    assert len(batcher) == 0 and not batcher.due()


def test_max_endpoints_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_endpoints must be >= 1"):
        Batcher(FlakySink(), "k", Monotonic(), max_endpoints=0)
