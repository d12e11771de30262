"""What the tracker keeps per socket, and the bounds it keeps it within."""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from collectors.ebpf.protocols import http1

UNKNOWN, TCP = "unknown", "tcp"
DONE = "done"  # was parsed (HTTP, Redis), no longer is: upgraded, or a head we could not read
AF_INET, AF_INET6 = 2, 10


@dataclass(slots=True)
class Conn:
    tgid: int
    fd: int
    role: int
    transport: int
    opened_ns: int
    last_ns: int
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    workload: dict[str, Any]
    protocol: str = UNKNOWN
    peer_workload: dict[str, Any] | None = None  # the local listener we call, once known
    parser: ModuleType | None = None  # protocols.http1 or protocols.resp once recognised
    pending: deque[tuple[int, http1.Request]] = field(default_factory=deque)
    partial: dict[int, bytes] = field(default_factory=dict)
    # (source, destination, side) shared by every call of this connection, once known
    ends: tuple[dict[str, Any], dict[str, Any], str] | None = None


def address(family: int, raw: bytes) -> str:
    if family == AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    if family == AF_INET6:
        ip = ipaddress.IPv6Address(raw[:16])
        return str(ip.ipv4_mapped or ip)
    return "0.0.0.0"


@dataclass(frozen=True)
class Limits:
    max_conns: int = 16384
    max_pending: int = 16384
    max_pending_per_conn: int = 64
    request_timeout_ns: int = 30 * 10**9
    idle_timeout_ns: int = 600 * 10**9
    max_head: int = 256
