"""Which local process serves an (ip, port), and the leases that say so.

Filled from two sources: periodic scans of the listening sockets (so a server
that nobody called yet still gets its lease) and the accepts the agent sees (so
a server that started a moment ago is known before the next scan).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from collectors.ebpf import listeners
from collectors.ebpf.identity import Identities

Scan = Callable[[], list[listeners.Listener]]


class ListenerTable:
    def __init__(self, identities: Identities, scan: Scan = listeners.scan,
                 addresses: Callable[[], set[str]] = listeners.local_addresses,
                 capacity: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.identities = identities
        self.clock = clock
        self._addresses_read = float("-inf")
        self._scan = scan
        self._addresses = addresses
        self.capacity = capacity
        self.local: set[str] = set()
        self._by_port: dict[int, dict[str, dict[str, Any]]] = {}
        self._leases: dict[tuple[str, int], tuple[dict[str, Any], float]] = {}

    def learn(self, ip: str, port: int, workload: dict[str, Any]) -> None:
        if port not in self._by_port and len(self._by_port) >= self.capacity:
            return
        self._by_port.setdefault(port, {})[ip] = workload

    def _read_addresses(self) -> None:
        self.local = self._addresses()
        self._addresses_read = self.clock()

    def is_local(self, ip: str) -> bool:
        return ip in self.local or listeners.is_loopback(ip)

    def lookup(self, ip: str, port: int) -> dict[str, Any] | None:
        """The workload listening on a local (ip, port), else None."""
        owners = self._by_port.get(port)
        if not owners:
            return None
        exact = owners.get(ip)
        if exact is not None:  # a local process accepted or listens on exactly this address
            return exact
        if not self.is_local(ip):
            # An address added since the last read (a new interface, a veth)? Re-read
            # the host's addresses, at most once a second.
            if self.clock() - self._addresses_read < 1.0:
                return None
            self._read_addresses()
            if not self.is_local(ip):
                return None
        return owners.get("0.0.0.0") or owners.get("::") or (
            next(iter(owners.values())) if listeners.is_loopback(ip) else None)

    def refresh(self, now: float) -> list[dict[str, Any]]:
        """Rescan; returns endpoint leases that opened (from=now) or closed (to=now)."""
        self._read_addresses()
        scanned: dict[int, dict[str, dict[str, Any]]] = {}
        for listener in self._scan():
            workload = self.identities.workload(listener.tgid, "")
            scanned.setdefault(listener.port, {})[listener.ip] = workload
        self._by_port = scanned
        public = sorted(ip for ip in self.local if not listeners.is_loopback(ip)
                        and not ip.startswith("fe80:"))
        current: dict[tuple[str, int], dict[str, Any]] = {}
        for port, owners in scanned.items():
            for ip, workload in owners.items():
                if listeners.is_loopback(ip):
                    continue
                for address in public if ip in listeners.WILDCARDS else [ip]:
                    current[(address, port)] = workload
        changes: list[dict[str, Any]] = []
        for key, (held, since) in list(self._leases.items()):
            workload = current.get(key)
            if workload is None or workload["name"] != held["name"]:
                del self._leases[key]
                changes.append({"ip": key[0], "port": key[1], "from": since, "to": now,
                                "workload": held})
        for key, workload in current.items():
            if key not in self._leases:
                self._leases[key] = (workload, now)
                changes.append({"ip": key[0], "port": key[1], "from": now,
                                "workload": workload})
        return changes
