"""The node agent: BPF program -> tracker -> outbox -> sink, with its own /metrics.

One thread polls the ring buffer and runs the tracker (single-threaded, no
locks on the hot path); a shipper thread delivers sealed batches with retries
and backoff. Losses are counted in Stats and summarised in the log.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from collectors.ebpf import scheduling
from collectors.ebpf.identity import Identities
from collectors.ebpf.listeners_table import ListenerTable
from collectors.ebpf.outbox import Outbox
from collectors.ebpf.program import Program, ProgramOptions
from collectors.ebpf.sinks import Sink, SinkError
from collectors.ebpf.stats import Stats
from collectors.ebpf.tracker import Limits, Tracker

log = logging.getLogger("topology.agent")


@dataclass(frozen=True)
class AgentConfig:
    program: ProgramOptions = field(default_factory=ProgramOptions)
    limits: Limits = field(default_factory=Limits)
    agent_name: str = field(default_factory=socket.gethostname)
    batch_size: int = 500
    flush_interval: float = 5.0
    max_backlog: int = 64
    # The ring buffer holds seconds of events: draining it 10 times a second is
    # plenty, and large batches cost less per event than many small ones.
    poll_interval: float = 0.1
    # Out of the applications' way (scheduling.py): the polling thread under
    # SCHED_IDLE while it keeps up, the shipper under SCHED_BATCH.
    background: bool = True
    listener_interval: float = 30.0
    log_interval: float = 60.0
    retry_initial: float = 0.5
    retry_max: float = 15.0


class Shipper(threading.Thread):
    def __init__(self, outbox: Outbox, sink: Sink, stats: Stats, config: AgentConfig) -> None:
        super().__init__(name="topology-agent-shipper", daemon=True)
        self.outbox, self.sink, self.stats, self.config = outbox, sink, stats, config
        self.stopping = threading.Event()
        self.ready = threading.Event()  # its scheduling policy is set

    def run(self) -> None:
        if self.config.background:
            scheduling.background()
        self.ready.set()
        delay = self.config.retry_initial
        failing = 0  # consecutive failures: logged when they start and when they end
        while True:
            batch = self.outbox.next_batch(timeout=0.2)
            if batch is None:
                if self.stopping.is_set():
                    return
                continue
            try:
                self.sink.send(batch)
            except SinkError as exc:
                self.stats.send_failures += 1
                if exc.permanent:
                    log.warning("batch %s rejected, dropped: %s", batch["batch_id"], exc)
                    self.stats.dropped_batches += 1
                    self.outbox.done(batch)
                    continue
                if self.stopping.is_set():
                    return
                if not failing:
                    log.warning("delivery failing, keeping at most %d batches and retrying: %s",
                                self.outbox.max_backlog, exc)
                failing += 1
                self.stopping.wait(delay)
                delay = min(delay * 2, self.config.retry_max)
                continue
            if failing:
                log.warning("delivery recovered after %d failed attempts", failing)
                failing = 0
            delay = self.config.retry_initial
            self.stats.sent_batches += 1
            self.outbox.done(batch)


class Agent:
    def __init__(self, config: AgentConfig, sink: Sink,
                 identities: Identities | None = None) -> None:
        self.config = config
        self.sink = sink
        self.stats = Stats()
        self.identities = identities or Identities()  # with Kubernetes: collectors.ebpf.cluster
        self.listeners = ListenerTable(self.identities)
        self.outbox = Outbox(config.agent_name, self.stats, batch_size=config.batch_size,
                             flush_interval=config.flush_interval,
                             max_backlog=config.max_backlog)
        self.program: Program | None = None
        self.tracker: Tracker | None = None
        self.shipper = Shipper(self.outbox, sink, self.stats, config)
        self.stopping = threading.Event()
        self.started = threading.Event()
        self.polling = threading.Event()  # run() has started, its policy set
        self._thread: threading.Thread | None = None

    def _emit(self, kind: str) -> Any:
        return functools.partial(self.outbox.add, kind)

    def start(self) -> None:
        """Load the BPF program (may raise: no root, no BCC) and start shipping."""
        program = Program(self.config.program)
        offset = time.time() - time.monotonic()
        self.tracker = Tracker(
            self.identities, self.listeners, self.stats,
            emit_call=self._emit("calls"), emit_dns=self._emit("dns"),
            wall_offset=offset, limits=self.config.limits,
            release=program.release, stop_capture=program.stop_capture,
        )
        program.open_raw(self.tracker.record_handler())
        self.program = program
        for lease in self.listeners.refresh(time.time()):
            self.outbox.add("endpoints", lease)
        self.shipper.start()
        self.shipper.ready.wait()
        self.started.set()

    def run(self) -> None:
        """Poll until stop(); then flush what is left."""
        config = self.config
        policy = scheduling.PollingPolicy() if config.background else None
        self.polling.set()
        assert self.program is not None and self.tracker is not None, "start() first"
        next_listeners = time.monotonic() + config.listener_interval
        next_log = time.monotonic() + config.log_interval
        next_expire = time.monotonic() + 1.0
        last_losses: dict[str, int] = {}
        while not self.stopping.is_set():
            if policy is not None:
                policy.follow(self.program.backlog())
            self.program.consume()
            now = time.monotonic()
            if now >= next_expire:
                self.stats.kernel_lost = self.program.lost()
                self.tracker.expire(time.monotonic_ns())
                next_expire = now + 1.0
            if now >= next_listeners:
                for lease in self.listeners.refresh(time.time()):
                    self.outbox.add("endpoints", lease)
                next_listeners = now + config.listener_interval
            if self.outbox.due():
                self.outbox.seal()
            if now >= next_log:
                last_losses = self.log_losses(last_losses)
                next_log = now + config.log_interval
            self.stopping.wait(config.poll_interval)
        self.program.consume()
        self.stats.kernel_lost = self.program.lost()
        self.outbox.seal()
        self.log_losses(last_losses)

    def log_losses(self, last: dict[str, int]) -> dict[str, int]:
        losses = {k: v for k, v in self.stats.losses().items() if v}
        if losses != last:
            log.info("agent losses so far: %s", ", ".join(f"{k}={v}" for k, v in
                                                         sorted(losses.items())) or "none")
        return losses

    def run_in_thread(self) -> None:
        self._thread = threading.Thread(target=self.run, name="topology-agent", daemon=True)
        self._thread.start()
        self.polling.wait()

    def stop(self, drain_timeout: float = 10.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join()
        deadline = time.monotonic() + drain_timeout
        while self.outbox.pending() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.shipper.stopping.set()
        if self.shipper.is_alive():
            self.shipper.join(timeout=drain_timeout)
        if self.program is not None:
            self.program.close()
            self.program = None
        self.sink.close()
