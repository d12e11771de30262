"""The retention job of the serving process: roll up and expire on a schedule.

The embedded store has one writer, so the process that serves it also runs
its retention. A daemon thread calls `store.retention(now)` every
settings.retention_interval; a failed run is logged and tried again at the
next tick (whatever the error). `run_once` is the job itself, callable with an explicit clock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from topology.api.writes import counter_for
from topology.store.base import GraphStore, RetentionReport, StoreError

log = logging.getLogger(__name__)


class RetentionJob:
    def __init__(self, store: GraphStore, interval: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.interval = interval
        self.clock = clock
        self.runs = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> RetentionReport | None:
        try:
            with counter_for(self.store).writing():
                report = self.store.retention(int(self.clock()))
        except StoreError as exc:
            self.failures += 1
            log.warning("retention run failed: %s", exc)
            return None
        except Exception:  # the job must outlive an unforeseen error; the next tick retries
            self.failures += 1
            log.exception("retention run failed")
            return None
        self.runs += 1
        log.info("retention run done", extra=vars(report))
        return report

    def start(self) -> RetentionJob:
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
