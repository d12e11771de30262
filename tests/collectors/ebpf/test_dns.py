"""DNS response parsing: question name, A and AAAA answers, minimum TTL."""

from __future__ import annotations

import struct

import pytest

from collectors.ebpf.protocols.dns import Answer, DnsError, parse_response


def _name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def _rr(owner: bytes, rtype: int, ttl: int, rdata: bytes) -> bytes:
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def response(name: str, answers: list[bytes], flags: int = 0x8180, qtype: int = 1) -> bytes:
    header = struct.pack("!6H", 0x1234, flags, 1, len(answers), 0, 0)
    return header + _name(name) + struct.pack("!HH", qtype, 1) + b"".join(answers)


POINTER = b"\xc0\x0c"  # compression pointer to the question name at offset 12
A = 1
AAAA = 28
CNAME = 5
V6 = bytes.fromhex("20010db8000000000000000000000001")

CASES = [
    ("one A", response("svc.test", [_rr(POINTER, A, 60, bytes([10, 0, 0, 7]))]),
     Answer("svc.test", ("10.0.0.7",), 60)),
    ("A and AAAA, minimum ttl", response("Svc.Test", [
        _rr(POINTER, A, 300, bytes([10, 0, 0, 7])), _rr(POINTER, AAAA, 30, V6)]),
     Answer("svc.test", ("10.0.0.7", "2001:db8::1"), 30)),
    ("CNAME chain", response("www.test", [
        _rr(POINTER, CNAME, 60, _name("edge.cdn.test")),
        _rr(_name("edge.cdn.test"), A, 20, bytes([192, 0, 2, 9]))]),
     Answer("www.test", ("192.0.2.9",), 20)),
    ("truncated last record keeps the earlier ones", response("svc.test", [
        _rr(POINTER, A, 60, bytes([10, 0, 0, 7])), _rr(POINTER, A, 60, bytes([10, 0, 0, 8]))])[:-2],
     Answer("svc.test", ("10.0.0.7",), 60)),
    ("query, not a response", response("svc.test", [], flags=0x0100), None),
    ("NXDOMAIN", response("nope.test", [], flags=0x8183), None),
    ("no address records", response("svc.test", [_rr(POINTER, CNAME, 60, _name("x.test"))]), None),
]


@pytest.mark.parametrize(("case", "data", "expected"), CASES, ids=[c[0] for c in CASES])
def test_parse_response(case: str, data: bytes, expected: Answer | None) -> None:
    assert parse_response(data) == expected


BROKEN = [
    ("short header", b"\x12\x34\x81\x80"),
    ("no question", struct.pack("!6H", 1, 0x8180, 0, 0, 0, 0)),
    ("name past the end", struct.pack("!6H", 1, 0x8180, 1, 0, 0, 0) + b"\x07svc"),
    ("pointer loop", struct.pack("!6H", 1, 0x8180, 1, 0, 0, 0) + b"\xc0\x0c"),
    ("bad label type", struct.pack("!6H", 1, 0x8180, 1, 0, 0, 0) + b"\x80abc\x00"),
]


@pytest.mark.parametrize(("case", "data"), BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_responses_raise(case: str, data: bytes) -> None:
    with pytest.raises(DnsError):
        parse_response(data)
