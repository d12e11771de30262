"""Redis RESP command and reply heads."""

from __future__ import annotations

import pytest

from collectors.ebpf.protocols.http1 import Parse, Request, Response
from collectors.ebpf.protocols.resp import parse_request, parse_response

REQUESTS = [
    ("SET", b"*3\r\n$3\r\nSET\r\n$4\r\nedge\r\n$1\r\nx\r\n", Parse.COMPLETE,
     Request("SET", "", None)),
    ("lower-case command", b"*2\r\n$3\r\nget\r\n$1\r\nk\r\n", Parse.COMPLETE,
     Request("GET", "", None)),
    ("dotted module command", b"*1\r\n$11\r\nJSON.DEBUGX\r\n", Parse.COMPLETE,
     Request("JSON.DEBUGX", "", None)),
    ("length disagrees", b"*2\r\n$4\r\nGET\r\n", Parse.INVALID, None),
    ("split in the command", b"*2\r\n$3\r\nGE", Parse.PARTIAL, None),
    ("split after the star", b"*", Parse.PARTIAL, None),
    ("inline command is not recognised", b"PING\r\n", Parse.INVALID, None),
    ("HTTP", b"GET / HTTP/1.1\r\n\r\n", Parse.INVALID, None),
    ("binary", b"\x00\x00\x00\x08\x04\xd2\x16/", Parse.INVALID, None),
]


@pytest.mark.parametrize(("case", "data", "state", "request_"), REQUESTS,
                         ids=[c[0] for c in REQUESTS])
def test_parse_request(case: str, data: bytes, state: Parse, request_: Request | None) -> None:
    assert parse_request(data) == (state, request_)


REPLIES = [
    ("simple string", b"+OK\r\n", Parse.COMPLETE, Response(None, error=False)),
    ("error", b"-ERR no\r\n", Parse.COMPLETE, Response(None, error=True)),
    ("RESP3 blob error", b"!21\r\nSYNTAX invalid syntax\r\n", Parse.COMPLETE,
     Response(None, error=True)),
    ("bulk", b"$3\r\nabc\r\n", Parse.COMPLETE, Response(None, error=False)),
    ("null bulk", b"$-1\r\n", Parse.COMPLETE, Response(None, error=False)),
    ("not RESP", b"HTTP/1.1 200 OK\r\n", Parse.INVALID, None),
    ("nothing yet", b"", Parse.PARTIAL, None),
]


@pytest.mark.parametrize(("case", "data", "state", "response"), REPLIES,
                         ids=[c[0] for c in REPLIES])
def test_parse_response(case: str, data: bytes, state: Parse, response: Response | None) -> None:
    assert parse_response(data) == (state, response)
