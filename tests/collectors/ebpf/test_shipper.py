"""The shipper retries the very same batch until the sink takes it, and drops rejected ones."""

from __future__ import annotations

import time

from collectors.ebpf.agent import AgentConfig, Shipper
from collectors.ebpf.outbox import Outbox
from collectors.ebpf.sinks import HttpSink
from collectors.ebpf.stats import Stats
from tests.collectors.ebpf.receiver import Receiver


def _wait(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def _shipper(receiver: Receiver, stats: Stats) -> tuple[Outbox, Shipper]:
    outbox = Outbox("node-1", stats, batch_size=1)
    config = AgentConfig(retry_initial=0.01, retry_max=0.02)
    shipper = Shipper(outbox, HttpSink(f"http://127.0.0.1:{receiver.server_port}"), stats,
                      config)
    return outbox, shipper


def test_retries_keep_the_batch_id(receiver: Receiver) -> None:
    stats = Stats()
    outbox, shipper = _shipper(receiver, stats)
    receiver.status = 503
    shipper.start()
    outbox.add("dns", {"name": "a.test", "ips": ["10.0.0.1"], "timestamp": 1.0})
    _wait(lambda: len(receiver.received) >= 3)
    receiver.status = 202
    _wait(lambda: stats.sent_batches == 1)
    shipper.stopping.set()
    shipper.join(timeout=5)
    ids = {body["batch_id"] for _, _, body in receiver.received}
    assert len(ids) == 1
    assert stats.sent_batches == 1 and stats.send_failures >= 3
    assert outbox.pending() == 0


def test_rejected_batch_is_dropped_and_counted(receiver: Receiver) -> None:
    stats = Stats()
    outbox, shipper = _shipper(receiver, stats)
    receiver.status = 400
    shipper.start()
    outbox.add("dns", {"name": "a.test", "ips": ["10.0.0.1"], "timestamp": 1.0})
    _wait(lambda: stats.dropped_batches == 1)
    shipper.stopping.set()
    shipper.join(timeout=5)
    assert len(receiver.received) == 1
    assert (stats.dropped_batches, stats.sent_batches, outbox.pending()) == (1, 0, 0)
