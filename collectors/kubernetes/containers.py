"""Container id -> workload, kept by the watcher for the node agent's identities.

The resolver writes (from the watcher's thread) what each pod's containers
belong to; the agent reads (from its own thread) when it names a process whose
cgroup says kubepods. `version` moves on every change, so a reader that fell
back to the process name knows cheaply when asking again may help.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any


class ContainerIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workloads: dict[str, dict[str, Any]] = {}
        self._by_pod: dict[str, tuple[str, ...]] = {}
        self.version = 0

    def set_pod(self, pod: str, container_ids: Iterable[str],
                workload: dict[str, Any] | None) -> None:
        """The containers of pod (its key) now belong to workload (None: to no workload)."""
        ids = tuple(container_ids) if workload is not None else ()
        with self._lock:
            old = self._by_pod.get(pod, ())
            if old == ids and all(self._workloads.get(cid) == workload for cid in ids):
                return
            for cid in old:
                self._workloads.pop(cid, None)
            for cid in ids:
                self._workloads[cid] = workload  # type: ignore[assignment]
            if ids:
                self._by_pod[pod] = ids
            else:
                self._by_pod.pop(pod, None)
            self.version += 1

    def forget_pod(self, pod: str) -> None:
        self.set_pod(pod, (), None)

    def lookup(self, container_id: str) -> dict[str, Any] | None:
        """The workload of a container (full id, lower-case hex), if a pod names it."""
        with self._lock:
            return self._workloads.get(container_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._workloads)
