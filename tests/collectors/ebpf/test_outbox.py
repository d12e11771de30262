"""Batches: ids set once, sealed by size or age, a bounded backlog that counts drops."""

from __future__ import annotations

from collectors.ebpf.outbox import Outbox
from collectors.ebpf.stats import Stats


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _call(n: int) -> dict[str, object]:
    return {"timestamp": float(n), "side": "client", "source": {"ip": "10.0.0.1"},
            "destination": {"ip": "10.0.0.2", "port": 80}, "protocol": "tcp"}


def test_sealed_by_size_with_distinct_stable_ids() -> None:
    stats = Stats()
    outbox = Outbox("node-1", stats, batch_size=3)
    for n in range(7):
        outbox.add("calls", _call(n))
    first = outbox.next_batch(timeout=0)
    assert first is not None and len(first["calls"]) == 3
    assert outbox.next_batch(timeout=0) is first  # a retry sends the very same batch
    outbox.done(first)
    second = outbox.next_batch(timeout=0)
    assert second is not None and second["batch_id"] != first["batch_id"]
    assert first["batch_id"].startswith("node-1:")
    assert outbox.pending() == 1


def test_sealed_by_age() -> None:
    clock = Clock()
    outbox = Outbox("node-1", Stats(), batch_size=100, flush_interval=5.0, clock=clock)
    assert not outbox.due()
    outbox.add("dns", {"name": "a.test", "ips": ["10.0.0.1"], "timestamp": 1.0})
    clock.now = 4.9
    assert not outbox.due()
    clock.now = 5.0
    assert outbox.due()
    batch = outbox.seal()
    assert batch == {"batch_id": batch["batch_id"], "agent": "node-1",
                     "dns": [{"name": "a.test", "ips": ["10.0.0.1"], "timestamp": 1.0}]}
    assert outbox.seal() is None  # nothing new: no empty batch


def test_backlog_is_bounded_and_drops_are_counted() -> None:
    stats = Stats()
    outbox = Outbox("node-1", stats, batch_size=2, max_backlog=3)
    for n in range(20):
        outbox.add("calls", _call(n))
    assert outbox.pending() == 3
    assert (stats.dropped_batches, stats.dropped_items, stats.backlog_batches) == (7, 14, 3)
    oldest = outbox.next_batch(timeout=0)
    assert oldest is not None and oldest["calls"][0]["timestamp"] == 14.0  # newest kept
