"""A flood with tiny buffers and a sink that is down: bounded memory, counted losses."""

from __future__ import annotations

import resource
import sys
import threading
from collections.abc import Iterator

import pytest

from collectors.ebpf.agent import Agent, AgentConfig
from collectors.ebpf.program import ProgramOptions
from collectors.ebpf.sinks import HttpSink
from collectors.ebpf.tracker import Limits
from tests.collectors.ebpf import live

pytestmark = pytest.mark.ebpf

MAX_CONNS, MAX_PENDING, MAX_BACKLOG = 16, 8, 2
CLIENT_CONNECTIONS = 40


@pytest.fixture
def flood_server() -> Iterator[int]:
    live.require_ebpf()
    port = live.free_port()
    yield from (port for _ in live.serve(
        [sys.executable, "-m", "tests.collectors.ebpf.loadgen", "serve", str(port)], port))


def test_flood_stays_bounded_and_counts_losses(flood_server: int) -> None:
    config = AgentConfig(
        program=ProgramOptions(ringbuf_pages=1, max_conns=64),
        limits=Limits(max_conns=MAX_CONNS, max_pending=MAX_PENDING, max_pending_per_conn=4),
        batch_size=1, flush_interval=0.1, max_backlog=MAX_BACKLOG, poll_interval=0.05,
        retry_initial=0.05, retry_max=0.2,
    )
    dead_api = f"http://127.0.0.1:{live.free_port()}"  # nothing listens: the sink is down
    agent = Agent(config, HttpSink(dead_api, timeout=1))
    agent.start()
    agent.run_in_thread()
    peaks = {"conns": 0, "pending": 0, "backlog": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            tracker = agent.tracker
            assert tracker is not None
            peaks["conns"] = max(peaks["conns"], len(tracker.conns))
            peaks["pending"] = max(peaks["pending"], tracker.pending_total)
            peaks["backlog"] = max(peaks["backlog"], agent.outbox.pending())
            done.wait(0.005)

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    sampler = live.in_thread(sample)
    try:
        result = live.run([sys.executable, "-m", "tests.collectors.ebpf.loadgen", "client",
                           str(flood_server), "3", str(CLIENT_CONNECTIONS)])
    finally:
        done.set()
        sampler.join()
    requests = int(result.stdout)
    thread = agent._thread
    alive = thread is not None and thread.is_alive()
    stats = agent.stats
    agent.stop(drain_timeout=0.5)
    rss_growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before

    assert alive, "the agent's polling thread died during the flood"
    assert requests > 1000
    assert peaks["conns"] <= MAX_CONNS
    assert peaks["pending"] <= MAX_PENDING
    assert peaks["backlog"] <= MAX_BACKLOG
    assert stats.kernel_lost["data"] > 0, "a one-page ring buffer must overflow"
    assert stats.kernel_lost["conn"] + stats.evicted_connections > 0
    assert stats.dropped_batches > 0 and stats.send_failures > 0, stats
    assert stats.sent_batches == 0
    assert rss_growth_kb < 64 * 1024
