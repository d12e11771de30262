"""Who a process is: pid -> container or unit -> the workload named in call events.

Outside Kubernetes the service is the process: its systemd unit or container
when its cgroup names one, else its executable name, on this host. Inside
Kubernetes (a kubepods cgroup) the container id leads to the pod's workload
(cluster, namespace, name, kind) through a `ContainerLookup`, the index the
Kubernetes watcher keeps (collectors/kubernetes/containers.py) when the agent
runs in a cluster. A container no pod names yet (the watch event is still on
its way, or there is no watcher) is named like any other process, with its
container id as a label, and asked for again once the index has changed.
"""

from __future__ import annotations

import os
import re
import socket
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

_UNIT = re.compile(r"/([^/]+)\.service$")
_CONTAINER = re.compile(r"(?:docker|cri-containerd|crio|libpod)-([0-9a-f]{12,64})\.scope$|"
                        r"/(?:docker|libpod)/([0-9a-f]{12,64})$")
_SESSION_UNITS = re.compile(r"^(user@\d+|session-\d+)$")


@dataclass(frozen=True, slots=True)
class CgroupInfo:
    unit: str | None = None
    container_id: str | None = None
    kubernetes: bool = False


def parse_cgroup(text: str) -> CgroupInfo:
    """Reads /proc/<pid>/cgroup content (v1 or v2 lines `id:controllers:path`)."""
    paths = [line.split(":", 2)[2] for line in text.splitlines() if line.count(":") >= 2]
    kubernetes = any("kubepods" in path for path in paths)
    container = None
    unit = None
    for path in paths:
        match = _CONTAINER.search(path)
        if match:
            container = match.group(1) or match.group(2)
        unit_match = _UNIT.search(path)
        if unit_match and not _SESSION_UNITS.match(unit_match.group(1)):
            unit = unit_match.group(1)
    if kubernetes and container is None:
        # cgroupfs driver: .../kubepods/<qos>/pod<uid>/<id>, on any (v1) hierarchy line
        for path in paths:
            last = path.rstrip("/").rsplit("/", 1)[-1] if "kubepods" in path else ""
            tail = last.rsplit("-", 1)[-1].removesuffix(".scope")
            if re.fullmatch(r"[0-9a-f]{12,64}", tail):
                container = tail
                break
    return CgroupInfo(unit=unit, container_id=container, kubernetes=kubernetes)


def process_name(cgroup: CgroupInfo, exe: str | None, comm: str) -> str:
    """The service name of a process outside Kubernetes."""
    if cgroup.container_id and not cgroup.kubernetes:
        return f"container-{cgroup.container_id[:12]}"
    if cgroup.unit:
        return cgroup.unit
    if exe:
        return os.path.basename(exe).removesuffix(" (deleted)")
    return comm or "unknown"


class ContainerLookup(Protocol):
    """Container id -> Kubernetes workload; `version` changes whenever answers may."""

    version: int

    def lookup(self, container_id: str) -> dict[str, Any] | None: ...


class Identities:
    """pid -> workload dict (collector format), cached per process, bounded."""

    def __init__(self, proc: Path = Path("/proc"), host: str | None = None,
                 capacity: int = 4096, containers: ContainerLookup | None = None) -> None:
        self.proc = proc
        self.host = host or socket.gethostname()
        self.capacity = capacity
        self.containers = containers
        self._cache: OrderedDict[int, dict[str, object]] = OrderedDict()
        # kubepods processes named by fallback: tgid -> (container id, index version then)
        self._unresolved: dict[int, tuple[str, int]] = {}

    def workload(self, tgid: int, comm: str) -> dict[str, object]:
        cached = self._cache.get(tgid)
        if cached is not None:
            if self._unresolved and tgid in self._unresolved:
                cached = self._retry(tgid, cached)
            self._cache.move_to_end(tgid)
            return cached
        workload = self._lookup(tgid, comm)
        self._cache[tgid] = workload
        if len(self._cache) > self.capacity:
            old, _ = self._cache.popitem(last=False)
            self._unresolved.pop(old, None)
        return workload

    def forget(self, tgid: int) -> None:
        self._cache.pop(tgid, None)
        self._unresolved.pop(tgid, None)

    def _retry(self, tgid: int, fallback: dict[str, object]) -> dict[str, object]:
        """A kubepods process named by fallback: ask the index again if it changed."""
        container_id, version = self._unresolved[tgid]
        containers = self.containers
        if containers is None or containers.version == version:
            return fallback
        found = containers.lookup(container_id)
        if found is None:
            self._unresolved[tgid] = (container_id, containers.version)
            return fallback
        del self._unresolved[tgid]
        self._cache[tgid] = found
        return found

    def _lookup(self, tgid: int, comm: str) -> dict[str, object]:
        base = self.proc / str(tgid)
        try:
            cgroup = parse_cgroup((base / "cgroup").read_text())
        except OSError:
            cgroup = CgroupInfo()
        try:
            exe: str | None = os.readlink(base / "exe")
        except OSError:
            exe = None  # gone already, or a kernel thread
        containers = self.containers
        if cgroup.kubernetes and cgroup.container_id and containers is not None:
            version = containers.version  # read first: a change during the lookup retries
            found = containers.lookup(cgroup.container_id)
            if found is not None:
                return found
            self._unresolved[tgid] = (cgroup.container_id, version)
        workload: dict[str, object] = {
            "name": process_name(cgroup, exe, comm),
            "kind": "Process",
            "host": self.host,
        }
        if cgroup.container_id:
            workload["labels"] = {"container_id": cgroup.container_id}
        return workload
