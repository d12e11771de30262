"""Who a process is: pid -> container or unit -> the workload named in call events.

Outside Kubernetes the service is the process: its systemd unit or container
when its cgroup names one, else its executable name, on this host. Inside
Kubernetes (a kubepods cgroup) the pod's workload comes from the Kubernetes
metadata collector; until that is joined here, such processes are named like
any other process and carry their container id as a label.
"""

from __future__ import annotations

import os
import re
import socket
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

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
        last = paths[-1].rstrip("/").rsplit("/", 1)[-1] if paths else ""
        tail = last.rsplit("-", 1)[-1].removesuffix(".scope")
        if re.fullmatch(r"[0-9a-f]{12,64}", tail):
            container = tail
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


class Identities:
    """pid -> workload dict (collector format), cached per process, bounded."""

    def __init__(self, proc: Path = Path("/proc"), host: str | None = None,
                 capacity: int = 4096) -> None:
        self.proc = proc
        self.host = host or socket.gethostname()
        self.capacity = capacity
        self._cache: OrderedDict[int, dict[str, object]] = OrderedDict()

    def workload(self, tgid: int, comm: str) -> dict[str, object]:
        cached = self._cache.get(tgid)
        if cached is not None:
            self._cache.move_to_end(tgid)
            return cached
        workload = self._lookup(tgid, comm)
        self._cache[tgid] = workload
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return workload

    def forget(self, tgid: int) -> None:
        self._cache.pop(tgid, None)

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
        workload: dict[str, object] = {
            "name": process_name(cgroup, exe, comm),
            "kind": "Process",
            "host": self.host,
        }
        if cgroup.container_id:
            workload["labels"] = {"container_id": cgroup.container_id}
        return workload
