"""OTLP traces into the ingest sink: the receiver, a backlog, and a flush timer.

`OtlpReceiver` pairs client and server spans and holds a lone span for its
pair window, so calls leave it on later requests too: a timer thread flushes
it every `interval` seconds. Batches the sink refuses (queue full) wait in a
backlog, retried on every tick and request; while the backlog is not empty
new exports are refused with 429 before their spans are taken, so nothing
accepted is dropped and memory stays bounded. `close()` flushes every lone
span and hands the backlog to the sink before the sink itself is closed.
The receiver is not thread-safe; one lock serialises it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from topology.api.metrics import ApiMetrics
from topology.api.sinks import Backpressure, IngestSink
from topology.ingest.otlp import OtlpReceiver

log = logging.getLogger(__name__)


class OtlpIntake:
    def __init__(self, sink: IngestSink, metrics: ApiMetrics | None = None, *,
                 receiver: OtlpReceiver | None = None, interval: float = 1.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.sink = sink
        self.metrics = metrics
        self.receiver = receiver or OtlpReceiver(clock=clock)
        self.clock = clock
        self.interval = interval
        self.backlog: deque[Mapping[str, Any]] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="otlp-flush", daemon=True)
        self._thread.start()

    def accept(self, body: bytes, content_type: str) -> int:
        """Take an export's spans (InvalidTraces when malformed); Backpressure when full."""
        with self._lock:
            self._drain()
            if self.backlog:
                raise Backpressure("ingest queue full: OTLP batches are waiting; retry later",
                                   "1")
            spans = self.receiver.accept(body, content_type)
            self.backlog.extend(self.receiver.flush(self.clock()))
            self._drain()
        return spans

    def tick(self, now: float | None = None) -> None:
        """Hand out the calls whose pair window ended, and retry the backlog."""
        with self._lock:
            self.backlog.extend(self.receiver.flush(self.clock() if now is None else now))
            self._drain()

    def _drain(self) -> None:
        while self.backlog:
            payload = self.backlog[0]
            try:
                self.sink.submit(payload)
            except Backpressure:
                return
            self.backlog.popleft()
            if self.metrics is not None:
                self.metrics.events_accepted.labels("traces").inc(len(payload["calls"]))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:
                log.exception("flushing OTLP spans failed")

    def close(self, timeout: float) -> int:
        """Flush every waiting span into the sink; returns the batches left unsubmitted."""
        self._stop.set()
        self._thread.join()
        deadline = time.monotonic() + timeout
        with self._lock:
            self.backlog.extend(self.receiver.flush(float("inf")))
            self._drain()
            while self.backlog and time.monotonic() < deadline:
                time.sleep(0.05)  # the queue's writer is making room
                self._drain()
            left = len(self.backlog)
        if left:
            log.error("shutdown: %d OTLP batch(es) could not be queued", left)
        return left
