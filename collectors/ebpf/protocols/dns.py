"""DNS responses (RFC 1035 wire format): the question name and its A/AAAA answers."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

TYPE_A = 1
TYPE_AAAA = 28
_MAX_POINTERS = 16


class DnsError(ValueError):
    """The datagram is not a usable DNS response; the message says where."""


@dataclass(frozen=True, slots=True)
class Answer:
    name: str
    ips: tuple[str, ...]
    ttl: int | None


def _name(data: bytes, offset: int) -> tuple[str, int]:
    """Decodes a (possibly compressed) name; returns it and the offset after it."""
    labels: list[str] = []
    end = None
    jumps = 0
    while True:
        if offset >= len(data):
            raise DnsError(f"name runs past the end at byte {offset}")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise DnsError(f"truncated compression pointer at byte {offset}")
            jumps += 1
            if jumps > _MAX_POINTERS:
                raise DnsError("compression pointer loop")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            continue
        if length & 0xC0:
            raise DnsError(f"bad label length {length:#x} at byte {offset}")
        offset += 1
        if length == 0:
            break
        label = data[offset : offset + length]
        if len(label) != length:
            raise DnsError(f"label runs past the end at byte {offset}")
        labels.append(label.decode("ascii", "replace"))
        offset += length
    name = ".".join(labels).lower()
    if len(name) > 253:
        raise DnsError("name longer than 253 characters")
    return name, (end if end is not None else offset)


def parse_response(data: bytes) -> Answer | None:
    """The A/AAAA answers of a response; None for queries, errors and answers without
    addresses. A record cut short by the capture ends the list (earlier ones are kept)."""
    if len(data) < 12:
        raise DnsError(f"{len(data)} bytes is shorter than a DNS header")
    _id, flags, qdcount, ancount, _ns, _ar = struct.unpack("!6H", data[:12])
    if not flags & 0x8000:
        return None  # a query
    if flags & 0x000F:
        return None  # NXDOMAIN, SERVFAIL, ...
    if qdcount < 1:
        raise DnsError("response without a question")
    question, offset = _name(data, 12)
    offset += 4
    for _ in range(qdcount - 1):
        _, offset = _name(data, offset)
        offset += 4
    ips: list[str] = []
    ttls: list[int] = []
    for _ in range(ancount):
        try:
            _owner, offset = _name(data, offset)
        except DnsError:
            break
        if offset + 10 > len(data):
            break
        rtype, _rclass, ttl, rdlength = struct.unpack("!HHIH", data[offset : offset + 10])
        offset += 10
        rdata = data[offset : offset + rdlength]
        if len(rdata) != rdlength:
            break
        offset += rdlength
        if rtype == TYPE_A and rdlength == 4:
            ips.append(str(ipaddress.IPv4Address(rdata)))
            ttls.append(ttl)
        elif rtype == TYPE_AAAA and rdlength == 16:
            ips.append(str(ipaddress.IPv6Address(rdata)))
            ttls.append(ttl)
    if not ips or not question:
        return None
    return Answer(question, tuple(ips), min(ttls))
