"""Local listening TCP sockets and the processes that own them.

They become IP leases (`endpoints`) so that calls other agents see towards
this host's addresses resolve to the process listening there, and they name
the destination of local calls this agent sees from the client side.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

LISTEN = "0A"
WILDCARDS = ("0.0.0.0", "::")


@dataclass(frozen=True, slots=True)
class Listener:
    ip: str
    port: int
    tgid: int


def _hex_ip(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # /proc/net/tcp6 prints four host-order 32-bit words.
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    return str(address.ipv4_mapped or address)


def parse_proc_net_tcp(text: str) -> dict[int, tuple[str, int]]:
    """inode -> (ip, port) of the LISTEN sockets in a /proc/net/tcp{,6} table."""
    found: dict[int, tuple[str, int]] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != LISTEN:
            continue
        address, port = fields[1].split(":")
        found[int(fields[9])] = (_hex_ip(address), int(port, 16))
    return found


def local_addresses(proc: Path = Path("/proc")) -> set[str]:
    """This host's own addresses (IPv4 from fib_trie LOCAL entries, IPv6 from if_inet6)."""
    addresses: set[str] = set()
    try:
        lines = (proc / "net" / "fib_trie").read_text().splitlines()
    except OSError:
        lines = []
    for previous, line in itertools.pairwise(lines):
        if "/32 host LOCAL" in line:
            addresses.add(previous.strip().split()[-1])
    try:
        for line in (proc / "net" / "if_inet6").read_text().splitlines():
            raw = line.split()[0]
            addresses.add(str(ipaddress.IPv6Address(bytes.fromhex(raw))))
    except OSError:
        pass
    return addresses


def scan(proc: Path = Path("/proc")) -> list[Listener]:
    """Every listening TCP socket with the process holding it (first holder wins)."""
    sockets: dict[int, tuple[str, int]] = {}
    for table in ("tcp", "tcp6"):
        try:
            sockets.update(parse_proc_net_tcp((proc / "net" / table).read_text()))
        except OSError:
            continue
    if not sockets:
        return []
    owners: dict[int, int] = {}
    for entry in os.scandir(proc):
        if not entry.name.isdigit():
            continue
        fd_dir = os.path.join(entry.path, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(os.path.join(fd_dir, fd))
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = int(target[8:-1])
                if inode in sockets and inode not in owners:
                    owners[inode] = int(entry.name)
    return [Listener(ip, port, owners[inode]) for inode, (ip, port) in sockets.items()
            if inode in owners]


@functools.lru_cache(maxsize=4096)
def is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False
